//! The hand-over point between capture and encoding.
//!
//! Capture writes the newest frame and its sound here; the frame pump reads
//! them on its own clock. Nothing the capture side does (stalling, erroring,
//! renegotiating a new format, being rebuilt) can block the pump, so the
//! encoder, the muxer and the outputs never see it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use gstreamer as gst;
use hal::capture::{Signal, VideoFormat};

/// Capture audio kept at most (48 kHz stereo samples): 200 ms. More means
/// the capture clock runs ahead of the box's; the oldest sound is dropped
/// so lip sync does not drift.
const MAX_AUDIO_SAMPLES: usize = 48_000 / 5 * 2;

#[derive(Debug, Default)]
struct Inner {
    frame: Option<(gst::Buffer, Instant)>,
    format: Option<VideoFormat>,
    audio: VecDeque<i16>,
    /// Which device capture currently reads (`/dev/video0`, `decklink:0`).
    source: Option<String>,
    /// What the receiver itself said while capture is stopped for want of
    /// a signal (`ENOLINK`, `ENOLCK`, `ERANGE`): more precise than the
    /// frame watchdog's "no frames".
    probed: Option<Signal>,
}

/// Newest frame, input format and a short audio FIFO, shared between the
/// capture thread and the frame pump.
#[derive(Debug, Default)]
pub struct FrameStore {
    inner: Mutex<Inner>,
    /// Test hook and technician's check (SIGUSR1): frames are discarded as
    /// if the cable had been pulled, so the slate path runs for real.
    simulate_loss: AtomicBool,
    /// Test hook (SIGUSR2): the test pattern switches to another format, as
    /// a venue source switching from 1080i to 720p would.
    alternate_format: AtomicBool,
}

impl FrameStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A frame arrived from capture (already scaled to the output format).
    pub fn put_frame(&self, buffer: gst::Buffer, now: Instant) {
        if !self.simulate_loss.load(Ordering::Relaxed) {
            self.lock().frame = Some((buffer, now));
        }
    }

    /// Interleaved S16 samples arrived from capture.
    pub fn put_audio(&self, samples: &[i16]) {
        if self.simulate_loss.load(Ordering::Relaxed) {
            return;
        }
        let mut g = self.lock();
        g.audio.extend(samples.iter().copied());
        let excess = g.audio.len().saturating_sub(MAX_AUDIO_SAMPLES);
        g.audio.drain(..excess);
    }

    /// Moves up to `out.len()` samples into `out`; returns how many.
    pub fn take_audio(&self, out: &mut [i16]) -> usize {
        let mut g = self.lock();
        let n = out.len().min(g.audio.len());
        for (dst, src) in out.iter_mut().zip(g.audio.drain(..n)) {
            *dst = src;
        }
        n
    }

    /// The newest frame and when it arrived.
    pub fn latest(&self) -> Option<(gst::Buffer, Instant)> {
        self.lock().frame.clone()
    }

    /// The format capture negotiated with the source (before scaling).
    pub fn set_format(&self, format: VideoFormat) {
        self.lock().format = Some(format);
    }

    pub fn format(&self) -> Option<VideoFormat> {
        self.lock().format
    }

    /// Capture (re)started on `source`, or stopped (`None`): forget the old
    /// frame, format and sound so none of it is shown as live.
    pub fn reset(&self, source: Option<String>) {
        let mut g = self.lock();
        *g = Inner { source, ..Inner::default() };
    }

    /// Capture is stopped because the receiver reports `signal`; cleared
    /// by the next [`Self::reset`].
    pub fn set_probed_signal(&self, signal: Signal) {
        self.lock().probed = Some(signal);
    }

    pub fn probed_signal(&self) -> Option<Signal> {
        self.lock().probed
    }

    pub fn source(&self) -> Option<String> {
        self.lock().source.clone()
    }

    /// Turns simulated signal loss on or off; returns the new state.
    pub fn toggle_simulated_loss(&self) -> bool {
        !self.simulate_loss.fetch_xor(true, Ordering::Relaxed)
    }

    /// Switches the test pattern's format; returns whether the alternate
    /// format is now on.
    pub fn toggle_alternate_format(&self) -> bool {
        !self.alternate_format.fetch_xor(true, Ordering::Relaxed)
    }

    pub fn alternate_format(&self) -> bool {
        self.alternate_format.load(Ordering::Relaxed)
    }

    pub fn simulated_loss(&self) -> bool {
        self.simulate_loss.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_fifo_keeps_the_newest_200_ms() {
        let store = FrameStore::default();
        let chunk = vec![1i16; 48_000 / 10 * 2];
        for _ in 0..5 {
            store.put_audio(&chunk);
        }
        let mut out = vec![0i16; 48_000 * 2];
        assert_eq!(store.take_audio(&mut out), MAX_AUDIO_SAMPLES);
        assert_eq!(store.take_audio(&mut out), 0);
    }

    #[test]
    fn simulated_loss_discards_frames_and_sound() {
        gst::init().unwrap();
        let store = FrameStore::default();
        assert!(store.toggle_simulated_loss());
        store.put_frame(gst::Buffer::new(), Instant::now());
        store.put_audio(&[1, 2]);
        assert!(store.latest().is_none());
        assert_eq!(store.take_audio(&mut [0; 4]), 0);
        assert!(!store.toggle_simulated_loss());
        store.put_frame(gst::Buffer::new(), Instant::now());
        assert!(store.latest().is_some());
    }
}
