//! [`Command`]: the one command surface shared by MQTT (`cmd/req`) and the
//! local CLI (`edgectl cmd`), in the manner of firecracker's `VmmAction`.
//!
//! A request's `(name, args)` is parsed once into a variant; arguments are
//! strict (unknown keys and out-of-range values are `invalid_args`), so the
//! device never sees an unchecked value.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::limits::{BOOST_MAX_S, MAX_MESSAGE, TELEMETRY_MAX_S, TELEMETRY_MIN_S};
use crate::wire::ReasonCode;

/// Everything an operator can ask a device to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Start the encoder pipeline and outputs.
    StreamStart,
    /// Stop the encoder pipeline and outputs.
    StreamStop,
    /// Enable one output by name.
    OutputEnable { output: String },
    /// Disable one output by name.
    OutputDisable { output: String },
    /// Confirm a `pending_confirm` desired config (handled by the session).
    ConfigConfirm { version: u64 },
    /// Telemetry every `interval_s` for `duration_s` (handled by the session).
    TelemetryBoost { interval_s: u32, duration_s: u32 },
    /// Blink the front panel / burn an overlay for `duration_s`.
    Identify { duration_s: u32 },
    /// Re-publish `info`, `state`, `alarms` (handled by the session).
    Rebirth,
    /// Reboot the box (the result is stored before the device acts).
    Reboot,
    /// Start the MediaLive channel named in the box's `[aws] channel_id`.
    ChannelStart,
    /// Stop that MediaLive channel.
    ChannelStop,
    /// Download a RAUC bundle from `url`, check its SHA-256, install it into
    /// the other root slot and reboot into it (long-running: progress comes
    /// as `in_progress` responses). The slot is confirmed only once the agent
    /// is back online from it; otherwise the box falls back by itself.
    /// `version` is the bundle's version as the controller knows it; the box
    /// refuses one lower than its own unless `allow_downgrade` (a downgrade
    /// is rare and deliberate, a stale URL in a rollout script is not).
    FirmwareUpdate { url: String, sha256: String, version: Option<String>, allow_downgrade: bool },
    /// Live controls of the test-pattern input, for testing the content
    /// alarms: `pattern` bars or black, `motion` (the running clock) and
    /// `tone`; what is not given stays. Refused on any other input.
    InputPattern { black: Option<bool>, motion: Option<bool>, tone: Option<bool> },
    /// The box's recent agent log lines (read-only; secrets redacted on
    /// the box): those numbered `since_seq` or later and logged at
    /// `since_ms` (unix ms; `since` on the wire, RFC 3339) or later, at
    /// most `max_lines` and at most [`LOGS_RESULT_BUDGET`] bytes of them.
    /// Without `since_seq` the newest lines come back, with it the oldest
    /// after it (so `next_seq` can page forward without a gap).
    LogsFetch { since_seq: Option<u64>, since_ms: Option<u64>, max_lines: u32 },
    /// Publish the newest thumbnail on `thumbnail` now, outside the
    /// `thumbnail_publish_s` cadence (`precondition_failed` while the box
    /// has none yet).
    ThumbnailRequest,
}

/// `logs.fetch`: lines per answer unless `max_lines` says otherwise.
pub const LOGS_DEFAULT_LINES: u32 = 200;
/// `logs.fetch`: the most `max_lines` may ask for.
pub const LOGS_MAX_LINES: u32 = 1000;
/// `logs.fetch`: the most bytes the `lines` of one answer may take as JSON.
/// The `cmd/res` envelope around them (id of at most 64 bytes, state,
/// `next_seq`, flags) stays well under the 2 KiB left of [`MAX_MESSAGE`],
/// which the session enforces by dropping anything larger.
pub const LOGS_RESULT_BUDGET: usize = MAX_MESSAGE - 2048;

/// A request that names no known command or carries bad arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct CommandError {
    /// `unknown_command` or `invalid_args`.
    pub reason: ReasonCode,
    pub detail: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputArgs {
    output: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionArgs {
    version: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoostArgs {
    #[serde(default = "default_boost_interval")]
    interval_s: u32,
    #[serde(default = "default_boost_duration")]
    duration_s: u32,
}

fn default_boost_interval() -> u32 {
    1
}
fn default_boost_duration() -> u32 {
    60
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyArgs {
    #[serde(default = "default_identify")]
    duration_s: u32,
}

fn default_identify() -> u32 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FirmwareArgs {
    url: String,
    sha256: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    allow_downgrade: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternArgs {
    #[serde(default)]
    pattern: Option<PatternName>,
    #[serde(default)]
    motion: Option<bool>,
    #[serde(default)]
    tone: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    #[serde(default)]
    since_seq: Option<u64>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default = "default_log_lines")]
    max_lines: u32,
}

fn default_log_lines() -> u32 {
    LOGS_DEFAULT_LINES
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum PatternName {
    Bars,
    Black,
}

/// Longest bundle URL accepted.
const MAX_URL_LEN: usize = 2048;

impl Command {
    /// Every command name, in documentation order.
    pub const NAMES: &'static [&'static str] = &[
        "stream.start",
        "stream.stop",
        "output.enable",
        "output.disable",
        "config.confirm",
        "telemetry.boost",
        "identify",
        "rebirth",
        "reboot",
        "channel.start",
        "channel.stop",
        "firmware.update",
        "input.pattern",
        "logs.fetch",
        "thumbnail.request",
    ];

    /// The wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::StreamStart => "stream.start",
            Command::StreamStop => "stream.stop",
            Command::OutputEnable { .. } => "output.enable",
            Command::OutputDisable { .. } => "output.disable",
            Command::ConfigConfirm { .. } => "config.confirm",
            Command::TelemetryBoost { .. } => "telemetry.boost",
            Command::Identify { .. } => "identify",
            Command::Rebirth => "rebirth",
            Command::Reboot => "reboot",
            Command::ChannelStart => "channel.start",
            Command::ChannelStop => "channel.stop",
            Command::FirmwareUpdate { .. } => "firmware.update",
            Command::InputPattern { .. } => "input.pattern",
            Command::LogsFetch { .. } => "logs.fetch",
            Command::ThumbnailRequest => "thumbnail.request",
        }
    }

    /// The wire arguments (an object, `{}` when there are none).
    pub fn args(&self) -> Value {
        match self {
            Command::OutputEnable { output } | Command::OutputDisable { output } => json!({ "output": output }),
            Command::ConfigConfirm { version } => json!({ "version": version }),
            Command::TelemetryBoost { interval_s, duration_s } => {
                json!({ "interval_s": interval_s, "duration_s": duration_s })
            }
            Command::Identify { duration_s } => json!({ "duration_s": duration_s }),
            Command::FirmwareUpdate { url, sha256, version, allow_downgrade } => {
                let mut a = json!({ "url": url, "sha256": sha256, "allow_downgrade": allow_downgrade });
                if let (Some(v), Some(obj)) = (version, a.as_object_mut()) {
                    obj.insert("version".into(), json!(v));
                }
                a
            }
            Command::InputPattern { black, motion, tone } => {
                let mut a = Map::new();
                if let Some(b) = black {
                    a.insert("pattern".into(), json!(if *b { "black" } else { "bars" }));
                }
                if let Some(m) = motion {
                    a.insert("motion".into(), json!(m));
                }
                if let Some(t) = tone {
                    a.insert("tone".into(), json!(t));
                }
                Value::Object(a)
            }
            Command::LogsFetch { since_seq, since_ms, max_lines } => {
                let mut a = Map::new();
                if let Some(s) = since_seq {
                    a.insert("since_seq".into(), json!(s));
                }
                if let Some(ms) = since_ms {
                    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(*ms);
                    a.insert("since".into(), json!(humantime::format_rfc3339_millis(t).to_string()));
                }
                a.insert("max_lines".into(), json!(max_lines));
                Value::Object(a)
            }
            Command::StreamStart
            | Command::StreamStop
            | Command::Rebirth
            | Command::Reboot
            | Command::ChannelStart
            | Command::ChannelStop
            | Command::ThumbnailRequest => Value::Object(Map::new()),
        }
    }

    /// Whether the device runs it in the background ([`crate::Device::start`]),
    /// reporting progress as `in_progress` responses until it ends.
    /// `reboot` is one: its end (the box back up) comes from the next boot.
    pub fn is_long_running(&self) -> bool {
        matches!(self, Command::FirmwareUpdate { .. } | Command::Reboot)
    }

    /// Whether the fleet session handles it itself instead of the device.
    pub fn is_session_command(&self) -> bool {
        matches!(self, Command::ConfigConfirm { .. } | Command::TelemetryBoost { .. } | Command::Rebirth)
    }

    /// Parses a request's name and arguments (`null` counts as `{}`).
    pub fn parse(name: &str, args: &Value) -> Result<Command, CommandError> {
        let args = if args.is_null() { Value::Object(Map::new()) } else { args.clone() };
        let cmd = match name {
            "stream.start" => no_args(args).map(|()| Command::StreamStart)?,
            "stream.stop" => no_args(args).map(|()| Command::StreamStop)?,
            "rebirth" => no_args(args).map(|()| Command::Rebirth)?,
            "reboot" => no_args(args).map(|()| Command::Reboot)?,
            "channel.start" => no_args(args).map(|()| Command::ChannelStart)?,
            "channel.stop" => no_args(args).map(|()| Command::ChannelStop)?,
            "thumbnail.request" => no_args(args).map(|()| Command::ThumbnailRequest)?,
            "output.enable" => Command::OutputEnable { output: output_name(typed::<OutputArgs>(args)?.output)? },
            "output.disable" => Command::OutputDisable { output: output_name(typed::<OutputArgs>(args)?.output)? },
            "config.confirm" => {
                let a = typed::<VersionArgs>(args)?;
                if a.version == 0 {
                    return Err(invalid("version must be at least 1"));
                }
                Command::ConfigConfirm { version: a.version }
            }
            "telemetry.boost" => {
                let a = typed::<BoostArgs>(args)?;
                if !(TELEMETRY_MIN_S..=TELEMETRY_MAX_S).contains(&a.interval_s) {
                    return Err(invalid(&format!("interval_s must be {TELEMETRY_MIN_S}..={TELEMETRY_MAX_S}")));
                }
                if !(1..=BOOST_MAX_S).contains(&a.duration_s) {
                    return Err(invalid(&format!("duration_s must be 1..={BOOST_MAX_S}")));
                }
                Command::TelemetryBoost { interval_s: a.interval_s, duration_s: a.duration_s }
            }
            "identify" => {
                let a = typed::<IdentifyArgs>(args)?;
                if !(1..=600).contains(&a.duration_s) {
                    return Err(invalid("duration_s must be 1..=600"));
                }
                Command::Identify { duration_s: a.duration_s }
            }
            "firmware.update" => {
                let a = typed::<FirmwareArgs>(args)?;
                let version = a.version.map(bundle_version).transpose()?;
                Command::FirmwareUpdate {
                    url: bundle_url(a.url)?,
                    sha256: sha256_hex(&a.sha256)?,
                    version,
                    allow_downgrade: a.allow_downgrade,
                }
            }
            "input.pattern" => {
                let a = typed::<PatternArgs>(args)?;
                if a.pattern.is_none() && a.motion.is_none() && a.tone.is_none() {
                    return Err(invalid("give at least one of pattern, motion, tone"));
                }
                Command::InputPattern { black: a.pattern.map(|p| p == PatternName::Black), motion: a.motion, tone: a.tone }
            }
            "logs.fetch" => {
                let a = typed::<LogsArgs>(args)?;
                if !(1..=LOGS_MAX_LINES).contains(&a.max_lines) {
                    return Err(invalid(&format!("max_lines must be 1..={LOGS_MAX_LINES}")));
                }
                let since_ms = a.since.as_deref().map(rfc3339_ms).transpose()?;
                Command::LogsFetch { since_seq: a.since_seq, since_ms, max_lines: a.max_lines }
            }
            other => {
                return Err(CommandError {
                    reason: ReasonCode::UnknownCommand,
                    detail: format!("unknown command `{}`; known: {}", truncate(other, 64), Command::NAMES.join(", ")),
                })
            }
        };
        Ok(cmd)
    }
}

fn invalid(detail: &str) -> CommandError {
    CommandError { reason: ReasonCode::InvalidArgs, detail: detail.to_owned() }
}

fn typed<T: serde::de::DeserializeOwned>(args: Value) -> Result<T, CommandError> {
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        invalid(&if path == "." { e.into_inner().to_string() } else { format!("{path}: {}", e.into_inner()) })
    })
}

fn no_args(args: Value) -> Result<(), CommandError> {
    typed::<NoArgs>(args).map(|_| ())
}

fn output_name(s: String) -> Result<String, CommandError> {
    let ok =
        !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(s)
    } else {
        Err(invalid("output must be 1-32 characters of a-z, 0-9, '-', '_'"))
    }
}

/// An `http://` or `https://` URL without whitespace or control characters.
/// Integrity does not rest on the transport: the SHA-256 and the bundle's
/// signature are both checked before anything is installed.
fn bundle_url(url: String) -> Result<String, CommandError> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let chars_ok = url.chars().all(|c| c.is_ascii_graphic());
    if scheme_ok && chars_ok && url.len() <= MAX_URL_LEN && url.split("://").nth(1).is_some_and(|r| !r.is_empty()) {
        Ok(url)
    } else {
        Err(invalid(&format!("url must be an http:// or https:// URL of at most {MAX_URL_LEN} printable characters")))
    }
}

/// A release version: dot-separated numbers (`1.4.2`), optionally followed
/// by `-` or `+` and a label; the numbers are what the box compares.
fn bundle_version(v: String) -> Result<String, CommandError> {
    let numbers = v.split(['-', '+']).next().unwrap_or_default();
    let ok = v.len() <= 64
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        && numbers.split('.').all(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(v)
    } else {
        Err(invalid("version must be dot-separated numbers such as 1.4.2 (at most 64 characters)"))
    }
}

/// 64 hex digits, returned in lower case.
fn sha256_hex(s: &str) -> Result<String, CommandError> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(invalid("sha256 must be 64 hexadecimal digits"))
    }
}

/// An RFC 3339 UTC time (`2026-12-05T05:07:21Z`, fractions allowed) as
/// unix milliseconds.
fn rfc3339_ms(s: &str) -> Result<u64, CommandError> {
    let bad = || invalid("since must be an RFC 3339 UTC time such as 2026-12-05T05:07:21Z");
    let t = humantime::parse_rfc3339(s).map_err(|_| bad())?;
    let d = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?;
    u64::try_from(d.as_millis()).map_err(|_| bad())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips_through_name_and_args() {
        let all = [
            Command::StreamStart,
            Command::StreamStop,
            Command::OutputEnable { output: "primary".into() },
            Command::OutputDisable { output: "backup".into() },
            Command::ConfigConfirm { version: 7 },
            Command::TelemetryBoost { interval_s: 1, duration_s: 120 },
            Command::Identify { duration_s: 10 },
            Command::Rebirth,
            Command::Reboot,
            Command::ChannelStart,
            Command::ChannelStop,
            Command::FirmwareUpdate {
                url: "http://10.0.2.102/b.raucb".into(),
                sha256: "ab".repeat(32),
                version: Some("1.4.2".into()),
                allow_downgrade: true,
            },
            Command::InputPattern { black: Some(true), motion: Some(false), tone: None },
            Command::LogsFetch { since_seq: Some(41), since_ms: Some(1_796_447_241_123), max_lines: 50 },
            Command::ThumbnailRequest,
        ];
        assert_eq!(all.len(), Command::NAMES.len());
        for c in all {
            assert_eq!(Command::parse(c.name(), &c.args()).unwrap(), c);
            assert!(Command::NAMES.contains(&c.name()));
        }
    }

    #[test]
    fn unknown_names_and_bad_args_have_distinct_reasons() {
        let e = Command::parse("format.disk", &Value::Null).unwrap_err();
        assert_eq!(e.reason, ReasonCode::UnknownCommand);
        let e = Command::parse("stream.start", &json!({"now": true})).unwrap_err();
        assert_eq!(e.reason, ReasonCode::InvalidArgs);
        assert!(e.detail.contains("unknown field"), "{}", e.detail);
        let e = Command::parse("thumbnail.request", &json!({"now": true})).unwrap_err();
        assert_eq!(e.reason, ReasonCode::InvalidArgs);
        assert!(e.detail.contains("unknown field `now`"), "{}", e.detail);
        assert_eq!(Command::parse("thumbnail.request", &Value::Null).unwrap(), Command::ThumbnailRequest);
        let e = Command::parse("output.enable", &json!({"output": 3})).unwrap_err();
        assert_eq!(e.reason, ReasonCode::InvalidArgs);
        assert!(e.detail.contains("output"), "{}", e.detail);
        let e = Command::parse("output.enable", &json!({"output": "../etc"})).unwrap_err();
        assert_eq!(e.reason, ReasonCode::InvalidArgs);
        let e = Command::parse("telemetry.boost", &json!({"interval_s": 0})).unwrap_err();
        assert_eq!(e.reason, ReasonCode::InvalidArgs);
        let e = Command::parse("config.confirm", &json!([])).unwrap_err();
        assert_eq!(e.reason, ReasonCode::InvalidArgs);
        for bad in [json!({}), json!({"pattern": "snow"}), json!({"tone": "off"})] {
            let e = Command::parse("input.pattern", &bad).unwrap_err();
            assert_eq!(e.reason, ReasonCode::InvalidArgs, "{bad}");
        }
    }

    #[test]
    fn firmware_update_checks_url_and_digest() {
        let digest = "AB".repeat(32);
        let c = Command::parse("firmware.update", &json!({"url": "https://x/b.raucb", "sha256": digest})).unwrap();
        let plain = Command::FirmwareUpdate {
            url: "https://x/b.raucb".into(),
            sha256: "ab".repeat(32),
            version: None,
            allow_downgrade: false,
        };
        assert_eq!(c, plain, "no version given, downgrades refused");
        let args = json!({"url": "https://x/b", "sha256": digest, "version": "2.0.1-rc1", "allow_downgrade": true});
        let c = Command::parse("firmware.update", &args).unwrap();
        assert!(matches!(c, Command::FirmwareUpdate { version: Some(v), allow_downgrade: true, .. } if v == "2.0.1-rc1"));
        for bad in [json!("1..2"), json!(""), json!("v1.2"), json!("1.2 3"), json!(12), json!("1234567890.1")] {
            let args = json!({"url": "https://x/b", "sha256": digest, "version": bad});
            let e = Command::parse("firmware.update", &args).unwrap_err();
            assert_eq!(e.reason, ReasonCode::InvalidArgs, "{bad}");
        }
        for (url, sha) in [
            ("ftp://x/b", "ab".repeat(32)),
            ("http://", "ab".repeat(32)),
            ("http://x/a b", "ab".repeat(32)),
            ("http://x/b", "ab".repeat(31)),
            ("http://x/b", "zz".repeat(32)),
        ] {
            let e = Command::parse("firmware.update", &json!({"url": url, "sha256": sha})).unwrap_err();
            assert_eq!(e.reason, ReasonCode::InvalidArgs, "{url} {sha}");
        }
        let e = Command::parse("firmware.update", &json!({"url": "http://x/b"})).unwrap_err();
        assert_eq!(e.reason, ReasonCode::InvalidArgs);
    }

    #[test]
    fn defaults_apply_to_missing_args() {
        assert_eq!(
            Command::parse("telemetry.boost", &Value::Null).unwrap(),
            Command::TelemetryBoost { interval_s: 1, duration_s: 60 }
        );
        assert_eq!(Command::parse("identify", &json!({})).unwrap(), Command::Identify { duration_s: 30 });
    }

    #[test]
    fn logs_fetch_defaults_bounds_and_times() {
        let plain = Command::LogsFetch { since_seq: None, since_ms: None, max_lines: LOGS_DEFAULT_LINES };
        assert_eq!(Command::parse("logs.fetch", &Value::Null).unwrap(), plain);
        assert_eq!(Command::parse("logs.fetch", &plain.args()).unwrap(), plain);
        let c = Command::parse("logs.fetch", &json!({"since": "2026-12-05T05:07:21.5Z", "since_seq": 0, "max_lines": 1000})).unwrap();
        assert_eq!(c, Command::LogsFetch { since_seq: Some(0), since_ms: Some(1_796_447_241_500), max_lines: 1000 });
        for bad in [
            json!({"max_lines": 0}),
            json!({"max_lines": 1001}),
            json!({"max_lines": -1}),
            json!({"since_seq": "7"}),
            json!({"since": "10m"}),
            json!({"since": "2026-12-05 05:07:21"}),
            json!({"since": "2026-12-05T05:07:21+02:00"}),
            json!({"lines": 5}),
        ] {
            let e = Command::parse("logs.fetch", &bad).unwrap_err();
            assert_eq!(e.reason, ReasonCode::InvalidArgs, "{bad}");
        }
        let e = Command::parse("logs.fetch", &json!({"follow": true})).unwrap_err();
        assert!(e.detail.contains("unknown field `follow`"), "{}", e.detail);
    }
}
