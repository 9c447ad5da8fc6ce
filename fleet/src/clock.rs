//! Time as a parameter: the sans-IO session never reads a clock itself.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A moment as both clocks see it: `mono` for deadlines (immune to NTP
/// steps), `wall` for timestamps and `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// The current time.
    pub fn system() -> Now {
        Now { mono: Instant::now(), wall: SystemTime::now() }
    }

    /// A fixed test time: `Instant::now()` and the given unix seconds.
    pub fn fake(unix_s: u64) -> Now {
        Now { mono: Instant::now(), wall: UNIX_EPOCH + Duration::from_secs(unix_s) }
    }

    /// This moment plus `d` on both clocks.
    #[must_use]
    pub fn advance(self, d: Duration) -> Now {
        Now { mono: self.mono + d, wall: self.wall + d }
    }

    /// Wall time in unix milliseconds (0 before 1970).
    pub fn unix_ms(&self) -> u64 {
        self.wall.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
    }

    /// Wall time as RFC 3339 UTC with milliseconds.
    pub fn rfc3339(&self) -> String {
        humantime::format_rfc3339_millis(self.wall).to_string()
    }
}

/// Unix milliseconds now (for controllers building `expires_at`).
pub fn unix_ms_now() -> u64 {
    Now::system().unix_ms()
}
