//! Send pacing and burst measurement, sans-IO: time is always a parameter
//! (a `Duration` of running time from any fixed origin).
//!
//! A muxer emits a frame's worth of TS packets at once; sent as they come,
//! an I-frame leaves as a line-rate burst that overflows shallow router
//! queues and, with FEC, lands many losses in one matrix. [`Pacer`] spreads
//! packets out to a target rate; [`BurstMeter`] verifies the result.

use std::collections::VecDeque;
use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Default bound on how late a packet may leave because of pacing.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_millis(100);
/// Samples a [`BurstMeter`] window keeps at most (bounds memory at absurd rates).
const MAX_WINDOW_SAMPLES: usize = 1 << 16;

/// Errors of the pacing layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacingError {
    /// A pacing rate of 0 bit/s would never send.
    #[error("pacing rate must be above 0 bit/s")]
    ZeroRate,
}

/// Leaky-bucket pacer: consecutive packets leave at least their
/// serialisation time at `rate_bps` apart, never before they are ready,
/// and never more than `max_lag` after they were ready.
///
/// Set the rate above the stream's (MediaConnect's `MaxBitrate` smoothing
/// guidance is ≈ 2×): bursts are then smoothed while the average is
/// unaffected. If the input stays faster than the rate, `max_lag` bounds
/// the added delay and the pacer degrades to forwarding as it comes.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate_bps: u64,
    max_lag: Duration,
    next_free: Option<Duration>,
}

impl Pacer {
    /// A pacer at `rate_bps` with [`DEFAULT_MAX_LAG`].
    pub fn new(rate_bps: u64) -> Result<Pacer, PacingError> {
        if rate_bps == 0 {
            return Err(PacingError::ZeroRate);
        }
        Ok(Pacer { rate_bps, max_lag: DEFAULT_MAX_LAG, next_free: None })
    }

    /// Bounds the delay pacing may add to a packet.
    pub fn with_max_lag(mut self, max_lag: Duration) -> Pacer {
        self.max_lag = max_lag;
        self
    }

    /// Changes the rate from the next packet on (e.g. after a bitrate change).
    pub fn set_rate(&mut self, rate_bps: u64) -> Result<(), PacingError> {
        if rate_bps == 0 {
            return Err(PacingError::ZeroRate);
        }
        self.rate_bps = rate_bps;
        Ok(())
    }

    /// The pacing rate.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// Time `bytes` take on a link of the pacing rate.
    pub fn serialization_time(&self, bytes: usize) -> Duration {
        let bits = bytes as u128 * 8;
        let nanos = bits * NANOS_PER_SEC / u128::from(self.rate_bps);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Schedules a packet of `bytes` that is ready at `ready` (now, or its
    /// due running time) and returns when to send it. Call in send order.
    pub fn schedule(&mut self, ready: Duration, bytes: usize) -> Duration {
        let send_at = match self.next_free {
            Some(free) if free > ready => free.min(ready.saturating_add(self.max_lag)),
            _ => ready,
        };
        self.next_free = Some(send_at.saturating_add(self.serialization_time(bytes)));
        send_at
    }
}

/// Worst bursts seen by a [`BurstMeter`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BurstReport {
    /// Packets recorded.
    pub packets: u64,
    /// Bytes recorded.
    pub bytes: u64,
    /// Most packets sent within any burst window (default 1 ms).
    pub max_packets_in_burst_window: usize,
    /// Highest rate over any rate window (default 10 ms), bit/s.
    pub max_rate_bps: u64,
}

/// Measures burstiness of a send schedule from (send time, bytes) samples.
#[derive(Debug, Clone)]
pub struct BurstMeter {
    burst_window: Duration,
    rate_window: Duration,
    in_burst_window: VecDeque<Duration>,
    in_rate_window: VecDeque<(Duration, usize)>,
    rate_window_bytes: u64,
    latest: Duration,
    report: BurstReport,
}

impl Default for BurstMeter {
    fn default() -> Self {
        BurstMeter::new()
    }
}

impl BurstMeter {
    /// Burst window 1 ms, rate window 10 ms.
    pub fn new() -> Self {
        BurstMeter::with_windows(Duration::from_millis(1), Duration::from_millis(10))
    }

    /// Custom windows (a zero window is raised to 1 ns).
    pub fn with_windows(burst_window: Duration, rate_window: Duration) -> Self {
        let min = Duration::from_nanos(1);
        BurstMeter {
            burst_window: burst_window.max(min),
            rate_window: rate_window.max(min),
            in_burst_window: VecDeque::new(),
            in_rate_window: VecDeque::new(),
            rate_window_bytes: 0,
            latest: Duration::ZERO,
            report: BurstReport::default(),
        }
    }

    /// Records a packet of `bytes` sent at `at`. Times should not go
    /// backwards; an earlier time is taken as the latest one seen.
    pub fn record(&mut self, at: Duration, bytes: usize) {
        let at = at.max(self.latest);
        self.latest = at;
        let bytes_u64 = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.report.packets += 1;
        self.report.bytes = self.report.bytes.saturating_add(bytes_u64);

        // A window is (at - w, at]: packets exactly w apart are not together.
        while self.in_burst_window.front().is_some_and(|&t| t + self.burst_window <= at)
            || self.in_burst_window.len() >= MAX_WINDOW_SAMPLES
        {
            self.in_burst_window.pop_front();
        }
        self.in_burst_window.push_back(at);
        self.report.max_packets_in_burst_window = self.report.max_packets_in_burst_window.max(self.in_burst_window.len());

        while let Some(&(t, b)) = self.in_rate_window.front() {
            if t + self.rate_window > at && self.in_rate_window.len() < MAX_WINDOW_SAMPLES {
                break;
            }
            self.in_rate_window.pop_front();
            self.rate_window_bytes -= u64::try_from(b).unwrap_or(u64::MAX).min(self.rate_window_bytes);
        }
        self.in_rate_window.push_back((at, bytes));
        self.rate_window_bytes = self.rate_window_bytes.saturating_add(bytes_u64);
        let rate = u128::from(self.rate_window_bytes) * 8 * NANOS_PER_SEC / self.rate_window.as_nanos();
        self.report.max_rate_bps = self.report.max_rate_bps.max(u64::try_from(rate).unwrap_or(u64::MAX));
    }

    /// The worst bursts so far.
    pub fn report(&self) -> BurstReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn pacer(rate: u64) -> Pacer {
        Pacer::new(rate).unwrap()
    }

    #[test]
    fn spreads_a_burst_evenly() {
        // 10 Mbit/s: a 1250-byte packet takes exactly 1 ms.
        let mut p = pacer(10_000_000);
        assert_eq!(p.serialization_time(1250), MS);
        let times: Vec<Duration> = (0..5).map(|_| p.schedule(Duration::ZERO, 1250)).collect();
        assert_eq!(times, [0, 1, 2, 3, 4].map(|k| k * MS));
        // Idle: a packet ready later than the pacer is free leaves at once.
        assert_eq!(p.schedule(20 * MS, 1250), 20 * MS);
        assert_eq!(p.schedule(20 * MS, 1250), 21 * MS);
    }

    #[test]
    fn respects_due_times_and_max_lag() {
        let mut p = pacer(10_000_000).with_max_lag(2 * MS);
        assert_eq!(p.schedule(5 * MS, 1250), 5 * MS);
        assert_eq!(p.schedule(5 * MS, 12_500), 6 * MS); // 10 ms long
        assert_eq!(p.schedule(6 * MS, 1250), 8 * MS, "capped at ready + max_lag");
        assert_eq!(Pacer::new(0).err(), Some(PacingError::ZeroRate));
        assert_eq!(p.set_rate(0), Err(PacingError::ZeroRate));
        assert_eq!(p.set_rate(5_000_000).map(|()| p.rate_bps()), Ok(5_000_000));
    }

    #[test]
    fn meter_sees_a_burst_and_pacing_removes_it() {
        let mut burst = BurstMeter::new();
        let mut paced = BurstMeter::new();
        let mut p = pacer(20_000_000);
        for frame in 0..10u32 {
            let t = frame * 40 * MS; // 25 fps, 30 packets per frame at once
            for _ in 0..30 {
                burst.record(t, 1328);
                paced.record(p.schedule(t, 1328), 1328);
            }
        }
        let (b, s) = (burst.report(), paced.report());
        assert_eq!((b.packets, b.bytes, b.max_packets_in_burst_window), (300, 300 * 1328, 30));
        assert_eq!(b.max_rate_bps, 30 * 1328 * 8 * 100);
        // 1328 B at 20 Mbit/s = 531.2 µs apart: 2 per millisecond.
        assert_eq!(s.max_packets_in_burst_window, 2);
        // Counting by start time, a 10 ms window may hold one packet more than 10 ms of data.
        assert!(s.max_rate_bps <= 20_000_000 + 1328 * 8 * 100, "{}", s.max_rate_bps);
    }

    #[test]
    fn meter_windows_are_half_open_and_clock_going_back_is_clamped() {
        let mut m = BurstMeter::with_windows(MS, 10 * MS);
        m.record(Duration::ZERO, 100);
        m.record(MS, 100);
        assert_eq!(m.report().max_packets_in_burst_window, 1);
        m.record(Duration::ZERO, 100); // earlier than the latest: counted at 1 ms
        assert_eq!(m.report().max_packets_in_burst_window, 2);
        assert_eq!(m.report().max_rate_bps, 300 * 8 * 100);
    }

    proptest! {
        #[test]
        fn paced_schedule_is_ordered_and_never_early(
            rate in 1u64..1_000_000_000,
            packets in proptest::collection::vec((0u64..1_000_000, 0usize..2000), 0..200),
        ) {
            let mut p = pacer(rate).with_max_lag(5 * MS);
            let mut ready = Duration::ZERO;
            let mut last = Duration::ZERO;
            for (gap_ns, bytes) in packets {
                ready += Duration::from_nanos(gap_ns);
                let at = p.schedule(ready, bytes);
                prop_assert!(at >= ready && at <= ready + 5 * MS && at >= last);
                last = at;
            }
        }
    }
}
