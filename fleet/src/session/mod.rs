//! The sans-IO fleet session of one device: no sockets, no clock, no
//! threads. The I/O shell ([`crate::client`]) feeds it inputs and carries
//! out what [`Session::poll_output`] returns.
//!
//! Inputs: [`Session::prepare_connect`] (before each CONNECT: returns the
//! Will), [`Session::connected`], [`Session::disconnected`],
//! [`Session::handle_message`], [`Session::tick`], and the answers to its
//! requests: [`Session::birth`], [`Session::telemetry`],
//! [`Session::observe`], [`Session::command_result`],
//! [`Session::config_outcome`], [`Session::health`].
//!
//! It owns the topic names, `bdseq`, envelopes and `seq`, the idempotency
//! cache, the config version rules and the confirm-window state machine,
//! rate and size limits, and command expiry. State that must survive a
//! restart goes through a [`Store`].

mod commands;
mod config;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tracing::warn;

pub use config::ConfigOutcome;

use crate::clock::Now;
use crate::command::Command;
use crate::idempotency::IdempotencyCache;
use crate::limits::{self, MAX_MESSAGE, MAX_RETAINED};
use crate::ratelimit::TokenBucket;
use crate::store::Store;
use crate::topics;
use crate::wire::{self, Alarm, AlarmState, PresenceState, Severity};

/// MQTT quality of service used by the protocol (never QoS 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

/// How the shell must treat a publish when the broker is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Send now or drop (telemetry, `accepted`, presence, retained
    /// documents, which the next birth republishes anyway).
    BestEffort,
    /// Keep in the bounded on-disk outbox until the broker acknowledges it
    /// (events, final command results).
    Durable,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
    pub delivery: Delivery,
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Publish(Publish),
    /// Subscribe to these topics at QoS 1 (after every CONNACK).
    Subscribe(Vec<String>),
    /// Run this device command, then call [`Session::command_result`].
    Execute {
        id: String,
        command: Command,
    },
    /// Validate (unless `rollback`) and apply this config, then call
    /// [`Session::config_outcome`] (not needed for a rollback).
    ApplyConfig {
        version: u64,
        config: Value,
        rollback: bool,
    },
    /// Call [`Session::birth`] with fresh info, state and alarms.
    NeedBirth,
    /// Call [`Session::telemetry`] with fresh counters.
    NeedTelemetry,
}

/// Static session parameters.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub device_id: String,
    /// Telemetry interval, clamped to 1–60 s.
    pub telemetry_interval_s: u32,
    /// How long new outputs may take to come up under a confirm window
    /// before an unhealthy report rolls the config back.
    pub health_grace: Duration,
}

impl SessionConfig {
    /// Defaults for `device_id`: telemetry every 10 s, 10 s health grace.
    pub fn new(device_id: &str) -> SessionConfig {
        SessionConfig {
            device_id: device_id.to_owned(),
            telemetry_interval_s: limits::TELEMETRY_DEFAULT_S,
            health_grace: Duration::from_secs(10),
        }
    }
}

/// Counters of the session (one struct, every field incremented somewhere).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionStats {
    pub telemetry_sent: u64,
    pub telemetry_dropped_offline: u64,
    pub telemetry_dropped_rate: u64,
    pub oversize_dropped: u64,
    pub commands_rejected: u64,
    pub config_rejected: u64,
    pub rollbacks: u64,
    pub store_errors: u64,
    pub foreign_messages: u64,
    pub thumbnails_sent: u64,
}

/// The session of one device.
pub struct Session {
    cfg: SessionConfig,
    store: Box<dyn Store>,
    bdseq: u64,
    seq: u64,
    connected: bool,
    out: VecDeque<Output>,
    // telemetry
    next_telemetry: Option<Instant>,
    boost: Option<(u32, Instant)>,
    telemetry_bucket: TokenBucket,
    // presence, state and alarms
    presence: PresenceState,
    /// Last published state and the config version it carried.
    last_state: Option<(Value, u64)>,
    active: BTreeMap<String, Alarm>,
    // commands
    idem: IdempotencyCache,
    command_bucket: TokenBucket,
    in_flight: BTreeMap<String, commands::InFlight>,
    // config
    config: config::ConfigMachine,
    pub stats: SessionStats,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("device_id", &self.cfg.device_id)
            .field("bdseq", &self.bdseq)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

const KEY_BDSEQ: &str = "bdseq";
const KEY_COMMANDS: &str = "commands";

impl Session {
    /// Restores bdseq, the idempotency cache and the config record from
    /// `store`; `running_config` is the rollback target when no desired
    /// config was ever applied. A confirm window interrupted by a restart
    /// rolls back at once.
    pub fn new(mut cfg: SessionConfig, store: Box<dyn Store>, running_config: Value, now: Now) -> Session {
        cfg.telemetry_interval_s = cfg.telemetry_interval_s.clamp(limits::TELEMETRY_MIN_S, limits::TELEMETRY_MAX_S);
        let mut stats = SessionStats::default();
        let bdseq = match store.load(KEY_BDSEQ) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or(0),
            Ok(None) => 0,
            Err(_) => {
                stats.store_errors += 1;
                0
            }
        };
        let idem = match store.load(KEY_COMMANDS) {
            Ok(Some(b)) => IdempotencyCache::from_bytes(limits::IDEMPOTENCY_ENTRIES, &b)
                .unwrap_or_else(|_| IdempotencyCache::new(limits::IDEMPOTENCY_ENTRIES)),
            _ => IdempotencyCache::new(limits::IDEMPOTENCY_ENTRIES),
        };
        let (config, restored_pending) = config::ConfigMachine::load(store.as_ref(), running_config);
        let mut s = Session {
            cfg,
            store,
            bdseq,
            seq: 0,
            connected: false,
            out: VecDeque::new(),
            next_telemetry: Some(now.mono),
            boost: None,
            telemetry_bucket: TokenBucket::new(limits::PUBLISH_RATE_PER_S, limits::PUBLISH_BURST),
            presence: PresenceState::Ready,
            last_state: None,
            active: BTreeMap::new(),
            idem,
            command_bucket: TokenBucket::new(limits::COMMAND_RATE_PER_S, limits::COMMAND_BURST),
            in_flight: BTreeMap::new(),
            config,
            stats,
        };
        if restored_pending {
            s.rollback(now, 408, "restarted_during_confirm");
        }
        s
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.cfg.device_id
    }

    /// The session counter of the current (or last) connection.
    pub fn bdseq(&self) -> u64 {
        self.bdseq
    }

    /// Whether the broker connection is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The version of the running desired config (0: local config).
    pub fn running_config_version(&self) -> u64 {
        self.config.running()
    }

    /// Whether a confirm window is open (the shell then reports health).
    pub fn awaiting_confirm(&self) -> bool {
        self.config.pending_version().is_some()
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn topic(&self, suffix: &str) -> String {
        topics::topic(&self.cfg.device_id, suffix)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn save(&mut self, key: &str, bytes: &[u8]) {
        if let Err(e) = self.store.save(key, bytes) {
            self.stats.store_errors += 1;
            warn!(key, error = %e, "cannot persist fleet state");
        }
    }

    /// Serializes and queues a publish, dropping (and counting) documents
    /// above the size limit of their kind.
    fn publish<T: Serialize>(&mut self, suffix: &str, doc: &T, qos: Qos, retain: bool, delivery: Delivery) {
        let payload = match serde_json::to_vec(doc) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot serialize {suffix}");
                return;
            }
        };
        let cap = if retain { MAX_RETAINED } else { MAX_MESSAGE };
        if payload.len() > cap {
            self.stats.oversize_dropped += 1;
            warn!(topic = suffix, bytes = payload.len(), cap, "message over the size limit dropped");
            return;
        }
        let topic = self.topic(suffix);
        self.out.push_back(Output::Publish(Publish { topic, payload, qos, retain, delivery }));
    }

    fn status_doc(&mut self, now: Now, online: bool, state: PresenceState) -> wire::Status {
        wire::Status { v: wire::PROTOCOL_VERSION, ts: now.rfc3339(), seq: self.next_seq(), bdseq: self.bdseq, online, state }
    }

    /// Before each CONNECT attempt: raises and persists `bdseq` and returns
    /// the Will (topic, payload) to register with this connection.
    pub fn prepare_connect(&mut self, now: Now) -> (String, Vec<u8>) {
        self.bdseq += 1;
        let b = self.bdseq.to_string();
        self.save(KEY_BDSEQ, b.as_bytes());
        let doc = self.status_doc(now, false, PresenceState::Lost);
        (self.topic(topics::STATUS), serde_json::to_vec(&doc).unwrap_or_default())
    }

    /// After a CONNACK: subscribe (clean sessions forget subscriptions) and
    /// ask for the birth documents.
    pub fn connected(&mut self, now: Now) {
        self.connected = true;
        self.out.push_back(Output::Subscribe(vec![self.topic(topics::CONFIG_DESIRED), self.topic(topics::CMD_REQ)]));
        self.out.push_back(Output::NeedBirth);
        self.next_telemetry = Some(now.mono);
    }

    /// The connection is gone (error, or after a clean shutdown).
    pub fn disconnected(&mut self, _now: Now) {
        self.connected = false;
    }

    /// Publishes `info`, `state`, `alarms` and the online `status`.
    pub fn birth(&mut self, now: Now, info: Value, state: Value, alarms: Vec<Alarm>) {
        self.diff_alarms(now, alarms);
        let seq = self.next_seq();
        let doc = wire::Info { v: wire::PROTOCOL_VERSION, ts: now.rfc3339(), seq, bdseq: self.bdseq, info };
        self.publish(topics::INFO, &doc, Qos::AtLeastOnce, true, Delivery::BestEffort);
        self.publish_state(now, state);
        self.publish_alarms(now);
        self.presence = self.presence_from_alarms();
        let doc = self.status_doc(now, true, self.presence);
        self.publish(topics::STATUS, &doc, Qos::AtLeastOnce, true, Delivery::BestEffort);
    }

    /// Before a clean DISCONNECT: the explicit offline status.
    pub fn shutdown(&mut self, now: Now) {
        let doc = self.status_doc(now, false, PresenceState::Disconnected);
        self.publish(topics::STATUS, &doc, Qos::AtLeastOnce, true, Delivery::BestEffort);
    }

    fn publish_state(&mut self, now: Now, state: Value) {
        let seq = self.next_seq();
        let doc = wire::State {
            v: wire::PROTOCOL_VERSION,
            ts: now.rfc3339(),
            seq,
            bdseq: self.bdseq,
            config_version: self.config.running(),
            state: state.clone(),
        };
        self.publish(topics::STATE, &doc, Qos::AtLeastOnce, true, Delivery::BestEffort);
        self.last_state = Some((state, self.config.running()));
    }

    fn publish_alarms(&mut self, now: Now) {
        let seq = self.next_seq();
        let doc = wire::AlarmsSnapshot {
            v: wire::PROTOCOL_VERSION,
            ts: now.rfc3339(),
            seq,
            bdseq: self.bdseq,
            active: self.active.values().cloned().collect(),
        };
        self.publish(topics::ALARMS, &doc, Qos::AtLeastOnce, true, Delivery::BestEffort);
    }

    fn presence_from_alarms(&self) -> PresenceState {
        if self.active.values().any(|a| matches!(a.severity, Severity::Critical | Severity::Major)) {
            PresenceState::Alert
        } else {
            PresenceState::Ready
        }
    }

    /// Turns the device's active alarms into raise/clear events; returns
    /// whether the active set changed.
    fn diff_alarms(&mut self, now: Now, alarms: Vec<Alarm>) -> bool {
        let mut new: BTreeMap<String, Alarm> = BTreeMap::new();
        for mut a in alarms {
            a.state = AlarmState::Raised;
            new.insert(a.id.clone(), a);
        }
        let mut events = Vec::new();
        for (id, old) in &self.active {
            if !new.contains_key(id) {
                let mut cleared = old.clone();
                cleared.state = AlarmState::Cleared;
                events.push(cleared);
            }
        }
        for (id, a) in &new {
            if self.active.get(id) != Some(a) {
                events.push(a.clone());
            }
        }
        let changed = !events.is_empty();
        self.active = new;
        for alarm in events {
            let seq = self.next_seq();
            let doc = wire::Event { v: wire::PROTOCOL_VERSION, ts: now.rfc3339(), seq, bdseq: self.bdseq, alarm };
            self.publish(topics::EVENT, &doc, Qos::AtLeastOnce, false, Delivery::Durable);
        }
        changed
    }

    /// Periodic observation of the device: publishes `state` when it
    /// changed, alarm events and the `alarms` snapshot when the active set
    /// changed, and `status` when the presence (ready/alert) changed.
    pub fn observe(&mut self, now: Now, state: Value, alarms: Vec<Alarm>) {
        if self.diff_alarms(now, alarms) && self.connected {
            self.publish_alarms(now);
            let presence = self.presence_from_alarms();
            if presence != self.presence {
                self.presence = presence;
                let doc = self.status_doc(now, true, presence);
                self.publish(topics::STATUS, &doc, Qos::AtLeastOnce, true, Delivery::BestEffort);
            }
        }
        let changed = self.last_state.as_ref().is_none_or(|(v, ver)| *v != state || *ver != self.config.running());
        if self.connected && changed {
            self.publish_state(now, state);
        }
    }

    fn telemetry_interval(&self, now: Instant) -> Duration {
        match self.boost {
            Some((interval, until)) if now < until => Duration::from_secs(u64::from(interval)),
            _ => Duration::from_secs(u64::from(self.cfg.telemetry_interval_s)),
        }
    }

    /// Advances timers: telemetry due, command timeouts, confirm deadline.
    pub fn tick(&mut self, now: Now) {
        if let Some(due) = self.next_telemetry {
            if now.mono >= due {
                // From the due time, not from now: the tick runs once a
                // second, and "now + interval" drifted 3-6 % late per period
                // (fleet-bench). After a long stall, restart from now rather
                // than send a burst to catch up.
                let interval = self.telemetry_interval(now.mono);
                let next = due + interval;
                self.next_telemetry = Some(if next > now.mono { next } else { now.mono + interval });
                if self.connected {
                    self.out.push_back(Output::NeedTelemetry);
                } else {
                    // Not even collected: telemetry is never queued.
                    self.stats.telemetry_dropped_offline += 1;
                }
            }
        }
        self.expire_commands(now);
        if let Some(reason) = self.config.deadline_passed(now.mono) {
            self.rollback(now, 408, reason);
        }
    }

    /// Publishes one telemetry message (dropped and counted when offline,
    /// over the rate limit or over 16 KB).
    pub fn telemetry(&mut self, now: Now, metrics: Value) {
        if !self.connected {
            self.stats.telemetry_dropped_offline += 1;
            return;
        }
        if !self.telemetry_bucket.try_take(now.mono) {
            self.stats.telemetry_dropped_rate += 1;
            return;
        }
        let seq = self.next_seq();
        let doc = wire::Telemetry { v: wire::PROTOCOL_VERSION, ts: now.rfc3339(), seq, bdseq: self.bdseq, metrics };
        let before = self.stats.oversize_dropped;
        self.publish(topics::TELEMETRY, &doc, Qos::AtMostOnce, false, Delivery::BestEffort);
        if self.stats.oversize_dropped == before {
            self.stats.telemetry_sent += 1;
        }
    }

    /// Publishes one thumbnail as is (QoS 0, not retained: a stale picture
    /// of a box gone offline must not greet a new subscriber). Dropped
    /// offline, and dropped with a log line above
    /// [`topics::MAX_THUMBNAIL`].
    pub fn thumbnail(&mut self, jpeg: Vec<u8>) {
        if !self.connected {
            return;
        }
        if jpeg.len() > topics::MAX_THUMBNAIL {
            self.stats.oversize_dropped += 1;
            warn!(bytes = jpeg.len(), cap = topics::MAX_THUMBNAIL, "thumbnail over the size limit dropped");
            return;
        }
        self.stats.thumbnails_sent += 1;
        let topic = self.topic(topics::THUMBNAIL);
        self.out.push_back(Output::Publish(Publish {
            topic,
            payload: jpeg,
            qos: Qos::AtMostOnce,
            retain: false,
            delivery: Delivery::BestEffort,
        }));
    }

    /// An incoming message on a subscribed topic.
    pub fn handle_message(&mut self, now: Now, topic: &str, payload: &[u8]) {
        let own = topics::split(topic).filter(|(d, _)| *d == self.cfg.device_id).map(|(_, s)| s);
        match own {
            Some(topics::CMD_REQ) => self.handle_command(now, payload),
            Some(topics::CONFIG_DESIRED) => self.handle_desired(now, payload),
            _ => self.stats.foreign_messages += 1,
        }
    }
}
