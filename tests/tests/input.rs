//! The input side of the real agent: signal loss and return on the test
//! pattern (SIGUSR1 simulates a pulled cable; the capture path, the frame
//! watchdog and the slate all run for real), a source format change
//! (SIGUSR2), judged at a libsrt receiver by
//! a TS checker and by decoding frames with ffmpeg, and the NO_SIGNAL alarm
//! watched on a real mosquitto.

#![cfg(test)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::{config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, SrtListenerPeer};
use ts_tools::TsAnalyzer;

const DEVICE: &str = "input-01";
const CONNECT: Duration = Duration::from_secs(20);
const W: usize = 640;
const H: usize = 360;

/// The luma plane of the last frame ffmpeg can decode from `ts`.
fn last_frame_luma(ts: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(ts)
        .args(["-an", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg: {e}"));
    let frames = out.stdout.len() / (W * H);
    assert!(frames > 0, "no decodable frame in {}: {}", ts.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout[(frames - 1) * W * H..frames * W * H].to_vec()
}

/// The slate's signature: the 75 % white bar reaches the bottom-left corner
/// (the SMPTE pattern has its dark -I patch there), and the centre third
/// holds a black box with white letters.
fn looks_like_slate(y: &[u8]) -> bool {
    let corner = y[(H - 4) * W + 8];
    let centre: Vec<u8> = (H / 3..2 * H / 3).flat_map(|r| y[r * W + W / 3..r * W + 2 * W / 3].to_vec()).collect();
    let dark = centre.iter().filter(|&&v| v < 40).count();
    let bright = centre.iter().filter(|&&v| v > 200).count();
    corner > 150 && dark > 1000 && bright > 200
}

/// Copies what the receiver got after byte `from` (packet-aligned) to `to`.
fn tail(file: &Path, from: u64, to: &Path) {
    let data = std::fs::read(file).unwrap_or_default();
    let start = usize::try_from(from - from % 188).unwrap_or(0).min(data.len());
    std::fs::write(to, &data[start..]).unwrap();
}

fn input_state(agent: &AgentProc) -> Option<serde_json::Value> {
    agent.status().map(|s| s["input"].clone()).filter(|i| !i.is_null())
}

#[test]
fn signal_loss_and_format_change_keep_the_ts_unbroken_with_the_slate_and_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _broker = Broker::start(dir.path(), port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(port, &mqtt_log);
    let mqtt = || std::fs::read_to_string(&mqtt_log).unwrap_or_default();
    let p1 = free_udp_port();
    let rx = SrtListenerPeer::start(p1, 200, None, &dir.path().join("rx.ts"));
    let fleet = format!(
        "\n[fleet]\nbroker = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\ndevice_id = \"{DEVICE}\"\nstate_dir = \"{}\"\ntelemetry_interval_s = 1\n",
        dir.path().join("state").display()
    );
    let config = config_toml(DEVICE, 1500, &srt_output("primary", p1, 200, None)) + &fleet;
    let mut agent = AgentProc::start(dir.path(), &config);
    agent.wait_output_state("primary", "connected", CONNECT);
    wait_for("the live picture", CONNECT, || input_state(&agent).filter(|i| i["slate"] == false));
    wait_for("the device online", CONNECT, || mqtt().contains("\"online\":true").then_some(()));
    // 3 s of live picture (the keyframe interval is 2 s), then check it.
    let live_from = rx.received();
    wait_for("3 s of live TS", Duration::from_secs(30), || (rx.received() > live_from + 600_000).then_some(()));
    let live = dir.path().join("live.ts");
    tail(&rx.output, live_from, &live);
    assert!(!looks_like_slate(&last_frame_luma(&live)), "the live test pattern must not look like the slate");

    // Pull the cable.
    let pulled = Instant::now();
    agent.proc.signal("USR1");
    let lost = wait_for("the slate on air", Duration::from_secs(10), || {
        input_state(&agent).filter(|i| i["slate"] == true && i["signal"]["state"] == "no_signal")
    });
    let slate_after = pulled.elapsed();
    assert_eq!(lost["losses"], 1, "{lost}");
    let slate_from = rx.received();
    wait_for("the NO_SIGNAL alarm raised", Duration::from_secs(15), || {
        mqtt().lines().any(|l| l.contains("NO_SIGNAL:input") && l.contains("\"raised\"")).then_some(())
    });
    wait_for("3 s of slate TS", Duration::from_secs(30), || (rx.received() > slate_from + 600_000).then_some(()));
    let slate = dir.path().join("slate.ts");
    tail(&rx.output, slate_from, &slate);
    assert!(looks_like_slate(&last_frame_luma(&slate)), "the decoded picture during the loss must be the slate");

    // Plug it back in.
    let plugged = Instant::now();
    agent.proc.signal("USR1");
    let back = wait_for("the live picture again", Duration::from_secs(10), || {
        input_state(&agent).filter(|i| i["slate"] == false && i["signal"]["state"] == "locked")
    });
    let live_after = plugged.elapsed();
    assert_eq!(back["format"], "640x360p25", "{back}");
    wait_for("the NO_SIGNAL alarm cleared", Duration::from_secs(15), || {
        mqtt().lines().any(|l| l.contains("NO_SIGNAL:input") && l.contains("\"cleared\"")).then_some(())
    });
    let again_from = rx.received();
    wait_for("3 s of live TS again", Duration::from_secs(30), || (rx.received() > again_from + 600_000).then_some(()));
    let again = dir.path().join("again.ts");
    tail(&rx.output, again_from, &again);
    assert!(!looks_like_slate(&last_frame_luma(&again)), "the live picture must come back");

    // The source switches format (SIGUSR2: 960x540p50): followed by the
    // scaler, the outputs and the encoder never notice.
    agent.proc.signal("USR2");
    let switched =
        wait_for("the new input format", Duration::from_secs(10), || input_state(&agent).filter(|i| i["format"] == "960x540p50"));
    assert_eq!(switched["format_changes"], 1, "{switched}");
    assert_eq!(switched["slate"], false, "a format change is not a signal loss: {switched}");
    let switched_from = rx.received();
    wait_for("3 s of TS after the switch", Duration::from_secs(30), || (rx.received() > switched_from + 600_000).then_some(()));
    let after = dir.path().join("after-switch.ts");
    tail(&rx.output, switched_from, &after);
    let probe = edge_tests::ffprobe(&after, &["-show_streams", "-select_streams", "v"]);
    assert_eq!(
        (probe["streams"][0]["width"].as_i64(), probe["streams"][0]["height"].as_i64()),
        (Some(640), Some(360)),
        "the encoded format stays"
    );

    let status = agent.status().unwrap();
    assert_eq!(status["pipeline_restarts"], 0, "the encoder never restarted: {status}");
    assert_eq!(status["outputs"][0]["connects"], 1, "the output never reconnected: {status}");
    agent.stop();

    let mut a = TsAnalyzer::new();
    a.push(&std::fs::read(&rx.output).unwrap());
    assert!(a.packets > 10_000, "{} packets", a.packets);
    assert_eq!(a.cc_errors(), 0, "continuity errors through loss and return");
    assert_eq!(a.pcr_backwards(), 0, "PCR went backwards");
    assert_eq!(a.discontinuities(), 0, "discontinuity flags");
    // mpegtsmux writes a PCR every 40 ms; anything near 100 ms would be a
    // break a receiver notices (ETSI TR 101 290 PCR_repetition_error).
    assert!(a.max_pcr_step_ms() < 100.0, "PCR step {} ms", a.max_pcr_step_ms());

    record("signal_loss", "slate on air after SIGUSR1 (1 s watchdog)", format!("{:.2} s", slate_after.as_secs_f64()));
    record("signal_loss", "live picture back after SIGUSR1", format!("{:.2} s", live_after.as_secs_f64()));
    record(
        "signal_loss",
        "TS through loss, return and a 640x360p25 -> 960x540p50 source switch",
        format!("{} packets, 0 CC errors, max PCR step {:.0} ms", a.packets, a.max_pcr_step_ms()),
    );
}
