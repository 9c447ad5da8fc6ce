//! Line-up tone and the audio/video cadence, sans-IO.

/// A continuous sine at a fixed level, interleaved stereo S16.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    /// Phase step per sample, in cycles.
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl ToneGenerator {
    /// -20 dBFS: the EBU R68-style line-up level (0.1 of full scale).
    pub const LEVEL: f64 = 0.1;

    pub fn new(freq_hz: u32, sample_rate: u32) -> Self {
        ToneGenerator {
            step: f64::from(freq_hz) / f64::from(sample_rate.max(1)),
            phase: 0.0,
            amplitude: Self::LEVEL * f64::from(i16::MAX),
        }
    }

    /// Fills `out` (interleaved, `channels` per frame) with the next samples;
    /// the phase carries over, so consecutive calls join without a click.
    pub fn fill(&mut self, out: &mut [i16], channels: usize) {
        for frame in out.chunks_mut(channels.max(1)) {
            #[allow(clippy::cast_possible_truncation)] // |value| <= 0.1 * i16::MAX
            let v = (self.amplitude * (self.phase * std::f64::consts::TAU).sin()).round() as i16;
            frame.fill(v);
            self.phase = (self.phase + self.step).fract();
        }
    }
}

/// How many audio samples go with each video frame, so that audio and video
/// stay locked over any run length: after `n` frames exactly
/// ⌊n·rate·den/num⌋ samples have been produced (1601/1602 alternate at
/// 29.97 fps, always 1920 at 25 fps).
#[derive(Debug, Clone)]
pub struct SampleCadence {
    rate: u64,
    fps_num: u64,
    fps_den: u64,
    frames: u64,
    samples: u64,
}

impl SampleCadence {
    pub fn new(sample_rate: u32, fps_num: u32, fps_den: u32) -> Self {
        SampleCadence {
            rate: u64::from(sample_rate),
            fps_num: u64::from(fps_num.max(1)),
            fps_den: u64::from(fps_den.max(1)),
            frames: 0,
            samples: 0,
        }
    }

    /// Samples (per channel) for the next frame.
    pub fn next_frame(&mut self) -> usize {
        self.frames += 1;
        let total = self.frames * self.rate * self.fps_den / self.fps_num;
        let n = total - self.samples;
        self.samples = total;
        usize::try_from(n).unwrap_or(0)
    }

    /// Samples (per channel) produced so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_is_exact_at_fractional_rates() {
        let mut c = SampleCadence::new(48_000, 30_000, 1001);
        let counts: Vec<usize> = (0..5).map(|_| c.next_frame()).collect();
        assert_eq!(counts, [1601, 1602, 1601, 1602, 1602]);
        for _ in 5..30_000 {
            c.next_frame();
        }
        // 30000 frames at 29.97 = 1001 s exactly.
        assert_eq!(c.samples(), 48_000 * 1001);
        let mut c = SampleCadence::new(48_000, 25, 1);
        assert!((0..100).all(|_| c.next_frame() == 1920));
    }

    #[test]
    fn tone_is_at_minus_20_dbfs_and_continuous() {
        let mut t = ToneGenerator::new(1000, 48_000);
        let mut a = vec![0i16; 96];
        let mut b = vec![0i16; 96];
        t.fill(&mut a, 2);
        t.fill(&mut b, 2);
        let peak = a.iter().chain(&b).map(|v| v.unsigned_abs()).max().unwrap();
        assert!((3270..=3277).contains(&peak), "{peak}");
        // 48 samples = one full 1 kHz cycle: the second block repeats the first.
        assert_eq!(a, b);
        assert_eq!(a[0], a[1], "both channels carry the tone");
    }
}
