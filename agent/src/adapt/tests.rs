//! The controller against a fluid model of a bottleneck: a FIFO of
//! bounded depth drained at a set rate, tail drop, RTT = base + queue.

// A test model of small, positive figures: the casts cannot truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use super::*;

const TICK: Duration = Duration::from_millis(200);
const AUDIO: u32 = 128;

/// A fluid link: what libsrt would report behind a bottleneck.
struct Link {
    capacity_kbps: u32,
    base_rtt_ms: f64,
    /// Queue depth limit, ms at the capacity.
    queue_limit_ms: f64,
    queue_kbit: f64,
    sent: i64,
    retx: i64,
    dropped: i64,
    /// Jitter source (deterministic).
    seed: u64,
    jitter_ms: f64,
    /// Random loss share, for the "lossy but wide" link.
    loss: f64,
    latency_ms: u32,
    /// A dark path: nothing acknowledged since then.
    dark_for_ms: Option<f64>,
    /// Host stalls: every `.0` ticks, for `.1` ticks, ACKs come `.2` ms
    /// late (RTT and send buffer up, no queue, no loss).
    stalls: Option<(u32, u32, f64)>,
    ticks: u32,
}

impl Link {
    fn new(capacity_kbps: u32) -> Self {
        Link {
            capacity_kbps,
            base_rtt_ms: 20.0,
            queue_limit_ms: 150.0,
            queue_kbit: 0.0,
            sent: 0,
            retx: 0,
            dropped: 0,
            seed: 7,
            jitter_ms: 2.0,
            loss: 0.0,
            latency_ms: 500,
            dark_for_ms: None,
            stalls: None,
            ticks: 0,
        }
    }

    fn rand(&mut self) -> f64 {
        // xorshift: reproducible jitter without a dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed % 10_000) as f64 / 10_000.0
    }

    /// Carries `video_kbps` for one tick; returns libsrt's figures.
    fn carry(&mut self, video_kbps: u32) -> SrtSample {
        let dt = TICK.as_secs_f64();
        let wire = f64::from(wire_kbps(video_kbps, AUDIO));
        let cap = f64::from(self.capacity_kbps);
        let packets = (wire * dt * 1000.0 / 8.0 / 1360.0).round() as i64;
        self.sent += packets;
        if let Some(d) = &mut self.dark_for_ms {
            *d += dt * 1000.0;
            let sb = (self.base_rtt_ms + 10.0 + *d) as i64;
            return self.sample(self.base_rtt_ms, sb);
        }
        self.queue_kbit += (wire - cap) * dt;
        let limit = cap * self.queue_limit_ms / 1000.0;
        let mut lost_share = self.loss;
        if self.queue_kbit > limit {
            lost_share += (self.queue_kbit - limit) / (wire * dt);
            self.queue_kbit = limit;
        }
        self.queue_kbit = self.queue_kbit.max(0.0);
        self.retx += (packets as f64 * lost_share).round() as i64;
        let qdelay = self.queue_kbit / cap * 1000.0;
        self.ticks += 1;
        let stall = match self.stalls {
            Some((every, len, ms)) if self.ticks % every < len => ms,
            _ => 0.0,
        };
        let rtt = self.base_rtt_ms + qdelay + stall + self.jitter_ms * self.rand();
        // Lost packets wait one more RTT in the send buffer.
        let sb = rtt + 10.0 + if lost_share > self.loss + 0.001 { rtt } else { 0.0 } + 3.0 * self.rand();
        if sb > f64::from(self.latency_ms) {
            self.dropped += 1;
        }
        self.sample(rtt, sb as i64)
    }

    fn sample(&self, rtt: f64, sb: i64) -> SrtSample {
        SrtSample {
            rtt_ms: rtt,
            send_buffer_ms: sb,
            packets_sent: self.sent,
            packets_retransmitted: self.retx,
            packets_dropped: self.dropped,
            bandwidth_mbps: 0.0,
            latency_ms: self.latency_ms,
        }
    }
}

/// The largest video rate a link of `capacity` carries.
fn fits(capacity: u32) -> u32 {
    (0..=100_000).step_by(10).take_while(|v| wire_kbps(*v, AUDIO) <= capacity).last().unwrap_or(0)
}

struct Sim {
    c: RateController,
    t: Instant,
    links: Vec<(String, Link)>,
    /// The rate the encoder makes (follows the target one tick later).
    enc: u32,
    log: Vec<(f64, u32, Vec<Event>)>,
    start: Instant,
}

impl Sim {
    fn new(policy: Policy, floor: u32, ceiling: u32, links: Vec<(&str, Link)>) -> Self {
        let t = Instant::now();
        Sim {
            c: RateController::new(Params::new(policy, floor, ceiling)),
            t,
            links: links.into_iter().map(|(n, l)| (n.to_owned(), l)).collect(),
            enc: ceiling,
            log: Vec::new(),
            start: t,
        }
    }

    fn run(&mut self, d: Duration) {
        let ticks = (d.as_millis() / TICK.as_millis()) as usize;
        for _ in 0..ticks {
            self.t += TICK;
            let enc = self.enc;
            let inputs: Vec<(String, PathInput)> =
                self.links.iter_mut().map(|(n, l)| (n.clone(), PathInput::Srt(l.carry(enc)))).collect();
            let (status, events) = self.c.tick(self.t, &inputs);
            assert!((status.floor_kbps..=status.ceiling_kbps).contains(&status.target_kbps), "{status:?}");
            self.enc = status.target_kbps;
            self.log.push((self.t.duration_since(self.start).as_secs_f64(), status.target_kbps, events));
        }
    }

    fn link(&mut self, name: &str) -> &mut Link {
        &mut self.links.iter_mut().find(|(n, _)| n == name).expect("link").1
    }

    fn now_s(&self) -> f64 {
        self.t.duration_since(self.start).as_secs_f64()
    }

    /// Seconds from `from` until the target first satisfies `pred`.
    fn time_until(&self, from: f64, pred: impl Fn(u32) -> bool) -> Option<f64> {
        self.log.iter().find(|(t, k, _)| *t >= from && pred(*k)).map(|(t, _, _)| t - from)
    }

    fn events(&self) -> Vec<Event> {
        self.log.iter().flat_map(|(_, _, e)| e.clone()).collect()
    }
}

fn wide() -> Link {
    Link::new(50_000)
}

#[test]
fn steady_link_never_moves_the_target() {
    for rtt in [2.0, 20.0, 150.0] {
        let mut l = wide();
        l.base_rtt_ms = rtt;
        l.jitter_ms = rtt * 0.1 + 2.0;
        l.latency_ms = (rtt as u32 * 4).max(120);
        let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", l)]);
        s.run(Duration::from_secs(600));
        assert!(s.log.iter().all(|(_, k, _)| *k == 2500), "rtt {rtt}: target moved");
        assert!(s.events().is_empty(), "{:?}", s.events());
    }
}

/// A loaded machine: ACKs late by 15-40 ms for up to 0.8 s every few
/// seconds, on a loopback-like and a venue-like base RTT. No queue, no
/// loss: the target stays at the ceiling.
#[test]
fn host_stalls_do_not_move_the_target() {
    for (rtt, stall) in [(0.5, (25, 4, 15.0)), (0.5, (40, 3, 40.0)), (20.0, (25, 4, 25.0))] {
        let mut l = wide();
        l.base_rtt_ms = rtt;
        l.latency_ms = 1000;
        l.stalls = Some(stall);
        let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", l)]);
        s.run(Duration::from_secs(600));
        assert!(s.log.iter().all(|(_, k, _)| *k == 2500), "rtt {rtt}, stalls {stall:?}: target moved");
    }
}

/// A listener output's caller replaced by one on a slower path: the
/// counters restart and the base RTT is learnt afresh, so 60 ms more RTT
/// is a different path, not a queue.
#[test]
fn a_new_connection_on_a_slower_path_is_not_a_queue() {
    let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", wide())]);
    s.run(Duration::from_secs(30));
    let l = s.link("primary");
    *l = Link { base_rtt_ms: 80.0, latency_ms: 1000, ..Link::new(50_000) };
    s.run(Duration::from_secs(120));
    assert!(s.log.iter().all(|(_, k, _)| *k == 2500), "target moved after the new connection");
}

#[test]
fn lossy_but_wide_link_holds() {
    let mut l = wide();
    l.loss = 0.01;
    let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", l)]);
    s.run(Duration::from_secs(300));
    assert!(s.log.iter().all(|(_, k, _)| *k == 2500));
}

#[test]
fn link_at_exactly_the_stream_rate_holds() {
    // 2 % headroom: the queue never builds, nothing should move.
    let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", Link::new(wire_kbps(2500, AUDIO) * 102 / 100))]);
    s.run(Duration::from_secs(300));
    assert!(s.log.iter().all(|(_, k, _)| *k == 2500));
}

/// Narrows to `share` of the stream for 30 s, then restores. Returns
/// (seconds until below the link, seconds back to the ceiling, down steps
/// while narrowed after the first 10 s).
fn narrowing(share: f64) -> (f64, f64, usize) {
    let full = wire_kbps(2500, AUDIO);
    let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", wide())]);
    s.run(Duration::from_secs(10));
    let narrow = (f64::from(full) * share) as u32;
    s.link("primary").capacity_kbps = narrow;
    let t0 = s.now_s();
    s.run(Duration::from_secs(30));
    let adapt = s.time_until(t0, |k| k <= fits(narrow)).expect("never below the link");
    let settled = t0 + 10.0;
    let targets: Vec<u32> = s.log.iter().filter(|(t, _, _)| *t >= settled).map(|(_, k, _)| *k).collect();
    let downs = targets.windows(2).filter(|w| w[1] < w[0]).count();
    // Most of the link is used once settled, and never much above it.
    let mean = targets.iter().map(|k| f64::from(*k)).sum::<f64>() / targets.len() as f64;
    assert!(mean >= 0.6 * f64::from(fits(narrow)), "share {share}: mean {mean} of {}", fits(narrow));
    s.link("primary").capacity_kbps = 50_000;
    let t1 = s.now_s();
    s.run(Duration::from_secs(60));
    let back = s.time_until(t1, |k| k == 2500).expect("never back at the ceiling");
    (adapt, back, downs)
}

#[test]
fn narrowed_link_steps_down_fast_and_recovers_in_steps() {
    for share in [0.6, 0.4] {
        let (adapt, back, downs) = narrowing(share);
        assert!(adapt <= 3.0, "share {share}: {adapt} s to get below the link");
        assert!(back <= 25.0, "share {share}: {back} s back to the ceiling");
        // Probing a steady narrow link: a few careful touches, no sawtooth.
        assert!(downs <= 6, "share {share}: {downs} down steps in 20 s");
    }
}

#[test]
fn floor_and_ceiling_are_never_crossed() {
    let mut s = Sim::new(Policy::FollowAll, 800, 3000, vec![("primary", Link::new(300))]);
    s.run(Duration::from_secs(30));
    assert!(s.log.iter().all(|(_, k, _)| (800..=3000).contains(k)));
    assert_eq!(s.log.last().map(|l| l.1), Some(800));
    let mut c = RateController::new(Params::new(Policy::FollowAll, 5000, 3000));
    assert_eq!(c.params().floor_kbps, 3000, "a floor above the ceiling is clamped to it");
    let (st, _) = c.tick(Instant::now(), &[("p".into(), PathInput::Srt(wide().carry(3000)))]);
    assert_eq!(st.target_kbps, 3000);
}

#[test]
fn congested_path_is_excluded_and_rejoins() {
    let mut s = Sim::new(Policy::FollowAll, 1000, 4000, vec![("primary", wide()), ("backup", wide())]);
    s.run(Duration::from_secs(5));
    // The backup cannot even carry the floor.
    s.link("backup").capacity_kbps = wire_kbps(600, AUDIO);
    let t0 = s.now_s();
    s.run(Duration::from_secs(40));
    let ev = s.events();
    assert!(ev.iter().any(|e| matches!(e, Event::PathCongested { output, .. } if output == "backup")), "{ev:?}");
    // Once excluded, the healthy primary sets the rate again.
    assert_eq!(s.log.last().map(|l| l.1), Some(4000));
    let down_for = s.log.iter().filter(|(t, k, _)| *t >= t0 && *k < 4000).count() as f64 * TICK.as_secs_f64();
    assert!(down_for < 25.0, "held down {down_for} s by a path that cannot carry the floor");
    // The backup's link returns: it rejoins and no longer alarms.
    s.link("backup").capacity_kbps = 50_000;
    s.link("backup").queue_kbit = 0.0;
    s.run(Duration::from_secs(20));
    assert!(s.events().iter().any(|e| matches!(e, Event::PathRejoined { output } if output == "backup")));
    assert_eq!(s.log.last().map(|l| l.1), Some(4000));
}

#[test]
fn follow_all_tracks_the_slower_path_that_carries_the_floor() {
    let mut s = Sim::new(
        Policy::FollowAll,
        500,
        4000,
        vec![("primary", Link::new(wire_kbps(3000, AUDIO))), ("backup", Link::new(wire_kbps(1800, AUDIO)))],
    );
    s.run(Duration::from_secs(40));
    let last: Vec<u32> = s.log.iter().rev().take(50).map(|l| l.1).collect();
    assert!(last.iter().all(|k| *k <= 1980 && *k >= 900), "{last:?}");
    assert!(!s.events().iter().any(|e| matches!(e, Event::PathCongested { .. })));
}

#[test]
fn follow_best_tracks_the_faster_path() {
    let mut s = Sim::new(
        Policy::FollowBest,
        500,
        4000,
        vec![("primary", Link::new(wire_kbps(3000, AUDIO))), ("backup", Link::new(wire_kbps(1800, AUDIO)))],
    );
    s.run(Duration::from_secs(40));
    let last: Vec<u32> = s.log.iter().rev().take(50).map(|l| l.1).collect();
    // A careful probe may overshoot the link by one step before it is seen.
    assert!(last.iter().all(|k| *k <= 3300 && *k >= 1800), "{last:?}");
}

#[test]
fn off_never_moves() {
    let mut s = Sim::new(Policy::Off, 500, 2500, vec![("primary", Link::new(800))]);
    s.run(Duration::from_secs(20));
    assert!(s.log.iter().all(|(_, k, _)| *k == 2500));
    assert!(s.events().is_empty());
}

#[test]
fn dark_path_never_holds_the_picture_down() {
    let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", wide()), ("backup", wide())]);
    s.run(Duration::from_secs(5));
    s.link("backup").dark_for_ms = Some(0.0);
    s.run(Duration::from_secs(10));
    assert!(s.log.iter().all(|(_, k, _)| *k == 2500), "{:?}", s.log.iter().map(|l| l.1).collect::<Vec<_>>());
    assert!(s.events().iter().any(|e| matches!(e, Event::PathCongested { output, .. } if output == "backup")));
}

#[test]
fn a_reading_seen_twice_counts_once() {
    let mut c = RateController::new(Params::new(Policy::FollowAll, 500, 2500));
    let mut l = Link::new(wire_kbps(1000, AUDIO));
    let t = Instant::now();
    let mut first = None;
    for i in 1..=5u32 {
        let sample = if i <= 3 { l.carry(2500) } else { first.clone().unwrap_or_default() };
        if i == 3 {
            first = Some(sample.clone());
        }
        c.tick(t + TICK * i, &[("p".into(), PathInput::Srt(sample))]);
    }
    let after = c.target_kbps();
    for i in 6..=15u32 {
        c.tick(t + TICK * i, &[("p".into(), PathInput::Srt(first.clone().unwrap_or_default()))]);
    }
    assert_eq!(c.target_kbps(), after, "a stale reading kept cutting");
}

#[test]
fn down_and_rtp_outputs_do_not_count() {
    let mut c = RateController::new(Params::new(Policy::FollowAll, 500, 2500));
    let t = Instant::now();
    let (st, ev) = c.tick(t, &[("a".into(), PathInput::Down), ("r".into(), PathInput::Rtp)]);
    assert_eq!((st.target_kbps, st.reason, ev.len()), (2500, Reason::NoPath, 0));
}

#[test]
fn start_and_end_events_mark_an_episode() {
    let (_, _, _) = narrowing(0.6);
    let mut s = Sim::new(Policy::FollowAll, 500, 2500, vec![("primary", wide())]);
    s.link("primary").capacity_kbps = wire_kbps(1500, AUDIO);
    s.run(Duration::from_secs(10));
    s.link("primary").capacity_kbps = 50_000;
    s.run(Duration::from_secs(40));
    let ev = s.events();
    assert!(matches!(ev.first(), Some(Event::Started { .. })), "{ev:?}");
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::Started { .. })).count(), 1, "{ev:?}");
    assert!(matches!(ev.last(), Some(Event::Ended { .. })), "{ev:?}");
}

#[test]
fn wild_samples_do_not_panic() {
    let mut c = RateController::new(Params::new(Policy::FollowAll, 100, 100_000));
    let t = Instant::now();
    for (i, v) in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e12].iter().enumerate() {
        let s = SrtSample {
            rtt_ms: *v,
            send_buffer_ms: if i % 2 == 0 { i64::MAX } else { i64::MIN },
            packets_sent: i64::MIN,
            packets_retransmitted: i64::MAX,
            packets_dropped: -5,
            bandwidth_mbps: *v,
            latency_ms: 0,
        };
        let (st, _) = c.tick(t + TICK * i as u32, &[("p".into(), PathInput::Srt(s))]);
        assert!((100..=100_000).contains(&st.target_kbps));
    }
}

/// Prints the model's figures for docs/adaptive-bitrate.md
/// (`cargo nextest run -p agent -E 'test(model_figures)' --no-capture`).
#[test]
fn model_figures() {
    for share in [0.6, 0.4] {
        let (adapt, back, downs) = narrowing(share);
        eprintln!("model: link {:.0} % of the stream: below the link after {adapt:.1} s, back at the ceiling {back:.1} s after it returns, {downs} down steps in the settled 20 s", share * 100.0);
    }
    // BELABOX's range, 6 → 1 Mbit/s: a link that carries 1 Mbit/s of video.
    let mut s = Sim::new(Policy::FollowAll, 300, 6000, vec![("primary", wide())]);
    s.run(Duration::from_secs(5));
    s.link("primary").capacity_kbps = wire_kbps(1000, AUDIO);
    let t0 = s.now_s();
    s.run(Duration::from_secs(30));
    let down = s.time_until(t0, |k| k <= 1000).unwrap_or(f64::NAN);
    s.link("primary").capacity_kbps = 50_000;
    let t1 = s.now_s();
    s.run(Duration::from_secs(60));
    let up = s.time_until(t1, |k| k == 6000).unwrap_or(f64::NAN);
    eprintln!("model: 6 -> 1 Mbit/s link: below it after {down:.1} s; back to 6 Mbit/s {up:.1} s after the link returns");
}
