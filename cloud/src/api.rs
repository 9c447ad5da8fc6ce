//! The narrow traits the core logic is written against. One implementation
//! calls AWS through the SDK ([`crate::aws`], feature `aws`); tests use a
//! hand-written fake ([`crate::fake`]). Calls are blocking: the agent runs
//! one thread per output and has no async runtime of its own.

use crate::model::{Channel, ChannelId, Flow, FlowArn, FlowStatus, Input, InputSecurityGroup, SourceMetadata, SourceUpdate};

/// Why a call to AWS failed. Messages never contain credentials: they come
/// from the service's error code and message, or the transport's error kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The resource does not exist (`NotFoundException`).
    #[error("not found: {0}")]
    NotFound(String),
    /// The endpoint does not implement the operation (moto answers HTML 404).
    #[error("not supported by this endpoint: {0}")]
    Unsupported(String),
    /// The service refused the call.
    #[error("{code}: {message}")]
    Service { code: String, message: String },
    /// No client: the build lacks AWS support, or the client cannot start.
    #[error("{0}")]
    NoClient(String),
    /// No answer (network, DNS, TLS, timeout, credentials).
    #[error("cannot reach AWS: {0}")]
    Transport(String),
}

/// MediaConnect, as the agent uses it.
pub trait FlowApi: Send + Sync + std::fmt::Debug {
    /// `DescribeFlow`.
    fn describe_flow(&self, arn: &FlowArn) -> Result<Flow, ApiError>;
    /// `StartFlow`: the status it returns (`STARTING`).
    fn start_flow(&self, arn: &FlowArn) -> Result<FlowStatus, ApiError>;
    /// `UpdateFlowSource` with every field of `update`.
    fn update_flow_source(&self, update: &SourceUpdate) -> Result<(), ApiError>;
    /// `DescribeFlowSourceMetadata`.
    fn source_metadata(&self, arn: &FlowArn) -> Result<SourceMetadata, ApiError>;
}

/// MediaLive, as the agent uses it.
pub trait ChannelApi: Send + Sync + std::fmt::Debug {
    /// `DescribeChannel`.
    fn describe_channel(&self, id: &ChannelId) -> Result<Channel, ApiError>;
    /// `DescribeInput`: type, destinations, SRT caller sources, flows,
    /// security group ids.
    fn describe_input(&self, id: &str) -> Result<Input, ApiError>;
    /// `DescribeInputSecurityGroup`: the group's whitelist CIDRs.
    fn describe_input_security_group(&self, id: &str) -> Result<InputSecurityGroup, ApiError>;
    /// `StartChannel`: the state it returns.
    fn start_channel(&self, id: &ChannelId) -> Result<String, ApiError>;
    /// `StopChannel`: the state it returns.
    fn stop_channel(&self, id: &ChannelId) -> Result<String, ApiError>;
}
