//! V4L2 and DeckLink capture discovery: which inputs exist, and which of
//! them carry a picture.
//!
//! # Background
//! A venue box may hold a PCIe HDMI card, an HDMI-to-CSI bridge, a UVC
//! dongle (Cam Link, MS2109 clones) or a Blackmagic DeckLink card, and
//! cables get pulled mid-show. How "is there a picture?" is answered depends
//! on the hardware (`docs/capture.md#signal-detection`):
//! - V4L2 receivers with DV timings answer `VIDIOC_QUERY_DV_TIMINGS` with
//!   the detected timings, or `ENOLINK` (no link), `ENOLCK` (cannot lock),
//!   `ERANGE` (out of range); `VIDIOC_ENUMINPUT` adds `V4L2_IN_ST_NO_SIGNAL`.
//! - UVC dongles have no DV timings and report no signal state at all: a
//!   dongle without a source just delivers no frames (or a vendor logo).
//! - DeckLink reports its signal only while capturing (`decklinkvideosrc`'s
//!   read-only `signal` property).
//!
//! So the only universal answer is "did frames arrive recently?": the
//! [`FrameWatchdog`].
//!
//! # Design
//! - [`SysfsScanner`] lists V4L2 capture nodes from `/sys/class/video4linux`
//!   (roots configurable, so tests use fake trees laid out like real ones).
//! - [`V4l2Probe`] asks one node for its DV timings / input status and
//!   [`DvQuery::signal`] maps the answer to a [`Signal`]. [`SysfsOnlyProbe`]
//!   answers [`Signal::Unknown`] for every node, leaving the verdict to the
//!   watchdog.
//! - [`DeckLinkProbe`] lists DeckLink inputs; [`GstDeckLinkProbe`] uses
//!   GStreamer's device monitor.
//! - [`Discovery`] rescans periodically and diffs successive scans into
//!   [`CaptureEvent`]s (hot-plug, signal changes).
//! - [`select_auto`] picks an input by a stated preference order.
//! - [`FakeV4l2Probe`] and [`FakeDeckLinkProbe`] are hand-written fakes for
//!   tests and the demo.
//!
//! # Limitations
//! - There is no ioctl backend for [`V4l2Probe`]: ioctls need `unsafe`,
//!   which this workspace keeps to the libsrt binding. [`V4l2CtlProbe`]
//!   asks `v4l2-ctl` instead (one process per query, so discovery polls,
//!   it does not spin); `ENUMINPUT`'s no-signal flag is not read.
//! - Without `VIDIOC_QUERYCAP` a node's capabilities are unknown, so only
//!   the first node of each device (sysfs `index` 0) is listed: that skips
//!   UVC metadata nodes, but would also skip the second channel of a card
//!   that exposes several inputs under one PCI function.
//! - Nodes without a parent device (`v4l2loopback`) are not listed.
//! - Hot-plug is polled ([`Discovery::POLL_PERIOD`]), not event driven.

mod decklink;
mod discovery;
mod fake;
pub mod fake_tree;
mod sysfs;
mod v4l2;
mod v4l2ctl;
mod watchdog;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

pub use decklink::{DeckLinkProbe, GstDeckLinkProbe};
pub use discovery::{CaptureEvent, Discovery};
pub use fake::{FakeDeckLinkProbe, FakeV4l2Probe};
pub use fake_tree::FakeSysfsTree;
pub use sysfs::{Bus, SysfsScanner, V4l2Node};
pub use v4l2::{BtTimings, DvQuery, DvTimings, SysfsOnlyProbe, V4l2Probe};
pub use v4l2ctl::{parse_query_dv_timings, V4l2CtlProbe};
pub use watchdog::FrameWatchdog;

/// Errors from capture discovery.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// A sysfs or /dev entry could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A sysfs attribute did not have the expected form.
    #[error("unexpected contents in {path}: {what}")]
    Parse { path: PathBuf, what: String },
    /// A device could not be asked for its signal state.
    #[error("cannot probe {dev}: {reason}")]
    Probe { dev: PathBuf, reason: String },
    /// GStreamer could not be initialised or its device monitor failed.
    #[error("GStreamer: {0}")]
    Gst(String),
}

/// The families of capture hardware, in [`select_auto`]'s preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureKind {
    /// Blackmagic DeckLink (SDI or HDMI) through `decklinkvideosrc`.
    #[serde(rename = "decklink")]
    DeckLink,
    /// A V4L2 capture node that is not UVC: PCIe HDMI cards and
    /// HDMI-to-CSI bridges, the kind that has DV timings.
    V4l2Hdmi,
    /// A USB Video Class device (`uvcvideo`): HDMI dongles and webcams.
    V4l2Uvc,
}

/// A detected video mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    /// Frames (not fields) per second as a fraction, as in GStreamer caps:
    /// 1080i50 is 25/1 with `interlaced` set.
    pub fps_num: u32,
    pub fps_den: u32,
    pub interlaced: bool,
}

impl fmt::Display for VideoFormat {
    /// Broadcast notation: `1920x1080p50`, `1920x1080p59.94`, and for
    /// interlaced video the field rate, `1920x1080i50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (letter, per_frame) = if self.interlaced { ('i', 2) } else { ('p', 1) };
        let num = u64::from(self.fps_num) * per_frame;
        let den = u64::from(self.fps_den.max(1));
        write!(f, "{}x{}{letter}", self.width, self.height)?;
        if num % den == 0 {
            write!(f, "{}", num / den)
        } else {
            #[allow(clippy::cast_precision_loss)] // display only
            let rate = num as f64 / den as f64;
            write!(f, "{rate:.2}")
        }
    }
}

/// What an input's signal looks like right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Signal {
    /// Nothing connected (`ENOLINK` from `VIDIOC_QUERY_DV_TIMINGS`).
    NoLink,
    /// Something is connected but the receiver cannot lock to it (`ENOLCK`).
    CannotLock,
    /// The source sends timings the receiver cannot handle (`ERANGE`).
    OutOfRange,
    /// A stable picture in this format.
    Locked(VideoFormat),
    /// The input reports no signal (`V4L2_IN_ST_NO_SIGNAL`), or capture is
    /// running but no frame arrived within the watchdog timeout.
    NoSignal,
    /// The hardware cannot tell and nobody is capturing from it.
    Unknown,
}

impl Signal {
    /// Whether a picture is present.
    pub fn is_locked(&self) -> bool {
        matches!(self, Signal::Locked(_))
    }
}

/// One capture input, as `edge-agent probe --json` and fleet inventory
/// report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureDevice {
    /// Stable identifier built from where the device sits (PCI address, USB
    /// port path, DeckLink persistent id), not from the `/dev/videoN`
    /// number, which depends on probe order.
    pub id: String,
    pub kind: CaptureKind,
    /// Order within the kind: `N` of `/dev/videoN`, or the DeckLink
    /// `device-number`.
    pub index: u32,
    /// The device node (`/dev/video0`); `None` for DeckLink, which GStreamer
    /// addresses by `device-number`.
    pub path: Option<PathBuf>,
    /// Human-readable name (sysfs `name`, DeckLink display name).
    pub name: String,
    /// Kernel driver (`uvcvideo`, `tc358743`, …) or `decklink`.
    pub driver: Option<String>,
    pub bus: Bus,
    pub signal: Signal,
}

/// Devices in [`select_auto`]'s preference order, whatever their signal:
/// DeckLink first, then V4L2 HDMI, then UVC; within a kind by index.
///
/// DeckLink comes first because SDI is what a venue's broadcast desk feeds
/// and the card locks and reports it reliably; a V4L2 HDMI receiver next,
/// since its DV timings prove lock; UVC dongles last, because they scale or
/// show a vendor logo, so frames flowing from them prove less.
pub fn auto_order(devices: &[CaptureDevice]) -> Vec<&CaptureDevice> {
    let mut ordered: Vec<&CaptureDevice> = devices.iter().collect();
    ordered.sort_by(|a, b| (a.kind, a.index, &a.id).cmp(&(b.kind, b.index, &b.id)));
    ordered
}

/// The first device with a locked signal in [`auto_order`].
///
/// Devices whose signal is [`Signal::Unknown`] (UVC, DeckLink while nobody
/// captures) are never picked here: the caller may try them in
/// [`auto_order`] with a [`FrameWatchdog`], or fall back to the test pattern.
pub fn select_auto(devices: &[CaptureDevice]) -> Option<&CaptureDevice> {
    auto_order(devices).into_iter().find(|d| d.signal.is_locked())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1080_50: VideoFormat = VideoFormat { width: 1920, height: 1080, fps_num: 50, fps_den: 1, interlaced: false };

    fn dev(id: &str, kind: CaptureKind, index: u32, signal: Signal) -> CaptureDevice {
        CaptureDevice { id: id.to_owned(), kind, index, path: None, name: id.to_owned(), driver: None, bus: Bus::Pci, signal }
    }

    #[test]
    fn select_auto_prefers_decklink_then_hdmi_then_uvc_among_locked() {
        let locked = Signal::Locked(P1080_50);
        let devices = vec![
            dev("uvc", CaptureKind::V4l2Uvc, 0, locked),
            dev("hdmi-2", CaptureKind::V4l2Hdmi, 2, locked),
            dev("hdmi-1", CaptureKind::V4l2Hdmi, 1, Signal::NoLink),
            dev("sdi", CaptureKind::DeckLink, 0, Signal::Unknown),
        ];
        assert_eq!(select_auto(&devices).map(|d| d.id.as_str()), Some("hdmi-2"));
        let order: Vec<&str> = auto_order(&devices).iter().map(|d| d.id.as_str()).collect();
        assert_eq!(order, ["sdi", "hdmi-1", "hdmi-2", "uvc"]);
    }

    #[test]
    fn select_auto_without_a_locked_input_is_none() {
        let devices = vec![dev("uvc", CaptureKind::V4l2Uvc, 0, Signal::Unknown)];
        assert!(select_auto(&devices).is_none());
        assert!(select_auto(&[]).is_none());
    }

    #[test]
    fn signal_serialises_with_a_state_tag() {
        let json = serde_json::to_string(&Signal::Locked(P1080_50)).unwrap();
        assert_eq!(json, r#"{"state":"locked","width":1920,"height":1080,"fps_num":50,"fps_den":1,"interlaced":false}"#);
        assert_eq!(serde_json::to_string(&Signal::CannotLock).unwrap(), r#"{"state":"cannot_lock"}"#);
        assert_eq!(serde_json::to_string(&CaptureKind::DeckLink).unwrap(), r#""decklink""#);
    }

    #[test]
    fn formats_display_in_broadcast_notation() {
        assert_eq!(P1080_50.to_string(), "1920x1080p50");
        let i50 = VideoFormat { fps_num: 25, interlaced: true, ..P1080_50 };
        assert_eq!(i50.to_string(), "1920x1080i50");
        let p5994 = VideoFormat { fps_num: 60000, fps_den: 1001, ..P1080_50 };
        assert_eq!(p5994.to_string(), "1920x1080p59.94");
    }
}
