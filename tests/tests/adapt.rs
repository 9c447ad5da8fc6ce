//! Adaptive bitrate against real libsrt receivers (`srt-live-transmit`)
//! through the relay's bandwidth bottleneck; each test records its figures.
//!
//! Durations: the narrowed phase lasts `EDGE_ADAPT_NARROW_S` after the
//! transient (default 30 s, the figure, which CI runs) and the steady
//! link `EDGE_ADAPT_STEADY_S` (default 180 s, which CI runs; its nextest
//! budget is 5 minutes, .config/nextest.toml). The scenarios
//! are separate tests so nextest runs them side by side.

#![cfg(test)]
// Link rates and packet counts here are small positive figures: the
// float-to-integer casts cannot truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::path::Path;
use std::time::{Duration, Instant};

use edge_tests::relay::{Bottleneck, ImpairmentConfig, Relay};
use edge_tests::{config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, SrtListenerPeer};
use ts_tools::TsAnalyzer;

const CONNECT: Duration = Duration::from_secs(20);
const VIDEO_KBPS: u32 = 2500;
const AUDIO_KBPS: u32 = 128;
const FLOOR_KBPS: u32 = 500;
/// Room for libsrt to retransmit within the latency on a queued path.
const LATENCY_MS: u32 = 1000;
/// A router's buffer in front of the narrowed uplink.
const QUEUE: Duration = Duration::from_millis(150);
/// SRT header over the 1316-byte TS payload: the relay limits UDP payloads.
const SRT_PAYLOAD_FACTOR: f64 = 1332.0 / 1316.0;

fn secs(var: &str, default: u64) -> Duration {
    Duration::from_secs(std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

fn cc_errors_from(file: &Path, offset: u64) -> u64 {
    analyze_from(file, offset).cc_errors()
}

fn analyze_from(file: &Path, offset: u64) -> TsAnalyzer {
    let bytes = std::fs::read(file).unwrap_or_default();
    // Start on a packet boundary: srt-live-transmit writes whole 1316-byte
    // messages, so an offset rounded to 1316 is aligned to 188.
    let start = usize::try_from(offset / 1316 * 1316).unwrap_or(usize::MAX).min(bytes.len());
    let mut a = TsAnalyzer::new();
    a.push(&bytes[start..]);
    a
}

/// The agent's default video PID (`[transport_stream] video_pid`).
const VIDEO_PID: u16 = 481;

/// Video frames whose PTS step broke the cadence, and frames seen, at a
/// receiver that lost nothing: an encoder frame drop shows as a double step.
fn video_cadence(file: &Path) -> (u64, u64) {
    let a = analyze_from(file, 0);
    a.pids.get(&VIDEO_PID).map_or((0, 0), |v| (v.pts_irregular, v.pts_count))
}

fn target(agent: &AgentProc) -> Option<u64> {
    agent.status()?["adapt"]["target_kbps"].as_u64()
}

fn adapt_section(mode: &str) -> String {
    format!("[adapt]\nmin_bitrate_kbps = {FLOOR_KBPS}\nmode = \"{mode}\"\n\n")
}

/// The TS rate the agent makes at the ceiling, kbit/s, over `over`.
fn ts_kbps(agent: &AgentProc, over: Duration) -> f64 {
    let bytes = |a: &AgentProc| a.status().and_then(|s| s["ts_bytes"].as_u64()).unwrap_or(0);
    let (b0, t0) = (bytes(agent), Instant::now());
    // The status file is rewritten every 0.5 s: the measurement window.
    std::thread::sleep(over);
    let (b1, t1) = (bytes(agent), Instant::now());
    (b1.saturating_sub(b0)) as f64 * 8.0 / 1000.0 / t1.duration_since(t0).as_secs_f64()
}

struct Rig {
    _dir: tempfile::TempDir,
    agent: AgentProc,
    relays: Vec<Relay>,
    peers: Vec<SrtListenerPeer>,
}

fn rig(test: &str, mode: &str, names: &[&str]) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = String::new();
    let (mut relays, mut peers) = (Vec::new(), Vec::new());
    for name in names {
        let port = free_udp_port();
        peers.push(SrtListenerPeer::start(port, LATENCY_MS, None, &dir.path().join(format!("{name}.ts"))));
        let relay =
            Relay::start(format!("127.0.0.1:{port}").parse().unwrap(), ImpairmentConfig::none(), ImpairmentConfig::none()).unwrap();
        outputs.push_str(&srt_output(name, relay.local_addr().port(), LATENCY_MS, None));
        relays.push(relay);
    }
    // VBR: x264's CBR pads with filler to the rate fixed at start, which a
    // live bitrate change does not move (the agent reports ADAPT_REFUSED).
    let cfg = config_toml(test, VIDEO_KBPS, &format!("{}{outputs}", adapt_section(mode)))
        .replace("x264_preset = \"ultrafast\"", "x264_preset = \"ultrafast\"\nrate_control = \"vbr\"");
    let agent = AgentProc::start(dir.path(), &cfg);
    for name in names {
        agent.wait_output_state(name, "connected", CONNECT);
    }
    Rig { _dir: dir, agent, relays, peers }
}

/// The video rate a link of `link_kbps` (UDP payload) carries, given the
/// measured TS rate at the ceiling.
fn video_that_fits(link_kbps: f64, ts_at_ceiling: f64) -> f64 {
    let per_es = ts_at_ceiling * SRT_PAYLOAD_FACTOR / f64::from(VIDEO_KBPS + AUDIO_KBPS);
    link_kbps / per_es - f64::from(AUDIO_KBPS)
}

fn narrowed(test: &str, share: f64) {
    let r = rig(test, "follow-all", &["primary", "backup"]);
    wait_for("the target at the ceiling", Duration::from_secs(10), || (target(&r.agent) == Some(u64::from(VIDEO_KBPS))).then_some(()));
    let ts = ts_kbps(&r.agent, Duration::from_secs(3));
    let link = share * ts * SRT_PAYLOAD_FACTOR;
    let fits = video_that_fits(link, ts);
    r.relays[0].set_forward_bottleneck(Some(Bottleneck { rate_kbps: link as u32, queue: QUEUE }));
    let t0 = Instant::now();
    if std::env::var("EDGE_ADAPT_DEBUG").is_ok() {
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(500));
            let st = r.agent.status().unwrap_or_default();
            let p0 = &st["adapt"]["paths"][0];
            let o = &st["outputs"][0]["srt"];
            eprintln!(
                "DEBUG t {:.1} target {} ts_bytes {} v {} c {} rtt {} sb {} retx {} lost {} drop {} relayfwd {} relaydrop {}",
                t0.elapsed().as_secs_f64(),
                st["adapt"]["target_kbps"],
                st["ts_bytes"],
                p0["verdict"],
                p0["congested"],
                o["rtt_ms"],
                o["send_buffer_ms"],
                o["packets_retransmitted"],
                o["packets_lost"],
                o["packets_dropped"],
                r.relays[0].stats().forward.forwarded,
                r.relays[0].stats().forward.dropped_bottleneck
            );
        }
    }
    let below = wait_for("the target below the link", Duration::from_secs(20), || {
        target(&r.agent).filter(|t| (*t as f64) <= fits).map(|_| t0.elapsed())
    });
    // The transient lasts until what queued before the target fell has
    // left libsrt's send buffer (sent, or dropped as too late), then one
    // latency for the receiver to play it out.
    wait_for("the primary's send buffer drained", Duration::from_secs(30), || {
        r.agent.output("primary").and_then(|o| o["srt"]["send_buffer_ms"].as_i64()).filter(|ms| *ms < 100).map(|_| ())
    });
    std::thread::sleep(Duration::from_millis(u64::from(LATENCY_MS)));
    let transient = t0.elapsed();
    let offsets: Vec<u64> = r.peers.iter().map(SrtListenerPeer::received).collect();
    let narrow_for = secs("EDGE_ADAPT_NARROW_S", 30);
    let mut targets = Vec::new();
    // What the fleet's BITRATE_ADAPTED alarm carries: one episode, one
    // message, so the raise and the clear are the only events.
    let mut episodes = std::collections::BTreeSet::new();
    let end = Instant::now() + narrow_for;
    while Instant::now() < end {
        // Sampling the target's course, not waiting for an event.
        std::thread::sleep(Duration::from_millis(500));
        let st = r.agent.status().unwrap_or_default();
        targets.extend(st["adapt"]["target_kbps"].as_u64());
        episodes.insert(st["adapt"]["adapting_because"].as_str().map(str::to_owned));
    }
    r.relays[0].set_forward_bottleneck(None);
    let t1 = Instant::now();
    let back = wait_for("the target back at the ceiling", Duration::from_secs(90), || {
        (target(&r.agent) == Some(u64::from(VIDEO_KBPS))).then(|| t1.elapsed())
    });
    let status = r.agent.status().unwrap_or_default();
    // Let the receivers play out what is in flight before reading their files.
    std::thread::sleep(Duration::from_millis(u64::from(LATENCY_MS) * 2));
    let cc: Vec<u64> = r.peers.iter().zip(&offsets).map(|(p, o)| cc_errors_from(&p.output, *o)).collect();
    let cc_all: Vec<u64> = r.peers.iter().map(|p| cc_errors_from(&p.output, 0)).collect();
    let mean = targets.iter().sum::<u64>() as f64 / targets.len().max(1) as f64;
    let restarts = status["pipeline_restarts"].as_u64().unwrap_or(u64::MAX);
    let stats = r.relays[0].stats().forward;
    record(test, "link (UDP payload) kbit/s", format!("{link:.0}"));
    record(test, "video that fits the link kbit/s", format!("{fits:.0}"));
    record(test, "s until the target is below the link", format!("{:.1}", below.as_secs_f64()));
    record(test, "transient excluded from the CC count, s", format!("{:.1}", transient.as_secs_f64()));
    record(test, "mean target while narrowed, % of what fits", format!("{:.0}", 100.0 * mean / fits));
    record(test, "TS CC errors after the transient (primary, backup)", format!("{}, {}", cc[0], cc[1]));
    record(test, "TS CC errors incl. transient (primary, backup)", format!("{}, {}", cc_all[0], cc_all[1]));
    record(test, "s back at the ceiling after the link returns", format!("{:.1}", back.as_secs_f64()));
    record(test, "packets tail-dropped at the bottleneck", stats.dropped_bottleneck);
    record(test, "pipeline restarts", restarts);
    // The backup's link was never narrowed: every frame the encoder made
    // reached it, so a dropped frame would show as a broken PTS cadence.
    let (irregular, frames) = video_cadence(&r.peers[1].output);
    record(test, "video frames at the unconstrained receiver, PTS steps off cadence", format!("{frames}, {irregular}"));
    assert!(frames > 250, "only {frames} video frames at the backup");
    assert_eq!(irregular, 0, "the encoder dropped or repeated frames while the target changed");
    assert!(below < Duration::from_secs(8), "{below:?} until the target fell below the link");
    assert_eq!(cc, vec![0, 0], "continuity errors after the transient");
    assert_eq!(restarts, 0, "the pipeline restarted");
    assert!(targets.iter().all(|t| *t >= u64::from(FLOOR_KBPS)));
    assert_eq!(episodes.len(), 1, "one adaptation episode while narrowed: {episodes:?}");
    assert!(episodes.iter().all(Option::is_some), "adaptation ended while narrowed: {episodes:?}");
    assert!(status["adapt"]["adapting_because"].is_null(), "episode still open at the ceiling: {}", status["adapt"]);
}

#[test]
fn srt_path_narrowed_to_60_percent() {
    narrowed("adapt_narrow_60", 0.6);
}

#[test]
fn srt_path_narrowed_to_40_percent() {
    narrowed("adapt_narrow_40", 0.4);
}

#[test]
fn steady_link_keeps_the_ceiling() {
    let test = "adapt_steady";
    let r = rig(test, "follow-all", &["primary"]);
    let run_for = secs("EDGE_ADAPT_STEADY_S", 180);
    let end = Instant::now() + run_for;
    let mut seen = Vec::new();
    while Instant::now() < end {
        // Sampling the target's course, not waiting for an event.
        std::thread::sleep(Duration::from_millis(500));
        seen.extend(target(&r.agent));
    }
    let lowest = seen.iter().min().copied().unwrap_or(0);
    record(test, "s on an unconstrained link", run_for.as_secs());
    record(test, "lowest target kbit/s (ceiling 2500)", lowest);
    assert!(!seen.is_empty(), "no adapt status");
    assert_eq!(lowest, u64::from(VIDEO_KBPS), "the target left the ceiling on a steady link");
}

/// Both paths narrowed to different rates, then the slower one goes dark:
/// `follow-all` follows the slower path, and a dark path stops holding the
/// picture down once it is excluded or disconnected.
#[test]
fn two_narrowed_paths_then_one_dark() {
    let test = "adapt_two_paths";
    let r = rig(test, "follow-all", &["primary", "backup"]);
    wait_for("the target at the ceiling", Duration::from_secs(10), || (target(&r.agent) == Some(u64::from(VIDEO_KBPS))).then_some(()));
    let ts = ts_kbps(&r.agent, Duration::from_secs(3));
    let (wide, narrow) = (0.8 * ts * SRT_PAYLOAD_FACTOR, 0.5 * ts * SRT_PAYLOAD_FACTOR);
    r.relays[0].set_forward_bottleneck(Some(Bottleneck { rate_kbps: wide as u32, queue: QUEUE }));
    r.relays[1].set_forward_bottleneck(Some(Bottleneck { rate_kbps: narrow as u32, queue: QUEUE }));
    let fits_narrow = video_that_fits(narrow, ts);
    let t0 = Instant::now();
    let below = wait_for("the target below the slower path", Duration::from_secs(20), || {
        target(&r.agent).filter(|t| (*t as f64) <= fits_narrow).map(|_| t0.elapsed())
    });
    // Let it settle on the slower path for a while.
    let settle_until = Instant::now() + Duration::from_secs(10);
    let mut settled = Vec::new();
    while Instant::now() < settle_until {
        // Sampling the target's course, not waiting for an event.
        std::thread::sleep(Duration::from_millis(500));
        settled.extend(target(&r.agent));
    }
    let reason = r.agent.status().map(|s| s["adapt"]["reason"].clone()).unwrap_or_default();
    // The backup goes dark.
    r.relays[1].set_outage(true);
    let t1 = Instant::now();
    let held_level = fits_narrow * 1.1;
    let freed = wait_for("the target above the dark path's level", Duration::from_secs(40), || {
        target(&r.agent).filter(|t| (*t as f64) > held_level).map(|_| t1.elapsed())
    });
    let status = r.agent.status().unwrap_or_default();
    let mean = settled.iter().sum::<u64>() as f64 / settled.len().max(1) as f64;
    record(test, "links primary, backup kbit/s", format!("{wide:.0}, {narrow:.0}"));
    record(test, "s until the target is below the slower path", format!("{:.1}", below.as_secs_f64()));
    record(test, "mean target settled on the slower path, % of what fits it", format!("{:.0}", 100.0 * mean / fits_narrow));
    record(test, "s the dark backup held the target down", format!("{:.1}", freed.as_secs_f64()));
    record(test, "pipeline restarts", status["pipeline_restarts"].as_u64().unwrap_or(u64::MAX));
    assert_eq!(reason["output"], "backup", "follow-all did not follow the slower path: {reason}");
    assert!(mean <= fits_narrow * 1.1, "settled above the slower path: {mean}");
    assert!(freed < Duration::from_secs(15), "a dark path held the picture down for {freed:?}");
}
