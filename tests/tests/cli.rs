//! The command line: configuration errors and the probe.

#![cfg(test)]

use std::process::Command;

use edge_tests::{agent_bin, config_toml, srt_output};

const EXIT_CONFIG: i32 = 78;

fn good() -> String {
    config_toml("cli-01", 1000, &srt_output("primary", 9001, 500, None))
}

/// Runs `check-config` and `run` on `text`; both must fail the same way.
fn refused(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, text).unwrap();
    let check = Command::new(agent_bin()).arg("check-config").arg(&file).output().unwrap();
    let run = Command::new(agent_bin()).args(["run", "--config"]).arg(&file).output().unwrap();
    assert_eq!(check.status.code(), Some(EXIT_CONFIG), "check-config exit");
    assert_eq!(run.status.code(), Some(EXIT_CONFIG), "run exit");
    let msg = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(String::from_utf8_lossy(&run.stderr).contains(msg.trim()), "run must print the same message");
    msg
}

#[test]
fn good_config_checks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.toml");
    std::fs::write(&file, good()).unwrap();
    let out = Command::new(agent_bin()).arg("check-config").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn examples_check() {
    for ex in ["dual-srt.toml", "rtp-fec.toml", "fleet-local.toml", "flow-arn.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(ex);
        let out = Command::new(agent_bin()).arg("check-config").arg(&path).output().unwrap();
        assert!(out.status.success(), "{ex}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = good().replace("latency_ms = 500", "latency_msec = 500");
    let line = text.lines().position(|l| l.starts_with("latency_msec")).unwrap() + 1;
    let msg = refused(&text);
    assert!(msg.contains(&format!(":{line}:1: key `outputs[0].latency_msec`: unknown field")), "{msg}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let text = good().replace("bitrate_kbps = 1000", "bitrate_kbps = \"lots\"");
    let line = text.lines().position(|l| l.starts_with("bitrate_kbps")).unwrap() + 1;
    let msg = refused(&text);
    assert!(msg.contains(&format!(":{line}:16: key `video.bitrate_kbps`: invalid type")), "{msg}");
}

#[test]
fn out_of_range_value_names_key_line_and_range() {
    let text = good().replace("latency_ms = 500", "latency_ms = 99999");
    let line = text.lines().position(|l| l.starts_with("latency_ms")).unwrap() + 1;
    let msg = refused(&text);
    assert!(msg.contains(&format!(":{line}:14: key `outputs[0].latency_ms`")), "{msg}");
    assert!(msg.contains("20..=15000"), "{msg}");
}

#[test]
fn missing_file_is_a_config_error() {
    for args in [vec!["check-config", "/nonexistent/agent.toml"], vec!["run", "--config", "/nonexistent/agent.toml"]] {
        let out = Command::new(agent_bin()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/agent.toml"));
    }
}

/// `probe --json` over a fake sysfs/dev tree (the agent reads
/// `EDGE_SYSFS_ROOT` / `EDGE_DEV_ROOT`).
fn probe_json(tree: &hal::capture::FakeSysfsTree) -> serde_json::Value {
    let out = Command::new(agent_bin())
        .args(["probe", "--json"])
        .env("EDGE_SYSFS_ROOT", tree.sys())
        .env("EDGE_DEV_ROOT", tree.dev())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn probe_json_lists_inputs_with_signal_and_chooses_encoders_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let tree = hal::capture::FakeSysfsTree::new(dir.path()).unwrap();
    let empty = probe_json(&tree);
    let kinds: Vec<&str> = empty["inputs"].as_array().unwrap().iter().filter_map(|i| i["kind"].as_str()).collect();
    assert_eq!(kinds, ["test-pattern"], "no devices at all: {empty}");

    tree.add_hdmi_card().unwrap();
    tree.add_uvc_dongle().unwrap();
    let doc = probe_json(&tree);
    let inputs = doc["inputs"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = inputs
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["kind"].as_str().unwrap(), i["signal"]["state"].as_str().unwrap_or("always")))
        .collect();
    assert_eq!(
        summary,
        [
            ("v4l2-pci-0000:03:00.0", "v4l2_hdmi", "unknown"),
            ("v4l2-usb-2-1:1.0", "v4l2_uvc", "unknown"),
            ("test-pattern", "test-pattern", "always"),
        ],
        "{doc}"
    );
    assert_eq!(inputs[0]["path"], tree.dev().join("video0").display().to_string());
    assert_eq!(inputs[1]["driver"], "uvcvideo");

    assert_eq!(doc["chosen"], "x264enc", "no hardware here: {doc}");
    let x264 = doc["encoders"].as_array().unwrap().iter().find(|e| e["factory"] == "x264enc").unwrap();
    assert_eq!(x264["status"], "chosen");
    let va = doc["encoders"].as_array().unwrap().iter().find(|e| e["factory"] == "vah264enc").unwrap();
    assert_ne!(va["status"], "chosen", "{va}");
    assert!(doc["why"].as_str().unwrap().contains("x264enc"));
    assert_eq!(doc["hevc"]["chosen"], "x265enc", "{doc}");
    assert!(doc["hevc"]["encoders"].as_array().unwrap().iter().all(|e| e["factory"].as_str().unwrap().contains("265")));
}
