//! Faults venues actually have, injected between the agent and real libsrt
//! receivers by the impairment relay; each test states its figure.

#![cfg(test)]

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::relay::{ImpairmentConfig, Loss, Relay};
use edge_tests::{config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, SrtListenerPeer};
use ts_tools::TsAnalyzer;

const CONNECT: Duration = Duration::from_secs(20);

fn analyze(file: &Path) -> TsAnalyzer {
    let mut a = TsAnalyzer::new();
    a.push(&std::fs::read(file).unwrap_or_default());
    a
}

/// Sum of a counter over all of srt-live-transmit's JSON stats lines (zero
/// stays zero whether the lines are cumulative or per interval).
fn receiver_sum(peer: &SrtListenerPeer, section: &str, key: &str) -> u64 {
    std::fs::read_to_string(&peer.stats)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v[section][key].as_u64())
        .sum()
}

/// SRT through `loss` in both directions and `one_way` delay each way
/// (RTT = 2 × one_way), latency ≥ 4 × RTT: every TS packet must arrive.
fn srt_under_loss(test: &str, loss: f64, one_way: Duration, latency_ms: u32) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let listener = SrtListenerPeer::start(port, latency_ms, None, &dir.path().join("rx.ts"));
    let path = |seed| ImpairmentConfig::none().with_loss(Loss::Random { probability: loss }).with_delay(one_way).with_seed(seed);
    let relay = Relay::start(format!("127.0.0.1:{port}").parse().unwrap(), path(1), path(2)).unwrap();
    let outputs = srt_output("primary", relay.local_addr().port(), latency_ms, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml(test, 3000, &outputs));
    agent.wait_output_state("primary", "connected", CONNECT);
    // About 10 s at ~3.8 Mbit/s: some 3,600 packets through the loss.
    wait_for("10 s of TS through the lossy path", Duration::from_secs(60), || (listener.received() > 4_500_000).then_some(()));
    let srt = agent.output("primary").unwrap()["srt"].clone();
    std::thread::sleep(Duration::from_millis(u64::from(latency_ms) * 2)); // let the receiver play out
    agent.stop();
    let ts = analyze(&listener.output);
    let sent = srt["packets_sent"].as_f64().unwrap_or(0.0);
    let retx = srt["packets_retransmitted"].as_f64().unwrap_or(0.0);
    let dropped = receiver_sum(&listener, "recv", "packetsDropped");
    let relay_stats = relay.stats();
    record(test, "forward packets lost by the relay", relay_stats.forward.dropped_loss);
    record(test, "unrecovered at the receiver (libsrt drops)", dropped);
    record(test, "TS continuity errors at the receiver", ts.cc_errors());
    record(test, "retransmission overhead %", format!("{:.1}", 100.0 * retx / sent.max(1.0)));
    assert!(relay_stats.forward.dropped_loss > 0, "the relay lost nothing: not a loss test");
    assert_eq!(dropped, 0, "libsrt receiver dropped packets it could not recover");
    assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "TS damaged at the receiver");
}

/// SRT latency for the loss scenarios: 1000 ms, which is 20 to 50 × the
/// RTT (the issue asks for at least 4 ×) and half MediaConnect's default
/// `MinLatency` of 2000 ms. With 250 ms, a CI machine losing 6-16 % of its
/// CPU time to steal let a few retransmissions miss their play time (1 and
/// 2 unrecovered of some 3,600 in one run), which measures the machine,
/// not the recovery.
const LOSS_LATENCY_MS: u32 = 1000;

#[test]
fn srt_1_percent_loss_20ms_rtt_recovers_everything() {
    srt_under_loss("srt_loss_1pct_rtt20", 0.01, Duration::from_millis(10), LOSS_LATENCY_MS);
}

#[test]
fn srt_2_percent_loss_30ms_rtt_recovers_everything() {
    srt_under_loss("srt_loss_2pct_rtt30", 0.02, Duration::from_millis(15), LOSS_LATENCY_MS);
}

#[test]
fn srt_5_percent_loss_50ms_rtt_recovers_everything() {
    srt_under_loss("srt_loss_5pct_rtt50", 0.05, Duration::from_millis(25), LOSS_LATENCY_MS);
}

/// One path goes dark for 10 s, a hundred times in a row by default;
/// EDGE_OUTAGE_CYCLES sets the count (scripts/test.sh, so CI, runs 30, about
/// 6 minutes; the long local run keeps 100, about 20). The other path must
/// receive every packet and the dark path must come back after each outage.
///
/// Both paths use 1000 ms of SRT latency (MediaConnect's floor is higher
/// still): this test is about the paths' independence over 20 minutes, and
/// on a 2-core CI machine that runs encoders beside it, 200 ms can let a
/// descheduled receiver drop a late packet, which says nothing about the
/// primary's outages.
#[test]
fn hundred_outages_of_one_path_leave_the_other_untouched() {
    const LATENCY_MS: u32 = 1000;
    let cycles: u32 = std::env::var("EDGE_OUTAGE_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let primary = SrtListenerPeer::start(p1, LATENCY_MS, None, &dir.path().join("p.ts"));
    let backup = SrtListenerPeer::start(p2, LATENCY_MS, None, &dir.path().join("b.ts"));
    let none = ImpairmentConfig::none();
    let relay = Relay::start(format!("127.0.0.1:{p1}").parse().unwrap(), none, none).unwrap();
    let outputs = srt_output("primary", relay.local_addr().port(), LATENCY_MS, None) + &srt_output("backup", p2, LATENCY_MS, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml("outage-100", 800, &outputs));
    agent.wait_output_state("primary", "connected", CONNECT);
    agent.wait_output_state("backup", "connected", CONNECT);
    let mut survived = 0;
    let mut slowest_return = Duration::ZERO;
    for i in 0..cycles {
        let connects = agent.output("primary").unwrap()["connects"].as_u64().unwrap_or(0);
        relay.outage_for(Duration::from_secs(10));
        // The outage is the scenario: this wait is its length, not a sync.
        std::thread::sleep(Duration::from_secs(10));
        let back = Instant::now();
        wait_for(&format!("primary back after outage {i}"), Duration::from_secs(30), || {
            agent.output("primary").filter(|o| o["state"] == "connected" && o["connects"].as_u64() > Some(connects))
        });
        slowest_return = slowest_return.max(back.elapsed());
        survived += 1;
        let b = agent.output("backup").unwrap();
        assert_eq!(b["connects"], 1, "backup reconnected during outage {i}: {b}");
    }
    let status = agent.status().unwrap();
    let backup_status = agent.output("backup").unwrap();
    let sent_before = backup_status["chunks_sent"].as_u64().unwrap_or(0);
    // Everything counted so far has played out at the receiver (> latency).
    std::thread::sleep(Duration::from_millis(u64::from(LATENCY_MS) * 3));
    agent.stop();
    let ts = analyze(&backup.output);
    let received_chunks = backup.received() / 1316;
    record("outage_x100", "outages survived by the primary", format!("{survived}/{cycles}"));
    record("outage_x100", "slowest primary return after an outage (ms)", slowest_return.as_millis());
    record("outage_x100", "backup TS continuity errors", ts.cc_errors());
    record("outage_x100", "backup chunks received / sent", format!("{received_chunks}/{sent_before}+"));
    record("outage_x100", "encoder pipeline restarts", status["pipeline_restarts"].clone());
    assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "backup damaged by the primary's outages; agent status {status}");
    assert!(received_chunks >= sent_before, "backup lost chunks: {received_chunks} < {sent_before}; {backup_status}");
    drop(primary);
}

/// The whole box freezes for a moment (a VM paused, a memory or thermal
/// stall), emulated by stopping the agent and both receivers with one
/// `kill`. That is not a failure, and the agent must not act as if it were:
/// no pipeline rebuild (5 s without TS otherwise means a stuck encoder), no
/// slate (the input watchdog would otherwise blame the input), no chunk
/// dropped as stale (it would otherwise judge age by the wall clock), and
/// the TS on both receivers unbroken.
#[test]
fn host_freezes_are_not_mistaken_for_failures() {
    const LATENCY_MS: u32 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let primary = SrtListenerPeer::start(p1, LATENCY_MS, None, &dir.path().join("p.ts"));
    let backup = SrtListenerPeer::start(p2, LATENCY_MS, None, &dir.path().join("b.ts"));
    let outputs = srt_output("primary", p1, LATENCY_MS, None) + &srt_output("backup", p2, LATENCY_MS, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml("freeze-01", 800, &outputs));
    agent.wait_output_state("primary", "connected", CONNECT);
    agent.wait_output_state("backup", "connected", CONNECT);
    let pids = [agent.proc.pid(), primary.proc.pid(), backup.proc.pid()].map(|p| p.to_string());
    let kill = |sig: &str| {
        let ok = std::process::Command::new("kill").arg(format!("-{sig}")).args(&pids).status().is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pids:?} failed");
    };
    let sent = |name: &str| agent.output(name).and_then(|o| o["chunks_sent"].as_u64()).unwrap_or(0);
    // Shorter than a second, past the libsrt drop threshold, past the 5 s
    // stall timeout.
    for freeze_ms in [700, 1500, 6500] {
        let before = (sent("primary"), sent("backup"));
        kill("STOP");
        // The freeze is the scenario: this wait is its length, not a sync.
        std::thread::sleep(Duration::from_millis(freeze_ms));
        kill("CONT");
        wait_for(&format!("both outputs sending after the {freeze_ms} ms freeze"), Duration::from_secs(20), || {
            (sent("primary") > before.0 + 100 && sent("backup") > before.1 + 100).then_some(())
        });
    }
    let status = agent.status().unwrap();
    // Everything counted so far has played out at the receivers (> latency).
    std::thread::sleep(Duration::from_millis(u64::from(LATENCY_MS) * 3));
    agent.stop();
    let (p, b) = (analyze(&primary.output), analyze(&backup.output));
    let outs = status["outputs"].as_array().cloned().unwrap_or_default();
    let stale: Vec<_> = outs.iter().map(|o| o["dropped_stale"].as_u64().unwrap_or(u64::MAX)).collect();
    record("host_freezes", "freezes (ms)", "700, 1500, 6500");
    record("host_freezes", "TS continuity errors primary / backup", format!("{} / {}", p.cc_errors(), b.cc_errors()));
    record("host_freezes", "pipeline restarts", status["pipeline_restarts"].clone());
    record("host_freezes", "input signal losses", status["input"]["losses"].clone());
    record("host_freezes", "chunks dropped as stale", format!("{stale:?}"));
    assert_eq!(status["pipeline_restarts"], 0, "a freeze rebuilt the pipeline: {status}");
    assert_eq!(status["input"]["losses"], 0, "a freeze put the slate on air: {status}");
    assert_eq!(stale, [0, 0], "a freeze made queued chunks stale: {status}");
    assert_eq!((p.sync_errors, p.cc_errors(), b.sync_errors, b.cc_errors()), (0, 0, 0, 0), "TS broken by a freeze: {status}");
}

/// Three bad receivers at once — one refuses (nothing listens), one resets
/// (killed and restarted), one accepts then stalls (SIGSTOP) — beside one
/// healthy backup, which must not notice.
#[test]
fn refusing_resetting_and_stalling_receivers_do_not_disturb_the_healthy_one() {
    let dir = tempfile::tempdir().unwrap();
    let (refuse, reset, stall, good) = (free_udp_port(), free_udp_port(), free_udp_port(), free_udp_port());
    let mut resetting = SrtListenerPeer::start(reset, 200, None, &dir.path().join("reset0.ts"));
    let stalling = SrtListenerPeer::start(stall, 200, None, &dir.path().join("stall.ts"));
    let healthy = SrtListenerPeer::start(good, 200, None, &dir.path().join("good.ts"));
    let outputs = srt_output("refuse", refuse, 200, None)
        + &srt_output("reset", reset, 200, None)
        + &srt_output("stall", stall, 200, None)
        + &srt_output("good", good, 200, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml("hostile-01", 1200, &outputs));
    for name in ["reset", "stall", "good"] {
        agent.wait_output_state(name, "connected", CONNECT);
    }
    stalling.proc.signal("STOP"); // accepts, then never reads or acknowledges again
    for round in 1..=4 {
        let connects = agent.output("reset").unwrap()["connects"].as_u64().unwrap_or(0);
        drop(resetting);
        resetting = SrtListenerPeer::start(reset, 200, None, &dir.path().join(format!("reset{round}.ts")));
        wait_for("reset output to reconnect", Duration::from_secs(20), || {
            agent.output("reset").filter(|o| o["connects"].as_u64() > Some(connects))
        });
    }
    wait_for("stalled output to be declared broken", Duration::from_secs(20), || {
        agent.output("stall").filter(|o| o["state"] != "connected")
    });
    let refuse_status = agent.output("refuse").unwrap();
    stalling.proc.signal("CONT");
    let status = agent.status().unwrap();
    agent.stop();
    assert_eq!(status["pipeline_restarts"], 0, "the encoder was disturbed: {status}");
    assert_ne!(refuse_status["state"], "connected");
    assert!(refuse_status["last_error"].as_str().unwrap_or("").contains("timed out"), "{refuse_status}");
    let ts = analyze(&healthy.output);
    record("hostile_receivers", "healthy output TS continuity errors", ts.cc_errors());
    record("hostile_receivers", "healthy output queue drops", status["outputs"][3]["dropped_queue_full"].clone());
    assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0));
    assert_eq!(status["outputs"][3]["dropped_queue_full"], 0);
    assert_eq!(status["outputs"][3]["connects"], 1);
}

/// Dual outputs and fleet telemetry (every second, to a real broker) for
/// EDGE_SOAK_SECONDS (default 180; 1800 for the local 30-minute soak):
/// memory, descriptors and threads must stay flat.
#[test]
fn soak_dual_outputs_memory_fds_threads_stay_flat() {
    let seconds: u64 = std::env::var("EDGE_SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(180);
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let _primary = SrtListenerPeer::start(p1, 200, None, &dir.path().join("p.ts"));
    let _backup = SrtListenerPeer::start(p2, 200, None, &dir.path().join("b.ts"));
    let outputs = srt_output("primary", p1, 200, None) + &srt_output("backup", p2, 200, None);
    // Fleet telemetry every second to a real broker, as on a managed box.
    let port = edge_tests::broker::free_tcp_port();
    let _broker = edge_tests::broker::Broker::start(dir.path(), port);
    let fleet = format!(
        "\n[fleet]\nbroker = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\ndevice_id = \"soak-01\"\nstate_dir = \"{}\"\ntelemetry_interval_s = 1\n",
        dir.path().join("state").display()
    );
    let mut agent = AgentProc::start(dir.path(), &(config_toml("soak-01", 1500, &outputs) + &fleet));
    agent.wait_output_state("primary", "connected", CONNECT);
    agent.wait_output_state("backup", "connected", CONNECT);
    let pid = agent.proc.pid();
    // Warm-up: GStreamer and libsrt allocate their pools in the first seconds.
    std::thread::sleep(Duration::from_secs(20));
    let start = Instant::now();
    let first = edge_tests::proc_usage(pid);
    let mut samples = vec![first];
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(10)); // the sampling period of the soak
        samples.push(edge_tests::proc_usage(pid));
    }
    let last = *samples.last().unwrap();
    let max_rss = samples.iter().map(|s| s.0).max().unwrap_or(0);
    agent.stop();
    let growth = 100.0 * (last.0 as f64 - first.0 as f64) / first.0 as f64;
    record("soak", "duration s", seconds);
    record("soak", "RSS kB start -> end (max)", format!("{} -> {} ({max_rss})", first.0, last.0));
    record("soak", "RSS growth %", format!("{growth:.1}"));
    // A descriptor or thread that lives for a moment (the status file's
    // temporary, an MQTT publish) can land in any one sample, so a leak is
    // a rise of the floor: the fewest seen early against the fewest late.
    let third = (samples.len() / 3).max(1);
    let floor = |range: &[(u64, usize, u64)], f: fn(&(u64, usize, u64)) -> u64| range.iter().map(f).min().unwrap_or(0);
    let (early, late) = (&samples[..third], &samples[samples.len() - third..]);
    let (fds, threads) = ((floor(early, |s| s.1 as u64), floor(late, |s| s.1 as u64)), (floor(early, |s| s.2), floor(late, |s| s.2)));
    record("soak", "fds start -> end", format!("{} -> {} (floor {} -> {})", first.1, last.1, fds.0, fds.1));
    record("soak", "threads start -> end", format!("{} -> {} (floor {} -> {})", first.2, last.2, threads.0, threads.1));
    assert!(growth < 10.0, "memory grew {growth:.1} % over {seconds} s: {samples:?}");
    assert!(fds.1 <= fds.0, "file descriptors leak: floor {} -> {}: {samples:?}", fds.0, fds.1);
    assert!(threads.1 <= threads.0, "threads leak: floor {} -> {}: {samples:?}", threads.0, threads.1);
}
