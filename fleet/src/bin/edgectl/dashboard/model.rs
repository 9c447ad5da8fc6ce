//! The dashboard's picture of the fleet, sans IO: MQTT messages in, one
//! JSON "card" per device out (what the page renders).
//!
//! Bounded: at most [`MAX_DEVICES`] devices (messages for more are counted
//! and dropped), thumbnails at most [`topics::MAX_THUMBNAIL`] bytes, and a
//! card carries only what the page shows (never `config/desired`, which may
//! hold passphrases).

use std::collections::BTreeMap;

use fleet::topics;
use fleet::wire::{self, Telemetry};
use hyper::body::Bytes;
use serde_json::{json, Value};

use crate::view::DeviceView;

/// Devices kept; a fleet larger than this needs a paged view.
pub const MAX_DEVICES: usize = 10_000;
/// Alarms per card; the rest are counted (`alarms_more`).
const MAX_ALARMS: usize = 32;
/// Outputs per card.
const MAX_OUTPUTS: usize = 16;
/// Characters kept of any device-supplied string on a card.
const MAX_TEXT: usize = 256;

/// One device: its retained documents, latest telemetry and thumbnail.
#[derive(Debug, Default)]
pub struct Device {
    pub view: DeviceView,
    telemetry: Option<Value>,
    /// The newest thumbnail (a JPEG by its first bytes) and how many came.
    pub thumb: Option<Bytes>,
    thumbs: u64,
    /// Unix ms of the newest message from the device.
    last_seen_ms: u64,
}

/// Every device seen, by id.
#[derive(Debug, Default)]
pub struct Model {
    pub devices: BTreeMap<String, Device>,
    /// Messages dropped: over the device cap, unparsable, oversize.
    pub dropped: u64,
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

fn clip_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(clip(s)),
        Value::Number(_) | Value::Bool(_) => v.clone(),
        _ => Value::Null,
    }
}

impl Model {
    /// Folds one message in; returns the device it changed, if any.
    pub fn apply(&mut self, topic: &str, payload: &[u8], now_ms: u64) -> Option<String> {
        let (device, suffix) = topics::split(topic)?;
        if device.len() > 4 * MAX_TEXT || payload.is_empty() {
            self.dropped += 1;
            return None;
        }
        if !self.devices.contains_key(device) {
            // Only a device that says who it is gets a card; a stray
            // telemetry or thumbnail does not claim one of the slots.
            if self.devices.len() >= MAX_DEVICES || !matches!(suffix, topics::STATUS | topics::INFO | topics::STATE | topics::ALARMS) {
                self.dropped += 1;
                return None;
            }
            let view = DeviceView { device: device.to_owned(), ..Default::default() };
            self.devices.insert(device.to_owned(), Device { view, ..Default::default() });
        }
        let d = self.devices.get_mut(device)?;
        let ok = match suffix {
            topics::THUMBNAIL => {
                let jpeg = payload.len() <= topics::MAX_THUMBNAIL && payload.starts_with(&[0xFF, 0xD8]);
                if jpeg {
                    d.thumb = Some(Bytes::copy_from_slice(payload));
                    d.thumbs += 1;
                }
                jpeg
            }
            topics::TELEMETRY => match wire::parse::<Telemetry>(payload) {
                Ok(t) => {
                    d.telemetry = Some(t.metrics);
                    true
                }
                Err(_) => false,
            },
            _ => {
                // The same folding as `edgectl devices` (stale offline
                // statuses ignored by bdseq).
                let mut one = crate::view::Fleet::default();
                one.devices.insert(device.to_owned(), std::mem::take(&mut d.view));
                one.apply(topic, payload);
                d.view = one.devices.remove(device).unwrap_or_default();
                one.bad_messages == 0
            }
        };
        if !ok {
            self.dropped += 1;
            return None;
        }
        d.last_seen_ms = now_ms;
        Some(device.to_owned())
    }

    /// The card of `device`, as the page renders it.
    pub fn card(&self, device: &str) -> Option<Value> {
        let d = self.devices.get(device)?;
        let v = &d.view;
        let alarms: Vec<Value> = v
            .active_alarms()
            .iter()
            .take(MAX_ALARMS)
            .map(|a| json!({"code": clip(&a.code), "severity": format!("{:?}", a.severity).to_lowercase(), "message": clip(&a.message)}))
            .collect();
        let state = v.state.as_ref().map(|s| &s.state);
        let tele_outputs = d.telemetry.as_ref().and_then(|t| t["outputs"].as_array());
        let outputs: Vec<Value> = state
            .and_then(|s| s["outputs"].as_array())
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .take(MAX_OUTPUTS)
            .map(|o| {
                let name = o["name"].as_str().unwrap_or_default();
                let t = tele_outputs.and_then(|ts| ts.iter().find(|t| t["name"].as_str() == Some(name)));
                // SRT's measured send rate; RTP's pacing rate otherwise.
                let mbps = t.and_then(|t| t["srt"]["send_rate_mbps"].as_f64().or_else(|| t["rtp"]["pace_mbps"].as_f64()));
                json!({
                    "name": clip(name),
                    "state": clip_value(t.map_or(&o["state"], |t| &t["state"])),
                    "kbps": mbps.filter(|m| m.is_finite() && *m >= 0.0).map(|m| (m * 1000.0).round()),
                    "last_error": clip_value(&o["last_error"]),
                })
            })
            .collect();
        let video = state.map(|s| &s["video"]);
        Some(json!({
            "device": clip(device),
            // Only these ids can be named in a URL or a command.
            "valid_id": topics::validate_device_id(device).is_ok(),
            "online": v.online(),
            "presence": v.presence(),
            "bdseq": v.status.as_ref().map(|s| s.bdseq),
            "stream": state.map(|s| clip_value(&s["stream"])),
            "video_target_kbps": video.map(|v| clip_value(&v["target_kbps"])),
            "video_configured_kbps": video.map(|v| clip_value(&v["configured_kbps"])),
            "config_version": v.state.as_ref().map(|s| s.config_version),
            "config_status": v.config_reported.as_ref().map(|r| json!({"version": r.av, "code": r.ac, "detail": clip(&r.ad)})),
            "alarms": alarms,
            "alarms_more": v.active_alarms().len().saturating_sub(MAX_ALARMS),
            "outputs": outputs,
            "thumb": (d.thumb.is_some()).then_some(d.thumbs),
            "last_seen_ms": d.last_seen_ms,
        }))
    }

    /// Every card, in id order.
    pub fn snapshot(&self) -> Value {
        Value::Array(self.devices.keys().filter_map(|k| self.card(k)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(extra: Value) -> Vec<u8> {
        let mut v = json!({"v": 1, "ts": "2026-01-01T00:00:00Z", "seq": 1, "bdseq": 3});
        if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn cards_show_presence_alarms_outputs_and_thumbnails() {
        let mut m = Model::default();
        let t = |s| topics::topic("enc-1", s);
        assert_eq!(m.apply(&t(topics::STATUS), &doc(json!({"online": true, "state": "ready"})), 5), Some("enc-1".into()));
        let state = json!({"config_version": 2, "state": {"stream": "streaming", "video": {"configured_kbps": 2500, "target_kbps": 1200},
            "outputs": [{"name": "primary", "state": "connected", "last_error": null}]}});
        m.apply(&t(topics::STATE), &doc(state), 6);
        m.apply(
            &t(topics::TELEMETRY),
            &doc(json!({"metrics": {"outputs": [{"name": "primary", "state": "connected", "srt": {"send_rate_mbps": 1.5}}]}})),
            7,
        );
        let alarms = json!({"active": [{"id": "a", "code": "BLACK_PICTURE", "severity": "major", "state": "raised", "source": "input", "message": "black"}]});
        m.apply(&t(topics::ALARMS), &doc(alarms), 8);
        m.apply(&t(topics::THUMBNAIL), &[0xFF, 0xD8, 0xFF, 0xD9], 9);
        let c = m.card("enc-1").unwrap();
        assert_eq!(c["online"], true);
        assert_eq!(c["presence"], "ready");
        assert_eq!(c["outputs"][0]["kbps"], 1500.0);
        assert_eq!(c["video_target_kbps"], 1200);
        assert_eq!(c["alarms"][0]["code"], "BLACK_PICTURE");
        assert_eq!(c["alarms"][0]["severity"], "major");
        assert_eq!(c["thumb"], 1);
        assert_eq!(c["last_seen_ms"], 9);
        // Not a JPEG, or too big: kept out.
        assert_eq!(m.apply(&t(topics::THUMBNAIL), b"<html>", 10), None);
        assert_eq!(m.apply(&t(topics::THUMBNAIL), &vec![0xFF; topics::MAX_THUMBNAIL + 1], 10), None);
        assert_eq!(m.card("enc-1").unwrap()["thumb"], 1);
    }

    #[test]
    fn the_model_is_bounded_and_survives_garbage() {
        let mut m = Model::default();
        for i in 0..MAX_DEVICES + 5 {
            m.apply(&topics::topic(&format!("d{i}"), topics::STATUS), &doc(json!({"online": true, "state": "ready"})), 1);
        }
        assert_eq!(m.devices.len(), MAX_DEVICES);
        assert_eq!(m.dropped, 5);
        // Telemetry or a thumbnail alone does not create a device.
        let mut m = Model::default();
        assert_eq!(m.apply(&topics::topic("x", topics::THUMBNAIL), &[0xFF, 0xD8], 1), None);
        assert!(m.devices.is_empty());
        for payload in [&b"\xff\xfe"[..], b"{", b"null", b"{\"v\":1}", &[0u8; 3]] {
            for s in [topics::STATUS, topics::STATE, topics::ALARMS, topics::TELEMETRY, topics::INFO] {
                m.apply(&topics::topic("x", s), payload, 1);
            }
        }
        if let Some(c) = m.card("x") {
            assert_eq!(c["online"], false);
        }
        assert!(m.dropped > 0);
    }

    #[test]
    fn hostile_ids_are_kept_as_text_but_not_offered_as_urls() {
        let mut m = Model::default();
        let id = "<img src=x onerror=alert(1)>";
        m.apply(&format!("fleet/v1/{id}/status"), &doc(json!({"online": true, "state": "ready"})), 1);
        let c = m.card(id).unwrap();
        assert_eq!(c["device"], id);
        assert_eq!(c["valid_id"], false);
    }
}
