//! The fleet as seen from retained messages: one [`DeviceView`] per device.

use std::collections::BTreeMap;

use fleet::topics;
use fleet::wire::{self, AlarmsSnapshot, PresenceState, ReportedConfig, Severity, State, Status};
use serde::Serialize;
use serde_json::Value;

use crate::term;

/// What the controller knows about one device.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DeviceView {
    pub device: String,
    pub status: Option<Status>,
    pub info: Option<Value>,
    pub state: Option<State>,
    pub alarms: Option<AlarmsSnapshot>,
    pub config_reported: Option<ReportedConfig>,
    pub config_desired: Option<Value>,
}

impl DeviceView {
    pub fn online(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.online)
    }

    pub fn presence(&self) -> &'static str {
        match self.status.as_ref().map(|s| s.state) {
            Some(PresenceState::Ready) => "ready",
            Some(PresenceState::Alert) => "alert",
            Some(PresenceState::Disconnected) => "disconnected",
            Some(PresenceState::Lost) => "lost",
            None => "unknown",
        }
    }

    pub fn active_alarms(&self) -> &[wire::Alarm] {
        self.alarms.as_ref().map_or(&[], |a| a.active.as_slice())
    }

    /// The worst active severity.
    pub fn worst(&self) -> Option<Severity> {
        self.active_alarms().iter().map(|a| a.severity).min()
    }

    /// Offline, or a critical/major alarm.
    pub fn has_problem(&self) -> bool {
        !self.online() || matches!(self.worst(), Some(Severity::Critical | Severity::Major))
    }

    /// Sort key: offline first, then by worst severity, then by id.
    pub fn problem_rank(&self) -> (u8, u8) {
        let sev = match self.worst() {
            Some(Severity::Critical) => 0,
            Some(Severity::Major) => 1,
            Some(Severity::Minor) => 2,
            Some(Severity::Warning) => 3,
            None => 4,
        };
        (u8::from(self.online()), sev)
    }
}

/// Every device seen, by id.
#[derive(Debug, Default)]
pub struct Fleet {
    pub devices: BTreeMap<String, DeviceView>,
    pub bad_messages: u64,
}

impl Fleet {
    /// Folds one message in. An offline status older (by `bdseq`) than the
    /// online one already known is ignored (Sparkplug rule).
    pub fn apply(&mut self, topic: &str, payload: &[u8]) {
        let Some((device, suffix)) = topics::split(topic) else { return };
        if payload.is_empty() {
            return;
        }
        let d =
            self.devices.entry(device.to_owned()).or_insert_with(|| DeviceView { device: device.to_owned(), ..Default::default() });
        let ok = match suffix {
            topics::STATUS => wire::parse::<Status>(payload).map(|s| {
                let stale = !s.online && d.status.as_ref().is_some_and(|old| old.online && old.bdseq > s.bdseq);
                if !stale {
                    d.status = Some(s);
                }
            }),
            topics::INFO => wire::parse::<wire::Info>(payload).map(|i| d.info = Some(i.info)),
            topics::STATE => wire::parse::<State>(payload).map(|s| d.state = Some(s)),
            topics::ALARMS => wire::parse::<AlarmsSnapshot>(payload).map(|a| d.alarms = Some(a)),
            topics::CONFIG_REPORTED => wire::parse::<ReportedConfig>(payload).map(|r| d.config_reported = Some(r)),
            topics::CONFIG_DESIRED => {
                serde_json::from_slice::<Value>(payload).map(|v| d.config_desired = Some(v)).map_err(|e| e.to_string())
            }
            _ => Ok(()),
        };
        if ok.is_err() {
            self.bad_messages += 1;
        }
    }

    /// Counts for the summary line.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for d in self.devices.values() {
            s.total += 1;
            if d.online() {
                s.online += 1;
            } else {
                s.offline += 1;
            }
            for a in d.active_alarms() {
                match a.severity {
                    Severity::Critical => s.critical += 1,
                    Severity::Major => s.major += 1,
                    Severity::Minor => s.minor += 1,
                    Severity::Warning => s.warning += 1,
                }
            }
        }
        s
    }
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub online: usize,
    pub offline: usize,
    pub critical: usize,
    pub major: usize,
    pub minor: usize,
    pub warning: usize,
}

impl DeviceView {
    /// `2500`, or `1200/2500` (target/configured) while the box has turned
    /// its video rate down for the network; `-` when the box does not say.
    pub fn video_rate(&self) -> String {
        let video = self.state.as_ref().map(|s| &s.state["video"]);
        let kbps = |k: &str| video.and_then(|v| v[k].as_u64());
        match (kbps("target_kbps"), kbps("configured_kbps")) {
            (Some(t), Some(c)) if t == c => c.to_string(),
            (Some(t), Some(c)) => format!("{t}/{c}"),
            _ => "-".to_owned(),
        }
    }
}

/// One table row per device.
pub fn table(devices: &[&DeviceView]) -> String {
    let mut out =
        format!("{:<24} {:<8} {:<13} {:>6} {:>7} {:>11} {}\n", "DEVICE", "ONLINE", "STATE", "BDSEQ", "CONFIG", "VIDEO KBPS", "ALARMS");
    for d in devices {
        let alarms: Vec<String> =
            d.active_alarms().iter().map(|a| format!("{}({:?})", term::text(&a.code), a.severity).to_lowercase()).collect();
        out.push_str(&format!(
            "{:<24} {:<8} {:<13} {:>6} {:>7} {:>11} {}\n",
            term::text(&d.device),
            if d.online() { "online" } else { "offline" },
            d.presence(),
            d.status.as_ref().map_or(0, |s| s.bdseq),
            d.state.as_ref().map_or("-".to_owned(), |s| format!("v{}", s.config_version)),
            d.video_rate(),
            if alarms.is_empty() { "-".to_owned() } else { alarms.join(",") },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that names itself and its alarm code with terminal escapes
    /// (`\x1b[2J` clears the screen, `\r` overwrites the line, `\u{9b}` is
    /// the one-byte CSI) shows them escaped in the table.
    #[test]
    fn table_escapes_device_controlled_strings() {
        let device = "enc\x1b[2J\rok\u{9b}2J";
        let mut fleet = Fleet::default();
        let alarms = serde_json::json!({
            "v": 1, "ts": "2026-01-01T00:00:00Z", "seq": 1, "bdseq": 0,
            "active": [{"id": "x", "code": "LOSS\x1b]0;pwned\x07\r", "severity": "major", "state": "raised", "source": "s", "message": "m\u{9b}"}],
        });
        fleet.apply(&topics::topic(device, topics::ALARMS), &serde_json::to_vec(&alarms).unwrap());
        let d = fleet.devices.get(device).expect("device folded in");
        assert_eq!(d.active_alarms().len(), 1, "the alarm parsed");
        let out = table(&[d]);
        assert!(!out.replace('\n', "").chars().any(char::is_control), "{out:?}");
        assert!(out.contains("enc\\x1b[2J\\rok\\u{9b}2J"), "{out}");
        assert!(out.contains("loss\\x1b]0;pwned\\x07\\r(major)"), "{out}");
        let json = term::json(serde_json::to_string_pretty(d).unwrap());
        assert!(!json.replace('\n', "").chars().any(char::is_control), "{json:?}");
    }

    /// The VIDEO column shows target/configured while the box adapts.
    #[test]
    fn table_shows_the_adaptive_video_target() {
        let mut fleet = Fleet::default();
        let state = |target: u32| {
            serde_json::json!({
                "v": 1, "ts": "2026-01-01T00:00:00Z", "seq": 1, "bdseq": 0, "config_version": 0,
                "state": {"video": {"configured_kbps": 2500, "target_kbps": target}},
            })
        };
        fleet.apply(&topics::topic("enc-a", topics::STATE), &serde_json::to_vec(&state(1200)).unwrap());
        assert_eq!(fleet.devices["enc-a"].video_rate(), "1200/2500");
        assert!(table(&[&fleet.devices["enc-a"]]).contains("1200/2500"));
        fleet.apply(&topics::topic("enc-a", topics::STATE), &serde_json::to_vec(&state(2500)).unwrap());
        assert_eq!(fleet.devices["enc-a"].video_rate(), "2500");
        assert_eq!(DeviceView::default().video_rate(), "-");
    }
}
