//! Signal state from frame arrival, for inputs that cannot report it.

use std::time::{Duration, Instant};

use super::{Signal, VideoFormat};

/// Decides [`Signal`] from when frames arrive: the universal fallback for
/// UVC dongles (no DV timings), PCIe cards that just time out, and DeckLink
/// (`docs/capture.md#signal-detection`).
///
/// Sans-IO: the caller passes the time. Wire `start` to the capture
/// pipeline reaching PLAYING, `set_format` to the negotiated caps and
/// `frame` to a buffer probe on the source pad.
#[derive(Debug, Clone)]
pub struct FrameWatchdog {
    timeout: Duration,
    started: Option<Instant>,
    last_frame: Option<Instant>,
    format: Option<VideoFormat>,
}

impl FrameWatchdog {
    /// Frame timeout the agent uses: long enough for a 24p source and a slow
    /// first frame, short enough that a pulled cable shows within seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    pub fn new(timeout: Duration) -> Self {
        FrameWatchdog { timeout, started: None, last_frame: None, format: None }
    }

    /// Capture started: from now on, no frame within the timeout means no
    /// signal. Forgets frames from an earlier run.
    pub fn start(&mut self, now: Instant) {
        self.started = Some(now);
        self.last_frame = None;
    }

    /// Capture stopped: nothing can be known any more.
    pub fn stop(&mut self) {
        self.started = None;
        self.last_frame = None;
    }

    /// The negotiated format, reported in [`Signal::Locked`].
    pub fn set_format(&mut self, format: VideoFormat) {
        self.format = Some(format);
    }

    /// A frame arrived. Also counts as a start if `start` was not called.
    /// A frame reported late (it arrived before a host stall, and the stall
    /// has already been credited) never makes the input look older.
    pub fn frame(&mut self, now: Instant) {
        self.started.get_or_insert(now);
        self.last_frame = Some(self.last_frame.map_or(now, |t| t.max(now)));
    }

    /// The watcher itself did not run for `stalled` (the whole host was
    /// descheduled: a VM pause, a thermal stall). Capture did not run either,
    /// so that time does not count toward the timeout; without this a box
    /// that froze for a second would show the slate for a healthy input.
    pub fn host_stalled(&mut self, stalled: Duration) {
        let shift = |t: &mut Option<Instant>| *t = t.and_then(|t| t.checked_add(stalled));
        shift(&mut self.started);
        shift(&mut self.last_frame);
    }

    /// The verdict at `now`:
    /// - a frame within the timeout → `Locked(format)`, or `Unknown` while
    ///   the format is not known (GStreamer negotiates caps before the first
    ///   buffer, so in practice only before wiring is complete);
    /// - capture running and the last frame (or the start) older than the
    ///   timeout → `NoSignal`;
    /// - capture not running → `Unknown`.
    pub fn poll(&self, now: Instant) -> Signal {
        let fresh = |t: Instant| now.saturating_duration_since(t) <= self.timeout;
        match (self.last_frame, self.started) {
            (Some(t), _) if fresh(t) => self.format.map_or(Signal::Unknown, Signal::Locked),
            (Some(_), _) => Signal::NoSignal,
            (None, Some(s)) if fresh(s) => Signal::Unknown,
            (None, Some(_)) => Signal::NoSignal,
            (None, None) => Signal::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FMT: VideoFormat = VideoFormat { width: 3840, height: 2160, fps_num: 30, fps_den: 1, interlaced: false };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn idle_watchdog_knows_nothing() {
        let t0 = Instant::now();
        let wd = FrameWatchdog::new(ms(500));
        assert_eq!(wd.poll(t0), Signal::Unknown);
        assert_eq!(wd.poll(t0 + ms(10_000)), Signal::Unknown);
    }

    #[test]
    fn frames_lock_and_silence_drops_to_no_signal() {
        let t0 = Instant::now();
        let mut wd = FrameWatchdog::new(ms(500));
        wd.set_format(FMT);
        wd.start(t0);
        assert_eq!(wd.poll(t0 + ms(100)), Signal::Unknown, "still waiting for the first frame");
        for i in 1..=10 {
            wd.frame(t0 + ms(33 * i));
        }
        assert_eq!(wd.poll(t0 + ms(400)), Signal::Locked(FMT));
        assert_eq!(wd.poll(t0 + ms(330 + 500)), Signal::Locked(FMT), "exactly at the timeout still counts");
        assert_eq!(wd.poll(t0 + ms(330 + 501)), Signal::NoSignal);
        wd.frame(t0 + ms(2000));
        assert_eq!(wd.poll(t0 + ms(2001)), Signal::Locked(FMT), "frames resume");
    }

    #[test]
    fn started_capture_without_frames_is_no_signal() {
        let t0 = Instant::now();
        let mut wd = FrameWatchdog::new(ms(500));
        wd.start(t0);
        assert_eq!(wd.poll(t0 + ms(501)), Signal::NoSignal);
        wd.stop();
        assert_eq!(wd.poll(t0 + ms(600)), Signal::Unknown);
    }

    #[test]
    fn a_host_stall_does_not_count_but_a_dead_input_still_shows() {
        let t0 = Instant::now();
        let mut wd = FrameWatchdog::new(ms(500));
        wd.set_format(FMT);
        wd.frame(t0);
        // Frozen 1.5 s right after a frame: the input is not blamed.
        wd.host_stalled(ms(1500));
        assert_eq!(wd.poll(t0 + ms(1600)), Signal::Locked(FMT));
        // ...but no frame after the stall still runs into the timeout.
        assert_eq!(wd.poll(t0 + ms(1500 + 501)), Signal::NoSignal);
        // A stall on an input that was already dead does not revive it.
        let mut dead = FrameWatchdog::new(ms(500));
        dead.set_format(FMT);
        dead.frame(t0);
        dead.host_stalled(ms(1000));
        assert_eq!(dead.poll(t0 + ms(3000)), Signal::NoSignal);
        // A frame from before the stall, seen only after it, does not undo
        // the credit.
        wd.frame(t0 + ms(10));
        assert_eq!(wd.poll(t0 + ms(1600)), Signal::Locked(FMT));
    }

    #[test]
    fn restart_forgets_old_frames_and_times_do_not_underflow() {
        let t0 = Instant::now();
        let mut wd = FrameWatchdog::new(ms(500));
        wd.set_format(FMT);
        wd.frame(t0 + ms(100));
        // A poll with an earlier timestamp than the frame must not panic.
        assert_eq!(wd.poll(t0), Signal::Locked(FMT));
        wd.start(t0 + ms(5000));
        assert_eq!(wd.poll(t0 + ms(5100)), Signal::Unknown);
    }
}
