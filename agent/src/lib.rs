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
//! - [`pipeline`]: GStreamer graph built in code, supervised and restarted.
//! - [`fanout`]: one TS producer, one bounded queue per output; a slow or
//!   dead output drops its own chunks and never blocks the encoder.
//! - [`output`]: one thread per output (SRT through libsrt), reconnecting
//!   forever with capped, jittered backoff; per-output status from libsrt.
//! - [`run`]: wires these together until shutdown.
//!
//! # Limitations
//! The input is the built-in test pattern; only SRT caller outputs exist so
//! far. Hardware encoder settings are unverified without hardware.

pub mod config;
pub mod controller;
pub mod fanout;
pub mod fleet_device;
pub mod firmware;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod receive;
pub mod shutdown;
pub mod ts;

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
    Ok(hal::encoder::choose(&backend, cfg.video.encoder.0)?)
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
    /// Fleet client counters, when fleet management is on.
    pub fleet: Option<String>,
    pub outputs: Vec<output::OutputSnapshot>,
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
    let ctl = controller::Controller::start(cfg, raw, report, events_tx, shutdown.clone(), persist)
        .map_err(|e| AgentError::Start(e.to_string()))?;
    let ctl = Arc::new(Mutex::new(ctl));

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

    // systemd: READY once the pipeline is built and has reported (started or
    // failed); STATUS on every state change; WATCHDOG only while the main loop
    // ticks and TS flows (a stalled pipeline is what a restart can fix).
    let notifier = notify::Notifier::from_env();
    let health_ctl = ctl.clone();
    let watchdog = notify::WatchdogGuard::start(notifier.clone(), move || {
        let stats = health_ctl.lock().unwrap_or_else(|p| p.into_inner()).pipeline_stats();
        stats.is_none_or(|s| s.since_last_chunk().is_none_or(|d| d < pipeline::STALL_TIMEOUT))
    });
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
        let (snapshots, factory, stats, streaming) = {
            let c = ctl.lock().unwrap_or_else(|p| p.into_inner());
            (c.snapshots(), c.factory().to_owned(), c.pipeline_stats(), c.is_streaming())
        };
        let state = if streaming { pipeline_state } else { "stopped" };
        let summary = std::iter::once(format!("{state} ({factory})"))
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
                fleet: fleet.as_ref().map(|f| format!("{:?}", f.stats())),
                outputs: snapshots.clone(),
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
        info!(target: "status", "encoder {factory} {state} ts {mbps:.2} Mb/s restarts {restarts}");
        for s in &snapshots {
            info!(target: "status", "{}", s.status_line());
        }
    }

    info!("shutting down");
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

/// Where the agent keeps the configuration last applied by the fleet.
pub fn applied_config_path(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("applied-config.json")
}
