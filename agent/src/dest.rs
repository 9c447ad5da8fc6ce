//! Where an output sends: a fixed address, or a MediaConnect flow's source
//! that is resolved through AWS and may move.
//!
//! This module sits below the outputs and the cloud adapter: an output only
//! needs a [`Dest`], and the cloud adapter builds the [`FlowLink`]s with the
//! client factory it owns.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use edge_cloud::{ApiError, FlowApi, FlowTarget, ResolveError, Resolved};
use serde::Serialize;
use tracing::{info, warn};

use crate::config::types::HostPort;

/// Consecutive failed connects (SRT) before the output asks AWS again.
pub const RESOLVE_AFTER_FAILURES: u32 = 5;
/// Wait after a resolution that needs a person (protocol mismatch).
pub const PERMANENT_RETRY: Duration = Duration::from_secs(30);

/// Builds the flow API client for `(output region, ARN region)`. Building
/// can wait seconds on the region chain (IMDS), so it runs on the thread
/// that first resolves, never under the controller.
pub type FlowApiFactory = Arc<dyn Fn(Option<&str>, &str) -> Result<Arc<dyn FlowApi>, String> + Send + Sync>;

/// Where an output sends.
#[derive(Debug, Clone)]
pub enum Dest {
    /// An IP address from the configuration.
    Fixed(SocketAddr),
    /// A host name from the configuration, resolved at every connect: DNS
    /// down is that output's error (retried, alarmed), and a record that
    /// moves is followed on the next reconnect.
    Name(HostPort),
    /// A MediaConnect flow's source, resolved through AWS.
    Flow(Arc<FlowLink>),
}

/// The last resolution of one output.
#[derive(Debug, Clone, Serialize)]
pub struct LinkState {
    pub resolved: Option<Resolved>,
    pub error: Option<String>,
    /// Whether the error needs a person (wrong protocol, no such source).
    pub permanent: bool,
    #[serde(skip)]
    pub at: Option<Instant>,
}

/// One flow-named output's destination, shared by its thread and the
/// monitor.
pub struct FlowLink {
    pub output: String,
    pub target: FlowTarget,
    /// Built on first use, on the thread that resolves.
    api: OnceLock<Result<Arc<dyn FlowApi>, String>>,
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

impl FlowLink {
    pub fn new(output: &str, target: FlowTarget, target_region: Option<String>, dry_run: bool, factory: FlowApiFactory) -> Self {
        FlowLink {
            output: output.to_owned(),
            target,
            api: OnceLock::new(),
            factory,
            target_region,
            dry_run,
            state: Mutex::new(LinkState { resolved: None, error: None, permanent: false, at: None }),
        }
    }

    /// The flow API client, built the first time it is needed.
    pub fn api(&self) -> &Result<Arc<dyn FlowApi>, String> {
        self.api.get_or_init(|| (self.factory)(self.target_region.as_deref(), self.target.arn.region()))
    }

    /// Resolves now (blocking, ≤ ~10 s) and records the outcome.
    pub fn resolve(&self) -> Result<Resolved, String> {
        let started = Instant::now();
        let outcome = match self.api() {
            Ok(api) if self.dry_run => edge_cloud::plan(api.as_ref(), &self.target).map_err(|e| (e.is_permanent(), e)),
            Ok(api) => edge_cloud::resolve(api.as_ref(), &self.target).map_err(|e| (e.is_permanent(), e)),
            Err(e) => Err((true, ResolveError::Api(ApiError::NoClient(e.clone())))),
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.at = Some(Instant::now());
        match outcome {
            Ok(r) => {
                if st.resolved.as_ref().map(|x| x.destination.address) != Some(r.destination.address) || !r.actions.is_empty() {
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    info!(output = %self.output, flow = %self.target.arn, destination = %r.destination.address, actions = ?r.actions, ms, "flow resolved");
                }
                st.resolved = Some(r.clone());
                (st.error, st.permanent) = (None, false);
                Ok(r)
            }
            Err((permanent, e)) => {
                let msg = e.to_string();
                if st.error.as_deref() != Some(msg.as_str()) {
                    warn!(output = %self.output, flow = %self.target.arn, error = %msg, "flow resolution failed");
                }
                (st.error, st.permanent) = (Some(msg.clone()), permanent);
                Err(msg)
            }
        }
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
