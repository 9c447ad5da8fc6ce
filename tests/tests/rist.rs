//! RIST simple-profile output against a real RIST receiver: librist's
//! `ristreceiver` (rist-tools), a different implementation from the
//! agent's GStreamer `ristsink`, behind the impairment relay at 2 % loss
//! (`docs/rist.md`). Judged by the TS the receiver hands on: no continuity
//! error after the first second means every lost packet was recovered.

#![cfg(test)]

use std::time::{Duration, Instant};

use edge_tests::relay::{ImpairmentConfig, Loss};
use edge_tests::rist::{rist_output, start_rist_relays, RistReceiver};
use edge_tests::{config_toml, record, wait_for, AgentProc};
use ts_tools::TsAnalyzer;

const TEST: &str = "rist";
const BUFFER_MS: u32 = 1000;
const LOSS: f64 = 0.02;
/// How long the stream runs through the lossy relay once the receiver
/// reports: about 4,000 RTP packets at the test's rate, so some 80 losses.
const RUN: Duration = Duration::from_secs(20);

#[test]
fn rist_recovers_every_packet_at_two_percent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let rx = RistReceiver::start(BUFFER_MS, &dir.path().join("ristreceiver.log"));
    let up = std::net::SocketAddr::from(([127, 0, 0, 1], rx.port));
    // 2 % on the media path, and 2 % each way on RTCP too: lost NACKs
    // must be asked again, lost retransmissions resent again.
    let lossy = |seed| ImpairmentConfig::NONE.with_loss(Loss::Random { probability: LOSS }).with_seed(seed);
    let [rtp, rtcp] = start_rist_relays(up, lossy(16), lossy(17), lossy(18)).unwrap();
    let port = rtp.local_addr().port();

    let cfg = config_toml("rist-01", 2000, &rist_output("mc-rist", port, BUFFER_MS));
    let mut agent = AgentProc::start(dir.path(), &cfg);
    let connected = agent.wait_output_state("mc-rist", "connected", Duration::from_secs(20));
    assert_eq!(connected["rist"]["address"], format!("127.0.0.1:{port}"), "{connected}");
    wait_for("the receiver to hand on TS", Duration::from_secs(10), || (rx.received() > 0).then_some(()));

    let before = rtp.stats().forward;
    // The measured run: the agent must not exit meanwhile.
    if let Some(st) = agent.proc.wait_timeout(RUN) {
        panic!("agent exited: {st}\n{}", agent.log());
    }
    let out = agent.output("mc-rist").unwrap_or_else(|| panic!("no status for mc-rist\n{}", agent.log()));
    let fwd = rtp.stats().forward;
    let (rtcp_stats, cumulative) = (rtcp.stats(), rx.cumulative());
    // Losses in the last round trip before the sender stops cannot be
    // recovered (nobody is left to resend): judge what the receiver handed
    // on while the sender was still there, which lags the sender by the
    // buffer, so every packet in it had its full recovery window.
    let sender_stops = Instant::now();
    agent.stop();
    let trouble = rx.trouble();
    let flow_changes = rx.flow_changes();
    let datagrams = rx.stop();

    let first = datagrams.first().map(|(t, _)| *t).unwrap_or_else(|| panic!("the receiver handed on nothing"));
    let mut ts = TsAnalyzer::new();
    let judged = |t: &Instant| t.duration_since(first) >= Duration::from_secs(1) && *t < sender_stops;
    for (_, d) in datagrams.iter().filter(|(t, _)| judged(t)) {
        ts.push(d);
    }
    let mut tail = TsAnalyzer::new();
    for (_, d) in datagrams.iter().filter(|(t, _)| *t >= sender_stops) {
        tail.push(d);
    }
    let rist = &out["rist"];
    let (sent, retx) = (rist["packets_sent"].as_u64().unwrap_or(0), rist["packets_retransmitted"].as_u64().unwrap_or(0));
    let dropped = fwd.dropped_loss;
    let rate = dropped as f64 / fwd.received.max(1) as f64;
    record(TEST, "RTP packets through the relay", fwd.received);
    record(TEST, "RTP packets dropped by the relay (2 % loss)", format!("{dropped} ({:.2} %)", rate * 100.0));
    record(TEST, "  of them during the measured 20 s", dropped - before.dropped_loss);
    record(TEST, "RTCP dropped (each way, 2 %)", format!("{} / {}", rtcp_stats.forward.dropped_loss, rtcp_stats.reverse.dropped_loss));
    record(TEST, "retransmissions by ristsink", retx);
    record(TEST, "original packets sent", sent);
    record(TEST, "RTT from receiver reports (ms)", format!("{:.2}", rist["rtt_ms"].as_f64().unwrap_or(0.0)));
    if let Some((received, recovered, lost)) = cumulative {
        record(TEST, "ristreceiver received / recovered / lost", format!("{received} / {recovered} / {lost}"));
    }
    record(TEST, "receiver flow restarts (sender SSRC changes)", flow_changes);
    record(TEST, "TS packets analysed (after the first second)", ts.packets);
    record(TEST, "continuity errors (unrecovered)", ts.cc_errors());
    record(
        TEST,
        "TS packets / CC errors handed on after the sender stopped (not judged)",
        format!("{} / {}", tail.packets, tail.cc_errors()),
    );

    assert!((0.01..0.035).contains(&rate), "relay loss {rate} not near 2 %: {fwd:?}");
    assert!(retx >= dropped / 2, "{retx} retransmissions for {dropped} losses: {out}");
    assert!(ts.packets > 10_000, "too little TS: {} packets", ts.packets);
    assert_eq!(ts.sync_errors, 0);
    assert_eq!(
        ts.cc_errors(),
        0,
        "unrecovered losses; receiver {cumulative:?}, sender {out}, receiver trouble:\n{}",
        trouble.join("\n")
    );
    // librist answers with the sender's SSRC as its own; without the
    // output's relabelling rtpbin calls that a collision and changes SSRC,
    // and the receiver restarts its flow (dropping its buffer).
    assert_eq!(flow_changes, 0, "the receiver saw the sender's SSRC change");
    assert_eq!(out["state"], "connected", "{out}");
    assert!(rist["rtcp_received"].as_u64().unwrap_or(0) > 0, "{out}");
}
