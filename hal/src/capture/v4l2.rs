//! Asking a V4L2 node for its signal state, and what the answers mean.

use std::path::Path;

use super::{CaptureError, Signal, VideoFormat};

/// Answers "what is the DV timing / signal state of this V4L2 node?".
///
/// The real implementation (not in this crate: ioctls need `unsafe`) opens
/// the node read-only and non-blocking and fills a [`DvQuery`]:
///
/// | ioctl | result | field |
/// |---|---|---|
/// | `VIDIOC_QUERYCAP` | `device_caps` has `V4L2_CAP_VIDEO_CAPTURE` (0x1) or `_MPLANE` (0x1000) and not `V4L2_CAP_VIDEO_M2M[_MPLANE]` (0x8000, 0x4000) | `is_capture = Some(true)` |
/// | `VIDIOC_QUERYCAP` | anything else (metadata, M2M codec, output) | `is_capture = Some(false)`: skipped |
/// | `VIDIOC_ENUMINPUT` (index 0) | `status & V4L2_IN_ST_NO_SIGNAL` (0x2) | `input_no_signal` |
/// | `VIDIOC_ENUMINPUT` | `capabilities` lacks `V4L2_IN_CAP_DV_TIMINGS` (0x2) | `dv_timings = Unsupported` (do not ask) |
/// | `VIDIOC_QUERY_DV_TIMINGS` | success, `type == V4L2_DV_BT_656_1120` | `Timings(BtTimings)` |
/// | `VIDIOC_QUERY_DV_TIMINGS` | `ENOLINK` | `NoLink` |
/// | `VIDIOC_QUERY_DV_TIMINGS` | `ENOLCK` | `NoLock` |
/// | `VIDIOC_QUERY_DV_TIMINGS` | `ERANGE` | `OutOfRange` |
/// | `VIDIOC_QUERY_DV_TIMINGS` | `ENOTTY`, `ENODATA` | `Unsupported` |
///
/// Errno meanings from the kernel's
/// `Documentation/userspace-api/media/v4l/vidioc-query-dv-timings.rst`.
/// Opening the node does not disturb a running capture: the query ioctls
/// are allowed on a second file handle. `EBUSY`, `EACCES` and friends are
/// returned as [`CaptureError::Probe`] and the device is listed with an
/// unknown signal.
pub trait V4l2Probe {
    fn query(&self, dev: &Path) -> Result<DvQuery, CaptureError>;

    /// Makes the detected timings the node's current ones
    /// (`VIDIOC_QUERY_DV_TIMINGS` then `VIDIOC_S_DV_TIMINGS`), so the next
    /// capture runs in the source's format. Drivers never switch timings by
    /// themselves (`vidioc-query-dv-timings.rst`, the note on
    /// `V4L2_EVENT_SOURCE_CHANGE`), and `S_DV_TIMINGS` fails with `EBUSY`
    /// while buffers are allocated, so call it with capture stopped.
    /// The default does nothing: probes that cannot issue it leave the
    /// timings to the capture element.
    fn apply_detected_timings(&self, _dev: &Path) -> Result<(), CaptureError> {
        Ok(())
    }
}

/// The raw answers of one probe, before interpretation by [`DvQuery::signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DvQuery {
    /// `Some(false)` when `VIDIOC_QUERYCAP` says this node does not capture
    /// video; `None` when not asked.
    pub is_capture: Option<bool>,
    /// `V4L2_IN_ST_NO_SIGNAL` from `VIDIOC_ENUMINPUT`; `None` when not asked.
    pub input_no_signal: Option<bool>,
    pub dv_timings: DvTimings,
}

impl DvQuery {
    /// Knows nothing: what [`SysfsOnlyProbe`] answers.
    pub const UNKNOWN: DvQuery = DvQuery { is_capture: None, input_no_signal: None, dv_timings: DvTimings::Unsupported };

    /// Maps the answers to a [`Signal`].
    ///
    /// The `VIDIOC_QUERY_DV_TIMINGS` errno is the most specific answer and
    /// wins. Timings that succeed while `ENUMINPUT` says "no signal" count as
    /// no signal: some bridges return the last timings they saw. Without DV
    /// timings only an explicit "no signal" is believed; the flag being clear
    /// proves nothing (`uvcvideo` never sets it).
    pub fn signal(&self) -> Signal {
        match self.dv_timings {
            DvTimings::NoLink => Signal::NoLink,
            DvTimings::NoLock => Signal::CannotLock,
            DvTimings::OutOfRange => Signal::OutOfRange,
            DvTimings::Timings(_) if self.input_no_signal == Some(true) => Signal::NoSignal,
            DvTimings::Timings(bt) => bt.format().map_or(Signal::OutOfRange, Signal::Locked),
            DvTimings::Unsupported if self.input_no_signal == Some(true) => Signal::NoSignal,
            DvTimings::Unsupported => Signal::Unknown,
        }
    }
}

/// The outcome of `VIDIOC_QUERY_DV_TIMINGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DvTimings {
    /// The input has no DV timings (UVC, analog) or was not asked.
    Unsupported,
    /// `ENOLINK`: no cable, or the source is off.
    NoLink,
    /// `ENOLCK`: a signal, but unstable (changing mode, bad cable).
    NoLock,
    /// `ERANGE`: timings outside what the receiver supports.
    OutOfRange,
    /// Success: the detected timings.
    Timings(BtTimings),
}

/// The fields of `struct v4l2_bt_timings` needed for a [`VideoFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BtTimings {
    pub width: u32,
    pub height: u32,
    pub interlaced: bool,
    /// Pixel clock in Hz.
    pub pixelclock: u64,
    pub hfrontporch: u32,
    pub hsync: u32,
    pub hbackporch: u32,
    pub vfrontporch: u32,
    pub vsync: u32,
    pub vbackporch: u32,
    /// Second-field vertical blanking, only counted when interlaced.
    pub il_vfrontporch: u32,
    pub il_vsync: u32,
    pub il_vbackporch: u32,
    /// `V4L2_DV_FL_CAN_DETECT_REDUCED_FPS` and `V4L2_DV_FL_REDUCED_FPS`
    /// both set: the real pixel clock is `pixelclock * 1000 / 1001`.
    pub reduced_fps: bool,
}

/// Standard rates that measured rates are snapped to (the 1000/1001 family
/// cannot be expressed exactly by a pixel clock in whole Hz).
const STANDARD_RATES: [(u32, u32); 12] = [
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
    (100, 1),
    (120000, 1001),
    (120, 1),
];

/// Snapping tolerance in parts per million: well under the 1000 ppm that
/// separates 59.94 from 60.
const SNAP_PPM: u128 = 300;

impl BtTimings {
    /// Frame size and rate, computed like the kernel's
    /// `v4l2_calc_timeperframe()` (`drivers/media/v4l2-core/v4l2-dv-timings.c`):
    /// rate = pixel clock / (total width × total height), the totals as in
    /// `V4L2_DV_BT_FRAME_WIDTH/HEIGHT` (`videodev2.h`), which include the
    /// second field's blanking, so the result is frames per second.
    /// Rates within 300 ppm of a standard rate are snapped to it; others are
    /// returned as the reduced exact fraction. `None` for zero totals or a
    /// rate that does not fit in `u32`.
    pub fn format(&self) -> Option<VideoFormat> {
        let htotal = u128::from(self.width) + u128::from(self.hfrontporch) + u128::from(self.hsync) + u128::from(self.hbackporch);
        let mut vtotal = u128::from(self.height) + u128::from(self.vfrontporch) + u128::from(self.vsync) + u128::from(self.vbackporch);
        if self.interlaced {
            vtotal += u128::from(self.il_vfrontporch) + u128::from(self.il_vsync) + u128::from(self.il_vbackporch);
        }
        let (mut num, mut den) = (u128::from(self.pixelclock), htotal * vtotal);
        if self.reduced_fps {
            num *= 1000;
            den *= 1001;
        }
        if num == 0 || den == 0 {
            return None;
        }
        let (fps_num, fps_den) = snap(num, den).or_else(|| {
            let g = gcd(num, den);
            Some((u32::try_from(num / g).ok()?, u32::try_from(den / g).ok()?))
        })?;
        Some(VideoFormat { width: self.width, height: self.height, fps_num, fps_den, interlaced: self.interlaced })
    }
}

fn snap(num: u128, den: u128) -> Option<(u32, u32)> {
    STANDARD_RATES.into_iter().find(|&(sn, sd)| {
        // |num/den - sn/sd| <= ppm * sn/sd / 1e6, cross-multiplied.
        let lhs = (num * u128::from(sd)).abs_diff(u128::from(sn) * den) * 1_000_000;
        lhs <= SNAP_PPM * u128::from(sn) * den
    })
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A probe that asks nothing: every node gets [`Signal::Unknown`], and a
/// [`super::FrameWatchdog`] decides once capture runs. This is what the
/// agent uses until a safe ioctl backend exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysfsOnlyProbe;

impl V4l2Probe for SysfsOnlyProbe {
    fn query(&self, _dev: &Path) -> Result<DvQuery, CaptureError> {
        Ok(DvQuery::UNKNOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CEA-861 1920x1080p50 (VIC 31): 148.5 MHz, 2640 × 1125 total.
    const P1080_50: BtTimings = BtTimings {
        width: 1920,
        height: 1080,
        interlaced: false,
        pixelclock: 148_500_000,
        hfrontporch: 528,
        hsync: 44,
        hbackporch: 148,
        vfrontporch: 4,
        vsync: 5,
        vbackporch: 36,
        il_vfrontporch: 0,
        il_vsync: 0,
        il_vbackporch: 0,
        reduced_fps: false,
    };

    fn query(dv: DvTimings, no_signal: Option<bool>) -> DvQuery {
        DvQuery { is_capture: Some(true), input_no_signal: no_signal, dv_timings: dv }
    }

    #[test]
    fn errnos_map_to_signal_states() {
        assert_eq!(query(DvTimings::NoLink, None).signal(), Signal::NoLink);
        assert_eq!(query(DvTimings::NoLock, None).signal(), Signal::CannotLock);
        assert_eq!(query(DvTimings::OutOfRange, None).signal(), Signal::OutOfRange);
        assert_eq!(query(DvTimings::Unsupported, Some(true)).signal(), Signal::NoSignal);
        assert_eq!(query(DvTimings::Unsupported, Some(false)).signal(), Signal::Unknown);
        assert_eq!(DvQuery::UNKNOWN.signal(), Signal::Unknown);
    }

    #[test]
    fn timings_lock_unless_the_input_says_no_signal() {
        let locked = query(DvTimings::Timings(P1080_50), Some(false)).signal();
        assert_eq!(locked.to_string_for_test(), "1920x1080p50");
        assert_eq!(query(DvTimings::Timings(P1080_50), Some(true)).signal(), Signal::NoSignal);
    }

    #[test]
    fn frame_rates_from_pixel_clock() {
        // 1080p59.94: 148.5/1.001 MHz rounded to whole Hz, snapped to 60000/1001.
        let p5994 = BtTimings { pixelclock: 148_351_648, hfrontporch: 88, ..P1080_50 };
        let f = p5994.format().unwrap();
        assert_eq!((f.fps_num, f.fps_den), (60000, 1001));
        // The same through the reduced-fps flag.
        let flagged = BtTimings { pixelclock: 148_500_000, reduced_fps: true, hfrontporch: 88, ..P1080_50 };
        assert_eq!(flagged.format().map(|f| (f.fps_num, f.fps_den)), Some((60000, 1001)));
        // 1080i50 (VIC 20): 74.25 MHz, 2640 × 1125 with both fields' blanking → 25 frames/s.
        let i50 = BtTimings {
            interlaced: true,
            pixelclock: 74_250_000,
            vfrontporch: 2,
            vsync: 5,
            vbackporch: 15,
            il_vfrontporch: 2,
            il_vsync: 5,
            il_vbackporch: 16,
            ..P1080_50
        };
        let f = i50.format().unwrap();
        assert_eq!((f.fps_num, f.fps_den, f.interlaced), (25, 1, true));
        // A non-standard rate stays exact.
        let odd = BtTimings { pixelclock: 100_000_000, ..P1080_50 };
        let f = odd.format().unwrap();
        assert_eq!((f.fps_num, f.fps_den), (10000, 297));
        assert_eq!(BtTimings::default().format(), None);
    }

    impl Signal {
        fn to_string_for_test(self) -> String {
            match self {
                Signal::Locked(f) => f.to_string(),
                other => format!("{other:?}"),
            }
        }
    }
}
