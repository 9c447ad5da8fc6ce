//! `edge-bench adapt`: the agent's rate controller (`agent::adapt`, the
//! same code the agent runs) against a fluid bottleneck — a FIFO at the
//! link rate with a bounded queue and tail drop, RTT = base + queue — beside
//! BELABOX's published figures (6 → 1 Mbit/s in about 3 s, back up in about
//! 20 s). It measures the controller, not the network stack: the agent
//! through a real bottleneck against libsrt is in `tests/tests/adapt.rs`.

// Link rates and packet counts here are small positive figures: the
// float-to-integer casts cannot truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::time::{Duration, Instant};

use agent::adapt::{wire_kbps, Params, PathInput, Policy, RateController, SrtSample};
use anyhow::Result;

const TICK: Duration = Duration::from_millis(200);
const AUDIO: u32 = 128;

#[derive(Debug, clap::Args)]
pub struct AdaptArgs {
    /// Seconds the link stays narrowed in each case.
    #[arg(long, default_value_t = 30)]
    narrow_s: u64,
    /// SRT latency the controller sees, ms.
    #[arg(long, default_value_t = 1000)]
    latency_ms: u32,
    /// Router queue in front of the narrowed link, ms.
    #[arg(long, default_value_t = 150)]
    queue_ms: u32,
}

struct Link {
    capacity_kbps: f64,
    queue_kbit: f64,
    queue_ms: f64,
    sent: i64,
    retx: i64,
    latency_ms: u32,
}

impl Link {
    fn carry(&mut self, video_kbps: u32) -> (SrtSample, f64) {
        let dt = TICK.as_secs_f64();
        let wire = f64::from(wire_kbps(video_kbps, AUDIO));
        let packets = (wire * dt * 1000.0 / 8.0 / 1360.0).round() as i64;
        self.sent += packets;
        self.queue_kbit += (wire - self.capacity_kbps) * dt;
        let limit = self.capacity_kbps * self.queue_ms / 1000.0;
        let mut lost = 0.0;
        if self.queue_kbit > limit {
            lost = (self.queue_kbit - limit) / (wire * dt);
            self.queue_kbit = limit;
        }
        self.queue_kbit = self.queue_kbit.max(0.0);
        self.retx += (packets as f64 * lost).round() as i64;
        let rtt = 20.0 + self.queue_kbit / self.capacity_kbps * 1000.0;
        let sb = rtt + 10.0 + if lost > 0.0 { rtt } else { 0.0 };
        let delivered = wire.min(self.capacity_kbps);
        let sample = SrtSample {
            rtt_ms: rtt,
            send_buffer_ms: sb as i64,
            packets_sent: self.sent,
            packets_retransmitted: self.retx,
            packets_dropped: 0,
            bandwidth_mbps: 0.0,
            latency_ms: self.latency_ms,
        };
        (sample, delivered)
    }
}

struct Case {
    name: &'static str,
    ceiling: u32,
    floor: u32,
    /// The narrowed link carries this much video.
    narrow_video: u32,
}

/// (seconds below the link, seconds back to the ceiling, share of the
/// narrowed link used once settled).
fn run_case(c: &Case, a: &AdaptArgs) -> (f64, f64, f64) {
    let mut ctl = RateController::new(Params::new(Policy::FollowAll, c.floor, c.ceiling));
    let mut link =
        Link { capacity_kbps: 1e6, queue_kbit: 0.0, queue_ms: f64::from(a.queue_ms), sent: 0, retx: 0, latency_ms: a.latency_ms };
    let start = Instant::now();
    let mut now = start;
    let mut enc = c.ceiling;
    let mut step = |link: &mut Link, now: &mut Instant, enc: &mut u32| -> (u32, f64) {
        *now += TICK;
        let (s, delivered) = link.carry(*enc);
        let (st, _) = ctl.tick(*now, &[("primary".to_owned(), PathInput::Srt(s))]);
        *enc = st.target_kbps;
        (st.target_kbps, delivered)
    };
    for _ in 0..25 {
        step(&mut link, &mut now, &mut enc);
    }
    link.capacity_kbps = f64::from(wire_kbps(c.narrow_video, AUDIO));
    let ticks = (a.narrow_s * 1000 / TICK.as_millis() as u64) as usize;
    let (mut below, mut used, mut counted) = (None, 0.0, 0usize);
    for i in 0..ticks {
        let (t, delivered) = step(&mut link, &mut now, &mut enc);
        if below.is_none() && t <= c.narrow_video {
            below = Some((i + 1) as f64 * TICK.as_secs_f64());
        }
        // Settled: after the first 10 s.
        if i * TICK.as_millis() as usize >= 10_000 {
            used += delivered / link.capacity_kbps;
            counted += 1;
        }
    }
    link.capacity_kbps = 1e6;
    let mut back = None;
    for i in 0..(120_000 / TICK.as_millis() as usize) {
        let (t, _) = step(&mut link, &mut now, &mut enc);
        if t >= c.ceiling {
            back = Some((i + 1) as f64 * TICK.as_secs_f64());
            break;
        }
    }
    (below.unwrap_or(f64::NAN), back.unwrap_or(f64::NAN), used / counted.max(1) as f64)
}

pub fn run(a: &AdaptArgs) -> Result<()> {
    let cases = [
        Case { name: "6 -> 1 Mbit/s (BELABOX: ~3 s down, ~20 s up)", ceiling: 6000, floor: 300, narrow_video: 1000 },
        Case { name: "2.5 Mbit/s, link at 60 %", ceiling: 2500, floor: 500, narrow_video: 1450 },
        Case { name: "2.5 Mbit/s, link at 40 %", ceiling: 2500, floor: 500, narrow_video: 920 },
    ];
    let mut rows = Vec::new();
    for c in &cases {
        let (below, back, used) = run_case(c, a);
        rows.push(vec![c.name.to_owned(), format!("{below:.1} s"), format!("{back:.1} s"), format!("{:.0} %", used * 100.0)]);
    }
    println!(
        "adaptive bitrate controller against a fluid bottleneck ({} ms queue, latency {} ms, {} s narrowed)",
        a.queue_ms, a.latency_ms, a.narrow_s
    );
    print!("{}", crate::table::render(&["case", "below the link", "back at the ceiling", "link used (settled)"], &rows));
    Ok(())
}
