//! DeckLink inputs through GStreamer's device monitor.

use std::sync::{Mutex, PoisonError};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{Bus, CaptureDevice, CaptureError, CaptureKind, Signal};

/// Lists DeckLink capture inputs.
pub trait DeckLinkProbe {
    fn devices(&self) -> Result<Vec<CaptureDevice>, CaptureError>;
}

/// The real probe: `gst::DeviceMonitor` filtered on `Video/Source`, keeping
/// the devices of the `decklinkdeviceprovider` (class
/// `Video/Source/Hardware`, device type `GstDecklinkDevice`; properties
/// `device-number`, `persistent-id`, `display-name` as set by
/// gst-plugins-bad `sys/decklink/gstdecklink.cpp`).
///
/// The signal is always [`Signal::Unknown`]: `decklinkvideosrc` reports it
/// only while capturing. GStreamer 1.22 enumerates DeckLink devices once per
/// process (a `GOnce` in `gstdecklink.cpp`), so the first answer is cached
/// and later calls do not restart the monitor (which would also restart
/// the V4L2 provider's udev scan every rescan).
#[derive(Debug, Default)]
pub struct GstDeckLinkProbe {
    cache: Mutex<Option<Vec<CaptureDevice>>>,
}

impl GstDeckLinkProbe {
    /// Initialises GStreamer (idempotent).
    pub fn new() -> Result<Self, CaptureError> {
        gst::init().map_err(|e| CaptureError::Gst(e.to_string()))?;
        Ok(Self::default())
    }
}

impl DeckLinkProbe for GstDeckLinkProbe {
    fn devices(&self) -> Result<Vec<CaptureDevice>, CaptureError> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(devices) = cache.as_ref() {
            return Ok(devices.clone());
        }
        let devices = monitor_decklink();
        *cache = Some(devices.clone());
        Ok(devices)
    }
}

fn monitor_decklink() -> Vec<CaptureDevice> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    if let Err(e) = monitor.start() {
        // Fails when no provider offers Video/Source at all.
        tracing::debug!("device monitor did not start: {e}");
        return Vec::new();
    }
    let found = monitor.devices();
    monitor.stop();
    let mut devices: Vec<CaptureDevice> = found.iter().filter_map(to_capture_device).collect();
    devices.sort_by_key(|d| d.index);
    devices
}

fn to_capture_device(device: &gst::Device) -> Option<CaptureDevice> {
    let is_decklink = device.type_().name().to_ascii_lowercase().contains("decklink");
    if !is_decklink || !device.has_classes("Video/Source") {
        return None;
    }
    let props = device.properties()?;
    let number = props.get::<u32>("device-number").ok()?;
    // The persistent id follows the card across slots and reboots; without
    // one GStreamer substitutes the enumeration index.
    let id = match props.get::<i64>("persistent-id") {
        Ok(pid) => format!("decklink-{pid:x}"),
        Err(_) => format!("decklink-{number}"),
    };
    Some(CaptureDevice {
        id,
        kind: CaptureKind::DeckLink,
        index: number,
        path: None,
        name: device.display_name().to_string(),
        driver: Some("decklink".to_owned()),
        bus: Bus::Other,
        signal: Signal::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_monitor_lists_only_decklink_inputs() {
        // This machine has no DeckLink card: expect an empty list, not an error.
        let probe = GstDeckLinkProbe::new().unwrap();
        let devices = probe.devices().unwrap();
        assert!(devices.iter().all(|d| d.kind == CaptureKind::DeckLink), "{devices:?}");
        assert_eq!(probe.devices().unwrap(), devices, "second call is served from the cache");
    }
}
