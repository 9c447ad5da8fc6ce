//! Session tests with a fake clock and a memory store: no broker.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::device::{Device, FakeDevice};
use crate::store::MemStore;
use crate::wire::{CommandResponse, CommandState, ConfigStatus, ReasonCode, ReportedConfig};

const DEV: &str = "enc-0001";

struct Harness {
    s: Session,
    dev: FakeDevice,
    now: Now,
    store: MemStore,
    published: Vec<Publish>,
    subscribed: Vec<String>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_store(MemStore::default())
    }

    fn with_store(store: MemStore) -> Harness {
        let dev = FakeDevice::new(DEV);
        let now = Now::fake(1_700_000_000);
        let s = Session::new(SessionConfig::new(DEV), Box::new(store.clone()), dev.running_config(), now);
        let mut h = Harness { s, dev, now, store, published: Vec::new(), subscribed: Vec::new() };
        h.drain();
        h
    }

    fn connect(&mut self) -> (String, Vec<u8>) {
        let will = self.s.prepare_connect(self.now);
        self.s.connected(self.now);
        self.drain();
        will
    }

    /// Plays the shell: runs every output against the fake device.
    fn drain(&mut self) {
        while let Some(o) = self.s.poll_output() {
            match o {
                Output::Publish(p) => self.published.push(p),
                Output::Subscribe(t) => self.subscribed.extend(t),
                // Long-running commands stay in flight; tests drive them
                // with command_progress / command_result, as the shell does
                // with the device's updates.
                Output::Execute { command, .. } if command.is_long_running() => {}
                Output::Execute { id, command } => {
                    let r = self.dev.execute(&command);
                    self.s.command_result(self.now, &id, r);
                }
                Output::ApplyConfig { version, config, rollback } => {
                    if rollback {
                        let _ = self.dev.apply_config(&config);
                        continue;
                    }
                    let outcome = match self.dev.validate_config(&config) {
                        Err(rej) => ConfigOutcome::Invalid(rej),
                        Ok(()) => match self.dev.apply_config(&config) {
                            Ok(()) => ConfigOutcome::Applied,
                            Err(e) => ConfigOutcome::Failed(e),
                        },
                    };
                    self.s.config_outcome(self.now, version, outcome);
                }
                Output::NeedBirth => {
                    let (i, st, a) = (self.dev.info(), self.dev.state(), self.dev.alarms());
                    self.s.birth(self.now, i, st, a);
                }
                Output::NeedTelemetry => {
                    let t = self.dev.telemetry();
                    self.s.telemetry(self.now, t);
                }
            }
        }
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now.advance(Duration::from_secs(secs));
        self.s.tick(self.now);
        let (st, a, h) = (self.dev.state(), self.dev.alarms(), self.dev.outputs_healthy());
        self.s.observe(self.now, st, a);
        self.s.health(self.now, h);
        self.drain();
    }

    fn send(&mut self, suffix: &str, payload: &[u8]) {
        let topic = topics::topic(DEV, suffix);
        self.s.handle_message(self.now, &topic, payload);
        self.drain();
    }

    fn cmd(&mut self, v: Value) {
        self.send(topics::CMD_REQ, v.to_string().as_bytes());
    }

    fn desired(&mut self, v: Value) {
        self.send(topics::CONFIG_DESIRED, v.to_string().as_bytes());
    }

    fn take(&mut self, suffix: &str) -> Vec<Publish> {
        let topic = topics::topic(DEV, suffix);
        let (hit, rest): (Vec<_>, Vec<_>) = self.published.drain(..).partition(|p| p.topic == topic);
        self.published = rest;
        hit
    }

    fn responses(&mut self) -> Vec<CommandResponse> {
        self.take(topics::CMD_RES).iter().map(|p| wire::parse(&p.payload).unwrap()).collect()
    }

    fn last_response(&mut self) -> CommandResponse {
        self.responses().pop().expect("a command response")
    }

    fn reports(&mut self) -> Vec<ReportedConfig> {
        self.take(topics::CONFIG_REPORTED).iter().map(|p| wire::parse(&p.payload).unwrap()).collect()
    }

    fn last_report(&mut self) -> ReportedConfig {
        self.reports().pop().expect("a config report")
    }
}

#[test]
fn connect_raises_bdseq_subscribes_and_publishes_birth() {
    let mut h = Harness::new();
    let (will_topic, will) = h.connect();
    assert_eq!(will_topic, "fleet/v1/enc-0001/status");
    let will: wire::Status = wire::parse(&will).unwrap();
    assert_eq!((will.online, will.state, will.bdseq), (false, wire::PresenceState::Lost, 1));
    assert_eq!(h.subscribed, vec!["fleet/v1/enc-0001/config/desired", "fleet/v1/enc-0001/cmd/req"]);
    for suffix in [topics::INFO, topics::STATE, topics::ALARMS, topics::STATUS] {
        let p = h.take(suffix);
        assert_eq!(p.len(), 1, "{suffix}");
        assert!(p[0].retain && p[0].qos == Qos::AtLeastOnce);
    }
    // Every reconnect (and every restart) raises bdseq.
    h.s.disconnected(h.now);
    h.connect();
    let st: wire::Status = wire::parse(&h.take(topics::STATUS)[0].payload).unwrap();
    assert_eq!((st.online, st.bdseq), (true, 2));
    let h2 = Harness::with_store(h.store.clone());
    assert_eq!(h2.s.bdseq(), 2);
}

#[test]
fn shutdown_publishes_explicit_offline() {
    let mut h = Harness::new();
    h.connect();
    h.published.clear();
    h.s.shutdown(h.now);
    h.drain();
    let st: wire::Status = wire::parse(&h.take(topics::STATUS)[0].payload).unwrap();
    assert_eq!((st.online, st.state), (false, wire::PresenceState::Disconnected));
}

#[test]
fn telemetry_follows_interval_and_boost_and_drops_offline() {
    let mut h = Harness::new();
    h.connect();
    assert_eq!(h.take(topics::TELEMETRY).len(), 0);
    h.advance(0);
    assert_eq!(h.take(topics::TELEMETRY).len(), 1, "first telemetry right after connect");
    for _ in 0..9 {
        h.advance(1);
    }
    assert_eq!(h.take(topics::TELEMETRY).len(), 0);
    h.advance(1);
    let t = h.take(topics::TELEMETRY);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].qos, Qos::AtMostOnce);
    h.cmd(json!({"id": "b1", "name": "telemetry.boost", "args": {"interval_s": 1, "duration_s": 5}}));
    assert_eq!(h.last_response().state, CommandState::Succeeded);
    for _ in 0..5 {
        h.advance(1);
    }
    assert_eq!(h.take(topics::TELEMETRY).len(), 5);
    for _ in 0..5 {
        h.advance(1);
    }
    assert!(h.take(topics::TELEMETRY).len() <= 1, "boost ends");
    h.s.disconnected(h.now);
    for _ in 0..30 {
        h.advance(1);
    }
    assert!(h.take(topics::TELEMETRY).is_empty());
    assert_eq!(h.s.stats.telemetry_dropped_offline, 3, "one per missed interval");
}

#[test]
fn device_commands_are_accepted_then_succeed_and_duplicates_get_the_stored_result() {
    let mut h = Harness::new();
    h.connect();
    h.cmd(json!({"id": "c1", "name": "stream.stop", "timeout_s": 10}));
    let r = h.responses();
    assert_eq!(r.iter().map(|r| r.state).collect::<Vec<_>>(), vec![CommandState::Accepted, CommandState::Succeeded]);
    assert!(!h.dev.streaming);
    h.cmd(json!({"id": "c1", "name": "stream.stop"}));
    let dup = h.last_response();
    assert_eq!((dup.state, dup.duplicate), (CommandState::Succeeded, true));
    assert_eq!(h.dev.executed.len(), 1, "not executed twice");
    // The stop raised an alarm: an event and a new snapshot.
    h.advance(0);
    let ev = h.take(topics::EVENT);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].delivery, Delivery::Durable);
    let snap: wire::AlarmsSnapshot = wire::parse(&h.take(topics::ALARMS).pop().unwrap().payload).unwrap();
    assert_eq!(snap.active[0].code, "STREAM_STOPPED");
    h.cmd(json!({"id": "c2", "name": "stream.start"}));
    h.advance(0);
    let ev: wire::Event = wire::parse(&h.take(topics::EVENT)[0].payload).unwrap();
    assert_eq!((ev.alarm.id.as_str(), ev.alarm.state), ("STREAM_STOPPED:encoder", wire::AlarmState::Cleared));
}

#[test]
fn long_running_commands_report_progress_then_their_end() {
    let mut h = Harness::new();
    h.connect();
    let args = json!({"url": "http://10.0.2.102/b.raucb", "sha256": "ab".repeat(32)});
    h.cmd(json!({"id": "fw1", "name": "firmware.update", "args": args, "timeout_s": 3600}));
    assert_eq!(h.last_response().state, CommandState::Accepted);
    h.s.command_progress(h.now, "fw1", json!({"phase": "downloading", "bytes": 1024}));
    h.drain();
    let p = h.last_response();
    assert_eq!(p.state, CommandState::InProgress);
    assert_eq!(p.result, Some(json!({"phase": "downloading", "bytes": 1024})));
    h.s.command_result(h.now, "fw1", Ok(Some(json!({"installed": "b"}))));
    h.drain();
    assert_eq!(h.last_response().state, CommandState::Succeeded);
    // Progress after the end is dropped; other commands keep the 300 s cap.
    h.s.command_progress(h.now, "fw1", json!({"phase": "late"}));
    h.drain();
    assert!(h.responses().is_empty());
    h.cmd(json!({"id": "s1", "name": "stream.stop", "timeout_s": 3600}));
    assert_eq!(h.last_response().state, CommandState::Rejected);
}

/// Issue #15, finding 4: a firmware install outlasts the 30 s default, so
/// for a long-running command `timeout_s` bounds silence, not the total.
#[test]
fn progress_keeps_a_long_running_command_alive_and_silence_times_it_out() {
    let mut h = Harness::new();
    h.connect();
    let args = json!({"url": "http://10.0.2.102/b.raucb", "sha256": "ab".repeat(32)});
    // No timeout_s: the 30 s default window.
    h.cmd(json!({"id": "fw1", "name": "firmware.update", "args": args}));
    assert_eq!(h.last_response().state, CommandState::Accepted);
    for i in 1..=4 {
        h.advance(20);
        h.s.command_progress(h.now, "fw1", json!({"phase": "downloading", "bytes": i}));
        h.drain();
        assert_eq!(h.last_response().state, CommandState::InProgress, "after {} s", i * 20);
    }
    // 80 s since accept, 20 s since the last progress.
    h.advance(20);
    assert!(h.responses().iter().all(|r| r.state != CommandState::TimedOut));
    h.s.command_result(h.now, "fw1", Ok(Some(json!({"installed": "b"}))));
    h.drain();
    assert_eq!(h.last_response().state, CommandState::Succeeded);

    h.cmd(json!({"id": "fw2", "name": "firmware.update", "args": args}));
    assert_eq!(h.last_response().state, CommandState::Accepted);
    h.advance(20);
    h.s.command_progress(h.now, "fw2", json!({"phase": "downloading"}));
    h.drain();
    h.responses();
    h.advance(29);
    assert!(h.responses().is_empty(), "29 s of silence is within the window");
    h.advance(1);
    let r = h.last_response();
    assert_eq!((r.id.as_str(), r.state), ("fw2", CommandState::TimedOut));
    assert!(r.detail.contains("no progress"), "{}", r.detail);
    // A short command's deadline stays fixed at accept.
    h.s.handle_message(h.now, "fleet/v1/enc-0001/cmd/req", br#"{"id":"slow","name":"identify","timeout_s":5}"#);
    while let Some(o) = h.s.poll_output() {
        if let Output::Publish(p) = o {
            h.published.push(p);
        }
    }
    h.advance(3);
    h.s.command_progress(h.now, "slow", json!({}));
    h.drain();
    h.advance(2);
    assert_eq!(h.last_response().state, CommandState::TimedOut);
}

#[test]
fn idempotency_survives_a_restart() {
    let mut h = Harness::new();
    h.connect();
    h.cmd(json!({"id": "r1", "name": "identify", "args": {"duration_s": 5}}));
    assert_eq!(h.last_response().state, CommandState::Succeeded);
    let mut h2 = Harness::with_store(h.store.clone());
    h2.connect();
    h2.cmd(json!({"id": "r1", "name": "identify", "args": {"duration_s": 5}}));
    let r = h2.last_response();
    assert!(r.duplicate);
    assert_eq!(r.result, Some(json!({"identifying_s": 5})));
    assert!(h2.dev.executed.is_empty(), "not run twice");
}

#[test]
fn a_reboot_ends_after_the_restart_once() {
    let mut h = Harness::new();
    h.connect();
    h.cmd(json!({"id": "rb", "name": "reboot"}));
    assert_eq!(h.last_response().state, CommandState::Accepted);
    // The box reboots; the next process reports the end.
    let mut h2 = Harness::with_store(h.store.clone());
    h2.connect();
    h2.s.command_result_after_restart(h2.now, "rb", Ok(Some(json!({"rebooted": true}))));
    h2.drain();
    let r = h2.last_response();
    assert_eq!((r.id.as_str(), r.state), ("rb", CommandState::Succeeded));
    // Reported once: a second report (or a retried request) is a duplicate.
    h2.published.clear();
    h2.s.command_result_after_restart(h2.now, "rb", Err((ReasonCode::Internal, "late".into())));
    h2.drain();
    assert!(h2.published.is_empty());
    h2.cmd(json!({"id": "rb", "name": "reboot"}));
    assert!(h2.last_response().duplicate);
}

#[test]
fn malformed_requests_get_the_right_rejection() {
    let mut h = Harness::new();
    h.connect();
    let cases: Vec<(Vec<u8>, &str, ReasonCode)> = vec![
        (b"{not json".to_vec(), "", ReasonCode::BadRequest),
        (br#"{"id":"u1","name":"stream.start","bogus":1}"#.to_vec(), "u1", ReasonCode::BadRequest),
        (br#"{"id":"t1","name":"stream.start","timeout_s":"ten"}"#.to_vec(), "t1", ReasonCode::BadRequest),
        (br#"{"id":"n1","name":"format.disk"}"#.to_vec(), "n1", ReasonCode::UnknownCommand),
        (br#"{"id":"a1","name":"output.enable","args":{"output":7}}"#.to_vec(), "a1", ReasonCode::InvalidArgs),
        (br#"{"id":"e1","name":"stream.start","expires_at":1000}"#.to_vec(), "e1", ReasonCode::Expired),
        (br#"{"id":"to","name":"stream.start","timeout_s":301}"#.to_vec(), "to", ReasonCode::BadRequest),
        (
            format!(r#"{{"id":"big","name":"identify","args":{{"x":"{}"}}}}"#, "x".repeat(17_000)).into_bytes(),
            "big",
            ReasonCode::PayloadTooLarge,
        ),
    ];
    for (payload, id, reason) in cases {
        h.send(topics::CMD_REQ, &payload);
        let r = h.last_response();
        assert_eq!((r.id.as_str(), r.state, r.reason), (id, CommandState::Rejected, Some(reason)), "{}", r.detail);
    }
    assert!(h.dev.executed.is_empty());
}

#[test]
fn commands_are_rate_limited() {
    let mut h = Harness::new();
    h.connect();
    for i in 0..7 {
        h.cmd(json!({"id": format!("q{i}"), "name": "identify"}));
    }
    let rejected = h.responses().iter().filter(|r| r.reason == Some(ReasonCode::RateLimited)).count();
    assert_eq!(rejected, 2);
    h.advance(1);
    h.cmd(json!({"id": "q5", "name": "identify"}));
    assert_eq!(h.last_response().state, CommandState::Succeeded, "a rate-limited id may be retried");
}

#[test]
fn unfinished_commands_time_out() {
    let mut h = Harness::new();
    h.connect();
    // Feed the request without letting the harness execute it.
    h.s.handle_message(h.now, "fleet/v1/enc-0001/cmd/req", br#"{"id":"slow","name":"identify","timeout_s":5}"#);
    let mut executes = 0;
    while let Some(o) = h.s.poll_output() {
        match o {
            Output::Execute { .. } => executes += 1,
            Output::Publish(p) => h.published.push(p),
            _ => {}
        }
    }
    assert_eq!(executes, 1);
    h.advance(5);
    let r = h.last_response();
    assert_eq!(r.state, CommandState::TimedOut);
    h.s.command_result(h.now, "slow", Ok(None));
    h.drain();
    assert!(h.responses().is_empty(), "late results are ignored");
}

#[test]
fn config_versions_higher_equal_lower_invalid() {
    let mut h = Harness::new();
    h.connect();
    h.desired(json!({"version": 2, "config": {"video": {"bitrate_kbps": 4000}}}));
    let r = h.last_report();
    assert_eq!((r.ac, r.av, r.status, r.running), (200, 2, ConfigStatus::Applied, 2));
    assert_eq!(h.dev.config["video"]["bitrate_kbps"], 4000);
    h.desired(json!({"version": 2, "config": {"video": {"bitrate_kbps": 4000}}}));
    assert_eq!(h.last_report().ac, 200, "equal: the same ack again");
    assert_eq!(h.dev.applied.len(), 1, "equal: not applied again");
    h.desired(json!({"version": 1, "config": {}}));
    let r = h.last_report();
    assert_eq!((r.ac, r.ad.as_str(), r.status, r.running), (409, "stale_version", ConfigStatus::Rejected, 2));
    h.desired(json!({"version": 3, "config": {"video": {"bitrate_kbps": 1}}}));
    let r = h.last_report();
    assert_eq!((r.ac, r.status, r.key.as_deref()), (400, ConfigStatus::Rejected, Some("video.bitrate_kbps")));
    assert_eq!(h.dev.config["video"]["bitrate_kbps"], 4000, "running config untouched");
    h.desired(json!({"version": 4, "config": {}, "extra": true}));
    let r = h.last_report();
    assert_eq!((r.ac, r.av, r.status), (400, 4, ConfigStatus::Rejected));
    assert!(r.ad.contains("unknown field"), "{}", r.ad);
    h.send(topics::CONFIG_DESIRED, format!(r#"{{"version":5,"config":{{"x":"{}"}}}}"#, "x".repeat(70_000)).as_bytes());
    let r = h.last_report();
    assert_eq!((r.ac, r.av, r.status), (413, 5, ConfigStatus::Rejected));
}

#[test]
fn confirmed_config_stays() {
    let mut h = Harness::new();
    h.connect();
    h.desired(json!({"version": 1, "confirm_within_s": 30, "config": {"video": {"bitrate_kbps": 3000}}}));
    assert_eq!(h.last_report().status, ConfigStatus::PendingConfirm);
    assert!(h.s.awaiting_confirm());
    h.advance(10);
    h.cmd(json!({"id": "k1", "name": "config.confirm", "args": {"version": 1}}));
    assert_eq!(h.last_response().state, CommandState::Succeeded);
    assert_eq!(h.last_report().status, ConfigStatus::Applied);
    h.advance(60);
    assert!(h.reports().is_empty());
    assert_eq!(h.dev.config["video"]["bitrate_kbps"], 3000);
    h.cmd(json!({"id": "k2", "name": "config.confirm", "args": {"version": 9}}));
    assert_eq!(h.last_response().reason, Some(ReasonCode::PreconditionFailed));
}

#[test]
fn unconfirmed_config_rolls_back_at_the_deadline() {
    let mut h = Harness::new();
    h.connect();
    h.desired(json!({"version": 1, "confirm_within_s": 30, "config": {"video": {"bitrate_kbps": 3000}}}));
    assert_eq!(h.last_report().status, ConfigStatus::PendingConfirm);
    h.advance(29);
    assert!(h.reports().is_empty());
    h.advance(1);
    let r = h.last_report();
    assert_eq!((r.ac, r.av, r.status, r.ad.as_str(), r.running), (408, 1, ConfigStatus::RolledBack, "confirm_timeout", 0));
    assert_eq!(h.dev.config["video"]["bitrate_kbps"], 2500, "back to the last known good");
    // The retained desired comes back on reconnect: equal, re-ack, no re-apply.
    h.desired(json!({"version": 1, "confirm_within_s": 30, "config": {"video": {"bitrate_kbps": 3000}}}));
    assert_eq!(h.last_report().status, ConfigStatus::RolledBack);
    h.cmd(json!({"id": "late", "name": "config.confirm", "args": {"version": 1}}));
    assert_eq!(h.last_response().reason, Some(ReasonCode::PreconditionFailed));
}

#[test]
fn health_gate_and_apply_failure_roll_back() {
    let mut h = Harness::new();
    h.connect();
    h.desired(json!({"version": 1, "confirm_within_s": 60, "config": {"break_outputs": true}}));
    h.advance(5);
    assert!(h.reports().iter().all(|r| r.status == ConfigStatus::PendingConfirm), "grace period");
    h.advance(5);
    let r = h.last_report();
    assert_eq!((r.ac, r.status), (503, ConfigStatus::RolledBack));
    assert!(h.dev.outputs_healthy());
    h.desired(json!({"version": 2, "config": {"fail_apply": true}}));
    let r = h.last_report();
    assert_eq!((r.ac, r.av, r.status), (500, 2, ConfigStatus::RolledBack));
}

#[test]
fn restart_inside_the_confirm_window_rolls_back() {
    let mut h = Harness::new();
    h.connect();
    h.desired(json!({"version": 1, "confirm_within_s": 60, "config": {"video": {"bitrate_kbps": 3000}}}));
    let store = h.store.clone();
    let mut h2 = Harness::with_store(store);
    assert_eq!(h2.dev.applied.len(), 1, "rollback applied at start");
    assert_eq!(h2.s.running_config_version(), 0);
    h2.connect();
    h2.desired(json!({"version": 1, "confirm_within_s": 60, "config": {"video": {"bitrate_kbps": 3000}}}));
    let r = h2.last_report();
    assert_eq!((r.status, r.ad.as_str()), (ConfigStatus::RolledBack, "restarted_during_confirm"));
}

#[test]
fn foreign_topics_are_ignored() {
    let mut h = Harness::new();
    h.connect();
    h.published.clear();
    h.s.handle_message(h.now, "fleet/v1/enc-0002/cmd/req", br#"{"id":"x","name":"reboot"}"#);
    h.drain();
    assert!(h.published.is_empty());
    assert_eq!(h.s.stats.foreign_messages, 1);
}

/// Hostile input: arbitrary bytes on the two topics a controller writes
/// (commands and desired configuration) never panic the session and never
/// change the running configuration unless they form a valid, newer
/// document. Bounded case counts; PROPTEST_CASES raises them locally.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("name".to_owned()),
                        Just("args".to_owned()),
                        Just("version".to_owned()),
                        Just("config".to_owned()),
                        Just("expires_at".to_owned()),
                        "[a-z_]{1,8}"
                    ],
                    inner,
                    0..5,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_on_command_and_config_topics_never_panic(
            cmd in proptest::collection::vec(any::<u8>(), 0..400),
            desired in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut h = Harness::new();
            h.connect();
            let before = h.dev.config.clone();
            h.send(topics::CMD_REQ, &cmd);
            h.send(topics::CONFIG_DESIRED, &desired);
            prop_assert_eq!(h.dev.config.clone(), before);
        }

        #[test]
        fn structured_garbage_never_panics(cmd in arb_json(), desired in arb_json()) {
            let mut h = Harness::new();
            h.connect();
            h.cmd(cmd);
            h.desired(desired);
            // Every answer the session published is itself a valid wire message.
            for r in h.take(topics::CMD_RES) {
                prop_assert!(wire::parse::<CommandResponse>(&r.payload).is_ok());
            }
        }
    }
}

#[test]
fn thumbnails_go_out_as_is_at_qos_0_and_oversize_ones_are_dropped() {
    let mut h = Harness::new();
    h.s.thumbnail(vec![0xFF, 0xD8, 0xFF, 0xD9]);
    h.drain();
    assert!(h.take(topics::THUMBNAIL).is_empty(), "offline: not queued");
    h.connect();
    assert_eq!(h.dev.thumbnail(), None, "the fake device has no picture");
    h.s.thumbnail(vec![0xFF, 0xD8, 0xFF, 0xD9]);
    h.s.thumbnail(vec![0; topics::MAX_THUMBNAIL + 1]);
    h.drain();
    let sent = h.take(topics::THUMBNAIL);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].payload.as_slice(), sent[0].qos, sent[0].retain), (&[0xFF, 0xD8, 0xFF, 0xD9][..], Qos::AtMostOnce, false));
    assert_eq!((h.s.stats.thumbnails_sent, h.s.stats.oversize_dropped), (1, 1));
}

#[test]
fn a_config_that_cannot_start_is_reported_rolled_back_and_not_applied_again() {
    let mut h = Harness::new();
    h.connect();
    h.desired(json!({"version": 2, "config": {"video": {"bitrate_kbps": 3000}}}));
    h.desired(json!({"version": 3, "config": {"video": {"bitrate_kbps": 4000}, "fleet": {"ignored": true}}}));
    // The box restarts and version 3 does not start; the device runs the
    // local file instead (version 2 is not the last known good one: each
    // plain apply moved it).
    let mut h2 = Harness::with_store(h.store.clone());
    h2.connect();
    let fallback = crate::device::ConfigFallback {
        reason: "no encoder".into(),
        running: Some(json!({"video": {"bitrate_kbps": 900}})),
        running_name: "the local configuration file".into(),
    };
    h2.s.config_fell_back(h2.now, &fallback);
    h2.drain();
    let r = h2.last_report();
    assert_eq!((r.ac, r.av, r.status, r.running), (500, 3, ConfigStatus::RolledBack, 0));
    assert!(r.ad.starts_with("start_failed: no encoder; running the local"), "{}", r.ad);
    // The retained desired version 3 again: the same report, no apply.
    let applied = h2.dev.applied.len();
    h2.desired(json!({"version": 3, "config": {"video": {"bitrate_kbps": 4000}}}));
    assert_eq!(h2.last_report().ac, 500);
    assert_eq!(h2.dev.applied.len(), applied);
    // A newer one is applied.
    h2.desired(json!({"version": 4, "config": {"video": {"bitrate_kbps": 2000}}}));
    let r = h2.last_report();
    assert_eq!((r.ac, r.running), (200, 4));
}
