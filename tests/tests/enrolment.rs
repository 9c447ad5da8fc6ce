//! First-boot enrolment end to end on the host (docs/identity.md): a box
//! configured with only the fleet CA and the claim certificate makes its
//! key, hands in a CSR, is approved with `edgectl enroll approve` after the
//! fingerprint check, stores its certificate and comes online under its
//! own identity. A real mosquitto with mTLS and the fleet ACL.

#![cfg(test)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::{agent_bin, config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, ChildGuard};
use test_support::broker::Broker;

const DEVICE: &str = "box-enrol-1";
const CLAIM: &str = "enroll#claim";
const TEST: &str = "enrolment";
const WAIT: Duration = Duration::from_secs(30);

fn edgectl(broker: &Broker, args: &[&str]) -> (i32, String, String) {
    edge_tests::edgectl::run(edge_tests::edgectl::controller(broker, 15), args, None)
}

fn box_config(broker: &Broker, state: &Path) -> String {
    let claim = broker.client(CLAIM);
    let fleet = format!(
        "\n[fleet]\nbroker = \"{}\"\ndevice_id = \"{DEVICE}\"\nstate_dir = \"{s}\"\ntelemetry_interval_s = 1\n\
         [fleet.tls]\nca = \"{ca}\"\ncert = \"{s}/identity/box.crt\"\nkey = \"{s}/identity/box.key\"\n\
         [fleet.enroll]\nclaim_cert = \"{cc}\"\nclaim_key = \"{ck}\"\npoll_s = 1\n",
        broker.addr(),
        s = state.display(),
        ca = claim.ca.display(),
        cc = claim.cert.display(),
        ck = claim.key.display(),
    );
    config_toml(DEVICE, 800, &srt_output("primary", free_udp_port(), 200, None)) + &fleet
}

#[test]
fn a_box_with_only_the_claim_certificate_enrols_and_comes_online_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mtls(false);
    let state = dir.path().join("state");
    let config = box_config(&broker, &state);
    let cfg_path = dir.path().join("agent.toml");
    std::fs::write(&cfg_path, &config).unwrap();

    // First boot: `edge-agent enrol` makes the key and waits for approval.
    let log_path = dir.path().join("enrol.log");
    let mut cmd = Command::new(agent_bin());
    cmd.args(["enrol", "--config"])
        .arg(&cfg_path)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(dir.path().join("enrol.out")).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let started = Instant::now();
    let mut enrol = ChildGuard::spawn("edge-agent enrol", &mut cmd).unwrap();
    let shown = wait_for("the box to show its key's fingerprint", WAIT, || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let line = log.lines().find(|l| l.contains("waiting for approval"))?;
        let fp = line.split("fingerprint=").nth(1)?.split_whitespace().next()?;
        Some(fp.to_owned())
    });
    let key = state.join("identity/box.key");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the box's key is private");
    assert!(!state.join("identity/box.crt").exists());

    // The CA holder sees the request with the same fingerprint.
    let listed = wait_for("the request in `edgectl enroll list`", WAIT, || {
        let (code, out, _) = edgectl(&broker, &["enroll", "list"]);
        (code == 0 && out.contains(DEVICE)).then_some(out)
    });
    assert!(listed.lines().any(|l| l == format!("{DEVICE}  {shown}  pending")), "{listed}");

    // A fingerprint that is not the box's: nothing is signed.
    let ca_key = broker.pki().dir.join("ca.key");
    let ca = broker.pki().ca();
    let base = ["enroll", "approve", DEVICE, "--ca-cert", ca.to_str().unwrap(), "--ca-key", ca_key.to_str().unwrap()];
    let (code, _, err) = edgectl(&broker, &[&base[..], &["--fingerprint", "SHA256:not-this-one"]].concat());
    assert_eq!(code, 3, "{err}");
    let (code, out, err) = edgectl(&broker, &[&base[..], &["--fingerprint", &shown]].concat());
    assert_eq!(code, 0, "{out}{err}");

    let status = enrol
        .wait_timeout(WAIT)
        .unwrap_or_else(|| panic!("enrolment did not finish:\n{}", std::fs::read_to_string(&log_path).unwrap()));
    assert!(status.success(), "{}", std::fs::read_to_string(&log_path).unwrap());
    record(TEST, "first boot to stored certificate, approval included (s)", format!("{:.1}", started.elapsed().as_secs_f64()));
    let (_, out, _) = edgectl(&broker, &["enroll", "list"]);
    assert!(out.contains(&format!("{DEVICE}  {shown}  issued")), "{out}");
    let verify = Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(&ca)
        .arg(state.join("identity/box.crt"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));

    // A second run knows it is enrolled and returns at once.
    let again = Command::new(agent_bin()).args(["enrol", "--config"]).arg(&cfg_path).output().unwrap();
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), shown);

    // The agent connects as itself: only the certificate with CN = the
    // device id may publish the box's status (fleet ACL), and its info
    // carries that certificate.
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let online = Instant::now();
    let agent = AgentProc::start(&agent_dir, &config);
    let status = wait_for("the box online under its own certificate", WAIT, || {
        let (code, out, _) = edgectl(&broker, &["status", DEVICE, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        (code == 0 && v["status"]["online"] == true).then_some(v)
    });
    record(TEST, "agent start to online with the enrolled identity (s)", format!("{:.1}", online.elapsed().as_secs_f64()));
    let cert = std::fs::read_to_string(state.join("identity/box.crt")).unwrap();
    assert_eq!(status["info"]["certificate"].as_str().map(str::trim), Some(cert.trim()), "{status}\n{}", agent.log());
}
