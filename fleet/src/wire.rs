//! Wire types: the JSON documents on `fleet/v1/{device}/…`.
//!
//! Every type denies unknown fields, so a typo or a newer controller's field
//! is an error with a reason instead of a silently ignored setting. Documents
//! a device publishes carry the envelope fields `v` (protocol version, 1),
//! `ts` (RFC 3339, UTC, milliseconds), `seq` (per-process message counter)
//! and `bdseq` (session counter, +1 per CONNECT, persisted), flattened into
//! each type because serde cannot combine `flatten` with
//! `deny_unknown_fields`.
//!
//! Times chosen by the controller (`expires_at`) are **unix milliseconds**:
//! an integer compares without parsing and has one spelling.
//!
//! The committed JSON Schemas under `fleet/schema/` are generated from these
//! types ([`crate::schema`]); a test fails when they drift.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Protocol version carried in `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Presence states (Homie `$state` subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// Connected and running.
    Ready,
    /// Connected with at least one critical or major alarm active.
    Alert,
    /// Disconnected cleanly (explicit offline before DISCONNECT).
    Disconnected,
    /// Connection lost (the broker published the Will).
    Lost,
}

/// `status` (QoS 1, retained): presence. The Will carries `online: false`,
/// `state: lost` with the `bdseq` of the connection it belongs to; the
/// controller ignores an offline whose `bdseq` is older than the last online.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    pub online: bool,
    pub state: PresenceState,
}

/// `info` (QoS 1, retained): birth certificate: serial, model, ports,
/// codecs, firmware slot, versions. The body is the device's own document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Info {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    pub info: Value,
}

/// `state` (QoS 1, retained): streams, per-output status, running config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    /// Version of the running desired config (0: local config only).
    pub config_version: u64,
    pub state: Value,
}

/// `telemetry` (QoS 0, not retained): 1–2 KB of counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    pub metrics: Value,
}

/// Alarm severity (ITU-T X.733 perceived severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
}

/// Whether an alarm transition raises or clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Raised,
    Cleared,
}

/// One alarm. `id` is stable for a (code, source) pair, so a raise and its
/// clear share it (e.g. `INPUT_LOSS:sdi1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alarm {
    pub id: String,
    /// Upper snake case, e.g. `INPUT_LOSS`, `OUTPUT_DOWN`.
    pub code: String,
    pub severity: Severity,
    pub state: AlarmState,
    /// What it is about, e.g. `sdi1`, `output:primary`.
    pub source: String,
    pub message: String,
}

impl Alarm {
    /// A raised alarm whose id is `CODE:source`.
    pub fn raised(code: &str, source: &str, severity: Severity, message: &str) -> Alarm {
        Alarm {
            id: format!("{code}:{source}"),
            code: code.to_owned(),
            severity,
            state: AlarmState::Raised,
            source: source.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// `event` (QoS 1, not retained, through the on-disk outbox): an alarm
/// raise or clear, for the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    pub alarm: Alarm,
}

/// `alarms` (QoS 1, retained): the active alarms, sorted by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmsSnapshot {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    pub active: Vec<Alarm>,
}

/// `config/desired` (QoS 1, retained, published by the controller only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DesiredConfig {
    /// Strictly increasing per device; 0 is never a valid desired version.
    pub version: u64,
    /// Risky change: confirm with `config.confirm{version}` within this many
    /// seconds (1–3600) or the device rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_within_s: Option<u32>,
    /// The agent's configuration (its TOML as JSON); the device validates it.
    pub config: Value,
}

/// Outcome of a desired config, as in `config/reported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigStatus {
    Applied,
    PendingConfirm,
    Rejected,
    RolledBack,
}

/// `config/reported` (QoS 1, retained), Azure-style acknowledgement.
///
/// `ac` codes: 200 applied, 202 pending_confirm, 400 invalid, 409 stale
/// version, 413 too large, 408 rolled back (confirm late), 503 rolled back
/// (health gate), 500 rolled back (apply failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedConfig {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    pub ac: u16,
    /// The desired version this answers.
    pub av: u64,
    /// Human-readable detail or reason (`stale_version`, `confirm_timeout`…).
    pub ad: String,
    pub status: ConfigStatus,
    /// The offending key path for `rejected` (e.g. `outputs[1].latency_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The version actually running now (0: the local config file).
    pub running: u64,
}

/// `cmd/req` (QoS 1, not retained, controller only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Unique per command (ULID recommended), 1–64 bytes; the idempotency key.
    pub id: String,
    /// e.g. `stream.start`; see [`crate::Command`].
    pub name: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub args: Value,
    /// Unix milliseconds after which the device rejects it as `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Seconds the device may take (1–300, default 30; `firmware.update` up
    /// to 3600) before `timed_out`; for a long-running command, the longest
    /// silence between its progress updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
}

/// Command lifecycle (AWS IoT Jobs subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    Accepted,
    InProgress,
    Succeeded,
    Failed,
    Rejected,
    TimedOut,
}

impl CommandState {
    /// Whether no further response follows.
    pub fn is_terminal(self) -> bool {
        !matches!(self, CommandState::Accepted | CommandState::InProgress)
    }
}

/// Why a command or a document was refused (fixed list, `docs/fleet-protocol.md#commands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    BadRequest,
    Unauthorized,
    UnknownCommand,
    InvalidArgs,
    Unsupported,
    StaleVersion,
    Expired,
    Busy,
    RateLimited,
    PayloadTooLarge,
    PreconditionFailed,
    Internal,
}

impl ReasonCode {
    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::BadRequest => "bad_request",
            ReasonCode::Unauthorized => "unauthorized",
            ReasonCode::UnknownCommand => "unknown_command",
            ReasonCode::InvalidArgs => "invalid_args",
            ReasonCode::Unsupported => "unsupported",
            ReasonCode::StaleVersion => "stale_version",
            ReasonCode::Expired => "expired",
            ReasonCode::Busy => "busy",
            ReasonCode::RateLimited => "rate_limited",
            ReasonCode::PayloadTooLarge => "payload_too_large",
            ReasonCode::PreconditionFailed => "precondition_failed",
            ReasonCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `cmd/res` (QoS 1, not retained, through the outbox when terminal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandResponse {
    pub v: u32,
    pub ts: String,
    pub seq: u64,
    pub bdseq: u64,
    /// The request id; empty when the request was too broken to carry one.
    pub id: String,
    pub state: CommandState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonCode>,
    #[serde(default)]
    pub detail: String,
    /// True when this answers a repeated id from the idempotency store.
    #[serde(default)]
    pub duplicate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// Parses a wire document strictly; the error names the failing path.
pub fn parse<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(payload);
    let v: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_request_denies_unknown_fields_and_wrong_types() {
        let ok: CommandRequest = parse(br#"{"id":"a","name":"rebirth"}"#).unwrap();
        assert_eq!(ok.timeout_s, None);
        let e = parse::<CommandRequest>(br#"{"id":"a","name":"rebirth","extra":1}"#).unwrap_err();
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = parse::<CommandRequest>(br#"{"id":"a","name":"rebirth","timeout_s":"x"}"#).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        assert!(parse::<CommandRequest>(b"{not json").is_err());
    }

    #[test]
    fn reason_codes_serialize_as_their_names() {
        for r in [ReasonCode::BadRequest, ReasonCode::PayloadTooLarge, ReasonCode::StaleVersion] {
            assert_eq!(serde_json::to_value(r).unwrap(), Value::String(r.as_str().into()));
        }
    }

    #[test]
    fn desired_config_round_trips() {
        let d = DesiredConfig { version: 3, confirm_within_s: Some(60), config: serde_json::json!({"a":1}) };
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(parse::<DesiredConfig>(s.as_bytes()).unwrap(), d);
    }
}
