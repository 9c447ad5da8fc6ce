//! Sensors over fake /sys, /proc and /run trees.

#![cfg(test)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use hal::sensors::{OverheatMonitor, OverheatTransition, SensorPaths, Sensors, TempSource};

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Like a small Intel box: coretemp with labels, an NVMe drive, an old
/// driver with its attributes under `device/`, and two thermal zones, one
/// of them reporting a placeholder.
fn fake_host() -> (tempfile::TempDir, SensorPaths) {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let devices = sys.join("devices/platform/coretemp.0/hwmon/hwmon1");
    write(&devices.join("name"), "coretemp\n");
    write(&devices.join("temp1_input"), "52000\n");
    write(&devices.join("temp1_label"), "Package id 0\n");
    write(&devices.join("temp2_input"), "49000\n");
    write(&devices.join("temp2_label"), "Core 0\n");
    write(&devices.join("temp2_crit"), "100000\n");
    fs::create_dir_all(sys.join("class/hwmon")).unwrap();
    symlink("../../devices/platform/coretemp.0/hwmon/hwmon1", sys.join("class/hwmon/hwmon1")).unwrap();
    let nvme = sys.join("class/hwmon/hwmon0");
    write(&nvme.join("name"), "nvme\n");
    write(&nvme.join("temp1_input"), "38850\n");
    write(&nvme.join("temp1_label"), "Composite\n");
    // A sleeping drive: the attribute exists but reads garbage/fails.
    write(&nvme.join("temp2_input"), "\n");
    let old = sys.join("class/hwmon/hwmon2/device");
    write(&old.join("name"), "it8728\n");
    write(&old.join("temp1_input"), "41000\n");
    write(&sys.join("class/thermal/thermal_zone0/type"), "acpitz\n");
    write(&sys.join("class/thermal/thermal_zone0/temp"), "27800\n");
    write(&sys.join("class/thermal/thermal_zone1/type"), "x86_pkg_temp\n");
    write(&sys.join("class/thermal/thermal_zone1/temp"), "-274000\n");
    write(&sys.join("class/thermal/cooling_device0/type"), "Processor\n");

    let proc = dir.path().join("proc");
    write(&proc.join("stat"), "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\n");
    write(&proc.join("loadavg"), "0.52 0.58 0.59 2/467 12345\n");
    write(&proc.join("meminfo"), "MemTotal:        4000000 kB\nMemFree:          500000 kB\nMemAvailable:    3000000 kB\n");
    let run = dir.path().join("run");
    write(&run.join("systemd/timesync/synchronized"), "");
    let paths = SensorPaths { sys_root: sys, proc_root: proc, run_root: run };
    (dir, paths)
}

#[test]
fn temperatures_from_hwmon_and_thermal_zones() {
    let (_dir, paths) = fake_host();
    let temps = Sensors::new(paths).temperatures();
    let got: Vec<_> =
        temps.iter().map(|t| (t.source, t.sensor.as_str(), t.chip.as_str(), t.label.as_deref(), t.millicelsius)).collect();
    assert_eq!(
        got,
        [
            (TempSource::Hwmon, "hwmon0/temp1", "nvme", Some("Composite"), 38850),
            (TempSource::Hwmon, "hwmon1/temp1", "coretemp", Some("Package id 0"), 52000),
            (TempSource::Hwmon, "hwmon1/temp2", "coretemp", Some("Core 0"), 49000),
            (TempSource::Hwmon, "hwmon2/temp1", "it8728", None, 41000),
            (TempSource::ThermalZone, "thermal_zone0", "acpitz", None, 27800),
        ]
    );
}

#[test]
fn snapshot_reports_load_memory_disk_and_clock() {
    let (dir, paths) = fake_host();
    let stat = paths.proc_root.join("stat");
    let mut sensors = Sensors::new(paths);
    let first = sensors.snapshot(dir.path());
    assert_eq!(first.cpu_busy, None, "needs two samples");
    assert_eq!(first.cpu_count, Some(2));
    assert_eq!(first.load.map(|l| l.one), Some(0.52));
    assert_eq!(first.memory.map(|m| m.available_bytes), Some(3_000_000 * 1024));
    assert!(first.disk.is_some_and(|d| d.total_bytes > 0));
    assert_eq!(first.clock_synchronized, Some(true));
    assert_eq!(first.hottest_millicelsius(), Some(52000));

    fs::write(&stat, "cpu  250 0 100 900 50 0 0 0 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu1 1 0 0 0 0 0 0 0 0 0\n").unwrap();
    let second = sensors.snapshot(dir.path());
    assert_eq!(second.cpu_busy, Some(200.0 / 300.0));

    let json = serde_json::to_value(&second).unwrap();
    assert_eq!(json["temperatures"][0]["source"], "hwmon");
    assert_eq!(json["memory"]["total_bytes"], 4_096_000_000u64);
}

#[test]
fn empty_host_gives_empty_snapshot_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let paths = SensorPaths { sys_root: root.join("sys"), proc_root: root.join("proc"), run_root: root.join("run") };
    let mut sensors = Sensors::new(paths);
    let s = sensors.snapshot(&root.join("missing"));
    assert!(s.temperatures.is_empty());
    assert_eq!((s.cpu_count, s.load, s.memory, s.disk, s.clock_synchronized), (None, None, None, None, None));
    assert!(sensors.memory().is_err());
}

#[test]
fn overheat_alarm_follows_the_hottest_sensor() {
    let (_dir, paths) = fake_host();
    let hot = paths.sys_root.join("devices/platform/coretemp.0/hwmon/hwmon1/temp1_input");
    let mut sensors = Sensors::new(paths);
    let mut alarm = OverheatMonitor::new(85_000, 5_000);
    let mut step = |mc: i32| {
        fs::write(&hot, mc.to_string()).unwrap();
        alarm.update(sensors.snapshot(Path::new("/")).hottest_millicelsius().unwrap())
    };
    assert_eq!(step(80_000), None);
    assert_eq!(step(86_000), Some(OverheatTransition::Raise));
    assert_eq!(step(82_000), None);
    assert_eq!(step(79_000), Some(OverheatTransition::Clear));
}
