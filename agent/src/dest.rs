//! Where an output sends: a fixed address, or a MediaConnect flow's source
//! or a MediaLive input's pipeline that is resolved through AWS and may move.
//!
//! This module sits below the outputs and the cloud adapter: an output only
//! needs a [`Dest`], and the cloud adapter builds the [`FlowLink`]s with the
//! client factory it owns.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use edge_cloud::{ApiError, ChannelApi, FlowApi, FlowTarget, InputError, InputResolved, InputTarget, ResolveError, Resolved};
use serde::Serialize;
use tracing::{info, warn};

use crate::config::types::HostPort;
use crate::config::RtmpUrl;

/// Consecutive failed connects (SRT) before the output asks AWS again.
pub const RESOLVE_AFTER_FAILURES: u32 = 5;
/// Wait after a resolution that needs a person (protocol mismatch).
pub const PERMANENT_RETRY: Duration = Duration::from_secs(30);

/// Both services' clients for one region.
#[derive(Debug, Clone)]
pub struct Apis {
    pub flows: Arc<dyn FlowApi>,
    pub channels: Arc<dyn ChannelApi>,
}

/// Builds the clients for `(output region, ARN region)`. Building can wait
/// seconds on the region chain (IMDS), so it runs on the thread that first
/// resolves, never under the controller.
pub type FlowApiFactory = Arc<dyn Fn(Option<&str>, Option<&str>) -> Result<Apis, String> + Send + Sync>;

/// What a link is named by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// `flow_arn`.
    Flow(FlowTarget),
    /// `medialive_input_id` + `pipeline`.
    Input(InputTarget),
}

impl LinkTarget {
    /// The flow ARN or `input <id> pipeline <p>`, for logs.
    pub fn name(&self) -> String {
        match self {
            LinkTarget::Flow(f) => f.arn.to_string(),
            LinkTarget::Input(i) => format!("input {} pipeline {}", i.id, i.pipeline),
        }
    }
}

/// Where an output sends, once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SendTo {
    pub address: SocketAddr,
    /// P+2 and P+4 for an `rtp-fec` destination.
    pub fec_ports: Option<(u16, u16)>,
}

/// A link's resolution, as the output threads read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub destination: SendTo,
    /// A `flow_arn` output's flow (an input's is under [`LinkState::input`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<Resolved>,
    pub actions: Vec<String>,
}

/// Where an output sends.
#[derive(Debug, Clone)]
pub enum Dest {
    /// An IP address from the configuration.
    Fixed(SocketAddr),
    /// A host name from the configuration, resolved at every connect: DNS
    /// down is that output's error (retried, alarmed), and a record that
    /// moves is followed on the next reconnect.
    Name(HostPort),
    /// A MediaConnect flow's source or a MediaLive input's pipeline,
    /// resolved through AWS.
    Flow(Arc<FlowLink>),
}

/// The last resolution of one output.
#[derive(Debug, Clone, Serialize)]
pub struct LinkState {
    /// `flow_arn` or `medialive_input_id`.
    pub named_by: &'static str,
    /// Where to send; `None` for an input the box does not send to (an
    /// `SRT_CALLER` input calls the box).
    pub resolved: Option<Resolution>,
    /// A `medialive_input_id` output's input: type, pipeline, endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<InputResolved>,
    pub error: Option<String>,
    /// Whether the error needs a person (wrong protocol or input type, no
    /// such source or pipeline).
    pub permanent: bool,
    #[serde(skip)]
    pub at: Option<Instant>,
}

impl LinkState {
    /// The flow behind the link: `flow_arn`, or a `MEDIACONNECT` input's.
    pub fn flow(&self) -> Option<&Resolved> {
        self.resolved.as_ref().and_then(|r| r.flow.as_ref()).or(match self.input.as_ref().map(|i| &i.endpoint) {
            Some(edge_cloud::InputEndpoint::Flow(r)) => Some(r),
            _ => None,
        })
    }
}

/// One AWS-named output's destination, shared by its thread and the
/// monitor.
pub struct FlowLink {
    pub output: String,
    pub target: LinkTarget,
    /// Built on first use, on the thread that resolves.
    api: OnceLock<Result<Apis, String>>,
    factory: FlowApiFactory,
    /// The output's `region`, else the ARN's.
    target_region: Option<String>,
    /// Describe only (`edge-agent resolve`): never start or update.
    dry_run: bool,
    state: Mutex<LinkState>,
}

impl std::fmt::Debug for FlowLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowLink").field("output", &self.output).field("target", &self.target).finish_non_exhaustive()
    }
}

/// A resolution's outcome: where to send (if anywhere) and the input.
type Outcome = Result<(Option<Resolution>, Option<InputResolved>), (bool, String)>;

impl FlowLink {
    pub fn new(output: &str, target: LinkTarget, target_region: Option<String>, dry_run: bool, factory: FlowApiFactory) -> Self {
        FlowLink {
            output: output.to_owned(),
            api: OnceLock::new(),
            factory,
            target_region,
            dry_run,
            state: Mutex::new(LinkState {
                named_by: match &target {
                    LinkTarget::Flow(_) => "flow_arn",
                    LinkTarget::Input(_) => "medialive_input_id",
                },
                resolved: None,
                input: None,
                error: None,
                permanent: false,
                at: None,
            }),
            target,
        }
    }

    /// The clients, built the first time they are needed.
    pub fn api(&self) -> &Result<Apis, String> {
        let arn_region = match &self.target {
            LinkTarget::Flow(f) => Some(f.arn.region()),
            LinkTarget::Input(_) => None,
        };
        self.api.get_or_init(|| (self.factory)(self.target_region.as_deref(), arn_region))
    }

    fn outcome(&self) -> Outcome {
        let api = match self.api() {
            Ok(api) => api,
            Err(e) => return Err((true, ResolveError::Api(ApiError::NoClient(e.clone())).to_string())),
        };
        match &self.target {
            LinkTarget::Flow(t) => {
                let r =
                    if self.dry_run { edge_cloud::plan(api.flows.as_ref(), t) } else { edge_cloud::resolve(api.flows.as_ref(), t) };
                let r = r.map_err(|e| (e.is_permanent(), e.to_string()))?;
                let destination = SendTo { address: r.destination.address, fec_ports: r.destination.fec_ports };
                Ok((Some(Resolution { destination, actions: r.actions.clone(), flow: Some(r) }), None))
            }
            LinkTarget::Input(t) => {
                let r = edge_cloud::resolve_input(api.channels.as_ref(), api.flows.as_ref(), t, self.dry_run)
                    .map_err(|e: InputError| (e.is_permanent(), e.to_string()))?;
                let send = match &r.endpoint {
                    edge_cloud::InputEndpoint::Send { address, fec_ports } => {
                        Some(SendTo { address: *address, fec_ports: *fec_ports })
                    }
                    edge_cloud::InputEndpoint::Flow(f) => {
                        Some(SendTo { address: f.destination.address, fec_ports: f.destination.fec_ports })
                    }
                    edge_cloud::InputEndpoint::Push { .. } | edge_cloud::InputEndpoint::Listen { .. } => None,
                };
                let mut actions = r.actions.clone();
                if let edge_cloud::InputEndpoint::Flow(f) = &r.endpoint {
                    actions.extend(f.actions.iter().cloned());
                }
                Ok((send.map(|destination| Resolution { destination, flow: None, actions }), Some(r)))
            }
        }
    }

    /// Resolves now (blocking, ≤ ~10 s per call) and records the outcome.
    pub fn refresh(&self) -> LinkState {
        let started = Instant::now();
        let outcome = self.outcome();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.at = Some(Instant::now());
        match outcome {
            Ok((resolved, input)) => {
                let moved = st.resolved.as_ref().map(|x| x.destination) != resolved.as_ref().map(|x| x.destination);
                let acted = resolved.as_ref().is_some_and(|r| !r.actions.is_empty());
                if moved || acted || (st.input.is_none() && input.is_some()) {
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let destination = resolved.as_ref().map(|r| r.destination.address.to_string());
                    match (&self.target, &input) {
                        (LinkTarget::Input(t), Some(i)) => {
                            info!(output = %self.output, input = %t.id, pipeline = %t.pipeline, input_type = %i.input_type, endpoint = %i.endpoint.describe(), actions = ?i.actions, ms, "medialive input resolved")
                        }
                        _ => {
                            info!(output = %self.output, flow = %self.target.name(), destination = ?destination, actions = ?resolved.as_ref().map(|r| &r.actions), ms, "flow resolved")
                        }
                    }
                }
                (st.resolved, st.input) = (resolved, input);
                (st.error, st.permanent) = (None, false);
            }
            Err((permanent, msg)) => {
                if st.error.as_deref() != Some(msg.as_str()) {
                    warn!(output = %self.output, target = %self.target.name(), error = %msg, "resolution failed");
                }
                (st.error, st.permanent) = (Some(msg), permanent);
            }
        }
        st.clone()
    }

    /// Resolves now (blocking) for an output that sends: where to send, or
    /// why not.
    pub fn resolve(&self) -> Result<Resolution, String> {
        let st = self.refresh();
        match (st.resolved, st.error, st.input) {
            (Some(r), None, _) => Ok(r),
            (_, Some(e), _) => Err(e),
            (None, None, Some(i)) => Err(format!(
                "MediaLive input {} ({}) pipeline {}: {}, nothing to send to",
                i.input_id,
                i.input_type,
                i.pipeline,
                i.endpoint.describe()
            )),
            (None, None, None) => Err("no destination".into()),
        }
    }

    /// Resolves now (blocking) for an output that pushes (RTMP, an
    /// `RTMP_PUSH` input's pipeline): the URL, or why not.
    pub fn resolve_push(&self) -> Result<RtmpUrl, String> {
        let st = self.refresh();
        if let Some(e) = st.error {
            return Err(e);
        }
        match (push_url(&st), st.input) {
            (Some(url), _) => url,
            (None, Some(i)) => Err(format!(
                "MediaLive input {} ({}) pipeline {}: {}, no RTMP URL to push to",
                i.input_id,
                i.input_type,
                i.pipeline,
                i.endpoint.describe()
            )),
            (None, None) => Err("no RTMP URL".into()),
        }
    }

    /// The last resolved RTMP push URL, without calling AWS; `None` before
    /// the first resolution and after one that needs a person (the input
    /// is no longer `RTMP_PUSH`, the pipeline is gone).
    pub fn current_push(&self) -> Option<RtmpUrl> {
        let st = self.state();
        if st.permanent {
            return None;
        }
        push_url(&st).and_then(Result::ok)
    }

    /// The last resolved address, without calling AWS.
    pub fn current(&self) -> Option<SocketAddr> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).resolved.as_ref().map(|r| r.destination.address)
    }

    pub fn state(&self) -> LinkState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long to wait after a failed resolution.
    pub fn retry_delay(&self, backoff: Duration) -> Duration {
        if self.state().permanent {
            PERMANENT_RETRY
        } else {
            backoff
        }
    }
}

/// An `RTMP_PUSH` pipeline's URL, checked as a configured `url` is (the
/// message never quotes it: the stream name is the key).
fn push_url(st: &LinkState) -> Option<Result<RtmpUrl, String>> {
    let i = st.input.as_ref()?;
    let edge_cloud::InputEndpoint::Push { url } = &i.endpoint else { return None };
    Some(
        RtmpUrl::try_from(url.clone())
            .map_err(|e| format!("MediaLive input {} pipeline {}: the destination Url {e}", i.input_id, i.pipeline)),
    )
}
