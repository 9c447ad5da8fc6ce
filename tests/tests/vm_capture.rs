//! Real capture in the VM: the image boots with the kernel's `vivid` driver
//! as an HDMI receiver (`edge_tests::vivid`), the agent captures from it by
//! its stable id and streams to the host's SRT listener, and the test turns
//! vivid's signal controls through a test-only control channel: no signal,
//! no lock and out of range each put the slate on air with `NO_SIGNAL`
//! raised and then cleared when the signal returns; a switch of DV timings
//! is followed. The receiver must see 0 continuity errors over the whole
//! run. The same boot checks that `edge-agent probe` lists vivid with its
//! format and says why each hardware encoder is unavailable (the VM has no
//! GPU render node), and that the retained `info` lists vivid.
//! Needs root and qemu-system-x86, like vm_boot.

#![cfg(test)]

use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::vivid::{self, Control};
use edge_tests::vm::{self, Vm, BOOT, PASS};
use edge_tests::{bin_dir, free_udp_port, record, wait_for, SrtListenerPeer};
use serde_json::Value;
use ts_tools::TsAnalyzer;

const TEST: &str = "vm_capture";
/// From a control change to the agent's reaction: a signal poll a second,
/// one v4l2-ctl run each, the 1 s frame watchdog and the alarm's
/// evaluation, on a TCG guest.
const REACT: Duration = Duration::from_secs(60);

/// `Active width`/`Active height` of `v4l2-ctl --query-dv-timings`.
fn queried_size(text: &str) -> String {
    let field = |name: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned())).unwrap_or_default()
    };
    format!("{}x{}", field("Active width"), field("Active height"))
}

fn input(status: &Value) -> &Value {
    &status["input"]
}

#[test]
fn vm_captures_vivid_and_follows_its_signal() {
    vm::require_tools();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = bin_dir().join("vm-capture-image");
    let build = vm::build_image_with_input(dir.path(), &out, &[], vivid::INPUT, vivid::add_to_overlay);
    record(TEST, "image build (s)", format!("{:.1}", build.as_secs_f64()));

    let broker = Broker::start(dir.path(), free_tcp_port());
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(broker.port, &mqtt_log);
    let mqtt = || std::fs::read_to_string(&mqtt_log).unwrap_or_default();
    let srt_port = free_udp_port();
    let peer = SrtListenerPeer::start(srt_port, 500, Some((PASS, 16)), &dir.path().join("vm.ts"));
    let mut ctl = Control::listen();

    let (serial, device) = vm::test_box("vmtest");
    let mut vm = Vm::boot(
        &out,
        "capture",
        &serial,
        &[
            vm::tcp_forward("10.0.2.100:1883", broker.port),
            vm::srt_forward("10.0.2.101:9000", srt_port),
            vm::tcp_forward(vivid::CONTROL_GUEST, ctl.port()),
        ],
    );

    // Live from vivid: the status file says the picture on air is the
    // capture's, locked in the preset the guest selected.
    // The guest's control unit connects once the network is up.
    let (rc, first_query) = ctl.run("query", BOOT);
    assert_eq!(rc, 0, "vivid's timings: {first_query}\n{}", vm::serial_tail(&vm.serial_log));
    let first_size = queried_size(&first_query);
    let live = wait_for(&format!("live capture from vivid (serial log {})", vm.serial_log.display()), BOOT, || {
        vm.check_alive();
        let s = ctl.status()?;
        let i = input(&s);
        (i["slate"] == false && i["signal"]["state"] == "locked" && peer.received() > 0).then(|| i.clone())
    });
    let to_live = vm.started.elapsed();
    record(TEST, "boot to live vivid picture at the listener (s)", format!("{:.1}", to_live.as_secs_f64()));
    assert_eq!(live["source"], "/dev/video0", "{live}");
    let format = live["format"].as_str().unwrap_or_default().to_owned();
    assert!(format.starts_with(&format!("{first_size}p")), "agent format {format}, vivid sends {first_size}");

    // probe: vivid with its format, and a reason per hardware encoder.
    let probe: Value = serde_json::from_str(&ctl.ok("probe")).unwrap_or_else(|e| panic!("probe --json: {e}"));
    let vivid_in = probe["inputs"].as_array().and_then(|a| a.iter().find(|i| i["id"] == "v4l2-platform-vivid.0")).cloned();
    let vivid_in = vivid_in.unwrap_or_else(|| panic!("vivid missing from probe: {}", probe["inputs"]));
    assert_eq!((vivid_in["kind"].as_str(), vivid_in["driver"].as_str()), (Some("v4l2_hdmi"), Some("vivid")), "{vivid_in}");
    assert_eq!(vivid_in["signal"]["state"], "locked", "{vivid_in}");
    assert_eq!(format!("{}x{}", vivid_in["signal"]["width"], vivid_in["signal"]["height"]), first_size, "{vivid_in}");

    // Seconds later the input format is still the source's, not what a
    // receiver with a scaler renegotiated towards the output size.
    let now = ctl.status().unwrap_or_default();
    assert_eq!(input(&now)["format"].as_str(), Some(format.as_str()), "{}", input(&now));

    // info (retained, what `edgectl info` shows): vivid listed.
    let info_topic = format!("fleet/v1/{device}/info ");
    let info = wait_for("the retained info", Duration::from_secs(60), || {
        mqtt().lines().find(|l| l.starts_with(&info_topic)).map(str::to_owned)
    });
    let doc: Value = info.split_once(' ').and_then(|(_, payload)| serde_json::from_str(payload).ok()).unwrap_or_default();
    let listed = find_input(&doc, "v4l2-platform-vivid.0").unwrap_or_else(|| panic!("info without vivid: {info}"));
    assert_eq!(listed["driver"], "vivid", "{listed}");
    assert_eq!(format!("{}x{}", listed["signal"]["width"], listed["signal"]["height"]), first_size, "{listed}");

    // Signal losses of each kind, then the signal back.
    let events = |state: &str| mqtt().lines().filter(|l| l.contains("NO_SIGNAL:input") && l.contains(state)).count();
    for (mode, state) in [(1, "no_link"), (2, "cannot_lock"), (3, "out_of_range")] {
        let (raised, cleared) = (events("\"raised\""), events("\"cleared\""));
        let t = Instant::now();
        ctl.ok(&format!("mode {mode}"));
        wait_for(&format!("the slate for {state}"), REACT, || {
            let s = ctl.status()?;
            (input(&s)["slate"] == true && input(&s)["signal"]["state"] == state).then_some(())
        });
        let slate = t.elapsed();
        wait_for(&format!("NO_SIGNAL raised for {state}"), REACT, || (events("\"raised\"") > raised).then_some(()));
        let alarm = t.elapsed();
        let t = Instant::now();
        ctl.ok(&format!("timings {}", vivid::FIRST_TIMINGS));
        wait_for(&format!("the picture back after {state}"), REACT, || {
            let s = ctl.status()?;
            (input(&s)["slate"] == false && input(&s)["signal"]["state"] == "locked").then_some(())
        });
        let back = t.elapsed();
        wait_for(&format!("NO_SIGNAL cleared after {state}"), REACT, || (events("\"cleared\"") > cleared).then_some(()));
        let cleared_after = t.elapsed();
        record(TEST, &format!("{state}: to slate (s)"), format!("{:.1}", slate.as_secs_f64()));
        record(TEST, &format!("{state}: to NO_SIGNAL raised (s)"), format!("{:.1}", alarm.as_secs_f64()));
        record(TEST, &format!("{state}: signal back to live picture (s)"), format!("{:.1}", back.as_secs_f64()));
        record(TEST, &format!("{state}: signal back to NO_SIGNAL cleared (s)"), format!("{:.1}", cleared_after.as_secs_f64()));
    }

    // The source switches format (preset 4, 720x576p50): the agent reopens
    // capture in the new timings.
    let t = Instant::now();
    ctl.ok("timings 4");
    let new_size = queried_size(&ctl.ok("query"));
    assert_ne!(new_size, first_size, "vivid did not switch presets");
    let switched = wait_for("the agent in the new format", REACT, || {
        let s = ctl.status()?;
        let i = input(&s);
        let f = i["format"].as_str()?;
        (i["slate"] == false && f.starts_with(&format!("{new_size}p"))).then(|| f.to_owned())
    });
    record(TEST, "format change to live picture in the new format (s)", format!("{:.1}", t.elapsed().as_secs_f64()));
    println!("followed {format} -> {switched}");
    let last = ctl.status().unwrap_or_default();
    // Three provoked losses; a fourth when reopening in the new timings took
    // longer than the 1 s frame watchdog.
    record(TEST, "signal losses seen by the agent (3 provoked)", &input(&last)["losses"]);

    // A little more stream after the last change, then the whole run's TS.
    let before = peer.received();
    wait_for("more TS after the format change", Duration::from_secs(60), || (peer.received() > before + 50_000).then_some(()));
    vm.stop();
    let mut ts = TsAnalyzer::new();
    ts.push(&std::fs::read(&peer.output).unwrap_or_default());
    record(TEST, "TS continuity errors at the receiver", ts.cc_errors());
    assert!(ts.packets > 1000, "{} packets", ts.packets);
    assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "the stream was disturbed by the signal changes");
    check_encoder_reasons(&probe);
    vm::discard_image(&out);
}

/// The object with this `id` anywhere in a document (the info payload's
/// envelope is not this test's business).
fn find_input(doc: &Value, id: &str) -> Option<Value> {
    match doc {
        Value::Object(m) if m.get("id").and_then(Value::as_str) == Some(id) => Some(doc.clone()),
        Value::Object(m) => m.values().find_map(|v| find_input(v, id)),
        Value::Array(a) => a.iter().find_map(|v| find_input(v, id)),
        _ => None,
    }
}

/// The VM has no GPU render node: VA-API, QSV and NVENC must each say so
/// (or that a GPU has no driver), not merely "not installed".
fn check_encoder_reasons(probe: &Value) {
    let candidates = probe["encoders"].as_array().cloned().unwrap_or_default();
    for c in candidates.iter().filter(|c| matches!(c["kind"].as_str(), Some("va" | "qsv" | "nvenc"))) {
        let reason = c["unavailable"]["reason"].as_str().unwrap_or_default();
        assert!(matches!(reason, "no_device_node" | "driver_not_loaded"), "{}: no specific reason: {c}", c["factory"]);
        println!("{}: {reason}: {}", c["factory"].as_str().unwrap_or_default(), c["unavailable"]["detail"]);
    }
    assert!(candidates.iter().any(|c| c["kind"] == "va"), "no VA-API candidates in {probe}");
}
