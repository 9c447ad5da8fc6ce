//! Sealed secrets end to end (docs/secrets.md): `edgectl config push` seals
//! the SRT passphrase to the box's certificate, the real agent opens it and
//! streams to an `srt-live-transmit` listener that requires it, and the
//! clear passphrase is nowhere outside the box's memory: not in any MQTT
//! message (retained or not), the agent's log, its status file or its state
//! directory. A real mosquitto with mTLS and the fleet ACL.

#![cfg(test)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::{config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, ChildGuard, SrtListenerPeer};
use test_support::broker::{Broker, BrokerOptions};
use test_support::pki::{ClientCert, Pki};

const PASS: &str = "correct-horse-battery-staple";
/// The passphrase of the clear document pushed around edgectl: refused, and
/// never echoed.
const OTHER: &str = "never-in-clear-0123456789";
/// A passphrase in the box's own file (allowed there): the copies the agent
/// keeps in its state directory (the fleet session's rollback record, the
/// last good configuration) hold it sealed to the box.
const LOCAL: &str = "local-file-secret-42";
const DEVICE: &str = "agent-01";
const TEST: &str = "sealed_secrets";
const CONNECT: Duration = Duration::from_secs(30);

fn tls_args(c: &ClientCert) -> Vec<String> {
    ["--cafile", &c.ca.display().to_string(), "--cert", &c.cert.display().to_string(), "--key", &c.key.display().to_string()]
        .map(str::to_owned)
        .to_vec()
}

fn edgectl(broker: &Broker, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    edge_tests::edgectl::run(edge_tests::edgectl::controller(broker, 20), args, stdin)
}

/// `mosquitto_sub` as the read-only `watcher` identity on `#`, line
/// buffered (`stdbuf`, which execs it: the PID is mosquitto_sub's), so the
/// file shows each message as it comes.
fn subscribe_all(broker: &Broker, extra: &[&str], out: Stdio) -> Command {
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", &broker.port.to_string(), "-v", "-q", "1", "-t", "#"])
        .args(tls_args(&broker.client("watcher")))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null());
    cmd
}

/// The `config/reported` documents seen so far.
fn reports(mqtt_log: &Path) -> Vec<serde_json::Value> {
    let topic = format!("fleet/v1/{DEVICE}/config/reported ");
    let text = mqtt_text(mqtt_log);
    text.lines().filter_map(|l| l.strip_prefix(&topic)).filter_map(|p| serde_json::from_str(p).ok()).collect()
}

/// The recorded traffic as text (thumbnails, binary JPEG, are searched
/// for the passphrase as bytes by [`holds`]).
fn mqtt_text(mqtt_log: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(mqtt_log).unwrap_or_default()).into_owned()
}

/// Waits for the report of version `av`; on timeout shows what came.
fn report(mqtt_log: &Path, av: u64) -> serde_json::Value {
    let deadline = Instant::now() + CONNECT;
    loop {
        if let Some(r) = reports(mqtt_log).into_iter().find(|r| r["av"].as_u64() == Some(av)) {
            return r;
        }
        let log = mqtt_text(mqtt_log);
        let tail: Vec<&str> = log.lines().filter(|l| l.contains("/config/")).collect();
        assert!(Instant::now() < deadline, "no report of version {av} within {CONNECT:?}:\n{}", tail.join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn holds(path: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_pushed_passphrase_travels_sealed_and_the_stream_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let opts =
        BrokerOptions { pki: Some(pki.clone()), extra_acl: "user watcher\ntopic read #\n\n".into(), ..BrokerOptions::default() };
    let broker = Broker::launch(Some(&broker_dir), opts).unwrap();
    let mqtt_log = dir.path().join("mqtt.log");
    let log = std::fs::File::create(&mqtt_log).unwrap();
    let _recorder = ChildGuard::spawn("mosquitto_sub", &mut subscribe_all(&broker, &[], Stdio::from(log))).unwrap();

    // The box: its file streams to a listener with its own passphrase
    // (LOCAL); the listener that matters requires PASS.
    let state = dir.path().join("state");
    let id = broker.client(DEVICE);
    let (p0, p1) = (free_udp_port(), free_udp_port());
    let listener = SrtListenerPeer::start(p1, 200, Some((PASS, 16)), &dir.path().join("received.ts"));
    let _local = SrtListenerPeer::start(p0, 200, Some((LOCAL, 16)), &dir.path().join("local.ts"));
    let fleet = format!(
        "\n[fleet]\nbroker = \"{}\"\ndevice_id = \"{DEVICE}\"\nstate_dir = \"{}\"\ntelemetry_interval_s = 1\n\
         [fleet.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        broker.addr(),
        state.display(),
        id.ca.display(),
        id.cert.display(),
        id.key.display()
    );
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent = AgentProc::start(&agent_dir, &(config_toml(DEVICE, 800, &srt_output("primary", p0, 200, Some((LOCAL, 16)))) + &fleet));
    wait_for("the box online with its certificate in info", CONNECT, || {
        let text = mqtt_text(&mqtt_log);
        (text.contains(&format!("fleet/v1/{DEVICE}/status {{")) && text.contains("BEGIN CERTIFICATE")).then_some(())
    });
    // The file's configuration streams for 5 s and is kept as the last
    // good one (agent::media::LastGood): sealed.
    let last_good = state.join("last-good-config.json");
    let deadline = Instant::now() + CONNECT;
    while !holds(&last_good, "\"sealed\"") {
        let log = agent.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("last good") || l.contains("seal") || l.contains("WARN")).collect();
        assert!(
            Instant::now() < deadline,
            "no sealed {} within {CONNECT:?} (exists: {}):\n{}",
            last_good.display(),
            last_good.exists(),
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The operator's file holds the passphrase in clear; edgectl seals it to
    // the certificate from the box's retained info (checked against the CA).
    let desired = dir.path().join("desired.toml");
    std::fs::write(&desired, config_toml(DEVICE, 800, &srt_output("primary", p1, 200, Some((PASS, 16))))).unwrap();
    let pushed = Instant::now();
    let (code, out, err) = edgectl(&broker, &["config", "push", DEVICE, desired.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}\n{}", agent.log());
    assert!(err.contains("sealed 1 secret(s)"), "{err}");
    agent.wait_output_state("primary", "connected", CONNECT);
    wait_for("TS through the passphrase-protected listener", CONNECT, || (listener.received() > 50_000).then_some(()));
    record(TEST, "push to 50 kB received through the sealed passphrase (s)", format!("{:.1}", pushed.elapsed().as_secs_f64()));

    // A desired config with a clear passphrase, published around edgectl:
    // refused, naming the key, without the value; the stream stays.
    let clear = serde_json::json!({"version": 2, "config": {
        "device_id": DEVICE, "input": {"kind": "test-pattern"},
        "outputs": [{"name": "primary", "kind": "srt", "address": format!("127.0.0.1:{p1}"), "passphrase": OTHER}]}});
    let ctl = broker.client("controller");
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1", "-r"])
        .args(tls_args(&ctl))
        .args(["-t", &format!("fleet/v1/{DEVICE}/config/desired"), "-m", &clear.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let r = report(&mqtt_log, 2);
    assert_eq!(
        (r["status"].as_str(), r["key"].as_str(), r["running"].as_u64()),
        (Some("rejected"), Some("outputs[0].passphrase"), Some(1)),
        "{r}"
    );
    assert!(r["ad"].as_str().unwrap_or_default().contains("in clear"), "{r}");

    // A value sealed to another box (`edgectl seal` with its certificate)
    // does not open here: refused, naming the key.
    let other = pki.client("agent-02");
    let (code, sealed, err) =
        edgectl(&broker, &["seal", "--device", "agent-02", "--device-cert", other.cert.to_str().unwrap()], Some(&format!("{PASS}\n")));
    assert_eq!(code, 0, "{err}");
    let sealed = sealed.trim().to_owned();
    assert!(!sealed.contains(PASS) && sealed.len() > 100, "{sealed}");
    record(TEST, "sealed passphrase (base64 characters)", sealed.len());
    // Without --device-cert: the certificate from the box's retained info.
    let (code, own, err) = edgectl(&broker, &["seal", "--device", DEVICE], Some(PASS));
    assert_eq!(code, 0, "{err}");
    // Standard CMS: OpenSSL's command line opens it with the box's key.
    let opened = Command::new("sh")
        .arg("-c")
        .arg("printf %s \"$1\" | base64 -d | openssl cms -decrypt -binary -inform DER -recip \"$2\" -inkey \"$3\"")
        .args(["sh", own.trim(), id.cert.to_str().unwrap(), id.key.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&opened.stdout), PASS, "{}", String::from_utf8_lossy(&opened.stderr));
    // ... and edgectl refuses to seal to a certificate whose CN is not the device.
    let (code, _, err) = edgectl(&broker, &["seal", "--device", DEVICE, "--device-cert", other.cert.to_str().unwrap()], Some(PASS));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CN is `agent-02`"), "{err}");
    let foreign = dir.path().join("foreign.json");
    let doc = serde_json::json!({"device_id": DEVICE, "input": {"kind": "test-pattern"},
        "outputs": [{"name": "primary", "kind": "srt", "address": format!("127.0.0.1:{p1}"), "passphrase": {"sealed": sealed}}]});
    std::fs::write(&foreign, doc.to_string()).unwrap();
    let (code, out, err) = edgectl(&broker, &["config", "push", DEVICE, foreign.to_str().unwrap()], None);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("outputs[0].passphrase") && out.contains("does not open with this box's key"), "{out}");
    assert_eq!(agent.output("primary").unwrap()["state"], "connected");

    // Every retained message on the broker, collected fresh.
    let retained = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-v", "-t", "#", "--retained-only", "-W", "3"])
        .args(tls_args(&broker.client("watcher")))
        .output()
        .unwrap();
    let retained = String::from_utf8_lossy(&retained.stdout).into_owned();
    assert!(retained.contains(&format!("fleet/v1/{DEVICE}/config/desired")), "{retained}");
    assert!(retained.contains("\"sealed\""), "{retained}");
    // The clear desired document the test published was replaced since.
    assert!(!retained.contains(PASS) && !retained.contains(OTHER), "a clear passphrase is retained");
    assert!(!holds(&mqtt_log, PASS), "the clear passphrase crossed the broker");
    // The refusal never echoed the clear value (it is only in the desired
    // message the test itself published).
    assert!(reports(&mqtt_log).iter().all(|r| !r.to_string().contains(OTHER)));

    // The box: its log, status file and state directory; the state holds the
    // applied document, sealed.
    assert!(!agent.log().contains(PASS) && !agent.log().contains(OTHER), "the agent's log holds a passphrase");
    assert!(!holds(&agent.status_file, PASS));
    let files = files_under(&state);
    assert!(files.iter().any(|f| f.ends_with("applied-config.json") && holds(f, "\"sealed\"")), "{files:?}");
    for f in files.iter().chain(files_under(&broker_dir).iter()) {
        assert!(!holds(f, PASS), "{} holds the clear passphrase", f.display());
        assert!(!holds(f, LOCAL), "{} holds the box file's passphrase in clear", f.display());
    }
    assert!(!holds(&mqtt_log, LOCAL), "the box file's passphrase crossed the broker");
    record(TEST, "files checked in the state and broker directories", files.len() + files_under(&broker_dir).len());
}
