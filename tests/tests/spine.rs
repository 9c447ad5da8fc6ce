//! The spine against real peers: libsrt's srt-live-transmit as the two
//! MediaConnect stand-ins, ffprobe and a TS checker as judges.

#![cfg(test)]

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::{config_toml, ffprobe, free_udp_port, srt_output, wait_for, AgentProc, SrtListenerPeer};
use ts_tools::TsAnalyzer;

const PASS: &str = "correct-horse-battery-staple";
const CONNECT: Duration = Duration::from_secs(20);

fn analyze(file: &Path) -> TsAnalyzer {
    let mut a = TsAnalyzer::new();
    a.push(&std::fs::read(file).unwrap_or_default());
    a
}

/// Video elementary-stream bitrate in kbit/s, from ffprobe's packet sizes.
fn video_kbps(file: &Path) -> f64 {
    let pk = ffprobe(file, &["-select_streams", "v", "-show_entries", "packet=size,pts_time"]);
    let packets = pk["packets"].as_array().cloned().unwrap_or_default();
    let times: Vec<f64> = packets.iter().filter_map(|p| p["pts_time"].as_str()?.parse().ok()).collect();
    let bytes: u64 = packets.iter().filter_map(|p| p["size"].as_str()?.parse::<u64>().ok()).sum();
    let (first, last) = (times.iter().cloned().fold(f64::MAX, f64::min), times.iter().cloned().fold(0.0, f64::max));
    // Each packet covers one frame (25 fps): the span is last - first + 1/25.
    bytes as f64 * 8.0 / (last - first + 0.04) / 1000.0
}

#[test]
fn dual_srt_delivers_program_1_with_configured_pids_and_bitrate_aes128_and_aes256() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let primary = SrtListenerPeer::start(p1, 200, Some((PASS, 16)), &dir.path().join("primary.ts"));
    let backup = SrtListenerPeer::start(p2, 200, Some((PASS, 32)), &dir.path().join("backup.ts"));
    let outputs = srt_output("primary", p1, 200, Some((PASS, 16))) + &srt_output("backup", p2, 200, Some((PASS, 32)));
    let mut agent = AgentProc::start(dir.path(), &config_toml("spine-01", 2000, &outputs));
    agent.wait_output_state("primary", "connected", CONNECT);
    agent.wait_output_state("backup", "connected", CONNECT);
    // About 8 s of a 2.2 Mbit/s multiplex at each receiver.
    wait_for("8 s of TS at both receivers", Duration::from_secs(40), || {
        (primary.received() > 2_200_000 && backup.received() > 2_200_000).then_some(())
    });
    let stop = agent.stop();
    assert!(stop < Duration::from_secs(2), "SIGINT to exit took {stop:?}");

    for (name, file) in [("primary (AES-128)", &primary.output), ("backup (AES-256)", &backup.output)] {
        let probe = ffprobe(file, &["-show_programs"]);
        let program = &probe["programs"][0];
        assert_eq!(program["program_num"], 1, "{name}: {probe}");
        assert_eq!(program["pmt_pid"], 480, "{name}: {probe}");
        assert_eq!(program["pcr_pid"], 481, "{name}: {probe}");
        let streams = program["streams"].as_array().cloned().unwrap_or_default();
        let video = streams.iter().find(|s| s["codec_name"] == "h264").unwrap_or_else(|| panic!("{name}: no H.264: {probe}"));
        let audio = streams.iter().find(|s| s["codec_name"] == "aac").unwrap_or_else(|| panic!("{name}: no AAC: {probe}"));
        assert_eq!(video["id"], "0x1e1", "{name}: video PID");
        assert_eq!((video["width"].as_i64(), video["height"].as_i64()), (Some(640), Some(360)));
        assert_eq!(audio["id"], "0x100", "{name}: audio PID");
        assert_eq!(audio["sample_rate"], "48000");
        assert_eq!(audio["channels"], 2);
        let kbps = video_kbps(file);
        println!("{name}: video {kbps:.0} kbit/s for 2000 configured");
        assert!((1700.0..=2300.0).contains(&kbps), "{name}: video bitrate {kbps:.0} kbit/s not within ±15% of 2000");
        let ts = analyze(file);
        assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "{name}: TS damaged");
    }
}

#[test]
fn wrong_passphrase_is_a_clear_error_for_that_output_only() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let primary = SrtListenerPeer::start(p1, 200, Some(("a-different-passphrase", 16)), &dir.path().join("p.ts"));
    let backup = SrtListenerPeer::start(p2, 200, Some((PASS, 16)), &dir.path().join("b.ts"));
    let outputs = srt_output("primary", p1, 200, Some((PASS, 16))) + &srt_output("backup", p2, 200, Some((PASS, 16)));
    let mut agent = AgentProc::start(dir.path(), &config_toml("spine-02", 1500, &outputs));
    agent.wait_output_state("backup", "connected", CONNECT);
    let err =
        wait_for("primary to report the rejection", CONNECT, || agent.output("primary")?["last_error"].as_str().map(str::to_owned));
    assert!(err.contains("wrong or missing passphrase"), "primary error: {err}");
    wait_for("backup to keep receiving", Duration::from_secs(20), || (backup.received() > 600_000).then_some(()));
    assert_ne!(agent.output("primary").unwrap()["state"], "connected");
    assert_eq!(primary.received(), 0);
    assert!(agent.proc.child.try_wait().unwrap().is_none(), "agent must not exit");
    let log = agent.log();
    assert!(log.contains("wrong or missing passphrase"), "log lacks the reason:\n{log}");
    assert!(!log.contains(PASS), "the passphrase leaked into the log");
    agent.stop();
    let ts = analyze(&backup.output);
    assert_eq!(ts.cc_errors(), 0, "backup TS damaged");
}

#[test]
fn primary_outage_leaves_backup_intact_and_reconnect_is_quick() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let primary = SrtListenerPeer::start(p1, 200, None, &dir.path().join("p1.ts"));
    let backup = SrtListenerPeer::start(p2, 200, None, &dir.path().join("b.ts"));
    let outputs = srt_output("primary", p1, 200, None) + &srt_output("backup", p2, 200, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml("spine-03", 1500, &outputs));
    agent.wait_output_state("primary", "connected", CONNECT);
    agent.wait_output_state("backup", "connected", CONNECT);
    wait_for("primary to receive", Duration::from_secs(20), || (primary.received() > 300_000).then_some(()));

    drop(primary); // SIGKILL: no SRT shutdown reaches the agent, as with a cut cable.
    wait_for("agent to notice the primary is gone", Duration::from_secs(20), || {
        agent.output("primary").filter(|o| o["state"] != "connected")
    });
    let back = Instant::now();
    let primary = SrtListenerPeer::start(p1, 200, None, &dir.path().join("p2.ts"));
    let o = agent.wait_output_state("primary", "connected", Duration::from_secs(10));
    let reconnect = back.elapsed().as_secs_f64() - o["state_age_s"].as_f64().unwrap_or(0.0);
    println!("FIGURE reconnect_after_listener_back_s={reconnect:.2}");
    assert!(reconnect < 2.0, "reconnected {reconnect:.2} s after the listener came back");
    let at = backup.received();
    wait_for("backup to keep flowing", Duration::from_secs(20), || (backup.received() > at + 200_000).then_some(()));
    wait_for("primary to flow again", Duration::from_secs(20), || (primary.received() > 100_000).then_some(()));
    agent.stop();

    let ts = analyze(&backup.output);
    println!("FIGURE backup_cc_errors_across_primary_outage={} packets={}", ts.cc_errors(), ts.packets);
    assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "backup TS damaged by the primary's outage");
}

#[test]
fn negotiated_latency_equals_configured_with_a_long_running_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    // MediaConnect's listener is up for hours before a box calls; the defect
    // that disqualified srt-tokio (docs/srt.md#why-libsrt) only shows when the listener has
    // been up for a while, so here it must be up 5 s first. This sleep is the
    // condition under test, not synchronisation.
    let listener = SrtListenerPeer::start(port, 120, None, &dir.path().join("l.ts"));
    std::thread::sleep(Duration::from_secs(5));
    let mut agent = AgentProc::start(dir.path(), &config_toml("spine-04", 1500, &srt_output("primary", port, 800, None)));
    let o = agent.wait_output_state("primary", "connected", CONNECT);
    let negotiated = wait_for("libsrt stats", Duration::from_secs(10), || {
        agent.output("primary")?["srt"]["negotiated_latency_ms"].as_u64().filter(|&l| l > 0)
    });
    assert_eq!(negotiated, 800, "agent side: {o}");
    let receiver = wait_for("receiver TSBPD delay in its stats", Duration::from_secs(10), || {
        listener.last_stats()?["recv"]["msTsbPdDelay"].as_u64().filter(|&d| d > 0)
    });
    println!("FIGURE negotiated_latency_ms agent={negotiated} receiver={receiver}");
    assert_eq!(receiver, 800, "the receiver must buffer the configured latency");
    let buffered = wait_for("receiver buffer to fill", Duration::from_secs(10), || {
        listener.last_stats()?["recv"]["msBuf"].as_u64().filter(|&b| b > 400)
    });
    assert!(buffered <= 900, "receiver buffer {buffered} ms");
    agent.proc.signal("TERM");
    let status = agent.proc.wait_timeout(Duration::from_secs(2));
    assert!(status.is_some_and(|s| s.success()), "SIGTERM did not stop the agent cleanly within 2 s");
}

#[test]
fn hevc_is_encoded_with_x265_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let rx = SrtListenerPeer::start(port, 200, None, &dir.path().join("hevc.ts"));
    let config = config_toml("hevc-01", 800, &srt_output("primary", port, 200, None))
        .replace("x264_preset = \"ultrafast\"", "x264_preset = \"ultrafast\"\ncodec = \"h265\"\nencoder = \"x265\"");
    let mut agent = AgentProc::start(dir.path(), &config);
    agent.wait_output_state("primary", "connected", CONNECT);
    wait_for("3 s of HEVC TS", Duration::from_secs(40), || (rx.received() > 400_000).then_some(()));
    let status = agent.status().unwrap();
    agent.stop();
    assert_eq!(status["encoder"], "x265enc", "{status}");
    let probe = ffprobe(&rx.output, &["-show_programs"]);
    let streams = probe["programs"][0]["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["codec_name"] == "hevc").unwrap_or_else(|| panic!("no HEVC: {probe}"));
    assert_eq!(video["id"], "0x1e1", "video PID");
    assert_eq!((video["width"].as_i64(), video["height"].as_i64()), (Some(640), Some(360)));
    assert_eq!(analyze(&rx.output).cc_errors(), 0);
}

/// A SIGTERM while an output is still calling a peer that never answers
/// (a venue uplink that drops the handshake): the agent stops within its
/// grace period and exits 0. A blocking `srt_connect` held the output for
/// libsrt's whole connect timeout (3 s), so the agent exited past the grace
/// period with libsrt's threads still running, and the process sometimes
/// died in glibc's heap checks (exit 134) instead.
#[test]
fn sigterm_while_calling_a_silent_peer_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // A bound UDP socket that never answers: the handshake times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut agent = AgentProc::start(dir.path(), &config_toml("spine-05", 1500, &srt_output("primary", port, 200, None)));
    wait_for("the output to be calling", Duration::from_secs(20), || agent.output("primary").filter(|o| o["state"] == "connecting"));
    let t = Instant::now();
    agent.proc.signal("TERM");
    let status = agent.proc.wait_timeout(Duration::from_secs(3));
    let took = t.elapsed();
    let log = agent.log();
    assert!(status.is_some_and(|s| s.success()), "SIGTERM did not stop the agent cleanly within 3 s ({status:?}): {log}");
    assert!(!log.contains("did not stop within the grace period"), "{log}");
    println!("FIGURE sigterm_while_connecting_s={:.2}", took.as_secs_f64());
}
