//! Why a hardware encoder family cannot run on this box, read from sysfs
//! and `/dev` (roots configurable, so tests use fake trees laid out like
//! real ones).
//!
//! GStreamer's answer alone ("no such element") hides the cause: the `va`
//! plugin registers `vah264enc` only for a VA display that can encode, so
//! a box without a GPU render node, with a GPU whose kernel driver is not
//! loaded, or without the VA user-space driver all look the same. What is
//! read, each a real kernel interface:
//! - `/dev/dri/renderD*`: DRM render nodes, what libva opens
//!   (kernel `Documentation/gpu/drm-uapi.rst`, "Render nodes");
//! - `/sys/class/drm/renderDN/device/driver`: the kernel driver behind one
//!   (`i915`, `xe`, `amdgpu`, …);
//! - `/sys/bus/pci/devices/*/{class,vendor,driver}`: display controllers
//!   (PCI class 0x03) and whether a driver is bound (kernel
//!   `Documentation/ABI/testing/sysfs-bus-pci`);
//! - the VA driver `<name>_drv_video.so` in libva's driver directories
//!   (`LIBVA_DRIVERS_PATH`, else Debian's multiarch `dri` directory);
//! - NVIDIA: `/dev/nvidiactl` and `/sys/module/nvidia`.
//!
//! These checks only explain: the probe still decides by GStreamer's
//! registry and a trial encode, so a driver this table does not know can
//! never be refused by it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::encoder::EncoderKind;

/// The kind of obstacle, most basic first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The device node the family opens is absent (no render node, no
    /// `/dev/nvidiactl`, no V4L2 node).
    NoDeviceNode,
    /// The hardware is there but no kernel driver is bound to it.
    DriverNotLoaded,
    /// The kernel driver is there but the VA-API user-space driver is not.
    VaDriverMissing,
    /// Nothing below GStreamer is missing that these checks can see, but
    /// GStreamer has no such element.
    ElementMissing,
    /// The element exists and the trial encode failed.
    TrialFailed,
}

/// Why one candidate cannot be used, as `probe --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unavailable {
    pub reason: Reason,
    /// One sentence naming what is missing.
    pub detail: String,
}

impl Unavailable {
    fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Unavailable { reason, detail: detail.into() }
    }
}

/// A display controller on the PCI bus.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gpu {
    address: String,
    vendor: String,
    driver: Option<String>,
}

const VENDOR_NVIDIA: &str = "0x10de";

/// `/sys`, `/dev` and libva's driver directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwTree {
    sys_root: PathBuf,
    dev_root: PathBuf,
    va_dirs: Vec<PathBuf>,
}

impl HwTree {
    pub fn new(sys_root: impl Into<PathBuf>, dev_root: impl Into<PathBuf>, va_dirs: Vec<PathBuf>) -> Self {
        HwTree { sys_root: sys_root.into(), dev_root: dev_root.into(), va_dirs }
    }

    /// This machine: libva looks in `LIBVA_DRIVERS_PATH` (colon-separated)
    /// when set, else in the directory it was built with, which on Debian
    /// is `/usr/lib/<multiarch>/dri`.
    pub fn system() -> Self {
        let va_dirs = match std::env::var("LIBVA_DRIVERS_PATH") {
            Ok(p) if !p.is_empty() => p.split(':').map(PathBuf::from).collect(),
            _ => ["x86_64-linux-gnu", "aarch64-linux-gnu"].iter().map(|a| PathBuf::from(format!("/usr/lib/{a}/dri"))).collect(),
        };
        HwTree::new("/sys", "/dev", va_dirs)
    }

    /// What stands in the way of `kind` below GStreamer; `None` when the
    /// hardware side looks ready, and always for the software encoders.
    pub fn check(&self, kind: EncoderKind) -> Option<Unavailable> {
        match kind {
            EncoderKind::Va => self.check_va(false),
            EncoderKind::Qsv => self.check_va(true),
            EncoderKind::Nvenc => self.check_nvenc(),
            EncoderKind::V4l2M2m => self.check_v4l2(),
            EncoderKind::X264 | EncoderKind::X265 => None,
        }
    }

    fn check_va(&self, intel_only: bool) -> Option<Unavailable> {
        let Some(node) = self.render_nodes().into_iter().next() else {
            return Some(self.no_render_node());
        };
        let device = self.sys_root.join("class/drm").join(&node).join("device");
        let Some(driver) = driver_of(&device) else {
            return Some(Unavailable::new(Reason::DriverNotLoaded, format!("/dev/dri/{node} has no kernel driver bound")));
        };
        let intel = matches!(driver.as_str(), "i915" | "xe");
        if intel_only && !intel {
            return Some(Unavailable::new(
                Reason::NoDeviceNode,
                format!("Quick Sync needs an Intel GPU; /dev/dri/{node} is {driver}"),
            ));
        }
        // Mesa and Intel's VA drivers by kernel driver (libva picks the
        // same way, va_drm_utils.c's table).
        let va: &[&str] = match driver.as_str() {
            "i915" | "xe" => &["iHD", "i965"],
            "amdgpu" | "radeon" => &["radeonsi"],
            "nouveau" => &["nouveau"],
            "virtio_gpu" => &["virtio_gpu"],
            _ => &[],
        };
        if va.is_empty() {
            return Some(Unavailable::new(Reason::VaDriverMissing, format!("no VA-API driver exists for {driver} (/dev/dri/{node})")));
        }
        let found = va.iter().any(|name| self.va_dirs.iter().any(|d| d.join(format!("{name}_drv_video.so")).exists()));
        if found {
            return None;
        }
        let dirs: Vec<String> = self.va_dirs.iter().map(|d| d.display().to_string()).collect();
        let files: Vec<String> = va.iter().map(|n| format!("{n}_drv_video.so")).collect();
        Some(Unavailable::new(
            Reason::VaDriverMissing,
            format!("{driver} (/dev/dri/{node}) needs {} in {}", files.join(" or "), dirs.join(":")),
        ))
    }

    /// No render node: a GPU without a driver, a GPU whose driver has no
    /// render engine (QEMU's `bochs-drm`), or no GPU at all.
    fn no_render_node(&self) -> Unavailable {
        let gpus = self.gpus();
        if let Some(g) = gpus.iter().find(|g| g.driver.is_none()) {
            return Unavailable::new(
                Reason::DriverNotLoaded,
                format!("no /dev/dri/renderD* node: GPU {} (vendor {}) has no kernel driver bound", g.address, g.vendor),
            );
        }
        let bound: Vec<String> = gpus.iter().map(|g| format!("{} ({})", g.address, g.driver.as_deref().unwrap_or("?"))).collect();
        let detail = if bound.is_empty() {
            "no /dev/dri/renderD* node and no GPU on the PCI bus".to_owned()
        } else {
            format!("no /dev/dri/renderD* node: the GPU driver of {} offers none", bound.join(", "))
        };
        Unavailable::new(Reason::NoDeviceNode, detail)
    }

    fn check_nvenc(&self) -> Option<Unavailable> {
        if self.dev_root.join("nvidiactl").exists() {
            return None;
        }
        if self.sys_root.join("module/nvidia").exists() {
            return Some(Unavailable::new(Reason::NoDeviceNode, "the nvidia module is loaded but /dev/nvidiactl is missing"));
        }
        match self.gpus().into_iter().find(|g| g.vendor == VENDOR_NVIDIA) {
            Some(g) => Some(Unavailable::new(
                Reason::DriverNotLoaded,
                format!(
                    "NVIDIA GPU {} without the nvidia kernel driver (bound: {})",
                    g.address,
                    g.driver.as_deref().unwrap_or("none")
                ),
            )),
            None => Some(Unavailable::new(Reason::NoDeviceNode, "no /dev/nvidiactl: no NVIDIA GPU")),
        }
    }

    /// Without `VIDIOC_QUERYCAP` a memory-to-memory encoder node cannot be
    /// told from a capture node, so only "no V4L2 node at all" is certain.
    fn check_v4l2(&self) -> Option<Unavailable> {
        let any = fs::read_dir(&self.dev_root)
            .map(|d| d.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("video"))))
            .unwrap_or(false);
        (!any).then(|| Unavailable::new(Reason::NoDeviceNode, "no /dev/video* node, so no V4L2 memory-to-memory encoder"))
    }

    fn render_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = fs::read_dir(self.dev_root.join("dri"))
            .map(|d| {
                d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).filter(|n| n.starts_with("renderD")).collect()
            })
            .unwrap_or_default();
        nodes.sort();
        nodes
    }

    fn gpus(&self) -> Vec<Gpu> {
        let dir = self.sys_root.join("bus/pci/devices");
        let mut gpus: Vec<Gpu> = fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let p = e.path();
                        let class = fs::read_to_string(p.join("class")).ok()?;
                        // 0x03xxxx: display controller (PCI code and ID
                        // assignment specification, base class 03h).
                        class.trim().starts_with("0x03").then(|| Gpu {
                            address: e.file_name().to_string_lossy().into_owned(),
                            vendor: fs::read_to_string(p.join("vendor")).map(|v| v.trim().to_owned()).unwrap_or_default(),
                            driver: driver_of(&p),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        gpus.sort_by(|a, b| a.address.cmp(&b.address));
        gpus
    }
}

/// Basename of `<device>/driver`, the symlink the driver core makes when a
/// driver binds.
fn driver_of(device: &Path) -> Option<String> {
    fs::read_link(device.join("driver")).ok()?.file_name()?.to_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake machine under a temporary directory.
    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    impl Tree {
        fn new() -> Tree {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_owned();
            for d in ["sys/bus/pci/devices", "sys/class/drm", "sys/bus/pci/drivers", "dev/dri", "va"] {
                fs::create_dir_all(root.join(d)).unwrap();
            }
            Tree { _dir: dir, root }
        }
        fn hw(&self) -> HwTree {
            HwTree::new(self.root.join("sys"), self.root.join("dev"), vec![self.root.join("va")])
        }
        /// A display controller at `addr`, bound to `driver` if given.
        fn gpu(&self, addr: &str, vendor: &str, driver: Option<&str>) -> PathBuf {
            let dev = self.root.join("sys/devices/pci0000:00").join(addr);
            fs::create_dir_all(&dev).unwrap();
            fs::write(dev.join("class"), "0x030000\n").unwrap();
            fs::write(dev.join("vendor"), format!("{vendor}\n")).unwrap();
            if let Some(d) = driver {
                let drv = self.root.join("sys/bus/pci/drivers").join(d);
                fs::create_dir_all(&drv).unwrap();
                symlink(&drv, dev.join("driver")).unwrap();
            }
            symlink(&dev, self.root.join("sys/bus/pci/devices").join(addr)).unwrap();
            dev
        }
        /// A render node for the GPU at `dev`.
        fn render(&self, dev: &Path) {
            fs::write(self.root.join("dev/dri/renderD128"), "").unwrap();
            let class = self.root.join("sys/class/drm/renderD128");
            fs::create_dir_all(&class).unwrap();
            symlink(dev, class.join("device")).unwrap();
        }
    }

    fn reason(u: Option<Unavailable>) -> Option<Reason> {
        u.map(|u| u.reason)
    }

    #[test]
    fn no_gpu_means_no_device_node_for_every_hardware_family() {
        let t = Tree::new();
        for kind in [EncoderKind::Va, EncoderKind::Qsv, EncoderKind::Nvenc, EncoderKind::V4l2M2m] {
            assert_eq!(reason(t.hw().check(kind)), Some(Reason::NoDeviceNode), "{kind:?}");
        }
        assert_eq!(t.hw().check(EncoderKind::X264), None);
        let u = t.hw().check(EncoderKind::Va).unwrap();
        assert!(u.detail.contains("no GPU on the PCI bus"), "{}", u.detail);
    }

    #[test]
    fn a_gpu_whose_driver_has_no_render_node_is_named() {
        // QEMU's standard VGA: bochs-drm makes card0 but no render node.
        let t = Tree::new();
        t.gpu("0000:00:02.0", "0x1234", Some("bochs-drm"));
        let u = t.hw().check(EncoderKind::Va).unwrap();
        assert_eq!(u.reason, Reason::NoDeviceNode);
        assert!(u.detail.contains("0000:00:02.0 (bochs-drm)"), "{}", u.detail);
    }

    #[test]
    fn a_gpu_without_a_driver_is_driver_not_loaded() {
        let t = Tree::new();
        t.gpu("0000:00:02.0", "0x8086", None);
        assert_eq!(reason(t.hw().check(EncoderKind::Va)), Some(Reason::DriverNotLoaded));
        assert_eq!(reason(t.hw().check(EncoderKind::Qsv)), Some(Reason::DriverNotLoaded));
        t.gpu("0000:01:00.0", "0x10de", Some("nouveau"));
        let u = t.hw().check(EncoderKind::Nvenc).unwrap();
        assert_eq!(u.reason, Reason::DriverNotLoaded);
        assert!(u.detail.contains("0000:01:00.0") && u.detail.contains("nouveau"), "{}", u.detail);
    }

    #[test]
    fn a_render_node_without_its_va_driver_is_va_driver_missing() {
        let t = Tree::new();
        let dev = t.gpu("0000:00:02.0", "0x8086", Some("i915"));
        t.render(&dev);
        let u = t.hw().check(EncoderKind::Va).unwrap();
        assert_eq!(u.reason, Reason::VaDriverMissing);
        assert!(u.detail.contains("iHD_drv_video.so or i965_drv_video.so"), "{}", u.detail);
        // With Intel's media driver installed nothing is in the way.
        fs::write(t.root.join("va/iHD_drv_video.so"), "").unwrap();
        assert_eq!(t.hw().check(EncoderKind::Va), None);
        assert_eq!(t.hw().check(EncoderKind::Qsv), None);
    }

    #[test]
    fn quick_sync_needs_an_intel_render_node() {
        let t = Tree::new();
        let dev = t.gpu("0000:03:00.0", "0x1002", Some("amdgpu"));
        t.render(&dev);
        fs::write(t.root.join("va/radeonsi_drv_video.so"), "").unwrap();
        assert_eq!(t.hw().check(EncoderKind::Va), None);
        let u = t.hw().check(EncoderKind::Qsv).unwrap();
        assert_eq!(u.reason, Reason::NoDeviceNode);
        assert!(u.detail.contains("amdgpu"), "{}", u.detail);
    }

    #[test]
    fn nvenc_with_the_module_but_no_control_node() {
        let t = Tree::new();
        fs::create_dir_all(t.root.join("sys/module/nvidia")).unwrap();
        assert_eq!(reason(t.hw().check(EncoderKind::Nvenc)), Some(Reason::NoDeviceNode));
        fs::write(t.root.join("dev/nvidiactl"), "").unwrap();
        assert_eq!(t.hw().check(EncoderKind::Nvenc), None);
    }

    #[test]
    fn reasons_serialise_in_snake_case() {
        let u = Unavailable::new(Reason::VaDriverMissing, "x");
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"reason":"va_driver_missing","detail":"x"}"#);
    }
}
