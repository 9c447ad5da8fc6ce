//! First-boot enrolment in the flashable image (docs/identity.md), booted in
//! QEMU: the data partition carries only the fleet CA and the claim
//! certificate; the box makes its key, hands in its CSR, is approved with
//! `edgectl enroll approve` after the fingerprint check, and comes online
//! on the TLS broker under its own certificate. Root and QEMU as vm_boot.

#![cfg(test)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::broker::Broker;
use edge_tests::vm::{self, Vm, BOOT};
use edge_tests::{agent_bin, bin_dir, free_udp_port, record, wait_for, SrtListenerPeer};

const TEST: &str = "vm_enrol";

fn edgectl(broker: &Broker, args: &[&str]) -> (i32, String, String) {
    edge_tests::edgectl::run(edge_tests::edgectl::controller(broker, 15), args, None)
}

/// The data partition: the fleet settings with `[fleet.enroll]`, the CA and
/// the claim certificate, and no box key at all.
fn provisioning(dir: &Path, broker: &Broker) -> std::path::PathBuf {
    let p = dir.join("provision-enrol");
    let tls = p.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let claim = broker.client("enroll#claim");
    std::fs::copy(&claim.ca, tls.join("ca.crt")).unwrap();
    std::fs::copy(&claim.cert, tls.join("claim.crt")).unwrap();
    std::fs::copy(&claim.key, tls.join("claim.key")).unwrap();
    let toml = format!(
        r#"{head}
[[outputs]]
name = "primary"
kind = "srt"
address = "127.0.0.1:9000"
latency_ms = 500

[fleet]
broker = "10.0.2.100:8883"
device_id = "@DEVICE_ID@"
state_dir = "/var/lib/edge-agent"
telemetry_interval_s = 10
[fleet.tls]
ca = "/etc/edge-agent/tls/ca.crt"
cert = "/var/lib/edge-agent/identity/box.crt"
key = "/var/lib/edge-agent/identity/box.key"
[fleet.enroll]
claim_cert = "/etc/edge-agent/tls/claim.crt"
claim_key = "/etc/edge-agent/tls/claim.key"
poll_s = 2
"#,
        head = vm::media_head(vm::TEST_PATTERN_INPUT)
    );
    std::fs::write(p.join("agent.toml.in"), toml).unwrap();
    p
}

#[test]
fn a_box_with_only_the_claim_certificate_comes_online_as_itself() {
    vm::require_tools();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mtls(false);
    let image = bin_dir().join("vm-enrol-image");
    let extra = vm::extra_overlay(dir.path());
    // The enrolment unit's journal on the serial console too (the console
    // unit of vm::extra_overlay follows the other image units).
    let console = "[Unit]\nDescription=Test only: enrolment journal on the serial console\n\n[Service]\n\
                   ExecStart=/bin/sh -c 'exec journalctl -f -o short-monotonic -u edge-agent-enrol >/dev/ttyS0'\n\n\
                   [Install]\nWantedBy=multi-user.target\n";
    std::fs::write(extra.join("etc/systemd/system/edge-test-enrol-console.service"), console).unwrap();
    let t0 = Instant::now();
    let status = Command::new(vm::repo().join("image/build.sh"))
        .arg("--binary")
        .arg(agent_bin())
        .arg("--out")
        .arg(&image)
        .arg("--provision")
        .arg(provisioning(dir.path(), &broker))
        .arg("--extra")
        .arg(&extra)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "image/build.sh failed ({status}); see {}", image.join("build.log").display());
    record(TEST, "image build (s)", format!("{:.1}", t0.elapsed().as_secs_f64()));

    let srt_port = free_udp_port();
    let _peer = SrtListenerPeer::start(srt_port, 500, None, &dir.path().join("vm.ts"));
    let (serial, device) = vm::test_box("vmenrol");
    let mut vm = Vm::boot(
        &image,
        "enrol",
        &serial,
        &[vm::tcp_forward("10.0.2.100:8883", broker.port), vm::srt_forward("10.0.2.101:9000", srt_port)],
    );

    let fingerprint = wait_for(&format!("{device}'s request (serial log {})", vm.serial_log.display()), BOOT, || {
        vm.check_alive();
        let (code, out, _) = edgectl(&broker, &["enroll", "list"]);
        let line = out.lines().find(|l| code == 0 && l.starts_with(&format!("{device}  ")))?;
        line.split("  ").nth(1).map(str::to_owned)
    });
    let to_request = vm.started.elapsed();
    // The technician's check: the box shows the same fingerprint.
    wait_for("the fingerprint on the box's console", Duration::from_secs(60), || {
        std::fs::read_to_string(&vm.serial_log).unwrap_or_default().contains(&fingerprint).then_some(())
    });
    let ca_key = broker.pki().dir.join("ca.key");
    let ca = broker.pki().ca();
    let (code, out, err) = edgectl(
        &broker,
        &[
            "enroll",
            "approve",
            &device,
            "--ca-cert",
            ca.to_str().unwrap(),
            "--ca-key",
            ca_key.to_str().unwrap(),
            "--fingerprint",
            &fingerprint,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let approved = Instant::now();
    // Online: only the certificate with CN = the device id may publish its
    // status (fleet ACL), and its info carries that certificate.
    let status =
        wait_for(&format!("{device} online as itself (serial log {})", vm.serial_log.display()), Duration::from_secs(240), || {
            vm.check_alive();
            let (code, out, _) = edgectl(&broker, &["status", &device, "--json"]);
            let v: serde_json::Value = serde_json::from_str(&out).ok()?;
            (code == 0 && v["status"]["online"] == true).then_some(v)
        });
    record(TEST, "boot to request on the broker (s)", format!("{:.1}", to_request.as_secs_f64()));
    record(TEST, "approval to online under its own certificate (s)", format!("{:.1}", approved.elapsed().as_secs_f64()));
    let cert = status["info"]["certificate"].as_str().unwrap_or_default().to_owned();
    let pem = dir.path().join("box.crt");
    std::fs::write(&pem, &cert).unwrap();
    let subject = Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(&pem).output().unwrap();
    assert!(String::from_utf8_lossy(&subject.stdout).contains(&device), "{status}");
    vm.stop();
    vm::discard_image(&image);
}
