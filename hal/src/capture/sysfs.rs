//! Listing V4L2 capture nodes from sysfs.
//!
//! Every V4L2 node appears as `/sys/class/video4linux/videoN`, a symlink
//! into the device tree, e.g. for a PCIe card
//! `/sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/video4linux/video0`
//! and for a UVC dongle
//! `/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/video4linux/video2`.
//! Each node directory has the attributes `name`, `index`, `dev`
//! (`major:minor`), `uevent` (`DEVNAME=video2`) and a `device` symlink to
//! the parent device, whose `driver` symlink names the driver
//! (kernel `Documentation/ABI/stable/sysfs-class-video4linux` and
//! `drivers/media/v4l2-core/v4l2-dev.c`). Only these real attributes are read.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::CaptureError;

/// The bus the capture device hangs off, from its sysfs path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bus {
    Pci,
    Usb,
    /// SoC devices (`/sys/devices/platform/...`): CSI receivers and bridges.
    Platform,
    /// DeckLink through GStreamer (its bus is not reported), or unknown.
    Other,
}

impl Bus {
    fn as_str(self) -> &'static str {
        match self {
            Bus::Pci => "pci",
            Bus::Usb => "usb",
            Bus::Platform => "platform",
            Bus::Other => "other",
        }
    }
}

/// One V4L2 node as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Node {
    /// `video0`.
    pub node: String,
    /// `0` for `video0`.
    pub number: u32,
    /// The device node under the dev root, e.g. `/dev/video0`.
    pub dev_path: PathBuf,
    /// sysfs `name`: the driver's card name.
    pub name: String,
    /// sysfs `index`: position among the nodes of the same parent device.
    pub index: u32,
    /// Basename of `device/driver`.
    pub driver: Option<String>,
    pub bus: Bus,
    /// Basename of the parent device: `0000:03:00.0`, `2-1:1.0`.
    pub location: String,
}

impl V4l2Node {
    /// Identifier that survives reboots and renumbering of `/dev/videoN`:
    /// bus and parent-device address (a USB port path: the same dongle in
    /// another port is another input).
    pub fn stable_id(&self) -> String {
        format!("v4l2-{}-{}", self.bus.as_str(), self.location)
    }
}

/// Reads `/sys/class/video4linux` under a configurable root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsScanner {
    sys_root: PathBuf,
    dev_root: PathBuf,
}

impl Default for SysfsScanner {
    fn default() -> Self {
        SysfsScanner::new("/sys", "/dev")
    }
}

impl SysfsScanner {
    pub fn new(sys_root: impl Into<PathBuf>, dev_root: impl Into<PathBuf>) -> Self {
        SysfsScanner { sys_root: sys_root.into(), dev_root: dev_root.into() }
    }

    /// Capture-node candidates, sorted by node number: the first node
    /// (`index` 0) of every device that has a parent device and whose device
    /// node exists. A missing class directory (no V4L2 driver loaded) is an
    /// empty list; a node that vanishes mid-scan is skipped.
    pub fn scan(&self) -> Result<Vec<V4l2Node>, CaptureError> {
        let class = self.sys_root.join("class/video4linux");
        let entries = match fs::read_dir(&class) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CaptureError::Io { path: class, source }),
        };
        let mut nodes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| CaptureError::Io { path: class.clone(), source })?;
            let file_name = entry.file_name();
            let Some(node) = file_name.to_str() else { continue };
            // Skip vbi*, radio*, v4l-subdev*, v4l-touch*, swradio*.
            let Some(number) = node.strip_prefix("video").and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            match self.read_node(&entry.path(), node, number) {
                Ok(Some(n)) => nodes.push(n),
                Ok(None) => {}
                // Unplugged between read_dir and reading its attributes.
                Err(CaptureError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                // Debug, not warn: the scan repeats every poll period.
                Err(e) => tracing::debug!("skipping {node}: {e}"),
            }
        }
        nodes.sort_by_key(|n| n.number);
        Ok(nodes)
    }

    fn read_node(&self, dir: &Path, node: &str, number: u32) -> Result<Option<V4l2Node>, CaptureError> {
        let index: u32 = parse(&dir.join("index"))?;
        if index != 0 {
            // UVC metadata nodes (and other secondary nodes) have index ≥ 1.
            return Ok(None);
        }
        let name = read_attr(&dir.join("name"))?;
        let devnum = read_attr(&dir.join("dev"))?;
        let devname = read_attr(&dir.join("uevent"))?
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_owned))
            .unwrap_or_else(|| node.to_owned());
        let dev_path = self.dev_root.join(&devname);
        if !dev_node_matches(&dev_path, &devnum) {
            tracing::debug!("{node}: {} missing or stale, skipping until udev catches up", dev_path.display());
            return Ok(None);
        }
        let device_link = dir.join("device");
        let device = match fs::canonicalize(&device_link) {
            Ok(p) => p,
            // Virtual nodes (v4l2loopback) have no parent device.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CaptureError::Io { path: device_link, source }),
        };
        let driver = fs::read_link(device.join("driver")).ok().and_then(|p| p.file_name().and_then(|s| s.to_str()).map(str::to_owned));
        let location = device.file_name().and_then(|s| s.to_str()).unwrap_or(node).to_owned();
        Ok(Some(V4l2Node {
            node: node.to_owned(),
            number,
            dev_path,
            name,
            index,
            driver,
            bus: bus_of(self.relative(&device)),
            location,
        }))
    }
}

impl SysfsScanner {
    /// `device` without the (canonical) sysfs root, so the root's own
    /// path cannot look like a bus.
    fn relative<'a>(&self, device: &'a Path) -> &'a Path {
        let root = fs::canonicalize(&self.sys_root).unwrap_or_else(|_| self.sys_root.clone());
        device.strip_prefix(&root).unwrap_or(device)
    }
}

/// USB if any ancestor is a USB bus (`usb2`), else PCI if under a PCI root
/// (`pci0000:00`), else platform if under `platform`.
fn bus_of(device: &Path) -> Bus {
    let names: Vec<&str> = device.components().filter_map(|c| if let Component::Normal(s) = c { s.to_str() } else { None }).collect();
    let is_usb_bus = |s: &&str| s.strip_prefix("usb").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if names.iter().any(is_usb_bus) {
        Bus::Usb
    } else if names.iter().any(|s| s.starts_with("pci")) {
        Bus::Pci
    } else if names.contains(&"platform") {
        Bus::Platform
    } else {
        Bus::Other
    }
}

/// The node exists; if it is a character device (not a plain file in a test
/// tree), its major:minor matches sysfs `dev`, so a stale node left from an
/// unplugged device is not used.
fn dev_node_matches(path: &Path, devnum: &str) -> bool {
    let Ok(meta) = fs::metadata(path) else { return false };
    if !meta.file_type().is_char_device() {
        return true;
    }
    let rdev = meta.rdev();
    // glibc's gnu_dev_major/minor encoding.
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    devnum == format!("{major}:{minor}")
}

fn read_attr(path: &Path) -> Result<String, CaptureError> {
    fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|source| CaptureError::Io { path: path.to_owned(), source })
}

fn parse<T: std::str::FromStr>(path: &Path) -> Result<T, CaptureError> {
    let text = read_attr(path)?;
    text.parse().map_err(|_| CaptureError::Parse { path: path.to_owned(), what: format!("not a number: {text:?}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_from_device_path() {
        let usb = Path::new("/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0");
        assert_eq!(bus_of(usb), Bus::Usb);
        assert_eq!(bus_of(Path::new("/sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0")), Bus::Pci);
        assert_eq!(bus_of(Path::new("/sys/devices/platform/soc/fe801000.csi")), Bus::Platform);
        assert_eq!(bus_of(Path::new("/sys/devices/virtual/foo")), Bus::Other);
    }
}
