//! Reconnect delays: exponential with jitter, capped.
//!
//! Jitter keeps a fleet of boxes that lost the same uplink from hammering a
//! flow in lockstep when it returns; the cap keeps an output from sleeping
//! through a listener that has come back (the spine promises reconnect within
//! 2 s of the listener returning).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap, attempt: 0 }
    }

    /// The delay before the next attempt: `min(cap, base·2^n)` scaled by a
    /// random factor in [0.5, 1.0) ("equal jitter"), so it is never near zero.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(fastrand::f64())
    }

    /// As [`Self::next_delay`] with the random factor given (for tests).
    pub fn next_delay_with(&mut self, unit_random: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        exp.min(self.cap).mul_f64(0.5 + unit_random.clamp(0.0, 1.0) / 2.0)
    }

    /// Call after a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u128> = (0..6).map(|_| b.next_delay_with(1.0).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay_with(0.0).as_millis(), 50);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..50 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_secs(2));
        }
    }
}
