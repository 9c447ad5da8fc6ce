//! Hot-plug and signal changes by diffing successive scans.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    auto_order, CaptureDevice, CaptureError, CaptureKind, DeckLinkProbe, FrameWatchdog, Signal, SysfsScanner, V4l2Node, V4l2Probe,
};

/// What changed between two scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CaptureEvent {
    /// A device appeared (or reappeared with a different node or name).
    Added(CaptureDevice),
    /// A device with this id disappeared.
    Removed { id: String },
    /// A device's signal changed.
    SignalChanged { id: String, from: Signal, to: Signal },
}

/// The current set of capture devices, kept up to date by [`Self::rescan`].
///
/// Polling rather than listening for hot-plug: udev events would need
/// libudev (a C dependency and a socket to manage) or netlink parsing, and
/// the signal state has to be polled anyway because `ENOLINK` → locked
/// transitions raise no event without a `VIDIOC_SUBSCRIBE_EVENT` per node.
/// One scan is a handful of sysfs reads per node, so [`Self::POLL_PERIOD`]
/// costs nothing measurable; inotify on `/dev` could shorten the reaction
/// to plugging later.
pub struct Discovery {
    scanner: SysfsScanner,
    v4l2: Box<dyn V4l2Probe + Send>,
    decklink: Box<dyn DeckLinkProbe + Send>,
    frame_timeout: Duration,
    watchdogs: HashMap<String, FrameWatchdog>,
    devices: Vec<CaptureDevice>,
}

impl Discovery {
    /// How often the agent should call [`Self::rescan`].
    pub const POLL_PERIOD: Duration = Duration::from_secs(2);

    pub fn from_parts(scanner: SysfsScanner, v4l2: Box<dyn V4l2Probe + Send>, decklink: Box<dyn DeckLinkProbe + Send>) -> Self {
        Discovery {
            scanner,
            v4l2,
            decklink,
            frame_timeout: FrameWatchdog::DEFAULT_TIMEOUT,
            watchdogs: HashMap::new(),
            devices: Vec::new(),
        }
    }

    /// Sets the timeout of watchdogs created from now on.
    pub fn with_frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Devices as of the last rescan, in [`auto_order`].
    pub fn devices(&self) -> &[CaptureDevice] {
        &self.devices
    }

    /// The frame watchdog of a device, created on first use. Its verdict is
    /// used for devices whose probe answers [`Signal::Unknown`].
    pub fn watchdog(&mut self, id: &str) -> &mut FrameWatchdog {
        let timeout = self.frame_timeout;
        self.watchdogs.entry(id.to_owned()).or_insert_with(|| FrameWatchdog::new(timeout))
    }

    /// Asks one V4L2 node for its signal now, outside a rescan: capture
    /// polls the node it streams from, because some receivers keep
    /// delivering frames (noise, the last picture) without a signal, which
    /// the frame watchdog cannot tell from a picture. A probe failure is
    /// [`Signal::Unknown`], leaving the verdict to the watchdog.
    pub fn query_signal(&self, dev: &std::path::Path) -> Signal {
        match self.v4l2.query(dev) {
            Ok(q) => q.signal(),
            Err(e) => {
                tracing::debug!("{e}");
                Signal::Unknown
            }
        }
    }

    /// See [`V4l2Probe::apply_detected_timings`].
    pub fn apply_detected_timings(&self, dev: &std::path::Path) -> Result<(), CaptureError> {
        self.v4l2.apply_detected_timings(dev)
    }

    /// Scans sysfs and the DeckLink probe and returns what changed since the
    /// previous scan: `Removed` first, then `Added`, then `SignalChanged`.
    ///
    /// A sysfs failure is returned and leaves the device list as it was. A
    /// DeckLink probe failure keeps the previous DeckLink devices, so a
    /// flaky monitor does not make cards flap.
    pub fn rescan(&mut self, now: Instant) -> Result<Vec<CaptureEvent>, CaptureError> {
        let mut current = self.scan_v4l2()?;
        match self.decklink.devices() {
            Ok(devices) => current.extend(devices),
            Err(e) => {
                tracing::debug!("DeckLink probe failed, keeping the previous list: {e}");
                current.extend(self.devices.iter().filter(|d| d.kind == CaptureKind::DeckLink).cloned());
            }
        }
        for dev in &mut current {
            if dev.signal == Signal::Unknown {
                if let Some(wd) = self.watchdogs.get(&dev.id) {
                    dev.signal = wd.poll(now);
                }
            }
        }
        let current: Vec<CaptureDevice> = auto_order(&current).into_iter().cloned().collect();
        self.watchdogs.retain(|id, _| current.iter().any(|d| &d.id == id));
        let events = diff(&self.devices, &current);
        self.devices = current;
        Ok(events)
    }

    fn scan_v4l2(&self) -> Result<Vec<CaptureDevice>, CaptureError> {
        let mut devices: Vec<CaptureDevice> = Vec::new();
        for node in self.scanner.scan()? {
            let signal = match self.v4l2.query(&node.dev_path) {
                Ok(q) if q.is_capture == Some(false) => continue,
                Ok(q) => q.signal(),
                // Debug, not warn: this repeats every rescan; the unknown
                // signal is visible in the inventory.
                Err(e) => {
                    tracing::debug!("{e}");
                    Signal::Unknown
                }
            };
            let mut id = node.stable_id();
            if devices.iter().any(|d| d.id == id) {
                id = format!("{id}-{}", node.node);
            }
            devices.push(to_device(node, id, signal));
        }
        Ok(devices)
    }
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("scanner", &self.scanner)
            .field("frame_timeout", &self.frame_timeout)
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

fn to_device(node: V4l2Node, id: String, signal: Signal) -> CaptureDevice {
    let uvc = node.driver.as_deref() == Some("uvcvideo") || node.bus == super::Bus::Usb;
    CaptureDevice {
        id,
        kind: if uvc { CaptureKind::V4l2Uvc } else { CaptureKind::V4l2Hdmi },
        index: node.number,
        path: Some(node.dev_path),
        name: node.name,
        driver: node.driver,
        bus: node.bus,
        signal,
    }
}

/// A device whose node, name or driver changed is reported as removed and
/// added, so the consumer restarts capture on the new node.
fn diff(before: &[CaptureDevice], after: &[CaptureDevice]) -> Vec<CaptureEvent> {
    let old: HashMap<&str, &CaptureDevice> = before.iter().map(|d| (d.id.as_str(), d)).collect();
    let new: HashMap<&str, &CaptureDevice> = after.iter().map(|d| (d.id.as_str(), d)).collect();
    let same_hardware = |a: &CaptureDevice, b: &CaptureDevice| {
        CaptureDevice { signal: Signal::Unknown, ..a.clone() } == CaptureDevice { signal: Signal::Unknown, ..b.clone() }
    };
    let mut removed = Vec::new();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for d in before {
        match new.get(d.id.as_str()) {
            None => removed.push(CaptureEvent::Removed { id: d.id.clone() }),
            Some(n) if !same_hardware(d, n) => removed.push(CaptureEvent::Removed { id: d.id.clone() }),
            Some(_) => {}
        }
    }
    for d in after {
        match old.get(d.id.as_str()) {
            Some(o) if same_hardware(o, d) => {
                if o.signal != d.signal {
                    changed.push(CaptureEvent::SignalChanged { id: d.id.clone(), from: o.signal, to: d.signal });
                }
            }
            _ => added.push(CaptureEvent::Added(d.clone())),
        }
    }
    removed.into_iter().chain(added).chain(changed).collect()
}
