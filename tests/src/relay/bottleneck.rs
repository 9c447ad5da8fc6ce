//! Sans-IO bandwidth bottleneck: a FIFO drained at a set rate with a
//! bounded queue (tail drop), as a narrowed venue uplink behaves. The
//! caller passes `now` and the packet size; the answer is when the packet
//! leaves the bottleneck, or that it was dropped.

use std::time::{Duration, Instant};

/// A rate limit with its queue bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bottleneck {
    /// Drain rate, kbit/s (> 0).
    pub rate_kbps: u32,
    /// Longest a packet may wait in the queue; one that would wait longer
    /// is dropped (tail drop), like a router's bounded buffer.
    pub queue: Duration,
}

/// One step of a rate schedule: from `at` (since the schedule started) on,
/// this limit, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStep {
    pub at: Duration,
    pub limit: Option<Bottleneck>,
}

/// The FIFO's state: when the last queued byte leaves.
#[derive(Debug, Clone, Default)]
pub struct Fifo {
    busy_until: Option<Instant>,
    schedule: Vec<RateStep>,
    start: Option<Instant>,
    /// The limit in force when there is no schedule (or before its first step).
    fixed: Option<Bottleneck>,
}

impl Fifo {
    /// A fixed limit (or none).
    #[must_use]
    pub fn new(limit: Option<Bottleneck>) -> Self {
        Fifo { fixed: limit, ..Fifo::default() }
    }

    /// Changes the limit now; queued packets keep their departure times.
    pub fn set_limit(&mut self, limit: Option<Bottleneck>) {
        self.fixed = limit;
        self.schedule.clear();
    }

    /// Follows `steps` from `start` on (steps sorted by `at`).
    pub fn set_schedule(&mut self, start: Instant, mut steps: Vec<RateStep>) {
        steps.sort_by_key(|s| s.at);
        self.schedule = steps;
        self.start = Some(start);
    }

    /// The limit in force at `now`.
    #[must_use]
    pub fn limit_at(&self, now: Instant) -> Option<Bottleneck> {
        let Some(start) = self.start.filter(|_| !self.schedule.is_empty()) else { return self.fixed };
        let since = now.saturating_duration_since(start);
        self.schedule.iter().take_while(|s| s.at <= since).last().map_or(self.fixed, |s| s.limit)
    }

    /// A packet of `bytes` arrives at `now`: `Some(departure)` or `None`
    /// (tail drop).
    pub fn admit(&mut self, now: Instant, bytes: usize) -> Option<Instant> {
        let Some(limit) = self.limit_at(now) else {
            self.busy_until = None;
            return Some(now);
        };
        let start = self.busy_until.map_or(now, |b| b.max(now));
        if start.saturating_duration_since(now) > limit.queue {
            return None;
        }
        let bits = u64::try_from(bytes).unwrap_or(u64::MAX).saturating_mul(8);
        // kbit/s = bit/ms: service time in µs = bits × 1000 / kbps.
        let us = bits.saturating_mul(1000) / u64::from(limit.rate_kbps.max(1));
        let done = start + Duration::from_micros(us);
        self.busy_until = Some(done);
        Some(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(kbps: u32, queue_ms: u64) -> Option<Bottleneck> {
        Some(Bottleneck { rate_kbps: kbps, queue: Duration::from_millis(queue_ms) })
    }

    #[test]
    fn unlimited_passes_at_once() {
        let mut f = Fifo::new(None);
        let t = Instant::now();
        assert_eq!(f.admit(t, 1316), Some(t));
    }

    #[test]
    fn drains_at_the_rate_and_tail_drops() {
        // 1316 B at 1053 kbit/s: just under 10 ms each.
        let mut f = Fifo::new(Some(Bottleneck { rate_kbps: 1053, queue: Duration::from_millis(50) }));
        let t = Instant::now();
        let mut deliveries = 0;
        let mut drops = 0;
        for _ in 0..20 {
            match f.admit(t, 1316) {
                Some(_) => deliveries += 1,
                None => drops += 1,
            }
        }
        // A burst at one instant: the first goes, five more fit in 50 ms.
        assert_eq!((deliveries, drops), (6, 14));
        // Offered below the rate, nothing is dropped and nothing waits.
        let mut f = Fifo::new(limit(2000, 50));
        for i in 0..100u32 {
            let now = t + Duration::from_millis(u64::from(i) * 10);
            let out = f.admit(now, 1316).expect("dropped below the rate");
            assert!(out.duration_since(now) < Duration::from_millis(6));
        }
    }

    #[test]
    fn schedule_changes_the_rate() {
        let mut f = Fifo::new(None);
        let t = Instant::now();
        f.set_schedule(
            t,
            vec![
                RateStep { at: Duration::from_secs(1), limit: limit(500, 100) },
                RateStep { at: Duration::from_secs(2), limit: None },
            ],
        );
        assert_eq!(f.limit_at(t), None);
        assert_eq!(f.limit_at(t + Duration::from_millis(1500)).map(|l| l.rate_kbps), Some(500));
        assert_eq!(f.limit_at(t + Duration::from_secs(3)), None);
    }
}
