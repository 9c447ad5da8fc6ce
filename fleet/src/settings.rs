//! [`FleetSettings`]: the `[fleet]` section of the agent's configuration.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::{TELEMETRY_DEFAULT_S, TELEMETRY_MAX_S, TELEMETRY_MIN_S};
use crate::topics::validate_device_id;

/// Mutual TLS: PEM files. The key must be PKCS#8 (`BEGIN PRIVATE KEY`;
/// convert with `openssl pkcs8 -topk8 -nocrypt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The CA that signed the broker's certificate (only this one is trusted).
    pub ca: PathBuf,
    /// This device's certificate (CN = device id).
    pub cert: PathBuf,
    /// Its private key, PKCS#8 PEM.
    pub key: PathBuf,
}

/// First-boot enrolment (`docs/identity.md`): with this section the box
/// makes its own key at `[fleet.tls] key` and obtains `[fleet.tls] cert`
/// through the fleet-wide claim identity when it has none yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollSettings {
    /// The claim certificate (PEM), the same on every box.
    pub claim_cert: PathBuf,
    /// Its key (PKCS#8 PEM).
    pub claim_key: PathBuf,
    /// Seconds between attempts while waiting for approval (default 30).
    #[serde(default = "default_enroll_poll")]
    pub poll_s: u32,
}

fn default_enroll_poll() -> u32 {
    30
}

/// How a device reaches the broker and where it keeps fleet state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// `host:port`, e.g. `mqtt.example.net:8883`. The host must match the
    /// broker certificate's SAN.
    pub broker: String,
    /// Mutual TLS; required unless `insecure_plaintext` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// First-boot enrolment; requires `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll: Option<EnrollSettings>,
    /// Plain TCP, for local development only.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// MQTT client id, certificate CN, topic level.
    pub device_id: String,
    /// bdseq, idempotency cache, config record, outbox.
    pub state_dir: PathBuf,
    /// Telemetry period, 1–60 s (default 10).
    #[serde(default = "default_telemetry")]
    pub telemetry_interval_s: u32,
    /// MQTT keep-alive, 5–300 s (default 30).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u16,
    /// Longest reconnect delay, 1–600 s (default 60); the delay doubles
    /// from 1 s with jitter.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_s: u32,
    /// Outbox bound in messages (default 1000); the oldest are dropped.
    #[serde(default = "default_outbox_messages")]
    pub outbox_max_messages: usize,
    /// Outbox bound in bytes (default 10 MB).
    #[serde(default = "default_outbox_bytes")]
    pub outbox_max_bytes: usize,
}

fn default_telemetry() -> u32 {
    TELEMETRY_DEFAULT_S
}
fn default_keep_alive() -> u16 {
    30
}
fn default_reconnect_max() -> u32 {
    60
}
fn default_outbox_messages() -> usize {
    1000
}
fn default_outbox_bytes() -> usize {
    10_000_000
}

impl FleetSettings {
    /// Settings with defaults for everything optional.
    pub fn new(broker: &str, device_id: &str, state_dir: impl Into<PathBuf>, tls: Option<TlsSettings>) -> FleetSettings {
        FleetSettings {
            broker: broker.to_owned(),
            insecure_plaintext: tls.is_none(),
            tls,
            enroll: None,
            device_id: device_id.to_owned(),
            state_dir: state_dir.into(),
            telemetry_interval_s: default_telemetry(),
            keep_alive_s: default_keep_alive(),
            reconnect_max_s: default_reconnect_max(),
            outbox_max_messages: default_outbox_messages(),
            outbox_max_bytes: default_outbox_bytes(),
        }
    }

    /// Checks ranges and consistency; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        validate_device_id(&self.device_id).map_err(|e| format!("device_id: {e}"))?;
        self.broker_host_port()?;
        if self.tls.is_none() && !self.insecure_plaintext {
            return Err("tls: required (set insecure_plaintext = true for local development)".into());
        }
        if self.enroll.is_some() && self.tls.is_none() {
            return Err("enroll: needs tls (where the box's key and certificate go)".into());
        }
        if !(TELEMETRY_MIN_S..=TELEMETRY_MAX_S).contains(&self.telemetry_interval_s) {
            return Err(format!("telemetry_interval_s: must be {TELEMETRY_MIN_S}..={TELEMETRY_MAX_S}"));
        }
        if !(5..=300).contains(&self.keep_alive_s) {
            return Err("keep_alive_s: must be 5..=300".into());
        }
        if !(1..=600).contains(&self.reconnect_max_s) {
            return Err("reconnect_max_s: must be 1..=600".into());
        }
        if self.outbox_max_messages == 0 || self.outbox_max_bytes < 128 * 1024 {
            return Err("outbox_max_messages: at least 1; outbox_max_bytes: at least 131072".into());
        }
        Ok(())
    }

    /// Splits `broker` into host and port.
    pub fn broker_host_port(&self) -> Result<(String, u16), String> {
        split_host_port(&self.broker)
    }
}

/// Splits `host:port`.
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("broker: `{s}` is not host:port"))?;
    let port = port.parse::<u16>().map_err(|_| format!("broker: bad port in `{s}`"))?;
    if host.is_empty() {
        return Err(format!("broker: empty host in `{s}`"));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_unknown_keys_fail() {
        let s: FleetSettings = toml::from_str(
            "broker = \"localhost:8883\"\ndevice_id = \"enc-1\"\nstate_dir = \"/var/lib/x\"\ninsecure_plaintext = true\n",
        )
        .unwrap();
        assert_eq!(s.telemetry_interval_s, 10);
        s.validate().unwrap();
        let e = toml::from_str::<FleetSettings>("broker = \"a:1\"\ndevice_id = \"e\"\nstate_dir = \"/\"\nbrokr = 1\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn plaintext_must_be_explicit() {
        let mut s = FleetSettings::new("localhost:1883", "enc-1", "/tmp/x", None);
        s.insecure_plaintext = false;
        assert!(s.validate().unwrap_err().starts_with("tls"));
        s.telemetry_interval_s = 61;
        s.insecure_plaintext = true;
        assert!(s.validate().unwrap_err().starts_with("telemetry_interval_s"));
    }
}
