//! Over-the-air updates in QEMU, one boot chain against real mosquitto,
//! srt-live-transmit, RAUC and systemd-boot (`edge_tests::vm`). The good
//! and the tampered bundle are streamed: the agent hands the URL to the
//! root helper, RAUC reads the bundle with HTTP range requests from the
//! test's file server (which counts what it sends) and nothing is
//! downloaded to `/data`. The bad bundle takes the fallback, the agent's
//! SHA-256-checked download: its URL is one the helper does not stream.
//! That runs the fallback in the VM too, and keeps CI from streaming a
//! second large bundle through TCG (about 1 MB/s there, one ~68 kB range
//! request at a time; a whole-file download is several times faster):
//!
//! 1. a tampered bundle (right SHA-256, valid signature, one payload byte
//!    flipped: dm-verity) is refused and the command ends `failed`; its
//!    payload is 16 MiB, not a slot: the refusal comes before any boot;
//! 2. a bundle whose agent never comes online (and whose slot has no media
//!    stack, so it is half the size) is installed, booted once as a trial,
//!    and the box comes back on slot A by itself (crash loop ->
//!    StartLimitAction=reboot -> the one-shot entry is gone); telemetry
//!    says `fell_back`;
//! 3. a good bundle is installed, boots slot B, the agent comes online and
//!    edge-mark-good confirms the slot; telemetry says slot b, confirmed.
//!
//! In CI, alone on the machine (nextest `threads-required`): most of it a
//! ~570 MB and a ~390 MB bundle streamed through QEMU's user network into
//! their slots, and four boots under TCG. It boots the image built
//! from `target/debug/edge-agent`: run `cargo build -p agent` first when
//! running it alone.
//! Run: `cargo nextest run -p edge-tests --test vm_update`.

#![cfg(test)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::vm::{self, FileServer, Vm, BOOT, PASS};
use edge_tests::{bin_dir, free_udp_port, record, wait_for, SrtListenerPeer};

/// Streamed RAUC install of a slot under TCG, reboot(s) and boot.
const ROUND_TRIP: Duration = Duration::from_secs(900);
/// The bad bundle's file: `;` is outside what the helper streams
/// (`update-helper`'s `valid_url`), so the agent downloads it.
const BAD: &str = "bad;download.raucb";

fn sha256(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap_or_else(|e| panic!("sha256sum: {e}"));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned()
}

fn send(port: u16, device: &str, id: &str, url: &str, digest: &str) {
    let req = serde_json::json!({
        "id": id, "name": "firmware.update", "timeout_s": 3600,
        "args": {"url": url, "sha256": digest},
    });
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", &format!("fleet/v1/{device}/cmd/req"), "-m", &req.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "mosquitto_pub of {id} failed");
}

/// The final response to command `id` in the MQTT log, if there is one.
fn final_response(log: &str, device: &str, id: &str) -> Option<serde_json::Value> {
    let topic = format!("fleet/v1/{device}/cmd/res ");
    log.lines().filter_map(|l| l.strip_prefix(&topic)).filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok()).find(|v| {
        v.get("id").and_then(|i| i.as_str()) == Some(id)
            && matches!(v.get("state").and_then(|s| s.as_str()), Some("succeeded" | "failed" | "rejected" | "timed_out"))
    })
}

/// Records what the file server sent of bundle `name` against its size,
/// and checks it was streamed: range requests only, never a whole GET (the
/// agent's download fallback).
fn record_streamed(server: &FileServer, www: &Path, name: &str) -> u64 {
    let file = format!("{name}.raucb");
    let size = std::fs::metadata(www.join(&file)).map(|m| m.len()).unwrap_or(0);
    let s = server.served(&file);
    record(
        "vm_update",
        &format!("{name} bundle: streamed (MB of MB)"),
        format!("{:.1} of {:.1}", s.bytes as f64 / 1e6, size as f64 / 1e6),
    );
    record("vm_update", &format!("{name} bundle: HTTP range requests"), s.ranges);
    assert!(s.ranges > 0 && s.ranges == s.requests, "{name} bundle not streamed with range requests only: {s:?}");
    s.bytes
}

/// The `firmware` part of the newest telemetry that satisfies `pred`.
fn telemetry_firmware(log: &str, device: &str, pred: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
    let topic = format!("fleet/v1/{device}/telemetry ");
    log.lines()
        .filter_map(|l| l.strip_prefix(&topic))
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .filter_map(|v| v.pointer("/metrics/firmware").cloned())
        .filter(|f| pred(f))
        .last()
}

#[test]
fn vm_update_tampered_refused_bad_falls_back_good_confirmed() {
    vm::require_tools();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = bin_dir().join("vm-update");
    let t = vm::build_image(dir.path(), &out, &["--bundle", "--version", "good"]);
    record("vm_update", "image + bundle build (s)", format!("{:.1}", t.as_secs_f64()));
    // The same system, but an agent that exits at once: it never comes
    // online. Without the media stack (--slim: nothing in this slot would
    // load it), so half a slot moves; it still boots through the image's
    // units, which is what the trial and the fallback are about.
    let bad_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let bad_out = bin_dir().join("vm-update-bad");
    vm::build_image_with(bad_dir.path(), &bad_out, &["--bundle-only", "--slim", "--version", "bad"], |extra| {
        let bin = extra.join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(bin.join("edge-agent"), "#!/bin/sh\necho 'broken build' >&2\nexit 1\n").unwrap_or_else(|e| panic!("{e}"));
        let _ = Command::new("chmod").arg("0755").arg(bin.join("edge-agent")).status();
    });

    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::rename(out.join("bundle.raucb"), www.join("good.raucb")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(bad_out.join("bundle.raucb"), www.join(BAD)).unwrap_or_else(|e| panic!("{e}"));
    vm::discard_image(&bad_out);
    // Tampered: a bundle signed like the others (same key, compatible,
    // verity format) whose payload is 16 MiB of noise rather than a whole
    // slot (the refusal happens before anything boots, so the download and
    // the slot write of a full bundle would prove nothing more), with one
    // byte flipped 4 MiB into the payload: the signature still verifies and
    // dm-verity must catch it as soon as RAUC starts copying.
    let mut bytes = std::fs::read(vm::small_bundle(dir.path(), "tampered", 16)).unwrap_or_else(|e| panic!("{e}"));
    assert!(bytes.len() > 8 << 20, "small bundle only {} bytes: the flipped byte would miss the payload", bytes.len());
    if let Some(b) = bytes.get_mut(4 << 20) {
        *b ^= 0xff;
    }
    std::fs::write(www.join("tampered.raucb"), bytes).unwrap_or_else(|e| panic!("{e}"));
    for (name, file) in [("tampered", "tampered.raucb"), ("bad", BAD), ("good", "good.raucb")] {
        let mb = std::fs::metadata(www.join(file)).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
        record("vm_update", &format!("{name} bundle (MB)"), format!("{mb:.0}"));
    }
    let server = FileServer::start(&www);

    let mqtt_port = free_tcp_port();
    let broker = Broker::start(dir.path(), mqtt_port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(broker.port, &mqtt_log);
    let srt_port = free_udp_port();
    let _peer = SrtListenerPeer::start(srt_port, 500, Some((PASS, 16)), &dir.path().join("vm.ts"));
    let (serial, device) = vm::test_box("vmupd");
    let mut vm = Vm::boot(
        &out,
        "update",
        &serial,
        &[
            vm::tcp_forward("10.0.2.100:1883", mqtt_port),
            vm::srt_forward("10.0.2.101:9000", srt_port),
            vm::tcp_forward("10.0.2.102:80", server.port),
        ],
    );
    let log = || std::fs::read_to_string(&mqtt_log).unwrap_or_default();
    let serial_log = vm.serial_log.display().to_string();
    wait_for(&format!("slot A confirmed in telemetry (serial log {serial_log})"), BOOT, || {
        vm.check_alive();
        telemetry_firmware(&log(), &device, |f| f["slot"] == "a" && f["confirmed"] == true).map(|_| ())
    });

    // 1. Tampered: refused, the box stays on A.
    let url = |file: &str| format!("http://10.0.2.102/{file}");
    send(mqtt_port, &device, "upd-tampered", &url("tampered.raucb"), &sha256(&www.join("tampered.raucb")));
    let r = wait_for("the tampered bundle's result", ROUND_TRIP, || final_response(&log(), &device, "upd-tampered"));
    assert_eq!(r["state"], "failed", "tampered bundle not refused: {r}");
    // Refused by RAUC's checks, not because RAUC could not run at all.
    let detail = r["detail"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(!detail.contains("d-bus") && !detail.contains("dbus") && !detail.is_empty(), "refused for the wrong reason: {r}");
    record("vm_update", "tampered bundle", r["detail"].as_str().unwrap_or_default());
    record_streamed(&server, &www, "tampered");

    // 2. Bad: installed, trial boot of B fails, back on A by itself.
    let t0 = std::time::Instant::now();
    send(mqtt_port, &device, "upd-bad", &url(BAD), &sha256(&www.join(BAD)));
    let r = wait_for("the bad bundle installed", ROUND_TRIP, || final_response(&log(), &device, "upd-bad"));
    assert_eq!(r["state"], "succeeded", "bad bundle not installed: {r}");
    assert_eq!(r["result"]["streamed"], false, "{r}");
    let size = std::fs::metadata(www.join(BAD)).map(|m| m.len()).unwrap_or(0);
    let s = server.served(BAD);
    assert!(s.ranges == 0 && s.bytes == size, "the bad bundle was not downloaded whole: {s:?} of {size} bytes");
    record("vm_update", "bad bundle: downloaded (MB)", format!("{:.1}", s.bytes as f64 / 1e6));
    assert_eq!(r["result"]["bytes_moved"], size, "the download's size as the bytes moved: {r}");
    let f = wait_for(&format!("fallback to slot A reported (serial log {serial_log})"), ROUND_TRIP, || {
        vm.check_alive();
        telemetry_firmware(&log(), &device, |f| f["last_update"]["outcome"] == "fell_back")
    });
    assert_eq!(f["slot"], "a", "{f}");
    // It came back because slot B was tried and failed, not because B never
    // started (the boot record on /data says which slots booted).
    assert_eq!(f["last_update"]["trial_booted"], true, "{f}");
    record("vm_update", "bad bundle: command to fallback reported (s)", format!("{:.0}", t0.elapsed().as_secs_f64()));

    // 3. Good: installed, B boots, comes online and is confirmed.
    let t0 = std::time::Instant::now();
    send(mqtt_port, &device, "upd-good", &url("good.raucb"), &sha256(&www.join("good.raucb")));
    let r = wait_for("the good bundle installed", ROUND_TRIP, || final_response(&log(), &device, "upd-good"));
    assert_eq!(r["state"], "succeeded", "good bundle not installed: {r}");
    assert_eq!(r["result"]["streamed"], true, "{r}");
    record("vm_update", "good bundle: command to installed (s)", format!("{:.0}", t0.elapsed().as_secs_f64()));
    let served = record_streamed(&server, &www, "good");
    // The box's own count (what RAUC read through nbd during the install)
    // against the server's (which also served `rauc info` its reads).
    let moved = r["result"]["bytes_moved"].as_u64().unwrap_or_else(|| panic!("no bytes_moved reported: {r}"));
    record("vm_update", "good bundle: bytes moved reported by the box (MB)", format!("{:.1}", moved as f64 / 1e6));
    assert!(
        moved as f64 >= 0.5 * served as f64 && moved as f64 <= 1.01 * served as f64 + 1e6,
        "the box reported {moved} bytes moved, the server sent {served}"
    );
    wait_for(&format!("slot B confirmed (serial log {serial_log})"), ROUND_TRIP, || {
        vm.check_alive();
        telemetry_firmware(&log(), &device, |f| {
            f["slot"] == "b" && f["confirmed"] == true && f["last_update"]["outcome"] == "confirmed"
        })
    });
    record("vm_update", "good bundle: command to slot B confirmed (s)", format!("{:.0}", t0.elapsed().as_secs_f64()));
    vm.stop();
    vm::discard_image(&out);
}
