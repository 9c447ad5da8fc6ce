//! A hand-written fake of both services, for what moto does not emulate
//! (`Transport`, source metadata, `PipelineDetails`, an input's
//! `Destinations` addresses and `SrtSettings`, input security groups) and
//! for fast unit tests.
//! Like moto 5.2.5, `UpdateFlowSource` replaces the whole source with what
//! the request carries (unsent fields become empty), so a partial update
//! shows up as lost fields.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::api::{ApiError, ChannelApi, FlowApi};
use crate::model::{Channel, ChannelId, Flow, FlowArn, FlowStatus, Input, InputSecurityGroup, SourceMetadata, SourceUpdate};

#[derive(Debug, Default)]
struct State {
    flows: BTreeMap<String, Flow>,
    metadata: BTreeMap<String, SourceMetadata>,
    channels: BTreeMap<String, Channel>,
    inputs: BTreeMap<String, Input>,
    security_groups: BTreeMap<String, InputSecurityGroup>,
    updates: Vec<SourceUpdate>,
    calls: Vec<&'static str>,
}

/// In-memory MediaConnect and MediaLive.
#[derive(Debug, Default)]
pub struct FakeCloud {
    state: Mutex<State>,
}

impl FakeCloud {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn put_flow(&self, flow: Flow) {
        self.lock().flows.insert(flow.arn.to_string(), flow);
    }

    pub fn flow(&self, arn: &FlowArn) -> Option<Flow> {
        self.lock().flows.get(arn.as_str()).cloned()
    }

    pub fn put_metadata(&self, arn: &FlowArn, meta: SourceMetadata) {
        self.lock().metadata.insert(arn.to_string(), meta);
    }

    pub fn put_channel(&self, channel: Channel) {
        self.lock().channels.insert(channel.id.clone(), channel);
    }

    pub fn put_input(&self, input: Input) {
        self.lock().inputs.insert(input.id.clone(), input);
    }

    /// An input security group (moto 5.2.5 has no `DescribeInputSecurityGroup`).
    pub fn put_security_group(&self, group: InputSecurityGroup) {
        self.lock().security_groups.insert(group.id.clone(), group);
    }

    /// Every `UpdateFlowSource` request received.
    pub fn updates(&self) -> Vec<SourceUpdate> {
        self.lock().updates.clone()
    }

    /// The operations called, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.lock().calls.clone()
    }
}

impl FlowApi for FakeCloud {
    fn describe_flow(&self, arn: &FlowArn) -> Result<Flow, ApiError> {
        let mut s = self.lock();
        s.calls.push("DescribeFlow");
        s.flows.get(arn.as_str()).cloned().ok_or_else(|| ApiError::NotFound(arn.to_string()))
    }

    fn start_flow(&self, arn: &FlowArn) -> Result<FlowStatus, ApiError> {
        let mut s = self.lock();
        s.calls.push("StartFlow");
        let flow = s.flows.get_mut(arn.as_str()).ok_or_else(|| ApiError::NotFound(arn.to_string()))?;
        flow.status = FlowStatus::Starting;
        Ok(FlowStatus::Starting)
    }

    fn update_flow_source(&self, u: &SourceUpdate) -> Result<(), ApiError> {
        let mut s = self.lock();
        s.calls.push("UpdateFlowSource");
        s.updates.push(u.clone());
        let flow = s.flows.get_mut(&u.flow_arn).ok_or_else(|| ApiError::NotFound(u.flow_arn.clone()))?;
        let src = flow
            .sources
            .iter_mut()
            .find(|x| x.arn.as_deref() == Some(u.source_arn.as_str()))
            .ok_or_else(|| ApiError::NotFound(u.source_arn.clone()))?;
        src.description = u.description.clone();
        src.ingest_port = u.ingest_port;
        src.whitelist_cidr = u.whitelist_cidr.clone();
        src.transport = u.transport.clone();
        src.decryption = u.decryption.clone();
        Ok(())
    }

    fn source_metadata(&self, arn: &FlowArn) -> Result<SourceMetadata, ApiError> {
        let mut s = self.lock();
        s.calls.push("DescribeFlowSourceMetadata");
        s.metadata.get(arn.as_str()).cloned().ok_or_else(|| ApiError::Unsupported("DescribeFlowSourceMetadata".into()))
    }
}

impl ChannelApi for FakeCloud {
    fn describe_channel(&self, id: &ChannelId) -> Result<Channel, ApiError> {
        let mut s = self.lock();
        s.calls.push("DescribeChannel");
        s.channels.get(id.as_str()).cloned().ok_or_else(|| ApiError::NotFound(id.to_string()))
    }

    fn describe_input(&self, id: &str) -> Result<Input, ApiError> {
        let mut s = self.lock();
        s.calls.push("DescribeInput");
        s.inputs.get(id).cloned().ok_or_else(|| ApiError::NotFound(id.to_owned()))
    }

    fn describe_input_security_group(&self, id: &str) -> Result<InputSecurityGroup, ApiError> {
        let mut s = self.lock();
        s.calls.push("DescribeInputSecurityGroup");
        s.security_groups.get(id).cloned().ok_or_else(|| ApiError::NotFound(id.to_owned()))
    }

    fn start_channel(&self, id: &ChannelId) -> Result<String, ApiError> {
        self.set_channel_state(id, "StartChannel", "STARTING")
    }

    fn stop_channel(&self, id: &ChannelId) -> Result<String, ApiError> {
        self.set_channel_state(id, "StopChannel", "STOPPING")
    }
}

impl FakeCloud {
    fn set_channel_state(&self, id: &ChannelId, call: &'static str, state: &str) -> Result<String, ApiError> {
        let mut s = self.lock();
        s.calls.push(call);
        let ch = s.channels.get_mut(id.as_str()).ok_or_else(|| ApiError::NotFound(id.to_string()))?;
        ch.state = state.to_owned();
        Ok(state.to_owned())
    }
}
