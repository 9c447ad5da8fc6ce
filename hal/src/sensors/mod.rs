//! Host sensors for telemetry: temperatures, CPU load, memory, disk usage
//! and clock synchronisation.
//!
//! # Background
//! An encoder box in a rack or a ceiling void overheats, fills its disk with
//! logs, or boots without NTP (and then SRT statistics and log times lie).
//! All of it is readable from sysfs and procfs without privileges:
//! hwmon (`Documentation/hwmon/sysfs-interface.rst`: `temp*_input` in
//! millidegrees Celsius, optional `temp*_label`), thermal zones
//! (`Documentation/ABI/testing/sysfs-class-thermal`: `type`, `temp` in
//! millidegrees), `/proc/stat`, `/proc/loadavg` and `/proc/meminfo`
//! (`Documentation/filesystems/proc.rst`).
//!
//! # Design
//! - [`Sensors`] reads everything under configurable roots
//!   ([`SensorPaths`], default `/sys`, `/proc`, `/run`), so tests run over
//!   fake trees, and assembles one [`SensorSnapshot`] for telemetry. Each
//!   field is best-effort: a missing hwmon must not hide the memory figure.
//! - Parsing is separate from reading ([`CpuTimes::parse`],
//!   [`LoadAvg::parse`], [`Memory::parse`]); CPU usage is the delta of two
//!   `/proc/stat` samples ([`CpuTimes::busy_since`]), kept between snapshots.
//! - [`OverheatMonitor`] is a sans-IO hysteresis that turns temperatures
//!   into raise/clear transitions for alarms and the front panel.
//!
//! # Limitations
//! - Clock sync is read from `/run/systemd/timesync/synchronized`, which
//!   systemd-timesyncd touches on every successful synchronisation. It
//!   says "synchronised since boot", not "synchronised now", and with
//!   another NTP daemon (chrony) the answer is `None`. The kernel's own flag
//!   (`adjtimex()` `STA_UNSYNC`, what `timedatectl` shows) needs a libc call
//!   that this `unsafe`-free crate cannot make.
//! - Disk usage comes from `statvfs` through `nix`'s safe wrapper; it
//!   reports the filesystem holding the path, not the directory's size.

mod host;
mod overheat;
mod procfs;
mod thermal;

use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

pub use host::{clock_synchronized, disk_usage, DiskUsage};
pub use overheat::{OverheatMonitor, OverheatTransition};
pub use procfs::{CpuTimes, LoadAvg, Memory};
pub use thermal::{read_temperatures, TempSource, Temperature};

/// Errors from reading sensors.
#[derive(Debug, Error)]
pub enum SensorError {
    /// A sysfs, procfs or run file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file did not have the expected form.
    #[error("unexpected contents in {path}")]
    Parse { path: PathBuf },
}

/// Where the kernel's pseudo-filesystems are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorPaths {
    pub sys_root: PathBuf,
    pub proc_root: PathBuf,
    pub run_root: PathBuf,
}

impl Default for SensorPaths {
    fn default() -> Self {
        SensorPaths { sys_root: "/sys".into(), proc_root: "/proc".into(), run_root: "/run".into() }
    }
}

/// Everything telemetry reports about the host, read at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorSnapshot {
    pub temperatures: Vec<Temperature>,
    /// Fraction of CPU time (all cores) spent busy since the previous
    /// snapshot, 0.0–1.0; `None` on the first snapshot.
    pub cpu_busy: Option<f64>,
    /// Number of CPUs in `/proc/stat`.
    pub cpu_count: Option<u32>,
    pub load: Option<LoadAvg>,
    pub memory: Option<Memory>,
    pub disk: Option<DiskUsage>,
    /// See the module limitations.
    pub clock_synchronized: Option<bool>,
}

impl SensorSnapshot {
    /// The hottest reading, for [`OverheatMonitor::update`].
    pub fn hottest_millicelsius(&self) -> Option<i32> {
        self.temperatures.iter().map(|t| t.millicelsius).max()
    }
}

/// Reads the host's sensors; keeps the previous CPU sample for deltas.
#[derive(Debug, Clone, Default)]
pub struct Sensors {
    paths: SensorPaths,
    previous_cpu: Option<CpuTimes>,
}

impl Sensors {
    pub fn new(paths: SensorPaths) -> Self {
        Sensors { paths, previous_cpu: None }
    }

    /// All hwmon and thermal-zone temperatures that could be read.
    pub fn temperatures(&self) -> Vec<Temperature> {
        read_temperatures(&self.paths.sys_root)
    }

    pub fn cpu_times(&self) -> Result<CpuTimes, SensorError> {
        read_parsed(&self.paths.proc_root.join("stat"), CpuTimes::parse)
    }

    pub fn load_avg(&self) -> Result<LoadAvg, SensorError> {
        read_parsed(&self.paths.proc_root.join("loadavg"), LoadAvg::parse)
    }

    pub fn memory(&self) -> Result<Memory, SensorError> {
        read_parsed(&self.paths.proc_root.join("meminfo"), Memory::parse)
    }

    pub fn clock_synchronized(&self) -> Option<bool> {
        clock_synchronized(&self.paths.run_root)
    }

    /// Reads everything; `disk_path` selects the filesystem to report
    /// (the agent's state directory). Failures become `None` and a debug log.
    pub fn snapshot(&mut self, disk_path: &Path) -> SensorSnapshot {
        let cpu = log_err(self.cpu_times());
        let cpu_busy = match (&self.previous_cpu, &cpu) {
            (Some(before), Some(now)) => now.busy_since(before),
            _ => None,
        };
        if cpu.is_some() {
            self.previous_cpu = cpu;
        }
        SensorSnapshot {
            temperatures: self.temperatures(),
            cpu_busy,
            cpu_count: cpu.map(|c| c.cpus),
            load: log_err(self.load_avg()),
            memory: log_err(self.memory()),
            disk: log_err(disk_usage(disk_path)),
            clock_synchronized: self.clock_synchronized(),
        }
    }
}

fn log_err<T>(r: Result<T, SensorError>) -> Option<T> {
    r.map_err(|e| tracing::debug!("sensor: {e}")).ok()
}

fn read_parsed<T>(path: &Path, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, SensorError> {
    let text = std::fs::read_to_string(path).map_err(|source| SensorError::Io { path: path.to_owned(), source })?;
    parse(&text).ok_or_else(|| SensorError::Parse { path: path.to_owned() })
}
