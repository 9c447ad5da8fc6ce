//! Desired/reported config: version rules and the confirm window.
//!
//! | incoming version | action | `config/reported` |
//! |---|---|---|
//! | higher | validate, apply (shell + device) | 200 `applied` or 202 `pending_confirm` |
//! | equal | none | the last report again |
//! | lower | ignore | 409 `stale_version` |
//! | invalid | keep running config | 400 `rejected` + reason and key |
//!
//! A `pending_confirm` config becomes the last known good one on
//! `config.confirm{version}`; on the deadline, on an unhealthy report after
//! the health grace, on an apply failure, or after a restart inside the
//! window, the session rolls back to the last known good config
//! (`rolled_back`, `ac` 408/503/500). The record is persisted in the store
//! under `config`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Delivery, Output, Qos, Session};
use crate::clock::Now;
use crate::device::ConfigRejection;
use crate::limits::{CONFIRM_WITHIN_MAX_S, MAX_RETAINED};
use crate::store::Store;
use crate::topics;
use crate::wire::{self, ConfigStatus, DesiredConfig, ReasonCode};

const KEY_CONFIG: &str = "config";

/// What the shell reports after an [`Output::ApplyConfig`] (not rollback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// Validated and applied.
    Applied,
    /// Validation failed; nothing changed.
    Invalid(ConfigRejection),
    /// Validation passed but applying failed; the session rolls back.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    ac: u16,
    av: u64,
    ad: String,
    status: ConfigStatus,
    key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingRecord {
    version: u64,
    config: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// Highest desired version seen (the reference for higher/equal/lower).
    last_desired: u64,
    /// Version running now (0: the local config file).
    running: u64,
    /// Last known good (confirmed or not risky) version and config.
    good_version: u64,
    good_config: Value,
    pending: Option<PendingRecord>,
    last_report: Option<Report>,
}

#[derive(Debug)]
struct Applying {
    version: u64,
    config: Value,
    confirm_within: Option<u32>,
}

/// In-memory config state; see the module docs.
#[derive(Debug)]
pub(super) struct ConfigMachine {
    rec: Record,
    applying: Option<Applying>,
    /// (confirm deadline, health gate from) of the pending config.
    timers: Option<(Instant, Instant)>,
}

impl ConfigMachine {
    /// Restores the record; the flag says a confirm window was open.
    pub(super) fn load(store: &dyn Store, running_config: Value) -> (ConfigMachine, bool) {
        let rec = store.load(KEY_CONFIG).ok().flatten().and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        let rec = rec.unwrap_or(Record {
            last_desired: 0,
            running: 0,
            good_version: 0,
            good_config: running_config,
            pending: None,
            last_report: None,
        });
        let pending = rec.pending.is_some();
        (ConfigMachine { rec, applying: None, timers: None }, pending)
    }

    pub(super) fn running(&self) -> u64 {
        self.rec.running
    }

    pub(super) fn pending_version(&self) -> Option<u64> {
        self.rec.pending.as_ref().map(|p| p.version)
    }

    pub(super) fn deadline_passed(&self, now: Instant) -> Option<&'static str> {
        match self.timers {
            Some((deadline, _)) if now >= deadline => Some("confirm_timeout"),
            _ => None,
        }
    }
}

/// A config without its `[fleet]` section (local to the box; the agent
/// leaves it out of what it keeps and runs).
fn strip_fleet(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("fleet");
    }
    v
}

fn loose_version(payload: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(payload).ok().and_then(|v| v.get("version").and_then(Value::as_u64)).unwrap_or(0)
}

impl Session {
    fn save_config(&mut self) {
        let bytes = serde_json::to_vec(&self.config.rec).unwrap_or_default();
        self.save(KEY_CONFIG, &bytes);
    }

    fn publish_report(&mut self, now: Now, r: &Report) {
        let seq = self.next_seq();
        let doc = wire::ReportedConfig {
            v: wire::PROTOCOL_VERSION,
            ts: now.rfc3339(),
            seq,
            bdseq: self.bdseq,
            ac: r.ac,
            av: r.av,
            ad: r.ad.clone(),
            status: r.status,
            key: r.key.clone(),
            running: self.config.rec.running,
        };
        self.publish(topics::CONFIG_REPORTED, &doc, Qos::AtLeastOnce, true, Delivery::BestEffort);
    }

    /// Publishes a report, remembers it for equal-version re-acks, persists.
    fn report(&mut self, now: Now, r: Report) {
        self.publish_report(now, &r);
        self.config.rec.last_report = Some(r);
        self.save_config();
    }

    fn reject(&mut self, now: Now, ac: u16, av: u64, ad: String, key: Option<String>) {
        self.stats.config_rejected += 1;
        let r = Report { ac, av, ad, status: ConfigStatus::Rejected, key };
        if av > self.config.rec.last_desired {
            self.config.rec.last_desired = av;
        }
        self.report(now, r);
    }

    pub(super) fn handle_desired(&mut self, now: Now, payload: &[u8]) {
        if payload.is_empty() {
            // The controller cleared the retained document: nothing to do.
            return;
        }
        if payload.len() > MAX_RETAINED {
            let ad = format!("{}: {} bytes > {MAX_RETAINED}", ReasonCode::PayloadTooLarge, payload.len());
            return self.reject(now, 413, loose_version(payload), ad, None);
        }
        let d: DesiredConfig = match wire::parse(payload) {
            Ok(d) => d,
            Err(e) => return self.reject(now, 400, loose_version(payload), format!("bad_request: {e}"), None),
        };
        if d.version == 0 {
            return self.reject(now, 400, 0, "bad_request: version must be at least 1".into(), Some("version".into()));
        }
        let last = self.config.rec.last_desired;
        if d.version < last {
            self.stats.config_rejected += 1;
            let r = Report { ac: 409, av: d.version, ad: "stale_version".into(), status: ConfigStatus::Rejected, key: None };
            return self.publish_report(now, &r);
        }
        if d.version == last {
            if let Some(r) = self.config.rec.last_report.clone() {
                self.publish_report(now, &r);
            }
            return;
        }
        if let Some(s) = d.confirm_within_s {
            if !(1..=CONFIRM_WITHIN_MAX_S).contains(&s) {
                let ad = format!("bad_request: confirm_within_s must be 1..={CONFIRM_WITHIN_MAX_S}");
                return self.reject(now, 400, d.version, ad, Some("confirm_within_s".into()));
            }
        }
        self.config.rec.last_desired = d.version;
        self.save_config();
        self.config.applying = Some(Applying { version: d.version, config: d.config.clone(), confirm_within: d.confirm_within_s });
        self.out.push_back(Output::ApplyConfig { version: d.version, config: d.config, rollback: false });
    }

    /// The result of validating and applying desired `version`.
    pub fn config_outcome(&mut self, now: Now, version: u64, outcome: ConfigOutcome) {
        let Some(a) = self.config.applying.take_if(|a| a.version == version) else {
            return;
        };
        match outcome {
            ConfigOutcome::Invalid(rej) => self.reject(now, 400, version, rej.reason, rej.key),
            ConfigOutcome::Failed(msg) => {
                self.config.rec.pending = Some(PendingRecord { version, config: a.config });
                self.rollback(now, 500, &format!("apply_failed: {msg}"));
            }
            ConfigOutcome::Applied => {
                self.config.rec.running = version;
                let r = match a.confirm_within {
                    Some(s) => {
                        let deadline = now.mono + Duration::from_secs(u64::from(s));
                        self.config.timers = Some((deadline, now.mono + self.cfg.health_grace));
                        self.config.rec.pending = Some(PendingRecord { version, config: a.config });
                        let ad = format!("confirm with config.confirm{{version:{version}}} within {s} s");
                        Report { ac: 202, av: version, ad, status: ConfigStatus::PendingConfirm, key: None }
                    }
                    None => {
                        // A plain change also ends an older confirm window.
                        self.config.timers = None;
                        self.config.rec.pending = None;
                        self.config.rec.good_version = version;
                        self.config.rec.good_config = a.config;
                        Report { ac: 200, av: version, ad: "applied".into(), status: ConfigStatus::Applied, key: None }
                    }
                };
                self.report(now, r);
            }
        }
    }

    /// `config.confirm{version}`.
    pub(super) fn confirm(&mut self, now: Now, version: u64) -> Result<Option<Value>, (ReasonCode, String)> {
        match self.config.rec.pending.take_if(|p| p.version == version) {
            Some(p) => {
                self.config.timers = None;
                self.config.rec.good_version = p.version;
                self.config.rec.good_config = p.config;
                let r = Report { ac: 200, av: version, ad: "confirmed".into(), status: ConfigStatus::Applied, key: None };
                self.report(now, r);
                Ok(Some(serde_json::json!({ "version": version })))
            }
            None if self.config.rec.good_version == version && self.config.rec.running == version => {
                Ok(Some(serde_json::json!({ "version": version, "already": true })))
            }
            None => Err((
                ReasonCode::PreconditionFailed,
                format!(
                    "no config {version} awaiting confirmation (pending: {:?}, running: {})",
                    self.config.pending_version(),
                    self.config.rec.running
                ),
            )),
        }
    }

    /// The health gate: an unhealthy report after the grace period inside a
    /// confirm window rolls the config back.
    pub fn health(&mut self, now: Now, outputs_healthy: bool) {
        if let Some((_, from)) = self.config.timers {
            if !outputs_healthy && now.mono >= from {
                self.rollback(now, 503, "health_gate: outputs not healthy");
            }
        }
    }

    /// The applied config (version `running`) did not start when the
    /// process started, and the device runs another or none
    /// ([`crate::device::ConfigFallback`]): `rolled_back` with `ac` 500 and
    /// `ad` `start_failed: <why>; running <what>`, `av` the version that
    /// failed. `running` becomes the last known good version when the
    /// device runs that config, else 0 (the local file); what runs becomes
    /// the rollback target, so a later rollback never returns to the
    /// config that cannot start. The retained desired document of the
    /// failed version is then an equal version: it is answered with this
    /// report, never applied again.
    pub fn config_fell_back(&mut self, now: Now, f: &crate::device::ConfigFallback) {
        let failed = self.config.rec.running;
        if failed == 0 {
            // Nothing the fleet applied is involved: the local file failed.
            return;
        }
        self.stats.rollbacks += 1;
        self.config.timers = None;
        self.config.rec.pending = None;
        let good = &self.config.rec.good_config;
        let is_good = |v: &Value| self.config.rec.good_version != failed && strip_fleet(good) == strip_fleet(v);
        let running = match &f.running {
            Some(v) if is_good(v) => self.config.rec.good_version,
            _ => 0,
        };
        if let Some(v) = &f.running {
            self.config.rec.good_version = running;
            self.config.rec.good_config = v.clone();
        }
        self.config.rec.running = running;
        let ad = format!("start_failed: {}; running {}", f.reason, f.running_name);
        let r = Report { ac: 500, av: failed, ad, status: ConfigStatus::RolledBack, key: None };
        self.report(now, r);
    }

    /// Reverts to the last known good config and reports `rolled_back`.
    pub(super) fn rollback(&mut self, now: Now, ac: u16, reason: &str) {
        let Some(p) = self.config.rec.pending.take() else {
            return;
        };
        self.stats.rollbacks += 1;
        self.config.timers = None;
        self.config.rec.running = self.config.rec.good_version;
        self.out.push_back(Output::ApplyConfig {
            version: self.config.rec.good_version,
            config: self.config.rec.good_config.clone(),
            rollback: true,
        });
        let r = Report { ac, av: p.version, ad: reason.to_owned(), status: ConfigStatus::RolledBack, key: None };
        self.report(now, r);
    }
}
