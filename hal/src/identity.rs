//! The device id a box derives for itself on first boot: the one rule
//! (`edge-agent device-id`, used by `image/.../provision`).
//!
//! Board vendors fill unset DMI fields with placeholders ("Default string",
//! "To Be Filled By O.E.M.", "System Serial Number", "0123456789"), so a
//! placeholder must be recognised on the raw value, before sanitising turns
//! it into something that looks like a serial; otherwise every such box
//! gets the same id. The result must be a valid top-level `device_id`
//! (1–32 of `A-Za-z0-9_-`), or the configuration is invalid for good.

use std::path::Path;

/// Longest device id (`device_id` in the agent configuration).
pub const MAX_LEN: usize = 32;
/// Prefix of every derived id.
const PREFIX: &str = "edge-";

const PLACEHOLDERS: &[&str] = &[
    "default string",
    "to be filled by o.e.m.",
    "to be filled by oem",
    "system serial number",
    "not specified",
    "not applicable",
    "not available",
    "none",
    "n/a",
    "na",
    "unknown",
    "invalid",
    "serial",
    "chassis serial number",
    "base board serial number",
    "0123456789",
    "123456789",
    "1234567890",
    "0",
];

/// Whether a raw DMI value is no serial at all: empty, a known placeholder
/// (trimmed, any case) or one character repeated (`00000000`, `xxxx`).
pub fn is_placeholder(raw: &str) -> bool {
    let v = raw.trim().to_lowercase();
    let mut chars = v.chars();
    let Some(first) = chars.next() else { return true };
    PLACEHOLDERS.contains(&v.as_str()) || chars.all(|c| c == first)
}

/// Whether `id` is a valid device id: 1–32 of `A-Za-z0-9_-`.
pub fn is_valid(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `edge-<serial>` from a raw DMI serial, or None for a placeholder or a
/// value with nothing usable. Characters outside `A-Za-z0-9_-` become `-`
/// (runs collapsed, none at the ends); a long serial keeps its end, where
/// serials differ.
pub fn from_serial(raw: &str) -> Option<String> {
    if is_placeholder(raw) {
        return None;
    }
    let mut clean = String::new();
    for c in raw.trim().chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' };
        if !(c == '-' && (clean.is_empty() || clean.ends_with('-'))) {
            clean.push(c);
        }
    }
    let clean = clean.trim_end_matches('-');
    let room = MAX_LEN - PREFIX.len();
    let tail = clean.get(clean.len().saturating_sub(room)..).unwrap_or(clean).trim_start_matches('-');
    if !tail.bytes().any(|b| b.is_ascii_alphanumeric()) || is_placeholder(tail) {
        return None;
    }
    Some(format!("{PREFIX}{tail}"))
}

/// `edge-001122334455` from a MAC address (`00:11:22:33:44:55`), or None for
/// a malformed, all-zero or all-ones address.
pub fn from_mac(raw: &str) -> Option<String> {
    let hex: String = raw.trim().chars().filter(|c| *c != ':' && *c != '-').collect::<String>().to_lowercase();
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex == "000000000000" || hex == "ffffffffffff" {
        return None;
    }
    Some(format!("{PREFIX}{hex}"))
}

/// The id from what the box offers: the DMI product serial, else the board
/// serial, else the primary NIC's MAC.
pub fn device_id(product_serial: Option<&str>, board_serial: Option<&str>, mac: Option<&str>) -> Option<String> {
    product_serial.and_then(from_serial).or_else(|| board_serial.and_then(from_serial)).or_else(|| mac.and_then(from_mac))
}

/// Reads DMI and the NICs under `sys` (`/sys` on a box): the id of this
/// box, or None when it has neither a usable serial nor a NIC.
pub fn derive(sys: &Path) -> Option<String> {
    let read = |rel: &str| std::fs::read_to_string(sys.join(rel)).ok();
    let product = read("class/dmi/id/product_serial");
    let board = read("class/dmi/id/board_serial");
    device_id(product.as_deref(), board.as_deref(), primary_mac(sys).as_deref())
}

/// The MAC of the first physical NIC in name order (it has a `device`
/// link: not lo, bridges or tunnels) with a usable address.
fn primary_mac(sys: &Path) -> Option<String> {
    let mut nics: Vec<_> = std::fs::read_dir(sys.join("class/net")).ok()?.filter_map(Result::ok).map(|e| e.path()).collect();
    nics.sort();
    nics.into_iter()
        .filter(|nic| nic.join("device").exists())
        .filter_map(|nic| std::fs::read_to_string(nic.join("address")).ok())
        .find(|mac| from_mac(mac).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_refused_before_sanitising() {
        for p in [
            "Default string",
            "To Be Filled By O.E.M.",
            "  to be filled by o.e.m.\n",
            "System Serial Number",
            "Not Specified",
            "None",
            "0",
            "0123456789",
            "123456789",
            "00000000",
            "XXXXXXXXXX",
            "",
            "   ",
            "\n",
        ] {
            assert_eq!(from_serial(p), None, "{p:?}");
        }
        assert_eq!(
            device_id(Some("Default string"), Some("To Be Filled By O.E.M."), Some("00:11:22:33:44:55\n")).as_deref(),
            Some("edge-001122334455")
        );
    }

    #[test]
    fn serials_become_valid_ids() {
        assert_eq!(from_serial("ABC123\n").as_deref(), Some("edge-ABC123"));
        assert_eq!(from_serial("PF2.X 77/9").as_deref(), Some("edge-PF2-X-77-9"), "dots and spaces are not allowed");
        let long = from_serial("VMware-56 4d 9a 1b 2c 3d 4e 5f-60 71 82 93 a4 b5 c6 d7").unwrap();
        assert!(is_valid(&long), "{long}");
        assert!(long.ends_with("c6-d7"), "a long serial keeps its end: {long}");
        assert_eq!(from_serial("Ünïcødé 42").as_deref(), Some("edge-n-c-d-42"));
        assert_eq!(from_serial("..//.."), None, "nothing usable");
        for s in ["A", "a.b", &"9".repeat(200), "x y z 1 2 3", "--1--"] {
            if let Some(id) = from_serial(s) {
                assert!(is_valid(&id), "{s:?} -> {id}");
            }
        }
    }

    #[test]
    fn mac_fallback() {
        assert_eq!(from_mac("00:11:22:33:44:55\n").as_deref(), Some("edge-001122334455"));
        assert_eq!(from_mac("AA:BB:CC:DD:EE:FF").as_deref(), Some("edge-aabbccddeeff"));
        assert_eq!(from_mac("00:00:00:00:00:00"), None);
        assert_eq!(from_mac("ff:ff:ff:ff:ff:ff"), None);
        assert_eq!(from_mac("garbage"), None);
        assert_eq!(device_id(None, None, None), None);
        assert_eq!(device_id(Some("SN-1"), None, Some("00:11:22:33:44:55")).as_deref(), Some("edge-SN-1"));
    }

    #[test]
    fn validity_matches_the_config_rule() {
        assert!(is_valid("edge-001122334455"));
        assert!(!is_valid(""));
        assert!(!is_valid("a.b"));
        assert!(!is_valid(&"a".repeat(33)));
        assert!(!is_valid("x/../../etc; rm -rf /"));
    }

    #[test]
    fn derive_reads_dmi_then_the_first_physical_nic() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        std::fs::create_dir_all(sys.join("class/dmi/id")).unwrap();
        std::fs::write(sys.join("class/dmi/id/product_serial"), "To Be Filled By O.E.M.\n").unwrap();
        for (nic, mac, physical) in [
            ("lo", "00:00:00:00:00:00", false),
            ("br0", "02:00:00:00:00:01", false),
            ("eth1", "00:11:22:33:44:66", true),
            ("eth0", "00:11:22:33:44:55", true),
        ] {
            let d = sys.join("class/net").join(nic);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("address"), format!("{mac}\n")).unwrap();
            if physical {
                std::fs::create_dir_all(d.join("device")).unwrap();
            }
        }
        assert_eq!(derive(sys).as_deref(), Some("edge-001122334455"));
        std::fs::write(sys.join("class/dmi/id/board_serial"), "BRD.42\n").unwrap();
        assert_eq!(derive(sys).as_deref(), Some("edge-BRD-42"));
    }
}
