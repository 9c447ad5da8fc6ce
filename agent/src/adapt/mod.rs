//! Network-adaptive video bitrate: libsrt statistics in, the encoder's
//! target bitrate out. Sans-IO: no clock, no sockets, no threads; the
//! caller passes the time and the samples, tests step a plain `Instant`.
//!
//! # Design
//! - Each SRT path keeps its own view ([`path::PathState`]): a base RTT,
//!   a verdict per tick from the send buffer beyond one RTT, the RTT's
//!   growth over its base, retransmission share and too-late drops, and
//!   the video rate that path alone could carry.
//! - Down fast (a severe reading cuts 30 % at once, without waiting for a
//!   hold), up slowly and in steps after a calm period, more carefully
//!   near the rate where the last trouble began. A path never climbs more
//!   than one step above the rate actually sent: no rate is trusted that
//!   has not been carried.
//! - The policy ([`Policy`]) combines the paths into one target for the
//!   one encoder. A path that cannot carry the floor is declared
//!   congested and excluded, so it stops holding the picture down for a
//!   healthy path; it rejoins once it looks healthy for a while.
//! - Thresholds are relative to the negotiated latency and the path's own
//!   base, so a steady link, however long its RTT, never moves the target.
//!
//! `docs/adaptive-bitrate.md` explains the rules, the policies and their
//! trade-offs with measured figures.

mod path;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use path::Verdict;
use path::{scale, PathState};

/// How the paths of two (or more) outputs that share the encoder combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The slowest path that can still carry the floor sets the rate
    /// (both receivers get a clean picture while they can).
    FollowAll,
    /// The best path sets the rate; the others carry what they can.
    FollowBest,
    /// The target stays at the configured bitrate.
    Off,
}

/// Tuning; [`Params::new`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct Params {
    pub policy: Policy,
    /// Never below this (kbit/s of video).
    pub floor_kbps: u32,
    /// The configured bitrate: never above.
    pub ceiling_kbps: u32,
    /// Targets are rounded down to a multiple of this.
    pub granularity_kbps: u32,
    /// Smoothed retransmission share above which a path is congested.
    pub retrans_congested: f64,
    /// ... and above which it is near full.
    pub retrans_light: f64,
    pub hold_congested: Duration,
    pub hold_light: Duration,
    /// Between climbing steps far from the last trouble.
    pub hold_climb: Duration,
    /// Between careful steps near the last trouble.
    pub hold_probe: Duration,
    /// No climbing this soon after a down step.
    pub calm_after_down: Duration,
    /// How long a path must fail to carry the floor before it is excluded.
    pub declare_after: Duration,
    /// How long an excluded path must look healthy before it rejoins.
    pub rejoin_after: Duration,
}

impl Params {
    pub fn new(policy: Policy, floor_kbps: u32, ceiling_kbps: u32) -> Self {
        Params {
            policy,
            floor_kbps: floor_kbps.min(ceiling_kbps),
            ceiling_kbps,
            granularity_kbps: 50,
            retrans_congested: 0.10,
            retrans_light: 0.04,
            hold_congested: Duration::from_millis(250),
            hold_light: Duration::from_millis(400),
            hold_climb: Duration::from_millis(500),
            hold_probe: Duration::from_millis(1000),
            calm_after_down: Duration::from_millis(1500),
            declare_after: Duration::from_secs(3),
            rejoin_after: Duration::from_secs(5),
        }
    }

    fn clamp(&self, kbps: u32) -> u32 {
        kbps.clamp(self.floor_kbps, self.ceiling_kbps)
    }

    fn round(&self, kbps: u32) -> u32 {
        let g = self.granularity_kbps.max(1);
        self.clamp(kbps / g * g)
    }
}

/// One tick's libsrt figures for a connected SRT output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SrtSample {
    pub rtt_ms: f64,
    /// Span of unacknowledged data in libsrt's send buffer (`msSndBuf`).
    pub send_buffer_ms: i64,
    /// Cumulative counters (only their growth is used).
    pub packets_sent: i64,
    pub packets_retransmitted: i64,
    pub packets_dropped: i64,
    /// libsrt's bandwidth estimate (reported, not used: see the docs).
    pub bandwidth_mbps: f64,
    pub latency_ms: u32,
}

/// What one output is at this tick.
#[derive(Debug, Clone, PartialEq)]
pub enum PathInput {
    /// A connected SRT output with its figures.
    Srt(SrtSample),
    /// An SRT output that is not connected: it cannot hold anything down.
    Down,
    /// An RTP output: no return channel, so nothing to adapt to; it never
    /// counts (it is sent whatever the encoder makes).
    Rtp,
}

/// Why the target is what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// At the configured bitrate.
    Ceiling,
    /// Adaptation is off.
    Off,
    /// This path limits the rate.
    Path { output: String, verdict: Verdict },
    /// Every SRT path is excluded as congested: the floor, best effort.
    AllCongested,
    /// No SRT output is connected: the target stays where it was.
    NoPath,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Ceiling => f.write_str("at ceiling"),
            Reason::Off => f.write_str("adaptation off"),
            Reason::Path { output, verdict } => write!(f, "following {output} ({})", verdict_word(*verdict)),
            Reason::AllCongested => f.write_str("every path congested"),
            Reason::NoPath => f.write_str("no SRT path connected"),
        }
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Dark => "dark",
        Verdict::Severe => "severe",
        Verdict::Congested => "congested",
        Verdict::Light => "near full",
        Verdict::Hold => "holding",
        Verdict::Clear => "recovering",
    }
}

/// Something worth a log line or a fleet event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The target left the ceiling.
    Started { target_kbps: u32, reason: String },
    /// The target is back at the ceiling.
    Ended { after_s: f64 },
    /// A path cannot carry the floor and no longer sets the rate.
    PathCongested { output: String, rtt_ms: f64, base_rtt_ms: f64, send_buffer_ms: i64, retrans_pct: f64 },
    /// An excluded path looks healthy again and counts once more.
    PathRejoined { output: String },
}

/// One path as status and telemetry show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathStatus {
    pub output: String,
    pub verdict: Verdict,
    /// The video rate this path alone could carry (kbit/s).
    pub path_kbps: u32,
    pub base_rtt_ms: f64,
    pub retrans_pct: f64,
    pub congested: bool,
}

/// The outcome of one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdaptStatus {
    pub policy: Policy,
    pub target_kbps: u32,
    pub ceiling_kbps: u32,
    pub floor_kbps: u32,
    pub reason: Reason,
    /// While the target is below the ceiling: why it first left it. Fixed
    /// for the whole episode, so the fleet's raise and clear events (alarm
    /// `BITRATE_ADAPTED`) mark its start and end and nothing in between.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapting_because: Option<String>,
    pub paths: Vec<PathStatus>,
}

/// The rate controller. Feed it every 100–250 ms.
#[derive(Debug)]
pub struct RateController {
    p: Params,
    target: u32,
    paths: BTreeMap<String, PathState>,
    /// When and why the target left the ceiling (the episode in progress).
    adapting_since: Option<(Instant, String)>,
}

impl RateController {
    pub fn new(p: Params) -> Self {
        RateController { target: p.ceiling_kbps, p, paths: BTreeMap::new(), adapting_since: None }
    }

    pub fn target_kbps(&self) -> u32 {
        self.target
    }

    pub fn params(&self) -> &Params {
        &self.p
    }

    /// New limits (a configuration change) without forgetting the paths.
    pub fn set_limits(&mut self, policy: Policy, floor_kbps: u32, ceiling_kbps: u32) {
        self.p.policy = policy;
        self.p.ceiling_kbps = ceiling_kbps;
        self.p.floor_kbps = floor_kbps.min(ceiling_kbps);
        self.target = self.p.clamp(self.target);
        for s in self.paths.values_mut() {
            s.target_kbps = self.p.clamp(s.target_kbps);
        }
        if policy == Policy::Off {
            self.target = ceiling_kbps;
        }
    }

    /// One tick: every output by name, at `now`. Returns the status (with
    /// the new target) and the events of this tick.
    pub fn tick(&mut self, now: Instant, outputs: &[(String, PathInput)]) -> (AdaptStatus, Vec<Event>) {
        let mut events = Vec::new();
        let sending = self.target;
        // Outputs gone from the configuration or down start afresh later.
        self.paths.retain(|name, _| outputs.iter().any(|(n, i)| n == name && matches!(i, PathInput::Srt(_))));
        let mut statuses = Vec::new();
        for (name, input) in outputs {
            let PathInput::Srt(sample) = input else { continue };
            let p = &self.p;
            let st = self.paths.entry(name.clone()).or_insert_with(|| PathState::new(sending, p));
            let Some(verdict) = st.observe(sample, p) else {
                statuses.push(path_status(name, st));
                continue;
            };
            if p.policy == Policy::Off {
                statuses.push(path_status(name, st));
                continue;
            }
            if st.congested {
                // Excluded: watch for recovery at the rate being sent.
                if verdict >= Verdict::Hold {
                    let since = *st.healthy_since.get_or_insert(now);
                    if now.duration_since(since) >= st.rejoin_after {
                        st.congested = false;
                        st.healthy_since = None;
                        st.starved_since = None;
                        st.target_kbps = sending;
                        st.trouble_at_kbps = None;
                        st.rejoined_at = Some(now);
                        events.push(Event::PathRejoined { output: name.clone() });
                    }
                } else {
                    st.healthy_since = None;
                }
            } else {
                st.step(verdict, now, sending, p);
                let starving = verdict == Verdict::Dark || (verdict <= Verdict::Congested && st.target_kbps <= p.floor_kbps);
                if starving {
                    let since = *st.starved_since.get_or_insert(now);
                    // A dark path carries nothing: exclude it at once so it
                    // never drags the picture down; a starving one gets
                    // `declare_after` to prove it cannot carry the floor.
                    // What queued before the cut drains for up to one
                    // latency and the encoder's one-second VBV: a path at
                    // the floor is judged only after that has passed.
                    let latency = Duration::from_millis(u64::from(sample.latency_ms));
                    let declare = p.declare_after.max(latency * 3 + Duration::from_secs(2));
                    if verdict == Verdict::Dark || now.duration_since(since) >= declare {
                        st.congested = true;
                        st.healthy_since = None;
                        // Excluded again soon after rejoining: wait longer
                        // next time, so a marginal path does not flap.
                        st.rejoin_after = match st.rejoined_at {
                            Some(t) if now.duration_since(t) < Duration::from_secs(60) => {
                                (st.rejoin_after * 2).min(Duration::from_secs(120))
                            }
                            _ => p.rejoin_after,
                        };
                        events.push(Event::PathCongested {
                            output: name.clone(),
                            rtt_ms: sample.rtt_ms,
                            base_rtt_ms: st.base_rtt_ms.unwrap_or_default(),
                            send_buffer_ms: sample.send_buffer_ms,
                            retrans_pct: st.retrans_share * 100.0,
                        });
                    }
                } else {
                    st.starved_since = None;
                }
            }
            statuses.push(path_status(name, st));
        }
        let (target, reason) = self.combine(sending);
        self.target = target;
        if target < self.p.ceiling_kbps && self.adapting_since.is_none() {
            self.adapting_since = Some((now, reason.to_string()));
            events.push(Event::Started { target_kbps: target, reason: reason.to_string() });
        } else if target >= self.p.ceiling_kbps {
            if let Some((since, _)) = self.adapting_since.take() {
                events.push(Event::Ended { after_s: now.duration_since(since).as_secs_f64() });
            }
        }
        let status = AdaptStatus {
            policy: self.p.policy,
            target_kbps: target,
            ceiling_kbps: self.p.ceiling_kbps,
            floor_kbps: self.p.floor_kbps,
            reason,
            adapting_because: self.adapting_since.as_ref().map(|(_, why)| why.clone()),
            paths: statuses,
        };
        (status, events)
    }

    fn combine(&self, sending: u32) -> (u32, Reason) {
        if self.p.policy == Policy::Off {
            return (self.p.ceiling_kbps, Reason::Off);
        }
        let eligible = self.paths.iter().filter(|(_, s)| !s.congested);
        let pick = match self.p.policy {
            Policy::FollowBest => eligible.max_by_key(|(_, s)| s.target_kbps),
            _ => eligible.min_by_key(|(_, s)| s.target_kbps),
        };
        match pick {
            Some((name, s)) => {
                let t = self.p.round(s.target_kbps);
                if t >= self.p.ceiling_kbps {
                    (t, Reason::Ceiling)
                } else {
                    (t, Reason::Path { output: name.clone(), verdict: s.last_verdict })
                }
            }
            None if self.paths.is_empty() => (sending, Reason::NoPath),
            None => (self.p.floor_kbps, Reason::AllCongested),
        }
    }
}

fn path_status(name: &str, s: &PathState) -> PathStatus {
    PathStatus {
        output: name.to_owned(),
        verdict: s.last_verdict,
        path_kbps: s.target_kbps,
        base_rtt_ms: s.base_rtt_ms.unwrap_or_default(),
        retrans_pct: s.retrans_share * 100.0,
        congested: s.congested,
    }
}

/// The wire rate (TS over SRT/UDP/IP) that carries `video_kbps` of video
/// and `audio_kbps` of audio: MPEG-TS adds 4 bytes per 184 plus PES and
/// PCR, SRT+UDP+IPv4 add 44 bytes per 1316. Used by the benchmark and the
/// tests to relate a link rate to a video target.
pub fn wire_kbps(video_kbps: u32, audio_kbps: u32) -> u32 {
    scale(video_kbps.saturating_add(audio_kbps), 188.0 / 184.0 * 1.02 * 1360.0 / 1316.0)
}

#[cfg(test)]
mod tests;
