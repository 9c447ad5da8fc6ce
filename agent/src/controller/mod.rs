//! The one owner of the running agent: configuration, pipeline and
//! outputs. It runs on its own thread and takes every change from one
//! inbox ([`crate::action`]), in order, answering each; after each change it
//! publishes a new [`Snapshot`] for the readers.
//!
//! # Design
//! - Only this thread changes the pipeline and the outputs, so two changes
//!   never interleave (a fleet config and a panel button, say).
//! - Readers never wait for it: they read the last published snapshot.
//!   A slow change here (an encoder probe with trial encodes, a GStreamer
//!   teardown) delays the next change, never MQTT keep-alives, the panel,
//!   the status file or the systemd watchdog.
//! - Work that is not a change to the running agent stays with its
//!   adapter: AWS channel commands, reboots and firmware downloads run in
//!   the fleet adapter, off this thread.
//! - [`apply`] applies a configuration at the least disruptive depth.

mod apply;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fleet::wire::ReasonCode;
use fleet::Command;
use gstreamer::prelude::*;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::action::{Action, ActionError, Envelope, Outcome};
use crate::adapt::AdaptStatus;
use crate::cloud::{Cloud, CloudReport};
use crate::config::{AgentConfig, OutputConfig};
use crate::fanout::FanOut;
use crate::output::OutputHandle;
use crate::pipeline::{self, PipelineEvent, PipelineStats, Supervisor};
use crate::shutdown::Shutdown;
use crate::state::{OutputView, Snapshot, SnapshotReader};
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

impl From<ControlError> for ActionError {
    fn from(e: ControlError) -> Self {
        let code = match e {
            ControlError::UnknownOutput(_) => ReasonCode::InvalidArgs,
            ControlError::Encoder(_) | ControlError::Thread(_) => ReasonCode::Internal,
        };
        ActionError::new(code, e.to_string())
    }
}

/// One running pipeline supervisor.
#[derive(Debug)]
struct PipelineRun {
    stop: Shutdown,
    thread: JoinHandle<()>,
    stats: Arc<PipelineStats>,
    encoder: Arc<Mutex<Option<gstreamer::Element>>>,
}

/// The running agent. Owned by the controller thread once
/// [`Controller::spawn`] has been called.
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
    persist_error: Option<String>,
    identify_until: Option<Instant>,
    /// AWS clients and flow links (`[aws]`, outputs by `flow_arn`).
    cloud: Arc<Cloud>,
    cloud_report: Arc<CloudReport>,
    reader: SnapshotReader,
    /// The rate controller's last word, and the encoder element it was
    /// applied to (a pipeline restart brings a new element to set).
    adapt: Option<Arc<AdaptStatus>>,
    adapt_applied: Option<(u32, gstreamer::Element)>,
    adapt_error: Option<String>,
}

impl Controller {
    /// Starts outputs and pipeline for `cfg` and publishes the first
    /// snapshot into `reader` (made before, so the fleet link and the
    /// status file run while the media path starts or fails to). The
    /// returned reader sees every later change. On an error, whatever had
    /// started is stopped again.
    pub fn start(
        cfg: AgentConfig,
        raw: Value,
        report: ProbeReport,
        events: Sender<PipelineEvent>,
        shutdown: Shutdown,
        persist: Option<PathBuf>,
        reader: SnapshotReader,
    ) -> Result<(Controller, SnapshotReader), ControlError> {
        let chosen = report.chosen().ok_or_else(|| ControlError::Encoder(report.why()))?;
        let (kind, factory) = (chosen.kind, chosen.factory.to_owned());
        let fan = Arc::new(FanOut::new(cfg.rtp_ssrc()));
        fan.set_nominal_bps(cfg.nominal_ts_bps());
        let cloud = Arc::new(Cloud::new(&cfg));
        let first = Snapshot {
            cfg: Arc::new(cfg.clone()),
            raw: Arc::new(raw.clone()),
            encoder_report: Arc::new(report.clone()),
            factory: factory.clone(),
            pipeline: None,
            outputs: Vec::new(),
            cloud: cloud.clone(),
            cloud_report: Arc::default(),
            persist_error: None,
            identify_until: None,
            adapt: None,
            adapt_error: None,
        };
        reader.publish(first);
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
            cloud,
            cloud_report: Arc::default(),
            reader,
            adapt: None,
            adapt_applied: None,
            adapt_error: None,
        };
        let started = c.cfg.outputs.clone().iter().try_for_each(|o| {
            let handle = c.start_output(o)?;
            c.outputs.push((o.name().as_str().to_owned(), handle));
            Ok(())
        });
        if let Err(e) = started.and_then(|()| c.start_pipeline()) {
            c.stop_all();
            return Err(e);
        }
        c.publish();
        let reader = c.reader.clone();
        Ok((c, reader))
    }

    /// Runs the controller on its own thread until [`Action::Shutdown`] or
    /// until every sender of the inbox is gone; stops everything on the
    /// way out.
    pub fn spawn(self, inbox: Receiver<Envelope>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name("controller".into()).spawn(move || self.run(inbox))
    }

    /// The controller's loop on the calling thread (see [`Controller::spawn`]).
    pub(crate) fn run(mut self, inbox: Receiver<Envelope>) {
        for Envelope { action, reply } in inbox.iter() {
            let last = matches!(action, Action::Shutdown);
            let name = action.name();
            let started = Instant::now();
            let outcome = self.handle(action);
            self.publish();
            if started.elapsed() > Duration::from_secs(1) {
                info!(action = name, ms = started.elapsed().as_millis(), "slow change done");
            } else {
                debug!(action = name, "change done");
            }
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
            if last {
                return;
            }
        }
        self.stop_all();
    }

    fn handle(&mut self, action: Action) -> Outcome {
        match action {
            Action::Command(cmd) => self.command(&cmd),
            Action::ApplyConfig { cfg, raw } => {
                let done = self.apply(*cfg, raw)?;
                Ok(Some(json!({ "changes": done })))
            }
            Action::ToggleSimulatedLoss => {
                let on = self.pipeline.as_ref().map(|p| p.stats.frames.toggle_simulated_loss());
                warn!(simulated_signal_loss = ?on, "SIGUSR1: simulated input signal loss toggled");
                Ok(None)
            }
            Action::ToggleAlternateFormat => {
                let on = self.pipeline.as_ref().map(|p| p.stats.frames.toggle_alternate_format());
                warn!(alternate_format = ?on, "SIGUSR2: test-pattern format switched");
                Ok(None)
            }
            Action::CloudReport(report) => {
                self.cloud_report = Arc::new(report);
                Ok(None)
            }
            Action::SetVideoTarget { kbps, status } => {
                self.adapt = status.map(|s| Arc::new(*s));
                self.set_video_target(kbps);
                Ok(None)
            }
            Action::Shutdown => {
                self.stop_all();
                Ok(None)
            }
        }
    }

    /// Sets the running encoder's bitrate live, once per value and element;
    /// never restarts the pipeline: a refused change is reported instead.
    fn set_video_target(&mut self, kbps: u32) {
        let Some(enc) = self.pipeline.as_ref().and_then(|p| p.encoder.lock().unwrap_or_else(|e| e.into_inner()).clone()) else {
            return;
        };
        if self.adapt_applied.as_ref().is_some_and(|(k, e)| *k == kbps && *e == enc) {
            return;
        }
        // x264/x265 in CBR pad with filler to the VBV rate fixed at start
        // (`nal-hrd=cbr`, `strict-cbr`), which a live `bitrate` does not
        // change: the property is taken, the stream keeps its rate
        // (measured: 2.7 Mbit/s of TS with the target at 500 kbit/s).
        let padded = enc
            .find_property("option-string")
            .filter(|p| p.value_type() == String::static_type())
            .map(|_| enc.property::<Option<String>>("option-string").unwrap_or_default())
            .is_some_and(|o| o.contains("nal-hrd=cbr") || o.contains("strict-cbr"));
        let result = if padded {
            Err("CBR filler keeps the start rate; set video.rate_control = \"vbr\" for adaptive bitrate".to_owned())
        } else {
            pipeline::encoder::set_bitrate(&enc, kbps)
        };
        match result {
            Ok(()) => {
                self.adapt_error = None;
                debug!(kbps, "video target applied live");
            }
            Err(e) => {
                if self.adapt_error.is_none() {
                    warn!(error = %e, encoder = %self.factory, "the encoder cannot change its bitrate while playing; adaptation has no effect");
                }
                self.adapt_error = Some(format!("{}: {e}", self.factory));
            }
        }
        self.adapt_applied = Some((kbps, enc));
    }

    /// The device commands that change the running agent.
    fn command(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::StreamStart => self.start_pipeline()?,
            Command::StreamStop => self.stop_pipeline(),
            Command::OutputEnable { output } => self.set_output_enabled(output, true)?,
            Command::OutputDisable { output } => self.set_output_enabled(output, false)?,
            Command::InputPattern { black, motion, tone } => {
                if !matches!(self.cfg.input, crate::config::InputConfig::TestPattern { .. }) {
                    let why =
                        format!("input.pattern needs the test-pattern input; this box captures from `{}`", self.cfg.input.kind_name());
                    return Err(ActionError::new(ReasonCode::PreconditionFailed, why));
                }
                let Some(p) = &self.pipeline else {
                    return Err(ActionError::new(ReasonCode::PreconditionFailed, "the stream is stopped"));
                };
                p.stats.pattern.set(*black, *motion, *tone);
                let c = &p.stats.pattern;
                warn!(black = c.black(), still = c.still(), muted = c.muted(), "input.pattern: test pattern changed");
                return Ok(Some(
                    json!({ "pattern": if c.black() { "black" } else { "bars" }, "motion": !c.still(), "tone": !c.muted() }),
                ));
            }
            Command::Identify { duration_s } => {
                self.identify_until = Some(Instant::now() + Duration::from_secs(u64::from(*duration_s)));
                warn!(duration_s, "IDENTIFY requested: this box");
                return Ok(Some(json!({ "front_panel": self.cfg.panel.is_some() })));
            }
            other => {
                return Err(ActionError::new(ReasonCode::Unsupported, format!("{} does not change the running agent", other.name())))
            }
        }
        Ok(None)
    }

    /// Publishes what the agent is now.
    fn publish(&self) {
        self.reader.publish(Snapshot {
            cfg: Arc::new(self.cfg.clone()),
            raw: Arc::new(self.raw.clone()),
            encoder_report: Arc::new(self.report.clone()),
            factory: self.factory.clone(),
            pipeline: self.pipeline.as_ref().map(|p| p.stats.clone()),
            outputs: self
                .outputs
                .iter()
                .map(|(name, h)| OutputView { name: name.clone(), status: h.as_ref().map(|h| h.status.clone()) })
                .collect(),
            cloud: self.cloud.clone(),
            cloud_report: self.cloud_report.clone(),
            persist_error: self.persist_error.clone(),
            identify_until: self.identify_until,
            adapt: self.adapt.clone(),
            adapt_error: self.adapt_error.clone(),
        });
    }

    fn start_output(&self, o: &OutputConfig) -> Result<Option<OutputHandle>, ControlError> {
        if !o.enabled() || self.disabled_by_command.contains(o.name().as_str()) {
            return Ok(None);
        }
        let dest = self.cloud.dest(o, false);
        let cap = self.cfg.adapt.as_ref().map(|a| a.srt_overhead_percent.get());
        Ok(Some(OutputHandle::start_capped(o, dest, &self.fan, &self.shutdown, cap)?))
    }

    /// `stream.start`: builds and plays the pipeline (no-op if running).
    fn start_pipeline(&mut self) -> Result<(), ControlError> {
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
        let sup =
            Supervisor::with_builder(build, &self.factory, self.fan.clone(), self.events.clone(), stop.clone()).with_media(media);
        let (stats, encoder) = (sup.stats.clone(), sup.encoder_handle());
        let thread = std::thread::Builder::new().name("pipeline".into()).spawn(move || sup.run())?;
        self.pipeline = Some(PipelineRun { stop, thread, stats, encoder });
        Ok(())
    }

    /// `stream.stop`: stops the pipeline; outputs stay connected and idle so
    /// a restart is quick.
    fn stop_pipeline(&mut self) {
        if let Some(p) = self.pipeline.take() {
            p.stop.trigger();
            let _ = p.thread.join();
        }
    }

    /// `output.enable` / `output.disable`: touches that output only. Not
    /// persisted: the desired configuration stays the source of truth.
    fn set_output_enabled(&mut self, name: &str, enabled: bool) -> Result<(), ControlError> {
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

    /// Stops everything (shutdown).
    fn stop_all(&mut self) {
        self.stop_pipeline();
        for (_, h) in self.outputs.drain(..) {
            if let Some(h) = h {
                h.stop(&self.fan);
            }
        }
    }
}
