//! The adapter that feeds the rate controller ([`crate::adapt`]): every
//! [`TICK`] it reads the snapshot's per-output libsrt figures, runs the
//! controller with the time, and posts the target to the controller's
//! inbox ([`Action::SetVideoTarget`]). Logs mark when adaptation starts and
//! ends and when a path is declared congested or rejoins.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::action::{Action, Inbox};
use crate::adapt::{Event, Params, PathInput, Policy, RateController, SrtSample};
use crate::config::{AdaptMode, OutputConfig};
use crate::output::OutputState;
use crate::shutdown::Shutdown;
use crate::state::{Snapshot, SnapshotReader};

/// Five looks a second: fast enough to act within a second of a queue
/// building, slow enough that libsrt's smoothed RTT moves between looks.
pub const TICK: Duration = Duration::from_millis(200);
/// The target is re-posted this often even when unchanged, so a rebuilt
/// pipeline's new encoder gets it and the status stays fresh.
const REFRESH: Duration = Duration::from_secs(1);

fn policy(mode: AdaptMode) -> Policy {
    match mode {
        AdaptMode::FollowAll => Policy::FollowAll,
        AdaptMode::FollowBest => Policy::FollowBest,
        AdaptMode::Off => Policy::Off,
    }
}

/// Each configured output as the controller sees it.
pub fn inputs(snap: &Snapshot) -> Vec<(String, PathInput)> {
    let live = snap.output_snapshots();
    snap.cfg
        .outputs
        .iter()
        .map(|o| {
            let name = o.name().as_str().to_owned();
            let input = match o {
                OutputConfig::Srt(_) => match live.iter().find(|s| s.name == name) {
                    Some(s) if s.state == OutputState::Connected => match &s.srt {
                        Some(f) => PathInput::Srt(SrtSample {
                            rtt_ms: f.rtt_ms,
                            send_buffer_ms: f.send_buffer_ms,
                            packets_sent: f.packets_sent,
                            packets_retransmitted: f.packets_retransmitted,
                            packets_dropped: f.packets_dropped,
                            bandwidth_mbps: f.bandwidth_mbps,
                            latency_ms: f.negotiated_latency_ms,
                        }),
                        None => PathInput::Down,
                    },
                    _ => PathInput::Down,
                },
                // RTMP has TCP's flow control but no libsrt figures to read:
                // like RTP, it does not steer the video rate.
                OutputConfig::Rtp(_) | OutputConfig::RtpFec(_) | OutputConfig::Rtmp(_) => PathInput::Rtp,
                // RIST retransmits within its buffer but has no send-buffer
                // figure to steer by: like RTP (docs/rist.md#limitations).
                OutputConfig::Rist(_) => PathInput::Rtp,
            };
            (name, input)
        })
        .collect()
}

/// Starts the adapter thread.
pub fn spawn(snapshot: SnapshotReader, inbox: Inbox, stop: Shutdown) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("adapt".into()).spawn(move || {
        let mut ctl: Option<RateController> = None;
        let mut last_post: Option<(u32, Instant)> = None;
        while !stop.wait_timeout(TICK) {
            let snap = snapshot.load();
            let ceiling = snap.cfg.video.bitrate_kbps.get();
            let Some(cfg) = snap.cfg.adapt.as_ref() else {
                if ctl.take().is_some() {
                    info!(kbps = ceiling, "adaptive bitrate off: back to the configured bitrate");
                    if !inbox.post(Action::SetVideoTarget { kbps: ceiling, status: None }) {
                        return;
                    }
                }
                continue;
            };
            let (pol, floor) = (policy(cfg.mode), cfg.min_bitrate_kbps.get());
            let c = ctl.get_or_insert_with(|| RateController::new(Params::new(pol, floor, ceiling)));
            if (c.params().policy, c.params().floor_kbps, c.params().ceiling_kbps) != (pol, floor.min(ceiling), ceiling) {
                c.set_limits(pol, floor, ceiling);
            }
            let now = Instant::now();
            let (status, events) = c.tick(now, &inputs(&snap));
            for e in &events {
                log_event(e, &status.reason.to_string());
            }
            let kbps = status.target_kbps;
            if last_post.is_some_and(|(k, t)| k == kbps && now.duration_since(t) < REFRESH) {
                continue;
            }
            if !inbox.post(Action::SetVideoTarget { kbps, status: Some(Box::new(status)) }) {
                return;
            }
            last_post = Some((kbps, now));
        }
    })
}

fn log_event(e: &Event, reason: &str) {
    match e {
        Event::Started { target_kbps, reason } => warn!(target_kbps, %reason, "adaptive bitrate: stepping down"),
        Event::Ended { after_s } => info!(after_s = format!("{after_s:.1}"), "adaptive bitrate: back at the configured bitrate"),
        Event::PathCongested { output, rtt_ms, base_rtt_ms, send_buffer_ms, retrans_pct } => warn!(
            %output,
            rtt_ms = format!("{rtt_ms:.1}"),
            base_rtt_ms = format!("{base_rtt_ms:.1}"),
            send_buffer_ms,
            retrans_pct = format!("{retrans_pct:.1}"),
            now = reason,
            "PATH_CONGESTED: this path cannot carry the floor; it no longer sets the rate"
        ),
        Event::PathRejoined { output } => info!(%output, "path recovered; it sets the rate again"),
    }
}
