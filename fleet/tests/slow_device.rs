//! A device whose work takes longer than the MQTT keep-alive: the client
//! runs it off its runtime, so the connection stays up (no Will), telemetry
//! keeps flowing, and the answer arrives when the work is done.
// An integration test crate is test code throughout (clippy.toml allows
// unwrap/expect only inside #[test] functions and #[cfg(test)] modules).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tls, Broker, TestClient, CONTROLLER};
use fleet::wire::Alarm;
use fleet::{Command, CommandResult, ConfigRejection, Device, FakeDevice, FleetClient, FleetSettings, Job, SharedDevice};
use serde_json::{json, Value};

/// Longer than 1.5 × the 5 s keep-alive, after which the broker would
/// drop a client that sent nothing and publish its Will.
const SLOW: Duration = Duration::from_secs(9);

/// A [`FakeDevice`] whose `stream.stop` takes [`SLOW`].
struct SlowDevice(FakeDevice);

impl Device for SlowDevice {
    fn info(&self) -> Value {
        self.0.info()
    }
    fn state(&self) -> Value {
        self.0.state()
    }
    fn telemetry(&self) -> Value {
        self.0.telemetry()
    }
    fn alarms(&self) -> Vec<Alarm> {
        self.0.alarms()
    }
    fn running_config(&self) -> Value {
        self.0.running_config()
    }
    fn execute(&mut self, cmd: &Command) -> CommandResult {
        self.0.execute(cmd)
    }
    fn execute_job(&mut self, cmd: &Command) -> Job<CommandResult> {
        let r = self.0.execute(cmd);
        Box::new(move || {
            std::thread::sleep(SLOW);
            r.map(|_| Some(json!({"slow_s": SLOW.as_secs()})))
        })
    }
    fn validate_config(&self, config: &Value) -> Result<(), ConfigRejection> {
        self.0.validate_config(config)
    }
    fn apply_config(&mut self, config: &Value) -> Result<(), String> {
        self.0.apply_config(config)
    }
    fn outputs_healthy(&self) -> bool {
        self.0.outputs_healthy()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_longer_than_the_keep_alive_never_drops_the_connection() {
    let broker = Broker::mtls(false);
    let mut ctl = TestClient::connect(&broker, CONTROLLER, Some(tls(&broker, CONTROLLER))).await.unwrap();
    ctl.subscribe("fleet/v1/enc-slow/#").await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = FleetSettings::new(&broker.addr(), "enc-slow", state.path(), Some(tls(&broker, "enc-slow")));
    (settings.keep_alive_s, settings.telemetry_interval_s) = (5, 1);
    let device: SharedDevice = Arc::new(Mutex::new(SlowDevice(FakeDevice::new("enc-slow"))));
    let handle = FleetClient::spawn(settings, device).unwrap();
    ctl.wait_for("/status", 20, |v| v["online"] == true).await.expect("online");

    let sent = Instant::now();
    let req = json!({"id": "slow-1", "name": "stream.stop", "expires_at": fleet::clock::unix_ms_now() + 60_000});
    ctl.publish("fleet/v1/enc-slow/cmd/req", req.to_string(), false).await;
    let mut telemetry_while_busy = 0;
    let done = loop {
        let msgs = ctl.drain(1.0).await;
        assert!(sent.elapsed() < SLOW * 3, "no answer within {:?}", SLOW * 3);
        for m in &msgs {
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
            assert!(!(m.topic.ends_with("/status") && v["online"] == false), "the connection dropped while the device worked: {v}");
            if m.topic.ends_with("/telemetry") && sent.elapsed() < SLOW {
                telemetry_while_busy += 1;
            }
        }
        if let Some(m) = msgs.iter().find(|m| m.topic.ends_with("/cmd/res") && m.payload.windows(9).any(|w| w == b"succeeded")) {
            break serde_json::from_slice::<Value>(&m.payload).unwrap();
        }
    };
    assert!(sent.elapsed() >= SLOW, "the answer came when the work was done");
    assert_eq!(done["result"]["slow_s"], SLOW.as_secs());
    assert!(telemetry_while_busy >= 3, "telemetry kept flowing while the device worked: {telemetry_while_busy}");
    assert!(handle.stats().connected && handle.stats().connects == 1, "{:?}", handle.stats());
    handle.shutdown(Duration::from_secs(5));
}
