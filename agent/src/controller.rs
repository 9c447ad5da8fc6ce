//! The running agent: configuration, pipeline and outputs, and every change
//! to them, applied at the least disruptive depth.
//!
//! # Design
//! Each change touches as little as possible:
//! - a video bitrate change goes live into the running encoder (x264's
//!   `bitrate` is mutable while playing), with no pipeline restart;
//! - an output that is added, removed or changed is started or stopped on its
//!   own; the other outputs and the encoder never notice;
//! - only input, codec, audio or transport-stream changes rebuild the
//!   pipeline.
//!
//! The raw configuration (JSON, secrets included) is kept as the rollback
//! target and persisted atomically (write, fsync, rename) so a power cut
//! leaves the old or the new file, both valid.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use serde_json::Value;
use tracing::{info, warn};

use crate::cloud::Cloud;
use crate::config::{AgentConfig, OutputConfig};
use crate::fanout::FanOut;
use crate::output::{OutputHandle, OutputSnapshot, OutputState};
use crate::pipeline::{self, PipelineEvent, PipelineStats, Supervisor};
use crate::shutdown::Shutdown;
use hal::encoder::{EncoderKind, ProbeReport};

/// Why a change could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No output of that name.
    #[error("no output named `{0}`")]
    UnknownOutput(String),
    /// The encoder cannot be (re)chosen.
    #[error("encoder: {0}")]
    Encoder(String),
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// One running pipeline supervisor.
#[derive(Debug)]
struct PipelineRun {
    stop: Shutdown,
    thread: JoinHandle<()>,
    stats: Arc<PipelineStats>,
    encoder: Arc<Mutex<Option<gstreamer::Element>>>,
}

/// The agent's mutable heart, shared between the supervision loop and the
/// fleet session (behind a mutex; every method returns within ~2 s).
#[derive(Debug)]
pub struct Controller {
    cfg: AgentConfig,
    /// The configuration as applied, secrets included: the rollback target.
    raw: Value,
    /// Shared with the pipeline builder so a restart after a failure uses
    /// the latest live changes (e.g. bitrate).
    live_cfg: Arc<RwLock<AgentConfig>>,
    report: ProbeReport,
    kind: EncoderKind,
    factory: String,
    fan: Arc<FanOut>,
    outputs: Vec<(String, Option<OutputHandle>)>,
    disabled_by_command: BTreeSet<String>,
    pipeline: Option<PipelineRun>,
    events: Sender<PipelineEvent>,
    shutdown: Shutdown,
    persist: Option<PathBuf>,
    /// The last persistence failure (state directory full or read-only).
    pub persist_error: Option<String>,
    /// `identify`: until when the front panel flashes.
    identify_until: Option<std::time::Instant>,
    /// The front panel's readings, when a board is configured.
    pub panel: Option<Arc<Mutex<crate::panel::PanelReadings>>>,
    /// AWS clients, flow links and health (`[aws]`, outputs by `flow_arn`).
    cloud: Arc<Cloud>,
}

impl Controller {
    /// Starts outputs and pipeline for `cfg`.
    pub fn start(
        cfg: AgentConfig,
        raw: Value,
        report: ProbeReport,
        events: Sender<PipelineEvent>,
        shutdown: Shutdown,
        persist: Option<PathBuf>,
    ) -> Result<Controller, ControlError> {
        let chosen = report.chosen().ok_or_else(|| ControlError::Encoder(report.why()))?;
        let (kind, factory) = (chosen.kind, chosen.factory.to_owned());
        let fan = Arc::new(FanOut::new(cfg.rtp_ssrc()));
        let cfg_for_cloud = cfg.clone();
        fan.set_nominal_bps(cfg.nominal_ts_bps());
        let mut c = Controller {
            live_cfg: Arc::new(RwLock::new(cfg.clone())),
            cfg,
            raw,
            report,
            kind,
            factory,
            fan,
            outputs: Vec::new(),
            disabled_by_command: BTreeSet::new(),
            pipeline: None,
            events,
            shutdown,
            persist,
            persist_error: None,
            identify_until: None,
            panel: None,
            cloud: Arc::new(Cloud::new(&cfg_for_cloud)),
        };
        for o in c.cfg.outputs.clone() {
            let handle = c.start_output(&o)?;
            c.outputs.push((o.name().as_str().to_owned(), handle));
        }
        c.start_pipeline()?;
        Ok(c)
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    pub fn raw_config(&self) -> &Value {
        &self.raw
    }

    pub fn encoder_report(&self) -> &ProbeReport {
        &self.report
    }

    pub fn factory(&self) -> &str {
        &self.factory
    }

    pub fn is_streaming(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Counters of the current pipeline run, if streaming.
    pub fn pipeline_stats(&self) -> Option<Arc<PipelineStats>> {
        self.pipeline.as_ref().map(|p| p.stats.clone())
    }

    /// `identify`: flash the front panel for `d`.
    pub fn identify(&mut self, d: std::time::Duration) {
        self.identify_until = Some(std::time::Instant::now() + d);
    }

    pub fn panel_configured(&self) -> bool {
        self.cfg.panel.is_some()
    }

    pub fn panel_readings(&self) -> Option<crate::panel::PanelReadings> {
        self.panel.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    pub fn identifying(&self) -> bool {
        self.identify_until.is_some_and(|t| std::time::Instant::now() < t)
    }

    /// The input as the frame pump sees it, while streaming.
    pub fn input_status(&self) -> Option<pipeline::pump::InputStatus> {
        self.pipeline.as_ref().map(|p| p.stats.input.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Simulated signal loss on or off (SIGUSR1): the slate path, for real,
    /// without pulling a cable. Returns the new state, `None` when stopped.
    pub fn toggle_simulated_loss(&self) -> Option<bool> {
        self.pipeline.as_ref().map(|p| p.stats.frames.toggle_simulated_loss())
    }

    /// Test-pattern format switch on or off (SIGUSR2), as a source changing
    /// format would. `None` when stopped.
    pub fn toggle_alternate_format(&self) -> Option<bool> {
        self.pipeline.as_ref().map(|p| p.stats.frames.toggle_alternate_format())
    }

    pub fn snapshots(&self) -> Vec<OutputSnapshot> {
        self.outputs
            .iter()
            .map(|(name, h)| match h {
                Some(h) => h.status.snapshot(),
                None => OutputSnapshot::disabled(name),
            })
            .collect()
    }

    fn start_output(&self, o: &OutputConfig) -> Result<Option<OutputHandle>, ControlError> {
        if !o.enabled() || self.disabled_by_command.contains(o.name().as_str()) {
            return Ok(None);
        }
        Ok(Some(OutputHandle::start(o, &self.fan, &self.shutdown, &self.cloud)?))
    }

    /// `stream.start`: builds and plays the pipeline (no-op if running).
    pub fn start_pipeline(&mut self) -> Result<(), ControlError> {
        if self.pipeline.is_some() {
            return Ok(());
        }
        let stop = Shutdown::new();
        let live = self.live_cfg.clone();
        let (kind, factory) = (self.kind, self.factory.clone());
        let build: pipeline::GraphBuilder = Box::new(move || {
            let cfg = live.read().unwrap_or_else(|p| p.into_inner()).clone();
            pipeline::graph::build(&cfg, kind, &factory)
        });
        let media = self.live_cfg.read().unwrap_or_else(|p| p.into_inner()).clone();
        let sup = Supervisor::with_builder(build, &self.factory, self.fan.clone(), self.events.clone(), stop.clone())
            .with_media(media);
        let (stats, encoder) = (sup.stats.clone(), sup.encoder_handle());
        let thread = std::thread::Builder::new().name("pipeline".into()).spawn(move || sup.run())?;
        self.pipeline = Some(PipelineRun { stop, thread, stats, encoder });
        Ok(())
    }

    /// `stream.stop`: stops the pipeline; outputs stay connected and idle so
    /// a restart is quick.
    pub fn stop_pipeline(&mut self) {
        if let Some(p) = self.pipeline.take() {
            p.stop.trigger();
            let _ = p.thread.join();
        }
    }

    /// `output.enable` / `output.disable`: touches that output only. Not
    /// persisted: the desired configuration stays the source of truth.
    pub fn set_output_enabled(&mut self, name: &str, enabled: bool) -> Result<(), ControlError> {
        let cfg = self
            .cfg
            .outputs
            .iter()
            .find(|o| o.name().as_str() == name)
            .cloned()
            .ok_or_else(|| ControlError::UnknownOutput(name.to_owned()))?;
        if enabled {
            self.disabled_by_command.remove(name);
        } else {
            self.disabled_by_command.insert(name.to_owned());
        }
        let running = self.outputs.iter().any(|(n, h)| n == name && h.is_some());
        if running != (enabled && cfg.enabled()) {
            self.replace_output(name, Some(&cfg))?;
        }
        Ok(())
    }

    fn replace_output(&mut self, name: &str, cfg: Option<&OutputConfig>) -> Result<(), ControlError> {
        if let Some(pos) = self.outputs.iter().position(|(n, _)| n == name) {
            let (_, old) = self.outputs.remove(pos);
            self.cloud.forget(name);
            if let Some(h) = old {
                h.stop(&self.fan);
            }
        }
        if let Some(cfg) = cfg {
            let handle = self.start_output(cfg)?;
            self.outputs.push((name.to_owned(), handle));
        }
        Ok(())
    }

    /// Applies a validated configuration at the least disruptive depth and
    /// persists it. Returns what was done, for logs and the fleet answer.
    pub fn apply(&mut self, new: AgentConfig, raw: Value) -> Result<Vec<String>, ControlError> {
        let old = self.cfg.clone();
        let mut done = Vec::new();
        let rebuild = old.input != new.input
            || old.audio != new.audio
            || old.transport_stream != new.transport_stream
            || old.device_id != new.device_id
            || crate::config::VideoConfig { bitrate_kbps: new.video.bitrate_kbps, ..old.video.clone() } != new.video;
        if new.video.encoder != old.video.encoder || new.video.codec != old.video.codec {
            let report = crate::choose_encoder(&new).map_err(|e| ControlError::Encoder(e.to_string()))?;
            let chosen = report.chosen().ok_or_else(|| ControlError::Encoder(report.why()))?;
            (self.kind, self.factory) = (chosen.kind, chosen.factory.to_owned());
            self.report = report;
        }
        *self.live_cfg.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        if new.aws != old.aws {
            // New clients and links: every flow-named output restarts below.
            self.cloud = Arc::new(Cloud::new(&new));
            done.push("aws settings".to_owned());
        }
        self.fan.set_nominal_bps(new.nominal_ts_bps());
        if new.rtp_ssrc() != old.rtp_ssrc() {
            self.fan.set_ssrc(new.rtp_ssrc());
            done.push("rtp ssrc".to_owned());
        }
        if rebuild && self.pipeline.is_some() {
            self.stop_pipeline();
            self.start_pipeline()?;
            done.push("pipeline rebuilt".to_owned());
        } else if new.video.bitrate_kbps != old.video.bitrate_kbps {
            let live = self.pipeline.as_ref().and_then(|p| p.encoder.lock().unwrap_or_else(|e| e.into_inner()).clone());
            match live.map(|enc| pipeline::encoder::set_bitrate(&enc, new.video.bitrate_kbps.get())) {
                Some(Ok(())) | None => done.push(format!("video bitrate {} kbit/s live", new.video.bitrate_kbps.get())),
                Some(Err(e)) => {
                    warn!(error = %e, "live bitrate change refused; rebuilding the pipeline");
                    self.stop_pipeline();
                    self.start_pipeline()?;
                    done.push("pipeline rebuilt for bitrate".to_owned());
                }
            }
        }
        self.cfg = new.clone();
        let names: BTreeSet<String> = old.outputs.iter().chain(new.outputs.iter()).map(|o| o.name().as_str().to_owned()).collect();
        for name in names {
            let before = old.outputs.iter().find(|o| o.name().as_str() == name);
            let after = new.outputs.iter().find(|o| o.name().as_str() == name);
            let on_new_cloud = new.aws != old.aws && after.is_some_and(|o| o.target().flow_arn.is_some());
            if before != after || on_new_cloud {
                self.replace_output(&name, after)?;
                done.push(format!("output {name} {}", if after.is_some() { "restarted" } else { "removed" }));
            }
        }
        // Keep the configured order for status and telemetry.
        let order: Vec<String> = self.cfg.outputs.iter().map(|o| o.name().as_str().to_owned()).collect();
        self.outputs.sort_by_key(|(n, _)| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
        self.raw = raw;
        self.persist_raw();
        info!(changes = ?done, "configuration applied");
        Ok(done)
    }

    /// Writes the raw configuration atomically; a failure (disk full) is
    /// kept for the alarm and never stops the stream.
    fn persist_raw(&mut self) {
        let Some(path) = &self.persist else { return };
        let written = serde_json::to_vec_pretty(&self.raw)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::write_atomically(path, &bytes));
        self.persist_error = match written {
            Ok(()) => None,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot persist the applied configuration");
                Some(format!("{}: {e}", path.display()))
            }
        };
    }

    /// Whether every enabled output is connected (the confirm health gate).
    pub fn outputs_healthy(&self) -> bool {
        self.snapshots().iter().all(|s| matches!(s.state, OutputState::Connected | OutputState::Disabled))
    }

    /// Stops everything (shutdown).
    pub fn stop_all(&mut self) {
        self.stop_pipeline();
        for (_, h) in self.outputs.drain(..) {
            if let Some(h) = h {
                h.stop(&self.fan);
            }
        }
    }

    /// TS bytes produced by the current pipeline run.
    pub fn ts_bytes(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, |p| p.stats.ts_bytes.load(Ordering::Relaxed))
    }

    /// The AWS side (shared with the monitor thread).
    pub fn cloud(&self) -> Arc<Cloud> {
        self.cloud.clone()
    }

    pub fn output_names(&self) -> Vec<String> {
        self.cfg.outputs.iter().map(|o| o.name().as_str().to_owned()).collect()
    }
}
