//! SRT listener outputs against real callers: libsrt's srt-live-transmit in
//! caller mode stands in for a MediaLive `SRT_CALLER` input and a
//! MediaConnect `srt-caller` source; a TS checker judges the streams.

#![cfg(test)]

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::{config_toml, free_udp_port, record, srt_listener_output, wait_for, AgentProc, SrtCallerPeer};
use ts_tools::TsAnalyzer;

const PASS: &str = "correct-horse-battery-staple";
const STREAM_ID: &str = "venue-backup";
const LATENCY_MS: u32 = 200;
const CONNECT: Duration = Duration::from_secs(15);
const TEST: &str = "srt_listener";

fn analyze(file: &Path) -> TsAnalyzer {
    let mut a = TsAnalyzer::new();
    a.push(&std::fs::read(file).unwrap_or_default());
    a
}

/// Waits until `peer` has received more than `bytes` in all.
fn wait_received(what: &str, peer: &SrtCallerPeer, bytes: u64) {
    wait_for(what, CONNECT, || (peer.received() > bytes).then_some(()));
}

/// The output's `connects` counter from the status file.
fn connects(agent: &AgentProc, name: &str) -> u64 {
    agent.output(name).and_then(|o| o["connects"].as_u64()).unwrap_or(0)
}

/// Two listener outputs, each pulled by its own caller. On the primary: a
/// caller killed and started again, a wrong passphrase, a caller that
/// leaves cleanly, a newer caller replacing the current one. The backup,
/// with a stream id, refuses a caller sending another id. Throughout, the
/// backup's caller sees one unbroken stream.
#[test]
fn listener_outputs_serve_callers_reconnect_and_refuse_without_disturbing_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let (p1, p2) = (free_udp_port(), free_udp_port());
    // A third output's port is taken by another socket until later.
    let squatter = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p3 = squatter.local_addr().unwrap().port();
    let outputs = srt_listener_output("primary", p1, LATENCY_MS, Some((PASS, 16)), None)
        + &srt_listener_output("backup", p2, LATENCY_MS, Some((PASS, 16)), Some(STREAM_ID))
        + &srt_listener_output("taken", p3, LATENCY_MS, None, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml("listener-01", 1500, &outputs));

    // No caller yet: both wait, and the time without one counts towards
    // OUTPUT_DOWN like a caller's outage.
    for name in ["primary", "backup"] {
        let o = agent.wait_output_state(name, "listening", CONNECT);
        assert_eq!(o["connects"], 0, "{name}: {o}");
    }
    wait_for("down_for_s to count while listening", CONNECT, || {
        agent.output("primary").filter(|o| o["down_for_s"].as_f64().unwrap_or(0.0) >= 1.0)
    });
    // A port it cannot have is that output's error, retried until it is free.
    let err = wait_for("the taken port to be reported", CONNECT, || {
        agent.output("taken")?["last_error"].as_str().filter(|e| e.contains("cannot listen on")).map(str::to_owned)
    });
    assert!(err.contains(&p3.to_string()), "{err}");
    drop(squatter);
    agent.wait_output_state("taken", "listening", CONNECT);

    let a1 = SrtCallerPeer::start(p1, LATENCY_MS, Some((PASS, 16)), None, &file("a1.ts"));
    let backup = SrtCallerPeer::start(p2, LATENCY_MS, Some((PASS, 16)), Some(STREAM_ID), &file("backup.ts"));
    agent.wait_output_state("primary", "connected", CONNECT);
    agent.wait_output_state("backup", "connected", CONNECT);
    wait_received("primary caller to receive", &a1, 200_000);
    wait_received("backup caller to receive", &backup, 200_000);
    // Same libsrt statistics as a caller output.
    let o = wait_for("primary's SRT statistics", CONNECT, || {
        agent.output("primary").filter(|o| o["srt"]["packets_sent"].as_i64().unwrap_or(0) > 0)
    });
    assert_eq!(o["srt"]["negotiated_latency_ms"], LATENCY_MS, "{o}");
    assert_eq!(o["down_for_s"], 0.0, "{o}");

    // A wrong passphrase: libsrt refuses the handshake, the caller gets
    // nothing and the current caller keeps its stream.
    let mut wrong = SrtCallerPeer::start(p1, LATENCY_MS, Some(("a-different-passphrase", 16)), None, &file("wrong.ts"));
    assert!(wrong.proc.wait_timeout(CONNECT).is_some(), "the refused caller did not give up");
    assert_eq!(wrong.received(), 0, "a caller with the wrong passphrase received data");
    let at = a1.received();
    wait_received("primary caller to keep receiving", &a1, at + 100_000);
    assert_eq!(connects(&agent, "primary"), 1, "the refused caller must not replace the current one");

    // Another stream id on the backup: accepted by libsrt, refused and
    // closed by the output, named in its status; the backup caller stays.
    let mut other_id = SrtCallerPeer::start(p2, LATENCY_MS, Some((PASS, 16)), Some("someone-else"), &file("other-id.ts"));
    let err = wait_for("backup to report the refused stream id", CONNECT, || {
        agent.output("backup")?["last_error"].as_str().filter(|e| e.contains("stream id")).map(str::to_owned)
    });
    assert!(err.contains("someone-else"), "{err}");
    assert!(other_id.proc.wait_timeout(CONNECT).is_some(), "the refused caller was not closed");
    assert_eq!(other_id.received(), 0, "a caller with another stream id received data");

    // The caller dies (SIGKILL: no SRT shutdown, as with a cut cable) and
    // dials again: the new caller replaces the dead session at once
    // instead of waiting for libsrt's idle timeout.
    drop(a1);
    let redial = Instant::now();
    let mut a2 = SrtCallerPeer::start(p1, LATENCY_MS, Some((PASS, 16)), None, &file("a2.ts"));
    wait_for("the restarted caller to receive", CONNECT, || (a2.received() > 0).then_some(()));
    let reconnect_s = redial.elapsed().as_secs_f64();
    record(TEST, "reconnect_after_caller_restart_s", format!("{reconnect_s:.2}"));
    assert!(reconnect_s < 3.0, "the restarted caller waited {reconnect_s:.2} s for data");
    wait_received("the restarted caller to keep receiving", &a2, 200_000);
    assert_eq!(connects(&agent, "primary"), 2);

    // A newer caller replaces the current one (one caller at a time).
    let a3 = SrtCallerPeer::start(p1, LATENCY_MS, Some((PASS, 16)), None, &file("a3.ts"));
    wait_received("the newer caller to receive", &a3, 100_000);
    assert!(a2.proc.wait_timeout(CONNECT).is_some(), "the replaced caller was not closed");
    let o = agent.output("primary").unwrap();
    assert_eq!((o["state"].as_str(), o["connects"].as_u64()), (Some("connected"), Some(3)), "{o}");

    // The caller leaves cleanly: the output waits for the next one.
    let left = Instant::now();
    a3.proc.signal("INT");
    agent.wait_output_state("primary", "listening", CONNECT);
    record(TEST, "listening_after_caller_left_s", format!("{:.2}", left.elapsed().as_secs_f64()));
    let at = backup.received();
    wait_received("backup to flow while the primary has no caller", &backup, at + 200_000);
    let o = agent.output("primary").unwrap();
    assert!(o["last_error"].as_str().is_some_and(|e| e.contains("left")), "{o}");

    let b = agent.output("backup").unwrap();
    assert_eq!((b["state"].as_str(), b["connects"].as_u64()), (Some("connected"), Some(1)), "backup was disturbed: {b}");
    agent.stop();
    let log = agent.log();
    assert!(!log.contains(PASS), "the passphrase leaked into the log");
    assert!(log.contains("SRT caller replaced by a newer one"), "{log}");

    let ts = analyze(&backup.output);
    record(TEST, "backup_cc_errors", ts.cc_errors());
    record(TEST, "backup_ts_packets", ts.packets);
    assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "backup TS damaged by what happened on the primary");
    assert!(ts.packets > 2_000, "backup received only {} TS packets", ts.packets);
    let ts = analyze(&file("a2.ts"));
    assert_eq!(ts.sync_errors, 0, "the restarted caller's TS is not aligned");
}
