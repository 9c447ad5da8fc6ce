//! Test fixtures: a throw-away PKI made with the `openssl` CLI, a real
//! mosquitto with mTLS and the direction-restricted ACL, MQTT test clients,
//! and `edgectl` processes. Everything on 127.0.0.1, every wait bounded.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet::client::mqtt_options;
use fleet::TlsSettings;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;

pub const CONTROLLER: &str = "controller";

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA plus certificates made on demand (P-256, X.509 v3).
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let pki = Pki { dir: dir.join("pki") };
        std::fs::create_dir_all(&pki.dir).unwrap();
        let d = &pki.dir;
        run(Command::new("openssl").current_dir(d).args([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=fleet-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]));
        pki.issue("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        pki
    }

    fn issue(&self, name: &str, cn: &str, ext: &str) {
        let d = &self.dir;
        std::fs::write(d.join(format!("{name}.ext")), format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}")).unwrap();
        run(Command::new("openssl").current_dir(d).args([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"), "-subj", &format!("/CN={cn}"),
        ]));
        run(Command::new("openssl").current_dir(d).args([
            "x509", "-req", "-in", &format!("{name}.csr"), "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
            &format!("{}", fastrand::u32(1..)), "-out", &format!("{name}.crt"), "-days", "2",
            "-extfile", &format!("{name}.ext"),
        ]));
    }

    /// A client certificate with CN = `identity` (device id or `controller`).
    pub fn client(&self, identity: &str) -> TlsSettings {
        if !self.dir.join(format!("{identity}.crt")).exists() {
            self.issue(identity, identity, "extendedKeyUsage=clientAuth\n");
        }
        TlsSettings {
            ca: self.dir.join("ca.crt"),
            cert: self.dir.join(format!("{identity}.crt")),
            key: self.dir.join(format!("{identity}.key")),
        }
    }
}

/// A free TCP port on 127.0.0.1 (bind to 0, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const ACL: &str = "\
user controller
topic readwrite fleet/#

pattern write fleet/v1/%u/status
pattern write fleet/v1/%u/info
pattern write fleet/v1/%u/state
pattern write fleet/v1/%u/telemetry
pattern write fleet/v1/%u/event
pattern write fleet/v1/%u/alarms
pattern write fleet/v1/%u/config/reported
pattern write fleet/v1/%u/cmd/res
pattern read fleet/v1/%u/config/desired
pattern read fleet/v1/%u/cmd/req
";

/// A mosquitto with mTLS + ACL on a random port; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub pki: Pki,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(false)
    }

    /// `persistent`: keep sessions across a SIGTERM restart (mosquitto
    /// writes its database on a clean exit).
    pub fn start_with(persistent: bool) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let port = free_port();
        let p = |f: &str| pki.dir.join(f).display().to_string();
        std::fs::write(dir.path().join("fleet.acl"), ACL).unwrap();
        // Started as root, mosquitto would drop to user `mosquitto`, which
        // cannot read this private temporary directory: stay root here.
        let user = if running_as_root() { "user root\n" } else { "" };
        let persistence = if persistent {
            format!("persistence true\npersistence_location {}/\n", dir.path().display())
        } else {
            "persistence false\n".to_owned()
        };
        let conf = format!(
            "{user}per_listener_settings false\nallow_anonymous false\nacl_file {acl}\n{persistence}\
             max_packet_size 131072\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
             listener {port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\nrequire_certificate true\n\
             # cert CN -> username -> client id\nuse_identity_as_username true\nuse_username_as_clientid true\n",
            acl = dir.path().join("fleet.acl").display(),
            ca = p("ca.crt"),
            crt = p("server.crt"),
            key = p("server.key"),
        );
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = spawn_mosquitto(dir.path(), port);
        Broker { child, port, dir, pki }
    }

    /// SIGTERM (mosquitto saves its database) and wait, bounded.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts mosquitto again on the same port and configuration.
    pub fn restart(&mut self) {
        self.child = spawn_mosquitto(self.dir.path(), self.port);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

/// Runs `dir/mosquitto.conf`, appending to `dir/mosquitto.log`, and waits
/// (≤10 s) until it accepts connections on `port`.
fn spawn_mosquitto(dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("mosquitto.log")).unwrap();
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("mosquitto (apt-get install mosquitto)");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("mosquitto exited ({st}): {}", std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        assert!(Instant::now() < deadline, "mosquitto did not listen within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn running_as_root() -> bool {
    // No libc: ask `id -u`.
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let t = broker.pki.client(identity);
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
    let out = Command::new(env!("CARGO_BIN_EXE_edgectl"))
        .args(edgectl_args(broker, CONTROLLER))
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
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
