//! Temperatures from hwmon and thermal zones.

use std::fs;
use std::path::Path;

use serde::Serialize;

/// Which kernel interface a reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TempSource {
    Hwmon,
    ThermalZone,
}

/// One temperature reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Temperature {
    pub source: TempSource,
    /// Which sensor: `hwmon1/temp2`, `thermal_zone0`.
    pub sensor: String,
    /// hwmon `name` (`coretemp`, `nvme`, `k10temp`) or zone `type`
    /// (`x86_pkg_temp`, `acpitz`, `cpu-thermal`).
    pub chip: String,
    /// hwmon `temp*_label` (`Package id 0`, `Composite`), if any.
    pub label: Option<String>,
    pub millicelsius: i32,
}

/// Readings outside this range are driver placeholders (some zones report
/// -274000 or 0x7fffffff when the sensor is not ready), not temperatures.
const PLAUSIBLE_MC: std::ops::RangeInclusive<i32> = -100_000..=250_000;

/// hwmon readings first (they carry labels), then thermal zones, each in
/// name order. Unreadable sensors (`EAGAIN`/`ENODATA` from a drive that
/// sleeps) are skipped.
pub fn read_temperatures(sys_root: &Path) -> Vec<Temperature> {
    let mut temps = read_hwmon(sys_root);
    temps.extend(read_thermal_zones(sys_root));
    temps
}

fn read_hwmon(sys_root: &Path) -> Vec<Temperature> {
    let mut temps = Vec::new();
    for (hwmon, dir) in sorted_entries(&sys_root.join("class/hwmon"), "hwmon") {
        // Old drivers keep their attributes in the `device/` subdirectory
        // (sysfs-interface.rst, "the chip's directory").
        let attr_dir = if dir.join("name").exists() { dir.clone() } else { dir.join("device") };
        let chip = read_trimmed(&attr_dir.join("name")).unwrap_or_else(|| hwmon.clone());
        let mut inputs: Vec<(u32, String)> = fs::read_dir(&attr_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n = name.strip_prefix("temp")?.strip_suffix("_input")?.parse().ok()?;
                Some((n, name))
            })
            .collect();
        inputs.sort();
        for (n, input) in inputs {
            let Some(millicelsius) = read_millicelsius(&attr_dir.join(&input)) else { continue };
            temps.push(Temperature {
                source: TempSource::Hwmon,
                sensor: format!("{hwmon}/temp{n}"),
                chip: chip.clone(),
                label: read_trimmed(&attr_dir.join(format!("temp{n}_label"))),
                millicelsius,
            });
        }
    }
    temps
}

fn read_thermal_zones(sys_root: &Path) -> Vec<Temperature> {
    sorted_entries(&sys_root.join("class/thermal"), "thermal_zone")
        .into_iter()
        .filter_map(|(zone, dir)| {
            Some(Temperature {
                source: TempSource::ThermalZone,
                chip: read_trimmed(&dir.join("type")).unwrap_or_else(|| zone.clone()),
                millicelsius: read_millicelsius(&dir.join("temp"))?,
                sensor: zone,
                label: None,
            })
        })
        .collect()
}

/// Entries `<prefix><number>` of a class directory, by number.
fn sorted_entries(class: &Path, prefix: &str) -> Vec<(String, std::path::PathBuf)> {
    let mut found: Vec<(u32, String, std::path::PathBuf)> = fs::read_dir(class)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            Some((n, name, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, name, path)| (name, path)).collect()
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn read_millicelsius(path: &Path) -> Option<i32> {
    read_trimmed(path)?.parse().ok().filter(|v| PLAUSIBLE_MC.contains(v))
}
