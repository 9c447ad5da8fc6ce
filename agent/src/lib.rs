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
pub mod fanout;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod receive;
pub mod shutdown;
pub mod ts;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use config::AgentConfig;
use fanout::FanOut;
use hal::encoder::{GstEncoderBackend, ProbeReport};
use output::OutputHandle;
use pipeline::{PipelineEvent, Supervisor};
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
    pub ts_bytes: u64,
    pub pipeline_restarts: u64,
    pub outputs: Vec<output::OutputSnapshot>,
}

/// Writes `bytes` to `path` so that a reader (or a power cut) sees either the
/// old or the new file: write a temporary file, fsync, rename.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Runs the agent until `shutdown` is triggered. Returns once the pipeline
/// and every output have stopped, or after a 1.5 s grace period.
pub fn run(cfg: AgentConfig, shutdown: Shutdown, opts: RunOptions) -> Result<(), AgentError> {
    let report = choose_encoder(&cfg)?;
    let chosen = report.chosen().ok_or_else(|| hal::HalError::NoEncoder(report.why()))?;
    info!(encoder = chosen.factory, why = %report.why(), "encoder chosen");

    let fan = Arc::new(FanOut::new(cfg.rtp_ssrc()));
    let outputs = cfg
        .outputs
        .iter()
        .map(|o| OutputHandle::start(o, cfg.nominal_ts_bps(), &fan, &shutdown))
        .collect::<Result<Vec<_>, _>>()?;

    let (events_tx, events_rx) = mpsc::channel();
    let supervisor = Supervisor::new(cfg.clone(), chosen.kind, chosen.factory, fan.clone(), events_tx, shutdown.clone());
    let stats = supervisor.stats.clone();
    let pipeline_thread = std::thread::Builder::new().name("pipeline".into()).spawn(move || supervisor.run())?;

    // systemd: READY once the pipeline is built and has reported (started or
    // failed); STATUS on every state change; WATCHDOG only while the main loop
    // ticks and TS flows (a stalled pipeline is what a restart can fix).
    let notifier = notify::Notifier::from_env();
    let health_stats = stats.clone();
    let watchdog = notify::WatchdogGuard::start(notifier.clone(), move || {
        health_stats.since_last_chunk().is_none_or(|d| d < pipeline::STALL_TIMEOUT)
    });
    let started_at = Instant::now();
    let mut ready = false;
    let mut pipeline_state = "starting";

    let interval = Duration::from_secs(u64::from(cfg.status.interval_s.get()));
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
        let snapshots: Vec<_> = outputs.iter().map(|o| o.status.snapshot()).collect();
        let summary = std::iter::once(format!("{pipeline_state} ({})", chosen.factory))
            .chain(snapshots.iter().map(|s| format!("{} {}", s.name, s.state)))
            .collect::<Vec<_>>()
            .join("; ");
        if !ready && (pipeline_state != "starting" || started_at.elapsed() > Duration::from_secs(10)) {
            ready = true;
            notifier.ready(&summary);
        } else if ready {
            notifier.status(&summary);
        }
        if let Some(path) = &opts.status_file {
            let doc = StatusDoc {
                device_id: cfg.device_id.as_str().to_owned(),
                encoder: chosen.factory.to_owned(),
                ts_bytes: stats.ts_bytes.load(Ordering::Relaxed),
                pipeline_restarts: stats.restarts.load(Ordering::Relaxed),
                outputs: snapshots.clone(),
            };
            let written = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other).and_then(|b| write_atomically(path, &b));
            if let Err(e) = written {
                warn!(path = %path.display(), error = %e, "cannot write status file");
            }
        }
        if last_line.elapsed() < interval {
            continue;
        }
        let bytes = stats.ts_bytes.load(Ordering::Relaxed);
        let mbps = (bytes - last_bytes) as f64 * 8.0 / last_line.elapsed().as_secs_f64() / 1e6;
        (last_bytes, last_line) = (bytes, Instant::now());
        info!(
            target: "status",
            "encoder {} ts {:.2} Mb/s restarts {}",
            chosen.factory,
            mbps,
            stats.restarts.load(Ordering::Relaxed)
        );
        for s in &snapshots {
            info!(target: "status", "{}", s.status_line());
        }
    }

    info!("shutting down");
    notifier.stopping();
    drop(watchdog);
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline && !(pipeline_thread.is_finished() && outputs.iter().all(|o| o.is_finished())) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !pipeline_thread.is_finished() {
        warn!("pipeline did not stop within the grace period");
    }
    for o in outputs {
        if o.is_finished() {
            o.stop(&fan);
        } else {
            warn!(output = %o.status.name, "output did not stop within the grace period");
        }
    }
    Ok(())
}
