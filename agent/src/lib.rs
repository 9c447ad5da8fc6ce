//! edge-agent: the daemon of a venue encoder box.
//!
//! # Background
//! A box in a stadium captures a feed, encodes it and pushes one MPEG-TS to
//! a primary and a backup AWS Elemental MediaConnect flow. Nobody watches it:
//! it must come up by itself, say clearly what is wrong, and keep the picture
//! on air whatever the network does.
//!
//! # Design
//! - [`config`]: one TOML file, strictly typed; errors name key and line.
//! - [`pipeline`]: capture and encoding as two GStreamer graphs built in
//!   code, joined by a frame pump that keeps the TS unbroken (the slate when
//!   the input has no signal); supervised and restarted.
//! - [`fanout`]: one TS producer, one bounded queue per output; a slow or
//!   dead output drops its own chunks and never blocks the encoder.
//! - [`output`]: one thread per output (SRT through libsrt, paced RTP and
//!   RTP-FEC), reconnecting forever with capped, jittered backoff.
//! - [`controller`] and [`fleet_device`]: every change at the least
//!   disruptive depth; the fleet's view of the box.
//! - [`panel`]: the front-panel board driven from the agent's state.
//! - [`run`]: wires these together until shutdown.
//!
//! # Limitations
//! Capture from V4L2 and DeckLink hardware and the hardware encoders'
//! settings are written from the GStreamer documentation and have not run
//! on hardware here; the test pattern exercises the same capture path.

pub mod cloud;
pub mod config;
pub mod controller;
pub mod fanout;
pub mod fleet_device;
pub mod firmware;
pub mod notify;
pub mod output;
pub mod panel;
pub mod pipeline;
pub mod shutdown;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use config::AgentConfig;
use hal::encoder::{GstEncoderBackend, ProbeReport};
use pipeline::PipelineEvent;
use shutdown::Shutdown;

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

/// Picks the encoder: the configured one, or the best that works here.
pub fn choose_encoder(cfg: &AgentConfig) -> Result<ProbeReport, AgentError> {
    let backend = GstEncoderBackend::new()?;
    Ok(hal::encoder::choose_codec(&backend, cfg.video.encoder.0, cfg.video.codec.hal())?)
}

/// Options of a run that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write the status snapshot here as JSON every second (atomically).
    pub status_file: Option<std::path::PathBuf>,
}

/// The whole status as written to the status file.
#[derive(Debug, serde::Serialize)]
pub struct StatusDoc {
    pub device_id: String,
    pub encoder: String,
    pub streaming: bool,
    pub ts_bytes: u64,
    pub pipeline_restarts: u64,
    /// The input: what is captured, its signal and format, slate or live.
    pub input: Option<pipeline::pump::InputStatus>,
    /// Fleet client counters, when fleet management is on.
    pub fleet: Option<String>,
    pub outputs: Vec<output::OutputSnapshot>,
    /// What AWS says (flow destinations and health, MediaLive channel), when
    /// any output is named by flow ARN or a channel is configured.
    pub cloud: Option<cloud::CloudReport>,
}

/// Writes `bytes` to `path` so that a reader, a kill -9 or a power cut
/// sees either the old or the new file: a temporary file, fsync, rename,
/// directory fsync (one implementation, shared with the fleet state store).
pub use fleet::store::write_atomically;

/// Runs the agent until `shutdown` is triggered. `raw` is the
/// configuration as a JSON document (secrets included): the fleet's
/// rollback target. Returns once the pipeline and every output have stopped,
/// or after a 1.5 s grace period.
pub fn run(cfg: AgentConfig, raw: serde_json::Value, shutdown: Shutdown, opts: RunOptions) -> Result<(), AgentError> {
    let report = choose_encoder(&cfg)?;
    let chosen = report.chosen().ok_or_else(|| hal::HalError::NoEncoder(report.why()))?;
    info!(encoder = chosen.factory, why = %report.why(), "encoder chosen");

    let (events_tx, events_rx) = mpsc::channel();
    let persist = cfg.fleet.as_ref().map(|f| applied_config_path(&f.state_dir));
    let fleet_settings = cfg.fleet.clone();
    let status_interval = Duration::from_secs(u64::from(cfg.status.interval_s.get()));
    let device_id = cfg.device_id.as_str().to_owned();
    let panel_port = cfg.panel.as_ref().map(|p| p.port.clone());
    let ctl = controller::Controller::start(cfg, raw, report, events_tx, shutdown.clone(), persist)
        .map_err(|e| AgentError::Start(e.to_string()))?;
    let ctl = Arc::new(Mutex::new(ctl));
    let monitor_stop = Shutdown::new();
    if let Err(e) = cloud::spawn_monitor(ctl.clone(), monitor_stop.clone()) {
        warn!(error = %e, "cannot start the AWS monitor; flow health will not be reported");
    }

    // The fleet client runs on its own thread and runtime: the stream never
    // waits for the broker.
    let fleet = match fleet_settings {
        Some(settings) => {
            let firmware = firmware::Firmware::new(&settings.state_dir);
            let device: fleet::SharedDevice =
                Arc::new(Mutex::new(fleet_device::AgentDevice::new(ctl.clone()).with_firmware(firmware)));
            match fleet::FleetClient::spawn(settings, device) {
                Ok(h) => Some(h),
                Err(e) => {
                    error!(error = %e, "fleet client failed to start; streaming without fleet management");
                    None
                }
            }
        }
        None => None,
    };

    // The front panel, if the box has one: its own thread and runtime; it
    // may be unplugged at any time and the stream never waits for it.
    let _panel = panel_port.and_then(|port| {
        let online: Box<dyn Fn() -> Option<bool> + Send> = match &fleet {
            Some(f) => {
                let probe = f.connected_probe();
                Box::new(move || Some(probe()))
            }
            None => Box::new(|| None),
        };
        match panel::PanelDriver::start(port, ctl.clone(), online, &shutdown) {
            Ok(p) => {
                ctl.lock().unwrap_or_else(|e| e.into_inner()).panel = Some(p.readings.clone());
                Some(p)
            }
            Err(e) => {
                error!(error = %e, "cannot start the front-panel thread; streaming without it");
                None
            }
        }
    });

    // systemd: READY once the pipeline is built and has reported (started or
    // failed); STATUS on every state change; WATCHDOG only while the main loop
    // ticks and TS flows (a stalled pipeline is what a restart can fix).
    let notifier = notify::Notifier::from_env();
    let health_ctl = ctl.clone();
    let watchdog = notify::WatchdogGuard::start(notifier.clone(), move || {
        let stats = health_ctl.lock().unwrap_or_else(|p| p.into_inner()).pipeline_stats();
        stats.is_none_or(|s| s.since_last_chunk().is_none_or(|d| d < pipeline::STALL_TIMEOUT))
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
    while !shutdown.wait_timeout(tick) {
        if let Some(w) = &watchdog {
            w.tick();
        }
        if usr1.swap(false, Ordering::Relaxed) {
            let on = ctl.lock().unwrap_or_else(|p| p.into_inner()).toggle_simulated_loss();
            warn!(simulated_signal_loss = ?on, "SIGUSR1: simulated input signal loss toggled");
        }
        if usr2.swap(false, Ordering::Relaxed) {
            let on = ctl.lock().unwrap_or_else(|p| p.into_inner()).toggle_alternate_format();
            warn!(alternate_format = ?on, "SIGUSR2: test-pattern format switched");
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
        let (snapshots, factory, stats, streaming, input, cloud) = {
            let c = ctl.lock().unwrap_or_else(|p| p.into_inner());
            (c.snapshots(), c.factory().to_owned(), c.pipeline_stats(), c.is_streaming(), c.input_status(), c.cloud())
        };
        let state = if streaming { pipeline_state } else { "stopped" };
        let input_line = input.as_ref().map(input_summary).unwrap_or_default();
        let summary = std::iter::once(format!("{state} ({factory}){input_line}"))
            .chain(snapshots.iter().map(|s| format!("{} {}", s.name, s.state)))
            .collect::<Vec<_>>()
            .join("; ");
        if !ready && (pipeline_state != "starting" || started_at.elapsed() > Duration::from_secs(10)) {
            ready = true;
            notifier.ready(&summary);
        } else if ready {
            notifier.status(&summary);
        }
        let ts_bytes = stats.as_ref().map_or(0, |s| s.ts_bytes.load(Ordering::Relaxed));
        let restarts = stats.as_ref().map_or(0, |s| s.restarts.load(Ordering::Relaxed));
        if let Some(path) = &opts.status_file {
            let doc = StatusDoc {
                device_id: device_id.clone(),
                encoder: factory.clone(),
                streaming,
                ts_bytes,
                pipeline_restarts: restarts,
                input: input.clone(),
                fleet: fleet.as_ref().map(|f| format!("{:?}", f.stats())),
                outputs: snapshots.clone(),
                cloud: cloud.has_work().then(|| cloud.report()),
            };
            let written = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other).and_then(|b| write_atomically(path, &b));
            if let Err(e) = written {
                warn!(path = %path.display(), error = %e, "cannot write status file");
            }
        }
        if last_line.elapsed() < status_interval {
            continue;
        }
        let mbps = ts_bytes.saturating_sub(last_bytes) as f64 * 8.0 / last_line.elapsed().as_secs_f64() / 1e6;
        (last_bytes, last_line) = (ts_bytes, Instant::now());
        info!(target: "status", "encoder {factory} {state} ts {mbps:.2} Mb/s restarts {restarts}{input_line}");
        for s in &snapshots {
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
    let (done_tx, done_rx) = mpsc::channel();
    let stopper = ctl.clone();
    let _ = std::thread::Builder::new().name("stop".into()).spawn(move || {
        stopper.lock().unwrap_or_else(|p| p.into_inner()).stop_all();
        let _ = done_tx.send(());
    });
    if done_rx.recv_timeout(Duration::from_millis(1200)).is_err() {
        warn!("outputs did not stop within the grace period");
    }
    Ok(())
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
