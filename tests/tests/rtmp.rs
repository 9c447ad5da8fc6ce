//! RTMP push outputs against real RTMP servers: ffmpeg's RTMP listener
//! (`ffmpeg -listen 1`), one per destination, as MediaLive's pipelines A
//! and B; ffprobe and an FLV tag reader as judges; an SRT output in the same
//! agent for the TS path (`docs/rtmp.md`).

#![cfg(test)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::broker::free_tcp_port;
use edge_tests::{config_toml, ffprobe, free_udp_port, record, srt_output, wait_for, AgentProc, ChildGuard, SrtListenerPeer};
use ts_tools::TsAnalyzer;

const CONNECT: Duration = Duration::from_secs(20);
const KEY_A: &str = "primary-k3y-9f2c1e";
const KEY_B: &str = "backup-k3y-47d0aa";

/// An RTMP server accepting one publisher and writing its stream (copied,
/// not transcoded) to a file.
struct RtmpServer {
    output: PathBuf,
    proc: ChildGuard,
}

impl RtmpServer {
    fn start(port: u16, key: &str, output: &Path) -> Self {
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-listen", "1", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/{key}"))
            .args(["-c", "copy", "-flush_packets", "1", "-f", "flv"])
            .arg(output)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ffmpeg (install ffmpeg): {e}"));
        RtmpServer { output: output.to_owned(), proc: ChildGuard::new("ffmpeg-rtmp", child) }
    }

    fn received(&self) -> u64 {
        std::fs::metadata(&self.output).map(|m| m.len()).unwrap_or(0)
    }
}

fn rtmp_output(name: &str, port: u16, key: &str) -> String {
    format!("[[outputs]]\nname = \"{name}\"\nkind = \"rtmp\"\nurl = \"rtmp://127.0.0.1:{port}/live/{key}\"\n\n")
}

/// Video tag timestamps (ms) of an FLV file, in file order.
fn flv_video_timestamps(file: &Path) -> Vec<u32> {
    let data = std::fs::read(file).unwrap_or_default();
    let mut out = Vec::new();
    // FLV header (9 bytes) and PreviousTagSize0 (4).
    let mut at = 13;
    while at + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let ts = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        if at + 11 + size > data.len() {
            break;
        }
        if data[at] == 9 {
            out.push(ts);
        }
        at += 11 + size + 4;
    }
    out
}

/// Codec names and duration (s) of a received stream.
fn probe(file: &Path) -> (Vec<String>, f64) {
    let p = ffprobe(file, &["-show_streams", "-show_format"]);
    let codecs = p["streams"].as_array().into_iter().flatten().filter_map(|s| s["codec_name"].as_str().map(str::to_owned)).collect();
    let duration = p["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    (codecs, duration)
}

fn connects(agent: &AgentProc, name: &str) -> u64 {
    agent.output(name).and_then(|o| o["connects"].as_u64()).unwrap_or(0)
}

#[test]
fn the_medialive_example_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/medialive-rtmp.toml");
    let out = Command::new(edge_tests::agent_bin()).arg("check-config").arg(&path).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn two_rtmp_destinations_from_one_encode_one_reconnects_while_the_other_and_srt_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, ps) = (free_tcp_port(), free_tcp_port(), free_udp_port());
    let mut server_a = RtmpServer::start(pa, KEY_A, &dir.path().join("a1.flv"));
    let server_b = RtmpServer::start(pb, KEY_B, &dir.path().join("b.flv"));
    let srt = SrtListenerPeer::start(ps, 200, None, &dir.path().join("srt.ts"));
    let outputs = rtmp_output("medialive-a", pa, KEY_A) + &rtmp_output("medialive-b", pb, KEY_B) + &srt_output("srt", ps, 200, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml("rtmp-01", 1500, &outputs));
    for name in ["medialive-a", "medialive-b", "srt"] {
        agent.wait_output_state(name, "connected", CONNECT);
    }
    wait_for("both RTMP servers receiving", Duration::from_secs(20), || {
        (server_a.received() > 300_000 && server_b.received() > 300_000).then_some(())
    });

    // Server A goes away: A reports it, B and SRT carry on.
    let b_at_kill = server_b.received();
    let killed = Instant::now();
    server_a.proc.kill();
    let down = wait_for("medialive-a to notice", Duration::from_secs(15), || {
        agent.output("medialive-a").filter(|o| o["state"] != "connected" && o["last_error"].is_string())
    });
    let noticed = killed.elapsed();
    let b_status = agent.output("medialive-b").unwrap_or_default();
    assert_eq!(b_status["state"], "connected", "B disturbed by A's outage: {b_status}");
    wait_for("B to keep receiving while A is down", Duration::from_secs(10), || {
        (server_b.received() > b_at_kill + 200_000).then_some(())
    });

    // Server A back on the same port: A reconnects and delivers again.
    let server_a2 = RtmpServer::start(pa, KEY_A, &dir.path().join("a2.flv"));
    let restarted = Instant::now();
    wait_for("medialive-a to reconnect", Duration::from_secs(20), || (connects(&agent, "medialive-a") >= 2).then_some(()));
    let reconnect = restarted.elapsed();
    wait_for("A to deliver again", Duration::from_secs(15), || (server_a2.received() > 200_000).then_some(()));
    let outage = killed.elapsed();

    let status = agent.status().unwrap_or_default();
    let a = agent.output("medialive-a").unwrap_or_default();
    let b = agent.output("medialive-b").unwrap_or_default();
    let s = agent.output("srt").unwrap_or_default();
    agent.stop();
    let log = agent.log();
    let b_received = server_b.received();
    drop(server_b);
    drop(server_a2);

    // Received streams decode: H.264 and AAC, and they grew.
    for (name, file, min_s) in [("A before", "a1.flv", 1.0), ("A after", "a2.flv", 1.0), ("B", "b.flv", outage.as_secs_f64())] {
        let (codecs, duration) = probe(&dir.path().join(file));
        assert!(codecs.iter().any(|c| c == "h264") && codecs.iter().any(|c| c == "aac"), "{name}: {codecs:?}");
        assert!(duration >= min_s, "{name}: {duration} s, expected ≥ {min_s}");
    }
    // B's timestamps run on without a gap through A's outage.
    let ts = flv_video_timestamps(&dir.path().join("b.flv"));
    let max_gap = ts.windows(2).map(|w| w[1].saturating_sub(w[0])).max().unwrap_or(u32::MAX);
    assert!(ts.len() > 100 && ts.windows(2).all(|w| w[1] >= w[0]), "B's video timestamps: {} tags", ts.len());
    assert!(max_gap <= 200, "B's video has a {max_gap} ms gap");
    // The TS output kept every packet.
    let mut srt_ts = TsAnalyzer::new();
    srt_ts.push(&std::fs::read(&srt.output).unwrap_or_default());
    assert_eq!((srt_ts.sync_errors, srt_ts.cc_errors()), (0, 0), "SRT TS damaged during A's outage");
    assert_eq!(s["connects"], 1, "SRT output reconnected: {s}");
    assert_eq!(b["connects"], 1, "B reconnected: {b}");
    assert!(a["rtmp"]["bytes_sent"].as_u64().unwrap_or(0) > 0, "{a}");
    // The stream keys appear nowhere the agent reports.
    let reported = format!("{status}{log}");
    assert!(!reported.contains(KEY_A) && !reported.contains(KEY_B), "stream key leaked:\n{reported}");
    assert!(down["last_error"].is_string(), "{down}");

    let test = "rtmp";
    record(test, "rtmp_outage_noticed_s", format!("{:.1}", noticed.as_secs_f64()));
    record(test, "rtmp_reconnect_after_server_back_s", format!("{:.1}", reconnect.as_secs_f64()));
    record(test, "rtmp_other_destination_bytes", b_received);
    record(test, "rtmp_other_destination_max_video_gap_ms", max_gap);
    record(test, "rtmp_srt_cc_errors_during_outage", srt_ts.cc_errors());
    record(test, "rtmp_srt_ts_packets", srt_ts.packets);
}

#[test]
fn a_refusing_and_a_stalled_rtmp_server_are_their_outputs_errors_only() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on `dead`; `stalled` accepts, then stops reading; `live` is served.
    let (dead, pst, pl, ps) = (free_tcp_port(), free_tcp_port(), free_tcp_port(), free_udp_port());
    let stalled = RtmpServer::start(pst, KEY_A, &dir.path().join("stalled.flv"));
    let live = RtmpServer::start(pl, KEY_B, &dir.path().join("live.flv"));
    let srt = SrtListenerPeer::start(ps, 200, None, &dir.path().join("srt.ts"));
    let outputs = rtmp_output("dead", dead, KEY_A)
        + &rtmp_output("stalled", pst, KEY_A)
        + &rtmp_output("live", pl, KEY_B)
        + &srt_output("srt", ps, 200, None);
    let mut agent = AgentProc::start(dir.path(), &config_toml("rtmp-02", 2500, &outputs));
    for name in ["stalled", "live", "srt"] {
        agent.wait_output_state(name, "connected", CONNECT);
    }
    wait_for("the stalled server receiving first", Duration::from_secs(20), || (stalled.received() > 100_000).then_some(()));
    // SIGSTOP: the connection stays open and nothing reads it any more.
    stalled.proc.signal("STOP");
    let stopped = Instant::now();
    let live_at_stop = live.received();
    // Until the socket buffers on both sides are full (about 6 MB on
    // loopback) the connection still takes bytes; then rtmp2sink's socket
    // timeout or the output's own stall check (10 s without a byte) ends it.
    wait_for("the stalled output to give up", Duration::from_secs(50), || {
        agent.log().contains("RTMP session failed output=stalled").then_some(())
    });
    let detected = stopped.elapsed();
    let dead_status = agent.output("dead").unwrap_or_default();
    let live_during = live.received();
    let restarts = agent.status().and_then(|s| s["pipeline_restarts"].as_u64()).unwrap_or(u64::MAX);
    let live_status = agent.output("live").unwrap_or_default();
    agent.stop();
    stalled.proc.signal("CONT");

    let error = dead_status["last_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(dead_status["failed_attempts"].as_u64().unwrap_or(0) >= 2, "{dead_status}");
    assert!(error.contains("refused") || error.contains("connect"), "{dead_status}");
    assert_eq!(restarts, 0, "a refusing or stalled server restarted the encoder");
    assert_eq!(live_status["connects"], 1, "the live output was disturbed: {live_status}");
    // ~2.6 Mbit/s (330 kB/s) all the while the other server stalled.
    let got = live_during - live_at_stop;
    assert!(got as f64 > detected.as_secs_f64() * 200_000.0, "the live server got {got} B in {detected:?}");
    let ts = flv_video_timestamps(&live.output);
    let max_gap = ts.windows(2).map(|w| w[1].saturating_sub(w[0])).max().unwrap_or(u32::MAX);
    assert!(max_gap <= 200, "the live server's video has a {max_gap} ms gap");
    let (codecs, _) = probe(&live.output);
    assert!(codecs.iter().any(|c| c == "h264") && codecs.iter().any(|c| c == "aac"), "{codecs:?}");
    let mut srt_ts = TsAnalyzer::new();
    srt_ts.push(&std::fs::read(&srt.output).unwrap_or_default());
    assert_eq!((srt_ts.sync_errors, srt_ts.cc_errors()), (0, 0), "SRT TS damaged by the stalled server");
    record("rtmp", "rtmp_stalled_server_given_up_s", format!("{:.1}", detected.as_secs_f64()));
    record("rtmp", "rtmp_live_max_video_gap_ms_while_other_stalled", max_gap);
}
