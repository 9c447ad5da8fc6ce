//! `edgectl` end to end against a simulated device process: readable lines
//! by default, the wire documents with `--json`.
// An integration test crate is test code throughout (clippy.toml allows
// unwrap/expect only inside #[test] functions and #[cfg(test)] modules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

mod common;

use std::time::{Duration, Instant};

use common::{edgectl, Broker, SimDevice};
use serde_json::Value;

fn wait_online(broker: &Broker, device: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = edgectl(broker, &["status", device, "--json"]);
        if code == 0 && serde_json::from_str::<Value>(&out).is_ok_and(|v| v["status"]["online"] == true) {
            return;
        }
        assert!(Instant::now() < deadline, "{device} not online within 30 s: {code} {out} {err}\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn edgectl_end_to_end() {
    let broker = Broker::mtls(false);
    let state = tempfile::tempdir().unwrap();
    let _dev = SimDevice::start(&broker, "enc-e", state.path());
    wait_online(&broker, "enc-e");

    // devices: JSON and table.
    let (code, out, err) = edgectl(&broker, &["devices", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["device"].as_str(), list[0]["status"]["online"].as_bool()), (Some("enc-e"), Some(true)));
    let (code, out, _) = edgectl(&broker, &["devices"]);
    assert_eq!(code, 0);
    assert!(out.contains("enc-e") && out.contains("online"), "{out}");

    // status: lines by default; an unknown device: 5.
    let (code, out, err) = edgectl(&broker, &["status", "enc-e"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("enc-e: online (ready), bdseq "), "{out}");
    assert!(out.lines().any(|l| l == "info:") && out.lines().any(|l| l == "  model: fake"), "{out}");
    assert!(serde_json::from_str::<Value>(&out).is_err(), "not JSON by default: {out}");
    let (code, _, _) = edgectl(&broker, &["status", "enc-nobody"]);
    assert_eq!(code, 5);

    // cmd: success, device refusal (as lines, and as JSON with --json),
    // local usage errors, timeout.
    let (code, out, err) = edgectl(&broker, &["cmd", "enc-e", "output.disable", "output=backup"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.starts_with("enc-e: output.disable succeeded\n"), "{out}");
    let (code, out, err) = edgectl(&broker, &["cmd", "enc-e", "identify", "--json"]);
    assert_eq!(code, 0, "{out} {err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["state"], "succeeded");
    let (code, out, _) = edgectl(&broker, &["cmd", "enc-e", "output.enable", "output=nonexistent"]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("enc-e: output.enable ") && out.contains("(precondition_failed): no output named `nonexistent`"), "{out}");
    let (code, out, _) = edgectl(&broker, &["cmd", "enc-e", "output.enable", "output=nonexistent", "--json"]);
    assert_eq!(code, 3, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["reason"], "precondition_failed", "{out}");
    let (code, _, err) = edgectl(&broker, &["cmd", "enc-e", "self.destruct"]);
    assert_eq!(code, 2, "unknown command is a usage error: {err}");
    let (code, _, err) = edgectl(&broker, &["cmd", "enc-e", "telemetry.boost", "interval_s=0"]);
    assert_eq!(code, 2, "invalid args are a usage error: {err}");
    let (code, _, err) = edgectl(&broker, &["--timeout", "2", "cmd", "enc-ghost", "identify"]);
    assert_eq!(code, 4, "no answer: {err}");

    // The disabled output is an alarm in `devices` and in `watch`.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, _) = edgectl(&broker, &["devices"]);
        if out.contains("output_disabled") {
            break;
        }
        assert!(Instant::now() < deadline, "alarm not shown: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, out, _) = edgectl(&broker, &["watch", "--iterations", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains("1 devices | 1 online | 0 offline") && out.contains("minor"), "{out}");

    // config push: TOML with --confirm ends applied; an invalid one is
    // refused with its key and reason on one line.
    let cfg = state.path().join("agent.toml");
    let path = cfg.to_str().unwrap();
    std::fs::write(&cfg, "[video]\nbitrate_kbps = 4000\n").unwrap();
    let (code, out, err) = edgectl(&broker, &["config", "push", "enc-e", path, "--confirm", "--json"]);
    assert_eq!(code, 0, "{out} {err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((r["status"].as_str(), r["av"].as_u64(), r["running"].as_u64()), (Some("applied"), Some(1), Some(1)));
    std::fs::write(&cfg, "[video]\nbitrate_kbps = 1\n").unwrap();
    let (code, out, _) = edgectl(&broker, &["config", "push", "enc-e", path]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out, "enc-e: version 2 rejected: video.bitrate_kbps: must be an integer in 100..=50000; running version 1\n");
    let (code, out, _) = edgectl(&broker, &["config", "push", "enc-e", path, "--json"]);
    assert_eq!(code, 3, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((r["status"].as_str(), r["av"].as_u64(), r["key"].as_str()), (Some("rejected"), Some(3), Some("video.bitrate_kbps")));
    let (_, out, _) = edgectl(&broker, &["status", "enc-e"]);
    assert!(out.lines().any(|l| l.starts_with("config: version 3 rejected: video.bitrate_kbps: must be")), "{out}");

    // A confirm window: the line says how to confirm, and that works.
    std::fs::write(&cfg, "[video]\nbitrate_kbps = 3000\n").unwrap();
    let (code, out, err) = edgectl(&broker, &["config", "push", "enc-e", path, "--confirm-within", "60"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.starts_with("enc-e: version 4 pending_confirm: confirm with config.confirm{version:4} within 60 s"), "{out}");
    assert!(out.ends_with("\n  confirm with: edgectl cmd enc-e config.confirm version=4\n"), "{out}");
    let (code, out, err) = edgectl(&broker, &["cmd", "enc-e", "config.confirm", "version=4"]);
    assert_eq!((code, out.as_str()), (0, "enc-e: config.confirm succeeded\n  version: 4\n"), "{err}");
    let (_, out, _) = edgectl(&broker, &["config", "push", "enc-e", path]);
    assert_eq!(out, "enc-e: version 5 applied; running version 5\n");
}
