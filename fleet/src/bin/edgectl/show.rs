//! Answers as readable lines: what `edgectl` prints without `--json`.
//!
//! Almost everything here came from a device (ids, reasons, details,
//! command results, info and state), so every line goes through
//! [`term::text`] as a whole: a control character anywhere in it shows as
//! a visible escape, and a device cannot add lines of its own.

use fleet::wire::{CommandResponse, ConfigStatus, ReportedConfig};
use serde::Serialize;
use serde_json::Value;

use crate::term;
use crate::view::DeviceView;

/// The lines, each made terminal-safe, each ending in a newline.
fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("{}\n", term::text(l))).collect()
}

/// The snake_case wire name of a wire enum (`pending_confirm`), the words
/// the protocol documentation and `--json` use.
fn wire_name(t: &impl Serialize) -> String {
    match serde_json::to_value(t) {
        Ok(Value::String(s)) => s,
        _ => "?".to_owned(),
    }
}

/// `KEY: value` lines for a JSON document, nested keys joined with `.`
/// and list items as `[i]`: `outputs[0].name: primary`.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<String>) {
    let join = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
    match v {
        Value::Object(m) if !m.is_empty() => m.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        Value::Array(a) if !a.is_empty() => a.iter().enumerate().for_each(|(i, v)| flatten(&format!("{prefix}[{i}]"), v, out)),
        Value::String(s) => out.push(format!("{prefix}: {s}")),
        other => out.push(format!("{prefix}: {other}")),
    }
}

/// `enc-1: output.disable succeeded`, then the result's fields; or
/// `enc-1: output.enable rejected (precondition_failed): no output named …`.
pub fn command(device: &str, name: &str, r: &CommandResponse) -> String {
    let mut head = format!("{device}: {name} {}", wire_name(&r.state));
    if let Some(reason) = r.reason {
        head.push_str(&format!(" ({})", reason.as_str()));
    }
    if !r.detail.is_empty() {
        head.push_str(&format!(": {}", r.detail));
    }
    if r.duplicate {
        head.push_str(" (a repeated id: the device's earlier answer)");
    }
    let mut out = vec![head];
    if let Some(result) = &r.result {
        let mut fields = Vec::new();
        flatten("", result, &mut fields);
        out.extend(fields.into_iter().map(|f| format!("  {f}")));
    }
    lines(&out)
}

/// A config report without the device: `version 2 rejected:
/// video.bitrate_kbps: must be …; running version 1`.
fn report_line(r: &ReportedConfig) -> String {
    let status = wire_name(&r.status);
    let mut line = format!("version {} {status}", r.av);
    let detail = match &r.key {
        // The reason may name the key itself already.
        Some(key) if !r.ad.starts_with(key.as_str()) => format!("{key}: {}", r.ad),
        _ => r.ad.clone(),
    };
    if !detail.is_empty() && detail != status {
        line.push_str(&format!(": {detail}"));
    }
    line.push_str(&match r.running {
        0 => "; running the box's own file (version 0)".to_owned(),
        n => format!("; running version {n}"),
    });
    line
}

/// The answer to `config push`; a pending confirm says how to confirm.
pub fn config_report(device: &str, r: &ReportedConfig) -> String {
    let mut out = vec![format!("{device}: {}", report_line(r))];
    if r.status == ConfigStatus::PendingConfirm {
        out.push(format!("  confirm with: edgectl cmd {device} config.confirm version={}", r.av));
    }
    lines(&out)
}

/// Everything retained about one device, section by section.
pub fn status(d: &DeviceView) -> String {
    let mut out = Vec::new();
    let presence = match &d.status {
        Some(s) => format!("{} ({}), bdseq {}, since {}", if s.online { "online" } else { "offline" }, d.presence(), s.bdseq, s.ts),
        None => "no status".to_owned(),
    };
    out.push(format!("{}: {presence}", d.device));
    let running = d.state.as_ref().map(|s| s.config_version);
    match (&d.config_reported, running) {
        (Some(r), _) => out.push(format!("config: {}", report_line(r))),
        (None, Some(0)) => out.push("config: running the box's own file (version 0)".to_owned()),
        (None, Some(n)) => out.push(format!("config: running version {n}")),
        (None, None) => out.push("config: not reported".to_owned()),
    }
    if let Some(v) = d.config_desired.as_ref().and_then(|c| c.get("version")) {
        out.push(format!("desired: version {v}"));
    }
    match d.video_rate().as_str() {
        "-" => out.push("video: not reported".to_owned()),
        rate => out.push(format!("video: {rate} kbit/s")),
    }
    let alarms = d.active_alarms();
    if alarms.is_empty() {
        out.push("alarms: none".to_owned());
    } else {
        out.push(format!("alarms: {}", alarms.len()));
        for a in alarms {
            out.push(format!("  {} {} {}: {}", wire_name(&a.severity), a.code, a.source, a.message));
        }
    }
    for (title, doc) in [("info", d.info.as_ref()), ("state", d.state.as_ref().map(|s| &s.state))] {
        if let Some(doc) = doc {
            out.push(format!("{title}:"));
            let mut fields = Vec::new();
            flatten("", doc, &mut fields);
            out.extend(fields.into_iter().map(|f| format!("  {f}")));
        }
    }
    lines(&out)
}

#[cfg(test)]
mod tests {
    use fleet::topics;
    use fleet::wire::{CommandState, ReasonCode};

    use super::*;
    use crate::view::Fleet;

    fn report(status: ConfigStatus, key: Option<&str>, ad: &str) -> ReportedConfig {
        ReportedConfig {
            v: 1,
            ts: "2026-01-01T00:00:00Z".into(),
            seq: 1,
            bdseq: 0,
            ac: 400,
            av: 2,
            ad: ad.into(),
            status,
            key: key.map(str::to_owned),
            running: 1,
        }
    }

    #[test]
    fn a_rejection_is_one_line_with_key_and_reason() {
        let r = report(ConfigStatus::Rejected, Some("video.bitrate_kbps"), "must be an integer in 100..=50000");
        assert_eq!(
            config_report("enc-1", &r),
            "enc-1: version 2 rejected: video.bitrate_kbps: must be an integer in 100..=50000; running version 1\n"
        );
        // A reason that names its key already is not prefixed twice.
        let r = report(ConfigStatus::Rejected, Some("fleet.broker"), "fleet.broker is local to the box");
        assert_eq!(config_report("enc-1", &r), "enc-1: version 2 rejected: fleet.broker is local to the box; running version 1\n");
        let r = report(ConfigStatus::Applied, None, "applied");
        assert_eq!(config_report("enc-1", &r), "enc-1: version 2 applied; running version 1\n");
        let r = report(ConfigStatus::PendingConfirm, None, "confirm with config.confirm{version:2} within 60 s");
        assert!(config_report("enc-1", &r).ends_with("  confirm with: edgectl cmd enc-1 config.confirm version=2\n"));
    }

    /// A device's reason, detail and result cannot move the cursor, clear
    /// the screen or start lines of their own.
    #[test]
    fn device_text_is_escaped_line_by_line() {
        let r = report(ConfigStatus::Rejected, Some("k\x1b[2J"), "bad\nenc-1: version 9 applied\u{9b}");
        let out = config_report("enc-1", &r);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.trim_end().chars().any(char::is_control), "{out:?}");
        assert!(out.contains("k\\x1b[2J: bad\\nenc-1"), "{out}");
        let c = CommandResponse {
            v: 1,
            ts: String::new(),
            seq: 1,
            bdseq: 0,
            id: "x".into(),
            state: CommandState::Failed,
            reason: Some(ReasonCode::Internal),
            detail: "\r\x1b]0;pwned\x07".into(),
            duplicate: false,
            result: Some(serde_json::json!({"a\nb": {"c": ["\u{202e}x", 2]}})),
        };
        let out = command("enc-1", "identify", &c);
        assert_eq!(out, "enc-1: identify failed (internal): \\r\\x1b]0;pwned\\x07\n  a\\nb.c[0]: \\u{202e}x\n  a\\nb.c[1]: 2\n");
    }

    #[test]
    fn status_reads_as_sections() {
        let mut fleet = Fleet::default();
        let status = serde_json::json!({"v": 1, "ts": "2026-01-01T00:00:00Z", "seq": 1, "bdseq": 3, "online": true, "state": "ready"});
        let alarms = serde_json::json!({
            "v": 1, "ts": "2026-01-01T00:00:00Z", "seq": 1, "bdseq": 3,
            "active": [{"id": "x", "code": "OUTPUT_DOWN", "severity": "major", "state": "raised", "source": "output:primary", "message": "refused"}],
        });
        let state = serde_json::json!({"v": 1, "ts": "t", "seq": 1, "bdseq": 3, "config_version": 0, "state": {"outputs": [{"name": "primary"}]}});
        fleet.apply(&topics::topic("enc-1", topics::STATUS), &serde_json::to_vec(&status).unwrap());
        fleet.apply(&topics::topic("enc-1", topics::ALARMS), &serde_json::to_vec(&alarms).unwrap());
        fleet.apply(&topics::topic("enc-1", topics::STATE), &serde_json::to_vec(&state).unwrap());
        let out = super::status(&fleet.devices["enc-1"]);
        for line in [
            "enc-1: online (ready), bdseq 3, since 2026-01-01T00:00:00Z",
            "config: running the box's own file (version 0)",
            "video: not reported",
            "alarms: 1",
            "  major OUTPUT_DOWN output:primary: refused",
            "state:",
            "  outputs[0].name: primary",
        ] {
            assert!(out.lines().any(|l| l == line), "no line `{line}` in\n{out}");
        }
    }
}
