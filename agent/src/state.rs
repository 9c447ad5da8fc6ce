//! What the running agent is, as readers see it: an immutable [`Snapshot`]
//! the controller publishes after every change.
//!
//! # Design
//! Readers (status file, status line, telemetry, alarms, front panel,
//! watchdog, AWS monitor) call [`SnapshotReader::load`] and never wait for
//! the controller: publishing swaps one pointer (`arc-swap`), reading
//! clones it. A snapshot holds the structure (configuration, encoder,
//! which outputs run) and shared handles to the live counters each part
//! keeps itself (output status, pipeline statistics), so figures stay
//! current between changes without a new snapshot.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;

use crate::adapt::AdaptStatus;
use crate::cloud::{Cloud, CloudReport};
use crate::config::AgentConfig;
use crate::output::{OutputSnapshot, OutputState, OutputStatus};
use crate::pipeline::pump::InputStatus;
use crate::pipeline::PipelineStats;
use hal::encoder::ProbeReport;

/// One configured output: its live status while it runs.
#[derive(Debug, Clone)]
pub struct OutputView {
    pub name: String,
    pub status: Option<Arc<OutputStatus>>,
}

/// The running agent at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub cfg: Arc<AgentConfig>,
    /// The configuration as applied, secrets included: the rollback target.
    /// Never logged or published as is.
    pub raw: Arc<Value>,
    pub encoder_report: Arc<ProbeReport>,
    /// The encoder element in use (`x264enc`, `vah264enc`, …).
    pub factory: String,
    /// Counters of the current pipeline run; `None` while stopped.
    pub pipeline: Option<Arc<PipelineStats>>,
    pub outputs: Vec<OutputView>,
    /// AWS clients and flow links (shared with the output threads).
    pub cloud: Arc<Cloud>,
    /// What the AWS monitor last saw.
    pub cloud_report: Arc<CloudReport>,
    /// The last failure to persist the applied configuration.
    pub persist_error: Option<String>,
    /// `identify`: until when the front panel flashes.
    pub identify_until: Option<Instant>,
    /// Network-adaptive bitrate: the target, why, and each path's view;
    /// `None` while adaptation is off.
    pub adapt: Option<Arc<AdaptStatus>>,
    /// Why the encoder did not take the last target (an element that
    /// cannot change its bitrate while playing).
    pub adapt_error: Option<String>,
}

impl Snapshot {
    /// Before the media path runs (or while none can): the configuration
    /// to start, no encoder, no pipeline, no outputs.
    pub fn idle(cfg: &AgentConfig, raw: &Value) -> Snapshot {
        Snapshot {
            cfg: Arc::new(cfg.clone()),
            raw: Arc::new(raw.clone()),
            encoder_report: Arc::new(ProbeReport { candidates: Vec::new(), chosen: None }),
            factory: "none".to_owned(),
            pipeline: None,
            outputs: Vec::new(),
            cloud: Arc::new(Cloud::new(cfg)),
            cloud_report: Arc::default(),
            persist_error: None,
            identify_until: None,
            adapt: None,
            adapt_error: None,
        }
    }

    pub fn is_streaming(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Each output's status now, in configured order.
    pub fn output_snapshots(&self) -> Vec<OutputSnapshot> {
        self.outputs
            .iter()
            .map(|o| match &o.status {
                Some(s) => s.snapshot(),
                None => OutputSnapshot::disabled(&o.name),
            })
            .collect()
    }

    /// The input as the frame pump sees it, while streaming.
    pub fn input_status(&self) -> Option<InputStatus> {
        self.pipeline.as_ref().map(|p| p.input.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Whether every enabled output is connected (the confirm health gate).
    pub fn outputs_healthy(&self) -> bool {
        self.output_snapshots().iter().all(|s| matches!(s.state, OutputState::Connected | OutputState::Disabled))
    }

    pub fn identifying(&self) -> bool {
        self.identify_until.is_some_and(|t| Instant::now() < t)
    }

    /// The video bitrate the encoder is asked for now: the adaptive target
    /// or the configured bitrate.
    pub fn video_target_kbps(&self) -> u32 {
        self.adapt.as_ref().map_or(self.cfg.video.bitrate_kbps.get(), |a| a.target_kbps)
    }

    pub fn device_id(&self) -> &str {
        self.cfg.device_id.as_str()
    }
}

/// Where the controller publishes and readers look.
#[derive(Debug, Clone)]
pub struct SnapshotReader(Arc<ArcSwap<Snapshot>>);

impl SnapshotReader {
    pub fn new(first: Snapshot) -> Self {
        SnapshotReader(Arc::new(ArcSwap::from_pointee(first)))
    }

    /// The latest snapshot; never waits for the controller.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Replaces the snapshot (the controller, after each change).
    pub(crate) fn publish(&self, s: Snapshot) {
        self.0.store(Arc::new(s));
    }
}

/// The front-panel board's latest readings, for telemetry. Written by the
/// panel driver, read by telemetry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PanelReadings {
    pub connected: bool,
    pub firmware: Option<String>,
    pub temp_millicelsius: Option<i32>,
    pub fan_rpm: Option<u32>,
    pub psu_millivolts: Option<u32>,
    pub psu_milliamps: Option<u32>,
}

/// Shared between the panel driver (writer) and telemetry (reader).
pub type SharedPanelReadings = Arc<Mutex<PanelReadings>>;
