//! Topic names: `fleet/v1/{device}/{suffix}` (`docs/fleet-protocol.md#topics`).
//!
//! `{device}` is the MQTT client id and the certificate CN; the broker ACL
//! (`pattern write fleet/v1/%u/…`) ties each box to its own subtree.

use crate::limits::MAX_DEVICE_ID_LEN;

/// Topic prefix and protocol generation.
pub const PREFIX: &str = "fleet/v1";

/// Suffixes a device publishes.
pub const STATUS: &str = "status";
/// Birth certificate.
pub const INFO: &str = "info";
/// Running state.
pub const STATE: &str = "state";
/// Periodic counters.
pub const TELEMETRY: &str = "telemetry";
/// Alarm transitions.
pub const EVENT: &str = "event";
/// Active-alarm snapshot.
pub const ALARMS: &str = "alarms";
/// Config acknowledgement.
pub const CONFIG_REPORTED: &str = "config/reported";
/// Command responses.
pub const CMD_RES: &str = "cmd/res";
/// The picture being encoded: a bare JPEG (no envelope), QoS 0, not
/// retained (`docs/monitoring.md#thumbnails`).
pub const THUMBNAIL: &str = "thumbnail";
/// The largest thumbnail published; a larger one is dropped with a log line.
pub const MAX_THUMBNAIL: usize = 64 * 1024;
/// Suffixes the controller publishes.
pub const CONFIG_DESIRED: &str = "config/desired";
/// Command requests.
pub const CMD_REQ: &str = "cmd/req";

/// Checks a device id: 1–64 of `A-Z a-z 0-9 . _ -` (no MQTT wildcards or
/// level separators, so it is exactly one topic level and a valid CN).
pub fn validate_device_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_DEVICE_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("device id `{id}` must be 1-{MAX_DEVICE_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', '-'"))
    }
}

/// The topic of `suffix` for `device`.
pub fn topic(device: &str, suffix: &str) -> String {
    format!("{PREFIX}/{device}/{suffix}")
}

/// Splits `fleet/v1/{device}/{suffix}`; `None` for any other topic.
pub fn split(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (device, suffix) = rest.split_once('/')?;
    if device.is_empty() || suffix.is_empty() {
        return None;
    }
    Some((device, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_split_back() {
        let t = topic("enc-0001", CONFIG_DESIRED);
        assert_eq!(t, "fleet/v1/enc-0001/config/desired");
        assert_eq!(split(&t), Some(("enc-0001", "config/desired")));
        assert_eq!(split("other/v1/a/status"), None);
        assert_eq!(split("fleet/v1/a"), None);
    }

    #[test]
    fn device_ids_exclude_wildcards_and_separators() {
        assert!(validate_device_id("enc-0001").is_ok());
        for bad in ["", "a/b", "+", "#", "a b", &"x".repeat(65)] {
            assert!(validate_device_id(bad).is_err(), "{bad}");
        }
    }
}
