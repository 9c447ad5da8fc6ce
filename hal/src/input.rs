//! The inputs this box offers, as `probe` and fleet inventory list them:
//! every capture device found by [`crate::capture::Discovery`], in the
//! order `auto` tries them, then the built-in test pattern.

use std::path::PathBuf;

use serde::Serialize;

use crate::capture::{auto_order, CaptureDevice, CaptureKind, Signal};

/// One input as the inventory reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputInfo {
    /// Stable identifier, usable as `input.device` in the configuration.
    pub id: String,
    /// `decklink`, `v4l2_hdmi`, `v4l2_uvc` or `test-pattern`.
    pub kind: String,
    /// Human-readable description.
    pub name: String,
    pub path: Option<PathBuf>,
    pub driver: Option<String>,
    /// The signal as last seen; `None` for the test pattern, which is
    /// generated and always available.
    pub signal: Option<Signal>,
}

/// The inventory: capture devices in `auto` order, then the test pattern.
pub fn inventory(devices: &[CaptureDevice]) -> Vec<InputInfo> {
    let kind = |k: CaptureKind| match k {
        CaptureKind::DeckLink => "decklink",
        CaptureKind::V4l2Hdmi => "v4l2_hdmi",
        CaptureKind::V4l2Uvc => "v4l2_uvc",
    };
    auto_order(devices)
        .into_iter()
        .map(|d| InputInfo {
            id: d.id.clone(),
            kind: kind(d.kind).to_owned(),
            name: d.name.clone(),
            path: d.path.clone(),
            driver: d.driver.clone(),
            signal: Some(d.signal),
        })
        .chain(std::iter::once(InputInfo {
            id: "test-pattern".to_owned(),
            kind: "test-pattern".to_owned(),
            name: "SMPTE bars, running clock, 1 kHz tone (built in)".to_owned(),
            path: None,
            driver: None,
            signal: None,
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Bus;

    #[test]
    fn devices_in_auto_order_then_the_test_pattern() {
        let uvc = CaptureDevice {
            id: "v4l2-usb-1-2:1.0".into(),
            kind: CaptureKind::V4l2Uvc,
            index: 0,
            path: Some("/dev/video0".into()),
            name: "Cam Link 4K".into(),
            driver: Some("uvcvideo".into()),
            bus: Bus::Usb,
            signal: Signal::Unknown,
        };
        let sdi = CaptureDevice { id: "decklink-0".into(), kind: CaptureKind::DeckLink, path: None, ..uvc.clone() };
        let inv = inventory(&[uvc, sdi]);
        let kinds: Vec<&str> = inv.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["decklink", "v4l2_uvc", "test-pattern"]);
        assert_eq!(inv[2].signal, None);
        assert_eq!(inventory(&[]).len(), 1, "the test pattern is always there");
    }
}
