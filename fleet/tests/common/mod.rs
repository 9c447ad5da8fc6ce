//! Fleet-specific test fixtures: MQTT test clients, `edgectl` processes and
//! simulated devices, against test-support's mosquitto (mTLS + the fleet
//! ACL). Everything on 127.0.0.1, every wait bounded.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet::client::mqtt_options;
use fleet::TlsSettings;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;

pub use test_support::acl::CONTROLLER;
pub use test_support::broker::Broker;

/// TLS settings of `identity` (its certificate from the broker's PKI).
pub fn tls(broker: &Broker, identity: &str) -> TlsSettings {
    let c = broker.client(identity);
    TlsSettings { ca: c.ca, cert: c.cert, key: c.key }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// A raw MQTT client for assertions.
pub struct TestClient {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Result<Msg, String>>,
    /// Received but not yet matched by `wait_for`, in order.
    unmatched: Vec<Msg>,
}

impl TestClient {
    /// Connects as `identity` (its certificate), or without a certificate
    /// when `tls` is `None` (expected to fail). Returns the connect error.
    pub async fn connect(broker: &Broker, identity: &str, tls: Option<TlsSettings>) -> Result<TestClient, String> {
        TestClient::connect_with(broker, identity, tls, true).await
    }

    /// `clean: false` keeps the session (and queued QoS 1 messages) while
    /// the client is away.
    pub async fn connect_with(broker: &Broker, identity: &str, tls: Option<TlsSettings>, clean: bool) -> Result<TestClient, String> {
        let mut opts = mqtt_options(identity, &broker.addr(), tls.as_ref(), 30).map_err(|e| e.to_string())?;
        opts.set_clean_session(clean);
        let (client, mut el) = AsyncClient::new(opts, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ctx, crx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut ctx = Some(ctx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(c) = ctx.take() {
                            let _ = c.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Ok(Msg { topic: p.topic, payload: p.payload.to_vec(), retain: p.retain }));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(c) = ctx.take() {
                            let _ = c.send(Err(e.to_string()));
                        }
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), crx).await {
            Ok(Ok(Ok(()))) => Ok(TestClient { client, rx, unmatched: Vec::new() }),
            Ok(Ok(Err(e))) => Err(e),
            _ => Err("no CONNACK within 10 s".into()),
        }
    }

    pub async fn subscribe(&self, filter: &str) {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        // Let the SUBACK and retained messages arrive.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.into()).await.unwrap();
    }

    /// The first message (earlier unmatched ones included) whose topic ends
    /// with `suffix` and whose JSON satisfies `pred`, within `secs`.
    pub async fn wait_for(&mut self, suffix: &str, secs: u64, pred: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
        let matches = |m: &Msg| {
            if !m.topic.ends_with(suffix) {
                return None;
            }
            serde_json::from_slice::<serde_json::Value>(&m.payload).ok().filter(|v| pred(v))
        };
        if let Some(i) = self.unmatched.iter().position(|m| matches(m).is_some()) {
            return matches(&self.unmatched.remove(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Ok(m))) => match matches(&m) {
                    Some(v) => return Some(v),
                    None => self.unmatched.push(m),
                },
                _ => return None,
            }
        }
    }

    /// Every message received within `secs`.
    pub async fn drain(&mut self, secs: f64) -> Vec<Msg> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        let mut out: Vec<Msg> = self.unmatched.drain(..).collect();
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            out.push(m);
        }
        out
    }
}

/// Broker arguments for `edgectl` as `identity`.
pub fn edgectl_args(broker: &Broker, identity: &str) -> Vec<String> {
    let t = tls(broker, identity);
    vec![
        "--broker".into(),
        broker.addr(),
        "--ca".into(),
        t.ca.display().to_string(),
        "--cert".into(),
        t.cert.display().to_string(),
        "--key".into(),
        t.key.display().to_string(),
    ]
}

/// Runs `edgectl ARGS` as the controller; (exit code, stdout, stderr).
pub fn edgectl(broker: &Broker, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgectl")).args(edgectl_args(broker, CONTROLLER)).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A simulated device process (`edgectl simulate-device`); killed on drop.
pub struct SimDevice {
    pub child: Child,
}

impl SimDevice {
    pub fn start(broker: &Broker, device: &str, state_dir: &Path) -> SimDevice {
        let child = Command::new(env!("CARGO_BIN_EXE_edgectl"))
            .args(edgectl_args(broker, device))
            .args(["simulate-device", "--device-id", device, "--state-dir"])
            .arg(state_dir)
            .args(["--telemetry-interval", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        SimDevice { child }
    }

    /// SIGKILL: no clean offline, the broker must publish the Will.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded): the clean shutdown path.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
