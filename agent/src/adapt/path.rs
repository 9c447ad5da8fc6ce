//! One SRT path's view of the network: a verdict per tick from libsrt's
//! statistics, and the video rate this path alone could carry.

use std::time::{Duration, Instant};

use super::{Params, SrtSample};

/// Looks in a row a `Light` reading must last before it counts (1 s at the
/// adapter's 200 ms tick).
const RISE_LIGHT: u32 = 5;
/// Looks in a row a `Congested` (or `Light`) reading must last.
const RISE_CONGESTED: u32 = 2;

/// How a path looks at one tick, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing acknowledged for most of the latency: the path carries
    /// nothing (a cable pulled, a route gone) while libsrt still waits
    /// for its idle timeout.
    Dark,
    /// Packets dropped too late, or the send buffer or RTT have eaten a
    /// large share of the latency: the receiver is about to lose picture.
    Severe,
    /// A queue is building (send buffer or RTT well above the path's own
    /// base) or retransmissions eat the overhead.
    Congested,
    /// A small, persistent rise over the base: the link is near full.
    Light,
    /// Neither rising nor quite at the base: hold.
    Hold,
    /// At the base: room to grow.
    Clear,
}

/// Per-path state, all driven by the samples and the `now` given.
#[derive(Debug, Clone)]
pub(super) struct PathState {
    /// The lowest RTT seen, drifting up slowly so a route change that
    /// raises the floor for good is learnt within about a minute.
    pub base_rtt_ms: Option<f64>,
    /// The video rate this path can carry, as far as we know (kbit/s).
    pub target_kbps: u32,
    /// The rate at which the last trouble began: the climb slows near it.
    pub trouble_at_kbps: Option<u32>,
    /// No change to `target_kbps` before this instant.
    pub hold_until: Option<Instant>,
    /// The last down step (for the calm period before climbing).
    pub last_down: Option<Instant>,
    /// A climb happened since the last down step: the next down step
    /// marks where trouble began.
    climbed: bool,
    /// Troubles in a row met while probing near the last one: each
    /// doubles the calm period, so a steady narrow link is probed rarely.
    probe_failures: u32,
    /// Counters at the previous sample, for per-tick rates.
    prev: Option<SrtSample>,
    /// Smoothed share of sent packets that were retransmissions.
    pub retrans_share: f64,
    /// Ticks in a row reading `Light` or `Congested`: a rise must last
    /// before it counts (see [`PathState::observe`]).
    rise_ticks: u32,
    pub last_verdict: Verdict,
    /// Since when the path has been unable to carry the floor.
    pub starved_since: Option<Instant>,
    /// Since when an excluded path has looked able to rejoin.
    pub healthy_since: Option<Instant>,
    /// Excluded from the policy: it cannot carry the floor.
    pub congested: bool,
    /// How long an excluded path must look healthy before it rejoins;
    /// doubles when a path is excluded again soon after rejoining.
    pub rejoin_after: Duration,
    pub rejoined_at: Option<Instant>,
}

impl PathState {
    pub fn new(start_kbps: u32, p: &Params) -> Self {
        PathState {
            base_rtt_ms: None,
            target_kbps: start_kbps,
            trouble_at_kbps: None,
            hold_until: None,
            last_down: None,
            climbed: false,
            probe_failures: 0,
            prev: None,
            retrans_share: 0.0,
            rise_ticks: 0,
            last_verdict: Verdict::Hold,
            starved_since: None,
            healthy_since: None,
            congested: false,
            rejoin_after: p.rejoin_after,
            rejoined_at: None,
        }
    }

    /// Reads one sample: updates the base RTT and rates, returns the
    /// verdict; `None` for a sample already seen (the output reads libsrt
    /// less often than the controller looks), so one reading never counts
    /// twice.
    pub fn observe(&mut self, s: &SrtSample, p: &Params) -> Option<Verdict> {
        if self.prev.as_ref() == Some(s) {
            return None;
        }
        if self.prev.as_ref().is_some_and(|p| s.packets_sent < p.packets_sent) {
            // The counters went back: a new connection (a listener output
            // whose caller was replaced). Its path is another one: learn
            // its base RTT afresh rather than read a slower path as a queue.
            self.base_rtt_ms = None;
            self.prev = None;
            self.retrans_share = 0.0;
            self.rise_ticks = 0;
        }
        let latency = f64::from(s.latency_ms.max(20));
        let base = match self.base_rtt_ms {
            // A slow upward drift (0.1 % per tick): after a lasting route
            // change the base follows within a minute or two, while a queue
            // that builds in seconds still shows as growth.
            Some(b) => s.rtt_ms.min(b * 1.001),
            None => s.rtt_ms,
        }
        .max(0.0);
        self.base_rtt_ms = Some(base);
        let (mut new_drops, mut retrans_share) = (false, self.retrans_share);
        if let Some(prev) = &self.prev {
            let sent = s.packets_sent.saturating_sub(prev.packets_sent);
            let retx = s.packets_retransmitted.saturating_sub(prev.packets_retransmitted);
            new_drops = s.packets_dropped > prev.packets_dropped;
            if sent > 0 {
                #[allow(clippy::cast_precision_loss)] // packet counts per tick are small
                let share = (retx as f64 / sent as f64).clamp(0.0, 1.0);
                retrans_share = 0.7 * retrans_share + 0.3 * share;
            }
        }
        self.prev = Some(s.clone());
        self.retrans_share = retrans_share;
        let growth = (s.rtt_ms - base).max(0.0);
        // libsrt's send buffer holds every packet not yet acknowledged: one
        // RTT plus the 10 ms ACK period is normal; what exceeds that waits
        // behind a bottleneck or for retransmission.
        #[allow(clippy::cast_precision_loss)]
        let sb_excess = (s.send_buffer_ms as f64 - s.rtt_ms - 10.0).max(0.0);
        // No acknowledgements at all looks like a send buffer growing with
        // neither RTT growth nor retransmissions: a path going dark, not a
        // queue (a queue shows in the RTT, its tail drops as retransmissions).
        let silent = growth < 10.0 && retrans_share < 0.01 && !new_drops;
        // Latency-relative thresholds, capped: with a long latency a queue
        // must still be seen while it is short (a venue router's buffer is
        // 50-200 ms), not once it has eaten a quarter of a second.
        let severe_growth = (latency / 4.0).clamp(60.0, 120.0);
        let congested_growth = (latency / 8.0).clamp(30.0, 60.0);
        let congested_sb = (latency / 5.0).clamp(60.0, 120.0);
        let verdict = if silent && sb_excess >= 0.8 * latency {
            Verdict::Dark
        } else if silent && sb_excess >= latency / 4.0 {
            // Waiting the few ticks until `Dark` keeps a dying path from
            // cutting the picture for the others.
            Verdict::Hold
        } else if new_drops || sb_excess >= latency / 2.0 || growth >= severe_growth || retrans_share > 0.25 {
            Verdict::Severe
        } else if sb_excess > congested_sb || growth > congested_growth || retrans_share > p.retrans_congested {
            Verdict::Congested
        } else if sb_excess > (latency / 20.0).max(25.0) || growth > (0.3 * base).max(10.0) || retrans_share > p.retrans_light {
            Verdict::Light
        } else if sb_excess < (latency / 40.0).max(15.0) && growth < (0.15 * base).max(5.0) && retrans_share < p.retrans_light / 2.0 {
            Verdict::Clear
        } else {
            Verdict::Hold
        };
        // A rise must last before it counts. A host stall (the box's own
        // CPU busy, the receiver's ACKs late) lifts the smoothed RTT like a
        // queue does, for a few hundred milliseconds: on a loaded 2-core CI
        // machine a steady loopback link read `Light` two looks in a row.
        // A queue near a full link persists, so `Light` waits one second
        // (RISE_LIGHT looks) and `Congested` two looks; `Severe` (drops,
        // retransmissions, a quarter of the latency gone) acts at once.
        self.rise_ticks = if matches!(verdict, Verdict::Light | Verdict::Congested) { self.rise_ticks + 1 } else { 0 };
        let verdict = match verdict {
            Verdict::Light if self.rise_ticks < RISE_LIGHT => Verdict::Hold,
            Verdict::Congested if self.rise_ticks < RISE_CONGESTED => Verdict::Hold,
            v => v,
        };
        self.last_verdict = verdict;
        Some(verdict)
    }

    /// Moves this path's own target for `verdict`: down at once, up only
    /// after holds, slowly near the rate where trouble began.
    /// `sending` is the rate the encoder makes now: a down step starts from
    /// it, and a climb never goes more than one step above it.
    pub fn step(&mut self, verdict: Verdict, now: Instant, sending: u32, p: &Params) {
        let held = self.hold_until.is_some_and(|t| now < t);
        let t = self.target_kbps;
        let from = t.min(sending.max(p.floor_kbps));
        let down = |this: &mut Self, to: u32, hold: Duration| {
            let to = p.clamp(to);
            if to < this.target_kbps {
                if this.climbed || this.trouble_at_kbps.is_none() {
                    // Trouble after a climb: remember where it began, and
                    // if it began where it did last time, wait longer
                    // before the next probe.
                    let again = this.trouble_at_kbps.is_some_and(|at| scale(at, 0.85) <= from);
                    this.probe_failures = if again { (this.probe_failures + 1).min(3) } else { 0 };
                    this.trouble_at_kbps = Some(from);
                    this.climbed = false;
                }
                this.target_kbps = to;
                this.last_down = Some(now);
            }
            this.hold_until = Some(now + hold);
        };
        match verdict {
            // Severe never waits for a hold: the picture is at stake.
            Verdict::Dark | Verdict::Severe => down(self, scale(from, 0.7), p.hold_congested),
            Verdict::Congested if !held => down(self, scale(from, 0.9).saturating_sub(100), p.hold_congested),
            Verdict::Light if !held => down(self, from.saturating_sub(100), p.hold_light),
            Verdict::Clear
                if !held && self.last_down.is_none_or(|d| now.duration_since(d) >= p.calm_after_down * (1 << self.probe_failures)) =>
            {
                if t >= p.ceiling_kbps {
                    return;
                }
                let near_trouble = self.trouble_at_kbps.is_some_and(|at| scale(at, 0.85) <= t);
                let (to, hold) = if near_trouble {
                    // Careful probing where it went wrong last time.
                    (t + 30 + t / 30, p.hold_probe)
                } else {
                    (scale(t, 1.08) + 50, p.hold_climb)
                };
                // Never trust more than one step above what is carried.
                let cap = sending.saturating_add(30 + sending / 30).max(scale(sending, 1.08) + 50);
                self.target_kbps = p.clamp(to.min(cap).max(t));
                self.hold_until = Some(now + hold);
                self.climbed = self.target_kbps > t;
                if self.trouble_at_kbps.is_some_and(|at| self.target_kbps > scale(at, 1.05)) {
                    // Clean past the old trouble: the link has changed.
                    self.trouble_at_kbps = None;
                    self.probe_failures = 0;
                }
            }
            _ => {}
        }
    }
}

/// `kbps × f`, rounded down, saturating.
pub(super) fn scale(kbps: u32, f: f64) -> u32 {
    let v = (f64::from(kbps) * f).floor();
    if v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range checked above
        let out = v as u32;
        out
    }
}
