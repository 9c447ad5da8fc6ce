//! A fake `/sys` and `/dev` laid out like a real machine's, for tests and
//! demos of capture discovery without hardware (`EDGE_SYSFS_ROOT` /
//! `EDGE_DEV_ROOT` point the agent at one).

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::SysfsScanner;

/// PCIe HDMI capture card behind a root port.
pub const HDMI_CARD: &str = "devices/pci0000:00/0000:00:1c.0/0000:03:00.0";
/// UVC dongle: USB interface 1.0 of the device on port 1 of bus 2.
pub const UVC_DONGLE: &str = "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0";

/// `sys/` and `dev/` under a root directory the caller owns.
#[derive(Debug, Clone)]
pub struct FakeSysfsTree {
    root: PathBuf,
}

impl FakeSysfsTree {
    /// An empty tree (no V4L2 devices) under `root`.
    pub fn new(root: &Path) -> io::Result<Self> {
        let tree = FakeSysfsTree { root: root.to_owned() };
        fs::create_dir_all(tree.sys().join("class/video4linux"))?;
        fs::create_dir_all(tree.dev())?;
        Ok(tree)
    }

    pub fn sys(&self) -> PathBuf {
        self.root.join("sys")
    }

    pub fn dev(&self) -> PathBuf {
        self.root.join("dev")
    }

    pub fn scanner(&self) -> SysfsScanner {
        SysfsScanner::new(self.sys(), self.dev())
    }

    /// Adds `videoN` under `device` with the attributes and symlinks the
    /// kernel creates, and the /dev node udev creates.
    pub fn add_node(&self, device: &str, bus: &str, driver: &str, node: &str, name: &str, index: u32) -> io::Result<()> {
        let minor: u32 = node.trim_start_matches("video").parse().map_err(|_| io::Error::other("node must be videoN"))?;
        let dev_dir = self.sys().join(device);
        let node_dir = dev_dir.join("video4linux").join(node);
        fs::create_dir_all(&node_dir)?;
        fs::write(node_dir.join("name"), format!("{name}\n"))?;
        fs::write(node_dir.join("index"), format!("{index}\n"))?;
        fs::write(node_dir.join("dev"), format!("81:{minor}\n"))?;
        fs::write(node_dir.join("uevent"), format!("MAJOR=81\nMINOR={minor}\nDEVNAME={node}\n"))?;
        fs::write(node_dir.join("dev_debug"), "0\n")?;
        let parent = Path::new(device).file_name().and_then(|p| p.to_str()).unwrap_or_default();
        let _ = symlink(format!("../../../{parent}"), node_dir.join("device"));
        // device/driver -> /sys/bus/<bus>/drivers/<driver>, relative like sysfs.
        let up = "../".repeat(Path::new(device).components().count());
        fs::create_dir_all(self.sys().join(format!("bus/{bus}/drivers/{driver}")))?;
        let _ = symlink(format!("{up}bus/{bus}/drivers/{driver}"), dev_dir.join("driver"));
        symlink(format!("../../{device}/video4linux/{node}"), self.sys().join("class/video4linux").join(node))?;
        fs::write(self.dev().join(node), "")
    }

    /// A PCIe HDMI card (`cobalt`) as `video0`.
    pub fn add_hdmi_card(&self) -> io::Result<()> {
        self.add_node(HDMI_CARD, "pci", "cobalt", "video0", "cobalt-0", 0)
    }

    /// A UVC dongle as `video2`, with its metadata node `video3`.
    pub fn add_uvc_dongle(&self) -> io::Result<()> {
        self.add_node(UVC_DONGLE, "usb", "uvcvideo", "video2", "Cam Link 4K: Cam Link 4K", 0)?;
        self.add_node(UVC_DONGLE, "usb", "uvcvideo", "video3", "Cam Link 4K: Cam Link 4K", 1)
    }

    /// Unplugging the dongle: the kernel removes the nodes, udev the /dev entries.
    pub fn remove_uvc_dongle(&self) -> io::Result<()> {
        for node in ["video2", "video3"] {
            fs::remove_file(self.sys().join("class/video4linux").join(node))?;
            fs::remove_file(self.dev().join(node))?;
        }
        fs::remove_dir_all(self.sys().join(UVC_DONGLE))
    }
}
