//! Issue 14, item 4: the fleet link starts first and independently of the
//! media path. A fleet-applied configuration that passes validation but
//! cannot start on this machine (`video.encoder = "nvenc"`: no NVIDIA
//! encoder here) falls back to the last good configuration, then to the
//! file, and says so over MQTT; when nothing can start the agent stays
//! online and managed. The real agent, a real mosquitto, the real
//! `edgectl`, a real libsrt receiver.

#![cfg(test)]

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::{config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, SrtListenerPeer};
use serde_json::{json, Value};

const DEVICE: &str = "fallback-01";
const CONNECT: Duration = Duration::from_secs(30);

fn edgectl(port: u16, args: &[&str]) -> (i32, String) {
    let (code, out, err) = edge_tests::edgectl::run(edge_tests::edgectl::plain(port, 30), args, None);
    (code, out + &err)
}

/// The media part of a configuration streaming to `port`.
fn media(kbps: u32, port: u16) -> String {
    config_toml(DEVICE, kbps, &srt_output("primary", port, 200, None))
}

/// The same, asking for an encoder this machine does not have: it passes
/// validation and fails when the encoder is chosen.
fn unstartable(kbps: u32, port: u16) -> String {
    media(kbps, port).replace("[video]\n", "[video]\nencoder = \"nvenc\"\n")
}

fn fleet_section(port: u16, state: &Path) -> String {
    format!(
        "\n[fleet]\nbroker = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\ndevice_id = \"{DEVICE}\"\nstate_dir = \"{}\"\ntelemetry_interval_s = 1\n",
        state.display()
    )
}

/// A TOML document as the JSON the agent persists.
fn as_json(toml_text: &str) -> Value {
    let v: toml::Value = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}: {toml_text}"));
    serde_json::to_value(v).unwrap()
}

/// The payloads recorded on `fleet/v1/DEVICE/<suffix>`, oldest first.
fn messages(log: &Path, suffix: &str) -> Vec<Value> {
    let topic = format!("fleet/v1/{DEVICE}/{suffix} ");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&topic))
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect()
}

fn online(log: &Path) -> bool {
    messages(log, "status").last().is_some_and(|s| s["online"] == true)
}

/// The active alarm `code`, from the latest retained alarm snapshot.
fn active_alarm(log: &Path, code: &str) -> Option<Value> {
    let last = messages(log, "alarms").into_iter().rev().find(|m| m.get("active").is_some())?;
    last["active"].as_array()?.iter().find(|a| a["code"] == code).cloned()
}

struct Rig {
    dir: tempfile::TempDir,
    state: std::path::PathBuf,
    port: u16,
    _broker: Broker,
    _recorder: edge_tests::ChildGuard,
    log: std::path::PathBuf,
    srt_port: u16,
    _receiver: SrtListenerPeer,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let port = free_tcp_port();
        let broker = Broker::start(dir.path(), port);
        let log = dir.path().join("mqtt.log");
        let recorder = record_all(port, &log);
        let srt_port = free_udp_port();
        let receiver = SrtListenerPeer::start(srt_port, 200, None, &dir.path().join("rx.ts"));
        Rig { dir, state, port, _broker: broker, _recorder: recorder, log, srt_port, _receiver: receiver }
    }

    fn push(&self, name: &str, text: &str, version: u32) -> (i32, String) {
        let file = self.dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        edgectl(self.port, &["config", "push", DEVICE, file.to_str().unwrap(), "--version", &version.to_string()])
    }

    fn wait_online(&self, agent: &AgentProc) {
        wait_for("the device online", CONNECT, || online(&self.log).then_some(()));
        wait_for("the status file", CONNECT, || agent.status());
    }
}

#[test]
fn a_fleet_config_that_cannot_start_falls_back_to_the_last_good_one_and_stays_managed() {
    let rig = Rig::new();
    // What the agent would have persisted after the fleet applied version 7
    // on a box that had the encoder, and after the earlier configuration
    // (1200 kbit/s) streamed: the applied document, the session's record,
    // the last good document.
    let bad = as_json(&unstartable(1500, rig.srt_port));
    let last_good = as_json(&media(1200, rig.srt_port));
    std::fs::write(rig.state.join("applied-config.json"), serde_json::to_vec(&bad).unwrap()).unwrap();
    std::fs::write(rig.state.join("last-good-config.json"), serde_json::to_vec(&last_good).unwrap()).unwrap();
    let session_record = json!({
        "last_desired": 7, "running": 7, "good_version": 7, "good_config": bad, "pending": null,
        "last_report": {"ac": 200, "av": 7, "ad": "applied", "status": "applied", "key": null},
    });
    // The fleet session keeps its record under `state/` in the state directory.
    std::fs::create_dir_all(rig.state.join("state")).unwrap();
    std::fs::write(rig.state.join("state/config.json"), serde_json::to_vec(&session_record).unwrap()).unwrap();

    let started = Instant::now();
    let file = media(900, rig.srt_port) + &fleet_section(rig.port, &rig.state);
    let agent = AgentProc::start(rig.dir.path(), &file);
    rig.wait_online(&agent);
    agent.wait_output_state("primary", "connected", CONNECT);
    let streaming = started.elapsed();
    let s = wait_for("the start to settle", CONNECT, || agent.status().filter(|s| s["start"]["settled"] == true));
    assert_eq!(s["start"]["running"], "last-good", "{s}");
    assert_eq!(s["start"]["failures"][0]["config"], "fleet", "{s}");
    assert!(s["start"]["failures"][0]["error"].as_str().unwrap().contains("nv"), "the reason names the encoder: {s}");
    assert_eq!(s["streaming"], true, "{s}");
    println!("streaming on the last good configuration {:.1} s after start", streaming.as_secs_f64());
    record("config_fallback", "fallback_start_to_streaming_s", streaming.as_secs_f64());

    // The fleet is told: the alarm, and the reported config says version 7
    // was rolled back at start, why, and that version 7 no longer runs.
    let alarm = wait_for("CONFIG_FALLBACK raised", CONNECT, || active_alarm(&rig.log, "CONFIG_FALLBACK"));
    assert_eq!(alarm["severity"], "major", "{alarm}");
    let msg = alarm["message"].as_str().unwrap();
    assert!(msg.contains("fleet-applied") && msg.contains("last good"), "{alarm}");
    let reported = wait_for("config/reported start_failed", CONNECT, || {
        messages(&rig.log, "config/reported").into_iter().rev().find(|r| r["av"] == 7 && r["status"] == "rolled_back")
    });
    assert_eq!(reported["ac"], 500, "{reported}");
    assert_eq!(reported["running"], 0, "{reported}");
    let ad = reported["ad"].as_str().unwrap();
    assert!(ad.starts_with("start_failed:") && ad.contains("last good"), "{reported}");
    let (code, out) = edgectl(rig.port, &["status", DEVICE]);
    println!("edgectl status ({code}):\n{out}");
    assert!(out.contains("start_failed"), "{out}");

    // A good configuration pushed now is applied; the alarm clears.
    let (code, out) = rig.push("v8.toml", &media(2000, rig.srt_port), 8);
    assert_eq!(code, 0, "good push: {out}\n{}", agent.log());
    let s = wait_for("the fleet config running", CONNECT, || agent.status().filter(|s| s["start"]["running"] == "fleet"));
    assert!(s["start"]["failures"].as_array().unwrap().is_empty(), "{s}");
    agent.wait_output_state("primary", "connected", CONNECT);
    wait_for("CONFIG_FALLBACK cleared", CONNECT, || active_alarm(&rig.log, "CONFIG_FALLBACK").is_none().then_some(()));
}

#[test]
fn with_nothing_startable_the_agent_stays_online_and_a_good_push_starts_it() {
    let rig = Rig::new();
    // The file itself asks for an encoder this machine lacks: a valid file
    // (no exit 78) that cannot start.
    let file = unstartable(900, rig.srt_port) + &fleet_section(rig.port, &rig.state);
    let mut agent = AgentProc::start(rig.dir.path(), &file);
    rig.wait_online(&agent);
    let s = wait_for("the start to settle", CONNECT, || agent.status().filter(|s| s["start"]["settled"] == true));
    assert_eq!(s["start"]["running"], Value::Null, "{s}");
    assert_eq!(s["start"]["failures"][0]["config"], "file", "{s}");
    assert_eq!(s["streaming"], false, "{s}");
    let alarm = wait_for("MEDIA_START_FAILED raised", CONNECT, || active_alarm(&rig.log, "MEDIA_START_FAILED"));
    assert_eq!(alarm["severity"], "critical", "{alarm}");
    assert!(agent.proc.wait_timeout(Duration::from_millis(100)).is_none(), "the agent exited:\n{}", agent.log());
    // Commands that need the media path say why they cannot run.
    let (code, out) = edgectl(rig.port, &["cmd", DEVICE, "stream.start"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("not running"), "{out}");

    // The fleet pushes a configuration that can start: it streams.
    let pushed = Instant::now();
    let (code, out) = rig.push("v1.toml", &media(1500, rig.srt_port), 1);
    assert_eq!(code, 0, "good push: {out}\n{}", agent.log());
    agent.wait_output_state("primary", "connected", CONNECT);
    let s = wait_for("streaming", CONNECT, || agent.status().filter(|s| s["streaming"] == true));
    assert_eq!(s["start"]["running"], "fleet", "{s}");
    record("config_fallback", "push_to_streaming_from_nothing_s", pushed.elapsed().as_secs_f64());
    wait_for("MEDIA_START_FAILED cleared", CONNECT, || active_alarm(&rig.log, "MEDIA_START_FAILED").is_none().then_some(()));
    // The pushed configuration is the one persisted for the next start.
    let saved: Value = serde_json::from_slice(&std::fs::read(rig.state.join("applied-config.json")).unwrap()).unwrap();
    assert_eq!(saved["video"]["bitrate_kbps"], 1500, "{saved}");
    // Once it has streamed a few seconds it is the last good one too.
    let last_good = wait_for("the last good configuration kept", CONNECT, || {
        std::fs::read(rig.state.join("last-good-config.json")).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    });
    assert_eq!(last_good, saved);
    record("config_fallback", "push_to_last_good_kept_s", pushed.elapsed().as_secs_f64());
    agent.stop();
}
