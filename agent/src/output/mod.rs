//! Outputs: each one a thread that takes chunks from its own queue and sends
//! them on its own transport, so one path failing, stalling or reconnecting
//! never disturbs another path or the encoder.

pub mod rist;
pub mod rtmp;
pub mod rtp;
pub mod srt;
mod status;
pub mod udp_batch;

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use status::{OutputSnapshot, OutputState, OutputStatus, RistSnapshot, RtmpSnapshot, RtpSnapshot, SrtSnapshot};

use crate::config::OutputConfig;
use crate::dest::Dest;
use crate::fanout::{self, FanOut, Payload, TsChunk};
use crate::shutdown::Shutdown;

/// How many 1316-byte chunks an output may hold back: about 4 s at
/// 3 Mbit/s, 1 s at 12 Mbit/s. Beyond that the data is too old to be worth
/// sending to a live receiver, so it is dropped at the producer.
pub const QUEUE_CHUNKS: usize = 1024;

/// A running output: its status and its thread.
#[derive(Debug)]
pub struct OutputHandle {
    pub status: Arc<OutputStatus>,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl OutputHandle {
    /// Starts the output's thread and registers its queue with the fan-out.
    /// `dest` is where it sends (`None`: the configuration names nowhere).
    pub fn start(cfg: &OutputConfig, dest: Option<Dest>, fan: &FanOut, agent_shutdown: &Shutdown) -> std::io::Result<Self> {
        Self::start_capped(cfg, dest, fan, agent_shutdown, None)
    }

    /// As [`Self::start`]; an SRT output caps its retransmission overhead
    /// at `srt_overhead_percent` over its input rate (adaptive bitrate).
    pub fn start_capped(
        cfg: &OutputConfig,
        dest: Option<Dest>,
        fan: &FanOut,
        agent_shutdown: &Shutdown,
        srt_overhead_percent: Option<u32>,
    ) -> std::io::Result<Self> {
        let nominal_bps = fan.nominal_bps();
        let live_edge = fan.live_edge();
        let name = cfg.name().as_str().to_owned();
        let (tx, rx, counters) = fanout::queue(QUEUE_CHUNKS);
        let status = Arc::new(OutputStatus::new(&name, counters));
        let stop = Shutdown::new();
        if !cfg.enabled() {
            status.set_state(OutputState::Disabled);
            return Ok(OutputHandle { status, stop, thread: None });
        }
        // Unreachable after validation (address or flow_arn is required;
        // an SRT listener has `listen` instead).
        let nowhere = |status: Arc<OutputStatus>, stop: Shutdown| {
            status.failed("no address and no flow_arn".into());
            OutputHandle { status, stop, thread: None }
        };
        let thread = std::thread::Builder::new().name(format!("out-{name}"));
        let (thread, payload) = match cfg {
            OutputConfig::Srt(srt_cfg) => {
                let Some(role) = srt::Role::of(srt_cfg, dest) else { return Ok(nowhere(status, stop)) };
                let worker =
                    srt::SrtOutput::new(srt_cfg.clone(), role, status.clone(), live_edge, stop.clone(), agent_shutdown.clone())
                        .with_overhead_cap(srt_overhead_percent);
                (thread.spawn(move || worker.run(rx))?, Payload::Ts)
            }
            OutputConfig::Rtp(_) | OutputConfig::RtpFec(_) => {
                let Some(dest) = dest else { return Ok(nowhere(status, stop)) };
                let settings = match cfg {
                    OutputConfig::RtpFec(f) => rtp::RtpSettings {
                        cfg: f.rtp(),
                        dest,
                        fec: f.matrix().ok().map(|m| (m, f.fec_mode.into())),
                        nominal_bps: nominal_bps.clone(),
                        live_edge: live_edge.clone(),
                    },
                    OutputConfig::Rtp(r) => rtp::RtpSettings {
                        cfg: r.clone(),
                        dest,
                        fec: None,
                        nominal_bps: nominal_bps.clone(),
                        live_edge: live_edge.clone(),
                    },
                    OutputConfig::Srt(_) | OutputConfig::Rtmp(_) | OutputConfig::Rist(_) => unreachable!("matched above"),
                };
                let worker = rtp::RtpOutput::new(settings, status.clone(), stop.clone(), agent_shutdown.clone());
                (thread.spawn(move || worker.run(rx))?, Payload::Rtp)
            }
            OutputConfig::Rist(r) => {
                // Sends to its own address (`ristsink` resolves a name at
                // each session), so `dest` is not needed.
                let worker = rist::RistOutput::new(r.clone(), status.clone(), live_edge, stop.clone(), agent_shutdown.clone());
                (thread.spawn(move || worker.run(rx))?, Payload::Ts)
            }
            OutputConfig::Rtmp(r) => {
                // Fed with FLV tags by the pipeline's FLV branch, not with TS.
                // `dest`: the input's link when it names one (else `url`).
                let worker = rtmp::RtmpOutput::new(r.clone(), dest, status.clone(), stop.clone(), agent_shutdown.clone());
                let thread = thread.spawn(move || worker.run(rx))?;
                crate::pipeline::flv::hub().fan.add(&name, Payload::Ts, tx);
                return Ok(OutputHandle { status, stop, thread: Some(thread) });
            }
        };
        fan.add(&name, payload, tx);
        Ok(OutputHandle { status, stop, thread: Some(thread) })
    }

    /// Stops this output only; waits for its thread.
    pub fn stop(mut self, fan: &FanOut) {
        fan.remove(&self.status.name);
        self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Whether the thread has finished (after shutdown).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

/// Discards what queues on `rx` for `d`, counting it as dropped on
/// `status`: with no session to carry it, it is stale by the next one (the
/// receiver wants the live edge). Used between the sessions of the outputs
/// that run their own GStreamer pipeline (RTMP, RIST). True when `stopped`
/// turned true meanwhile or the fan-out is gone.
fn drain_for(rx: &Receiver<TsChunk>, d: Duration, status: &OutputStatus, stopped: impl Fn() -> bool) -> bool {
    let until = Instant::now() + d;
    let mut dropped = 0u64;
    while Instant::now() < until {
        if stopped() {
            return true;
        }
        match rx.recv_timeout(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100))) {
            Ok(_) => dropped += 1,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return true,
        }
    }
    status.add_sent(0, dropped);
    stopped()
}
