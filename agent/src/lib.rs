//! edge-agent: the daemon of a venue encoder box.
//!
//! # Background
//! A box in a stadium captures a feed, encodes it and pushes one MPEG-TS to
//! a primary and a backup AWS Elemental MediaConnect flow. Nobody watches it:
//! it must come up by itself, say clearly what is wrong, and keep the picture
//! on air whatever the network does.
//!
//! # Design
//! Modules depend one way (a test fails on an import cycle):
//! - leaves: [`config`] (one TOML file, strictly typed; errors name key and
//!   line), [`shutdown`], [`fanout`] (one TS producer, one bounded queue per
//!   output), [`dest`] (where an output sends), [`firmware`], [`reboot`],
//!   [`notify`];
//! - media: [`pipeline`] (capture and encoding as GStreamer graphs built in
//!   code, supervised and restarted; the slate when the input has no
//!   signal) and [`output`] (one thread per output: SRT through libsrt,
//!   paced RTP and RTP-FEC; each reconnects on its own);
//! - [`cloud`]: AWS clients and flow links;
//! - [`state`]: the [`state::Snapshot`] readers see, and [`action`]: the
//!   one inbox every change goes through;
//! - [`controller`]: the one owner of pipeline and outputs, on its own
//!   thread, applying each change at the least disruptive depth;
//! - [`media`]: starts the controller after the fleet link, trying the
//!   fleet-applied, the last good and the file configuration in turn, and
//!   keeps the agent managed when none starts;
//! - adapters, which read snapshots and post actions: [`fleet_device`]
//!   (MQTT), [`panel`] (front panel), [`aws_monitor`], and [`run`]'s loop
//!   (signals, status file, status line, systemd watchdog).
//!
//! # Limitations
//! Capture from V4L2 and DeckLink hardware and the hardware encoders'
//! settings are written from the GStreamer documentation and have not run
//! on hardware here; the test pattern exercises the same capture path.

pub mod action;
pub mod adapt;
pub mod adapt_driver;
pub mod aws_monitor;
pub mod backoff;
pub mod cloud;
pub mod config;
pub mod controller;
pub mod dest;
pub mod fanout;
pub mod firmware;
pub mod fleet_device;
pub mod logring;
pub mod media;
pub mod notify;
pub mod output;
pub mod panel;
pub mod pipeline;
pub mod reboot;
pub mod shutdown;
pub mod state;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use action::{Action, Inbox};
use pipeline::PipelineEvent;
use shutdown::Shutdown;
use state::{SharedPanelReadings, Snapshot, SnapshotReader};

pub use pipeline::encoder::choose_encoder;

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The hardware abstraction layer failed (no encoder, no GStreamer).
    #[error(transparent)]
    Hal(#[from] hal::HalError),
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The pipeline or an output could not be started.
    #[error("cannot start: {0}")]
    Start(String),
}

/// Options of a run that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write the status snapshot here as JSON every second (atomically).
    pub status_file: Option<std::path::PathBuf>,
}

/// The whole status as written to the status file. Its fields are an
/// interface (the image's boot check and the tests read them).
#[derive(Debug, serde::Serialize)]
pub struct StatusDoc {
    pub device_id: String,
    pub encoder: String,
    pub streaming: bool,
    pub ts_bytes: u64,
    pub pipeline_restarts: u64,
    /// The input: what is captured, its signal and format, slate or live.
    pub input: Option<pipeline::pump::InputStatus>,
    /// The fleet link (`connected`, `connects`, outbox, session counters),
    /// when fleet management is on.
    pub fleet: Option<fleet::ClientStats>,
    pub outputs: Vec<output::OutputSnapshot>,
    /// What AWS says (flow destinations and health, MediaLive channel), when
    /// any output is named by flow ARN or a channel is configured.
    pub cloud: Option<cloud::CloudReport>,
    /// Network-adaptive bitrate: target against ceiling, why, each path;
    /// absent while adaptation is off.
    pub adapt: Option<adapt::AdaptStatus>,
    /// Why the encoder did not take the target, if it refused.
    pub adapt_error: Option<String>,
    /// Black, frozen, silent and thumbnails (docs/monitoring.md), while
    /// streaming.
    pub content: Option<pipeline::monitor::ContentStatus>,
    /// Which configuration runs (`fleet`, `last-good`, `file`), which did
    /// not start and why ([`media`]).
    pub start: media::StartStatus,
}

/// Writes `bytes` to `path` so that a reader, a kill -9 or a power cut
/// sees either the old or the new file: a temporary file, fsync, rename,
/// directory fsync (one implementation, shared with the fleet state store).
pub use fleet::store::write_atomically;

/// Runs the agent until `shutdown` is triggered. `candidates` are the
/// configurations to start, in order ([`media`]); the first one's file
/// settings (`[fleet]`, `[status]`, `[panel]`) hold for the whole run.
/// The fleet link starts first: a media path that cannot start never stops
/// it. Returns once the pipeline and every output have stopped, or after a
/// 1.2 s grace period.
pub fn run(candidates: Vec<media::Candidate>, shutdown: Shutdown, opts: RunOptions) -> Result<(), AgentError> {
    let first = candidates.first().ok_or_else(|| AgentError::Start("no configuration to run".into()))?;
    let fleet_settings = first.cfg.fleet.clone();
    let status_interval = Duration::from_secs(u64::from(first.cfg.status.interval_s.get()));
    let panel_port = first.cfg.panel.as_ref().map(|p| p.port.clone());
    let snapshot = SnapshotReader::new(Snapshot::idle(&first.cfg, &first.raw));
    let (inbox, inbox_rx) = Inbox::channel();
    let start_status = media::SharedStartStatus::default();
    let panel_readings: Option<SharedPanelReadings> = panel_port.as_ref().map(|_| Arc::default());
    let mut last_good = fleet_settings.as_ref().map(|f| media::LastGood::new(&f.state_dir));

    // The fleet client runs on its own thread and runtime: the stream never
    // waits for the broker, and the broker never waits for the stream.
    let fleet = match &fleet_settings {
        Some(settings) => {
            let mut device = fleet_device::AgentDevice::new(snapshot.clone(), inbox.clone())
                .with_firmware(firmware::Firmware::new(&settings.state_dir))
                .with_start_status(start_status.clone())
                .with_reboot(reboot::Reboot::new(&settings.state_dir));
            if let Some(r) = &panel_readings {
                device = device.with_panel(r.clone());
            }
            let device: fleet::SharedDevice = Arc::new(std::sync::Mutex::new(device));
            match fleet::FleetClient::spawn(settings.clone(), device) {
                Ok(h) => Some(h),
                Err(e) => {
                    error!(error = %e, "fleet client failed to start; streaming without fleet management");
                    None
                }
            }
        }
        None => None,
    };

    let (events_tx, events_rx) = mpsc::channel();
    let ctx = media::MediaContext {
        reader: snapshot.clone(),
        events: events_tx,
        shutdown: shutdown.clone(),
        persist: fleet_settings.as_ref().map(|f| applied_config_path(&f.state_dir)),
        status: start_status.clone(),
    };
    let controller = media::spawn(candidates, ctx, inbox_rx)?;
    let monitor_stop = Shutdown::new();
    if let Err(e) = aws_monitor::spawn(snapshot.clone(), inbox.clone(), monitor_stop.clone()) {
        warn!(error = %e, "cannot start the AWS monitor; flow health will not be reported");
    }
    if let Err(e) = adapt_driver::spawn(snapshot.clone(), inbox.clone(), monitor_stop.clone()) {
        warn!(error = %e, "cannot start the adaptive bitrate thread; the bitrate stays as configured");
    }

    // The front panel, if the box has one: its own thread and runtime; it
    // may be unplugged at any time and the stream never waits for it.
    let _panel = panel_port.zip(panel_readings).and_then(|(port, readings)| {
        let online: Box<dyn Fn() -> Option<bool> + Send> = match &fleet {
            Some(f) => {
                let probe = f.connected_probe();
                Box::new(move || Some(probe()))
            }
            None => Box::new(|| None),
        };
        panel::PanelDriver::start(port, snapshot.clone(), inbox.clone(), readings, online, &shutdown)
            .inspect_err(|e| error!(error = %e, "cannot start the front-panel thread; streaming without it"))
            .ok()
    });

    // systemd: READY once the pipeline is built and has reported (started or
    // failed), or no configuration could start (the agent stays up for the
    // fleet: a restart would not help); STATUS on every state change; WATCHDOG only while the main loop
    // ticks and TS flows (a stalled pipeline is what a restart can fix).
    let notifier = notify::Notifier::from_env();
    let health = snapshot.clone();
    let watchdog = notify::WatchdogGuard::start(notifier.clone(), move || {
        let snap = health.load();
        snap.pipeline.as_ref().is_none_or(|s| s.since_last_chunk().is_none_or(|d| d < pipeline::STALL_TIMEOUT))
    });
    // SIGUSR1 toggles simulated signal loss: a technician (or a test) sees
    // the slate go on air and the alarm raised without touching a cable.
    // SIGUSR2 switches the test pattern's format, as a source would.
    let usr1 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let usr2 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (sig, flag) in [(signal_hook::consts::SIGUSR1, &usr1), (signal_hook::consts::SIGUSR2, &usr2)] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            warn!(error = %e, sig, "cannot install a signal handler");
        }
    }
    let started_at = Instant::now();
    let mut ready = false;
    let mut pipeline_state = "starting";
    let tick = Duration::from_millis(500);
    let mut last_bytes = 0u64;
    let mut last_line = Instant::now();
    let mut thumbnail_seq = 0u64;
    while !shutdown.wait_timeout(tick) {
        if let Some(w) = &watchdog {
            w.tick();
        }
        if usr1.swap(false, Ordering::Relaxed) {
            inbox.post(Action::ToggleSimulatedLoss);
        }
        if usr2.swap(false, Ordering::Relaxed) {
            inbox.post(Action::ToggleAlternateFormat);
        }
        for ev in events_rx.try_iter() {
            match ev {
                PipelineEvent::Started => pipeline_state = "streaming",
                PipelineEvent::Error { element, message } => {
                    error!(%element, %message, "pipeline error");
                    pipeline_state = "pipeline failed";
                }
                PipelineEvent::Restarting { .. } => pipeline_state = "restarting pipeline",
                _ => {}
            }
        }
        let snap = snapshot.load();
        let outputs = snap.output_snapshots();
        let input = snap.input_status();
        let state = if snap.is_streaming() { pipeline_state } else { "stopped" };
        let input_line = input.as_ref().map(input_summary).unwrap_or_default();
        let summary = std::iter::once(format!("{state} ({}){input_line}", snap.factory))
            .chain(outputs.iter().map(|s| format!("{} {}", s.name, s.state)))
            .collect::<Vec<_>>()
            .join("; ");
        let settled = start_status.lock().is_ok_and(|s| s.settled && s.running.is_none());
        if !ready && (pipeline_state != "starting" || settled || started_at.elapsed() > Duration::from_secs(10)) {
            ready = true;
            notifier.ready(&summary);
        } else if ready {
            notifier.status(&summary);
        }
        if let Some(l) = &mut last_good {
            l.observe(&snap);
        }
        let ts_bytes = snap.pipeline.as_ref().map_or(0, |s| s.ts_bytes.load(Ordering::Relaxed));
        let restarts = snap.pipeline.as_ref().map_or(0, |s| s.restarts.load(Ordering::Relaxed));
        if let Some(path) = &opts.status_file {
            let start = start_status.lock().map(|s| s.clone()).unwrap_or_default();
            let doc = status_doc(&snap, outputs.clone(), input, fleet.as_ref().map(fleet::FleetHandle::stats), start);
            let written = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other).and_then(|b| write_atomically(path, &b));
            if let Err(e) = written {
                warn!(path = %path.display(), error = %e, "cannot write status file");
            }
            write_thumbnail(&snap, &path.with_file_name(THUMBNAIL_FILE), &mut thumbnail_seq);
        }
        if last_line.elapsed() < status_interval {
            continue;
        }
        let mbps = ts_bytes.saturating_sub(last_bytes) as f64 * 8.0 / last_line.elapsed().as_secs_f64() / 1e6;
        (last_bytes, last_line) = (ts_bytes, Instant::now());
        info!(target: "status", "encoder {} {state} ts {mbps:.2} Mb/s restarts {restarts}{input_line}{}", snap.factory, adapt_summary(&snap));
        for s in &outputs {
            info!(target: "status", "{}", s.status_line());
        }
    }

    info!("shutting down");
    monitor_stop.trigger();
    notifier.stopping();
    drop(watchdog);
    if let Some(f) = fleet {
        // Publishes the explicit offline status before disconnecting.
        let _ = f.shutdown(Duration::from_millis(700));
    }
    // Outputs and pipeline already saw the shutdown signal; give them a
    // bounded moment to close their sockets cleanly.
    if inbox.ask(Action::Shutdown, Duration::from_millis(1200)).is_err() {
        warn!("outputs did not stop within the grace period");
    } else {
        let _ = controller.join();
    }
    Ok(())
}

fn status_doc(
    snap: &Snapshot,
    outputs: Vec<output::OutputSnapshot>,
    input: Option<pipeline::pump::InputStatus>,
    fleet: Option<fleet::ClientStats>,
    start: media::StartStatus,
) -> StatusDoc {
    let load = |f: fn(&pipeline::PipelineStats) -> &std::sync::atomic::AtomicU64| {
        snap.pipeline.as_ref().map_or(0, |s| f(s).load(Ordering::Relaxed))
    };
    StatusDoc {
        device_id: snap.device_id().to_owned(),
        encoder: snap.factory.clone(),
        streaming: snap.is_streaming(),
        ts_bytes: load(|s| &s.ts_bytes),
        pipeline_restarts: load(|s| &s.restarts),
        input,
        fleet,
        outputs,
        cloud: snap.cloud.has_work().then(|| snap.cloud_report.as_ref().clone()),
        adapt: snap.adapt.as_deref().cloned(),
        adapt_error: snap.adapt_error.clone(),
        content: snap.pipeline.as_ref().map(|p| p.content.status(Instant::now())),
        start,
    }
}

/// The newest thumbnail, beside the status file.
pub const THUMBNAIL_FILE: &str = "thumbnail.jpg";

/// Writes the newest thumbnail atomically when it is new (`seq` is the
/// last one written).
fn write_thumbnail(snap: &Snapshot, path: &std::path::Path, seq: &mut u64) {
    let Some(t) = snap.pipeline.as_ref().and_then(|p| p.content.thumbnail()) else { return };
    if t.seq == *seq {
        return;
    }
    *seq = t.seq;
    if let Err(e) = write_atomically(path, &t.jpeg) {
        warn!(path = %path.display(), error = %e, "cannot write the thumbnail");
    }
}

/// `; video 1450/2500 kbit/s following primary (congested)`, or nothing
/// while adaptation is off.
fn adapt_summary(snap: &Snapshot) -> String {
    let Some(a) = &snap.adapt else { return String::new() };
    let refused = snap.adapt_error.as_ref().map(|e| format!(" NOT APPLIED: {e}")).unwrap_or_default();
    format!("; video {}/{} kbit/s {}{refused}", a.target_kbps, a.ceiling_kbps, a.reason)
}

/// `; input /dev/video0 1920x1080i50` or `; input test-pattern NO SIGNAL (slate)`.
fn input_summary(i: &pipeline::pump::InputStatus) -> String {
    let source = i.source.as_deref().unwrap_or(i.kind);
    match (&i.format, i.slate) {
        (Some(f), false) => format!("; input {source} {f}"),
        (_, true) if i.signal == hal::capture::Signal::Unknown => format!("; input {source} waiting for signal (slate)"),
        _ => format!("; input {source} NO SIGNAL (slate)"),
    }
}

/// Where the agent keeps the configuration last applied by the fleet.
pub fn applied_config_path(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("applied-config.json")
}
