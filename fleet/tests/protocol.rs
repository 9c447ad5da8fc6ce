//! The device protocol over a real broker: an in-process FleetClient with a
//! FakeDevice, and a raw controller client sending good and bad documents.
// An integration test crate is test code throughout (clippy.toml allows
// unwrap/expect only inside #[test] functions and #[cfg(test)] modules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{tls, Broker, TestClient, CONTROLLER};
use fleet::{FakeDevice, FleetClient, FleetHandle, FleetSettings, SharedDevice};
use serde_json::{json, Value};

struct Dev {
    fake: Arc<Mutex<FakeDevice>>,
    handle: Option<FleetHandle>,
    _state: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown(Duration::from_secs(5));
        }
    }
}

fn start_device(broker: &Broker, id: &str) -> Dev {
    let state = tempfile::tempdir().unwrap();
    let settings = FleetSettings::new(&broker.addr(), id, state.path(), Some(tls(broker, id)));
    let fake = Arc::new(Mutex::new(FakeDevice::new(id)));
    let shared: SharedDevice = fake.clone();
    let handle = FleetClient::spawn(settings, shared).unwrap();
    Dev { fake, handle: Some(handle), _state: state }
}

async fn controller(broker: &Broker, device: &str) -> TestClient {
    let ctl = TestClient::connect(broker, CONTROLLER, Some(tls(broker, CONTROLLER))).await.unwrap();
    ctl.subscribe(&format!("fleet/v1/{device}/#")).await;
    ctl
}

fn far_future_ms() -> u64 {
    fleet::clock::unix_ms_now() + 60_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_rejections_over_mqtt() {
    let broker = Broker::mtls(false);
    let mut ctl = controller(&broker, "enc-p").await;
    let dev = start_device(&broker, "enc-p");
    ctl.wait_for("/status", 20, |v| v["online"] == true).await.expect("online");
    let req = "fleet/v1/enc-p/cmd/req";

    let cases: Vec<(String, &str, &str)> = vec![
        ("{not json".into(), "", "bad_request"),
        (json!({"id": "u1", "name": "stream.stop", "surprise": 1}).to_string(), "u1", "bad_request"),
        (json!({"id": "t1", "name": "stream.stop", "timeout_s": "soon"}).to_string(), "t1", "bad_request"),
        (json!({"id": "n1", "name": "self.destruct"}).to_string(), "n1", "unknown_command"),
        (json!({"id": "a1", "name": "output.disable", "args": {"output": 5}}).to_string(), "a1", "invalid_args"),
        (json!({"id": "e1", "name": "stream.stop", "expires_at": 1_000}).to_string(), "e1", "expired"),
        (json!({"id": "big", "name": "identify", "args": {"pad": "x".repeat(20_000)}}).to_string(), "big", "payload_too_large"),
    ];
    for (payload, id, reason) in &cases {
        ctl.publish(req, payload.clone(), false).await;
        let r = ctl
            .wait_for("/cmd/res", 10, |v| v["id"] == *id && v["state"] == "rejected")
            .await
            .unwrap_or_else(|| panic!("no rejection for {id}"));
        assert_eq!(r["reason"], *reason, "{r}");
    }
    assert!(dev.fake.lock().unwrap().executed.is_empty(), "nothing ran");

    // A good command, then the same id again: stored result, duplicate.
    let good = json!({"id": "d1", "name": "output.disable", "args": {"output": "backup"}, "expires_at": far_future_ms()});
    ctl.publish(req, good.to_string(), false).await;
    ctl.wait_for("/cmd/res", 10, |v| v["id"] == "d1" && v["state"] == "succeeded").await.expect("succeeded");
    ctl.publish(req, good.to_string(), false).await;
    let dup = ctl.wait_for("/cmd/res", 10, |v| v["id"] == "d1" && v["duplicate"] == true).await.expect("duplicate");
    assert_eq!(dup["state"], "succeeded");
    assert_eq!(dev.fake.lock().unwrap().executed.len(), 1, "executed once");
    // The disabled output shows up as an alarm event and in the snapshot.
    let ev = ctl.wait_for("/event", 10, |v| v["alarm"]["code"] == "OUTPUT_DISABLED").await.expect("alarm event");
    assert_eq!(ev["alarm"]["state"], "raised");
    ctl.wait_for("/alarms", 10, |v| v["active"].as_array().is_some_and(|a| !a.is_empty())).await.expect("snapshot");

    // Config: higher applies, lower is stale, invalid names the key, too big is 413.
    let desired = "fleet/v1/enc-p/config/desired";
    ctl.publish(desired, json!({"version": 5, "config": {"video": {"bitrate_kbps": 3000}}}).to_string(), true).await;
    let r = ctl.wait_for("/config/reported", 10, |v| v["av"] == 5).await.expect("report 5");
    assert_eq!((r["ac"].as_u64(), r["status"].as_str()), (Some(200), Some("applied")));
    ctl.publish(desired, json!({"version": 4, "config": {}}).to_string(), true).await;
    let r = ctl.wait_for("/config/reported", 10, |v| v["av"] == 4).await.expect("report 4");
    assert_eq!((r["ac"].as_u64(), r["ad"].as_str()), (Some(409), Some("stale_version")));
    ctl.publish(desired, json!({"version": 6, "config": {"video": {"bitrate_kbps": 5}}}).to_string(), true).await;
    let r = ctl.wait_for("/config/reported", 10, |v| v["av"] == 6).await.expect("report 6");
    assert_eq!((r["ac"].as_u64(), r["key"].as_str()), (Some(400), Some("video.bitrate_kbps")));
    let big = json!({"version": 7, "config": {"pad": "x".repeat(70_000)}}).to_string();
    ctl.publish(desired, big, true).await;
    let r = ctl.wait_for("/config/reported", 10, |v| v["av"] == 7).await.expect("report 7");
    assert_eq!(r["ac"], 413);
    assert_eq!(dev.fake.lock().unwrap().config["video"]["bitrate_kbps"], 3000, "running config kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_risky_change_rolls_back() {
    let broker = Broker::mtls(false);
    let mut ctl = controller(&broker, "enc-c").await;
    let dev = start_device(&broker, "enc-c");
    ctl.wait_for("/status", 20, |v| v["online"] == true).await.expect("online");
    let doc = json!({"version": 1, "confirm_within_s": 2, "config": {"video": {"bitrate_kbps": 9000}}});
    ctl.publish("fleet/v1/enc-c/config/desired", doc.to_string(), true).await;
    let p = ctl.wait_for("/config/reported", 10, |v| v["av"] == 1).await.expect("pending");
    assert_eq!(p["status"], "pending_confirm");
    assert_eq!(dev.fake.lock().unwrap().config["video"]["bitrate_kbps"], 9000);
    let r = ctl.wait_for("/config/reported", 10, |v| v["status"] == "rolled_back").await.expect("rolled back");
    assert_eq!((r["ac"].as_u64(), r["ad"].as_str(), r["running"].as_u64()), (Some(408), Some("confirm_timeout"), Some(0)));
    assert_eq!(dev.fake.lock().unwrap().config["video"]["bitrate_kbps"], 2500, "last known good restored");
    // The state document follows the running version.
    ctl.wait_for("/state", 5, |v: &Value| v["config_version"] == 0).await.expect("state with the rolled-back version");
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_the_outbox_while_the_broker_is_down_and_telemetry_is_dropped() {
    let mut broker = Broker::mtls(true);
    let ctl_tls = tls(&broker, CONTROLLER);
    let mut ctl = TestClient::connect_with(&broker, CONTROLLER, Some(ctl_tls.clone()), false).await.unwrap();
    ctl.subscribe("fleet/v1/enc-o/#").await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = FleetSettings::new(&broker.addr(), "enc-o", state.path(), Some(tls(&broker, "enc-o")));
    settings.telemetry_interval_s = 1;
    settings.reconnect_max_s = 2;
    let fake = Arc::new(Mutex::new(FakeDevice::new("enc-o")));
    let shared: SharedDevice = fake.clone();
    let handle = FleetClient::spawn(settings, shared).unwrap();
    ctl.wait_for("/status", 20, |v| v["online"] == true).await.expect("online");
    ctl.wait_for("/telemetry", 10, |_| true).await.expect("telemetry while online");

    broker.terminate();
    wait_until("the device to notice", 20, || !handle.stats().connected);
    fake.lock().unwrap().streaming = false;
    wait_until("the alarm event in the outbox", 10, || handle.stats().outbox_len >= 1);
    wait_until("telemetry dropped offline", 10, || handle.stats().session.telemetry_dropped_offline >= 1);

    broker.restart();
    let mut ctl = TestClient::connect_with(&broker, CONTROLLER, Some(ctl_tls), false).await.unwrap();
    let ev = ctl.wait_for("/event", 30, |v| v["alarm"]["code"] == "STREAM_STOPPED").await.expect("event after reconnect");
    assert_eq!(ev["alarm"]["state"], "raised");
    wait_until("the outbox to drain", 10, || handle.stats().outbox_len == 0);
    assert!(handle.stats().connects >= 2);
    assert!(handle.shutdown(Duration::from_secs(5)));
}
