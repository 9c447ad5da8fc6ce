//! DNS through the image's own resolver (issue 14): the box names its broker
//! and one of its two SRT outputs by host name, and systemd-resolved in the
//! guest resolves them against a DNS server this test runs on the host
//! (`peers/dns_server.py`), reached through a guestfwd forward like the
//! test's other traffic (`vm_tunnel guest-dns`; provisioning points resolved
//! at it: `/data/provision/resolved.conf`). One boot covers both halves:
//!
//! 1. DNS down at boot: the agent runs, the output given by IP address
//!    streams, the output given by name reports that it cannot resolve (its
//!    status line, and `OUTPUT_DOWN` once it has been down 5 s), and the
//!    broker by name is retried.
//! 2. The test starts the DNS server: the agent comes online on MQTT (broker
//!    by name) and the named output connects, each timed from that moment.
//!
//! Needs root and qemu-system-x86, like `vm_boot`.

#![cfg(test)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::vm::{self, Vm, BOOT, PASS};
use edge_tests::{agent_bin, bin_dir, free_udp_port, record, wait_for, SrtListenerPeer};
use test_support::ChildGuard;

/// Names the DNS server answers; the guest reaches the broker at the
/// guestfwd address and the named output's tunnel on its loopback.
const BROKER_NAME: &str = "broker.venue.test";
const OUTPUT_NAME: &str = "srt.venue.test";

fn provisioning(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("provision-dns");
    std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    let toml = format!(
        r#"{head}
# By address: streams whatever DNS does (vm_tunnel's guest end).
[[outputs]]
name = "primary"
kind = "srt"
address = "127.0.0.1:9000"
latency_ms = 500
passphrase = "{PASS}"
pbkeylen = 16

# By name: resolved at each connect attempt.
[[outputs]]
name = "named"
kind = "srt"
address = "{OUTPUT_NAME}:9001"
latency_ms = 500
passphrase = "{PASS}"
pbkeylen = 16

[fleet]
broker = "{BROKER_NAME}:1883"
insecure_plaintext = true
device_id = "@DEVICE_ID@"
state_dir = "/var/lib/edge-agent"
telemetry_interval_s = 10
"#,
        head = vm::media_head(vm::TEST_PATTERN_INPUT)
    );
    std::fs::write(p.join("agent.toml.in"), toml).unwrap_or_else(|e| panic!("write agent.toml.in: {e}"));
    // The site's DNS server, as an installer would provision it. The DHCP
    // server QEMU's user network names (10.0.2.3) is unreachable under
    // restrict=on, so resolved has this one to succeed with.
    let resolved = "[Resolve]\nDNS=127.0.0.2\nDomains=~.\nDNSSEC=no\nLLMNR=no\nMulticastDNS=no\n";
    std::fs::write(p.join("resolved.conf"), resolved).unwrap_or_else(|e| panic!("write resolved.conf: {e}"));
    p
}

/// Test units: the DNS tunnel, the named output's SRT tunnel, and a console
/// that shows resolved's log too.
fn tweak(extra: &Path) {
    let units = extra.join("etc/systemd/system");
    let unit = |desc: &str, cmd: &str| {
        format!(
            "[Unit]\nDescription=Test only: {desc}\nBefore=edge-agent.service\nWants=network-online.target\n\
             After=network-online.target\n\n[Service]\nExecStart={cmd}\nRestart=always\nRestartSec=1\n\n\
             [Install]\nWantedBy=multi-user.target\n"
        )
    };
    let write = |name: &str, text: String| {
        std::fs::write(units.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    };
    write(
        "edge-test-dns.service",
        unit("DNS over the VM's guestfwd TCP", "/usr/local/bin/vm_tunnel guest-dns 127.0.0.2:53 10.0.2.102:53"),
    );
    // What the image configures for the uplink and the clock, printed once
    // the network is up: the root qdisc (fq, docs/image.md#queueing-discipline)
    // and whether timesyncd runs.
    write(
        "edge-test-facts.service",
        "[Unit]\nDescription=Test only: qdisc and time sync facts on the console\nWants=network-online.target\n\
         After=network-online.target\n\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'tc qdisc show | sed \"s/^/FACT qdisc: /\" \
         >/dev/ttyS0; echo \"FACT timesyncd: $$(systemctl is-active systemd-timesyncd)\" >/dev/ttyS0'\n\n\
         [Install]\nWantedBy=multi-user.target\n"
            .to_owned(),
    );
    write(
        "edge-test-tunnel2.service",
        unit("SRT 2 over guestfwd TCP", "/usr/local/bin/vm_tunnel guest 127.0.0.1:9001 10.0.2.103:9001"),
    );
    write(
        "edge-test-console.service",
        "[Unit]\nDescription=Test only: image units' journal on the serial console\n\n[Service]\n\
         ExecStart=/bin/sh -c 'exec journalctl -f -o short-monotonic -u edge-provision -u edge-agent \
         -u edge-test-dns -u systemd-resolved -u systemd-networkd >/dev/ttyS0'\n\n[Install]\nWantedBy=multi-user.target\n"
            .to_owned(),
    );
}

fn build_image(dir: &Path, out: &Path) -> Duration {
    let extra = vm::extra_overlay(dir);
    tweak(&extra);
    let t0 = Instant::now();
    let status = Command::new(vm::repo().join("image/build.sh"))
        .arg("--binary")
        .arg(agent_bin())
        .arg("--out")
        .arg(out)
        .arg("--provision")
        .arg(provisioning(dir))
        .arg("--extra")
        .arg(&extra)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run image/build.sh: {e}"));
    assert!(status.success(), "image/build.sh failed ({status}); see {}", out.join("build.log").display());
    t0.elapsed()
}

fn dns_server(port: u16) -> ChildGuard {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/dns_server.py");
    let child = Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &port.to_string()])
        .arg(format!("{BROKER_NAME}=10.0.2.100"))
        .arg(format!("{OUTPUT_NAME}=127.0.0.1"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start dns_server.py: {e}"));
    ChildGuard::new("dns_server.py", child)
}

#[test]
fn vm_resolves_through_its_resolver_and_survives_dns_down_at_boot() {
    vm::require_tools();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = bin_dir().join("vm-image-dns");
    let build = build_image(dir.path(), &out);
    record("vm_dns", "image build (s)", format!("{:.1}", build.as_secs_f64()));

    let mqtt_port = free_tcp_port();
    let broker = Broker::start(dir.path(), mqtt_port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(broker.port, &mqtt_log);
    let primary = SrtListenerPeer::start(free_udp_port(), 500, Some((PASS, 16)), &dir.path().join("primary.ts"));
    let named = SrtListenerPeer::start(free_udp_port(), 500, Some((PASS, 16)), &dir.path().join("named.ts"));
    // Nothing listens here until the test starts the DNS server.
    let dns_port = free_udp_port();

    let (serial, device) = vm::test_box("vmdns");
    let mut vm = Vm::boot(
        &out,
        "dns",
        &serial,
        &[
            vm::tcp_forward("10.0.2.100:1883", mqtt_port),
            vm::srt_forward("10.0.2.101:9000", primary.port),
            vm::srt_forward("10.0.2.102:53", dns_port),
            vm::srt_forward("10.0.2.103:9001", named.port),
        ],
    );
    let console = vm.serial_log.clone();
    let serial_log = || std::fs::read_to_string(&console).unwrap_or_default();

    // 1. DNS down: the output by address streams; the named one fails to
    // resolve, and says so; the agent stays up.
    let to_packet =
        wait_for(&format!("the output by address streaming with DNS down (serial log {})", vm.serial_log.display()), BOOT, || {
            vm.check_alive();
            (primary.received() > 0).then(|| vm.started.elapsed())
        });
    record("vm_dns", "DNS down: boot to first packet by address (s)", format!("{:.1}", to_packet.as_secs_f64()));
    let unresolved = format!("cannot resolve `{OUTPUT_NAME}:9001`");
    wait_for("the named output's resolution error in its status line", Duration::from_secs(120), || {
        vm.check_alive();
        serial_log().lines().any(|l| l.contains("status: named") && l.contains(&unresolved)).then_some(())
    });
    // Down for longer than OUTPUT_DOWN's threshold (5 s) before DNS returns.
    std::thread::sleep(Duration::from_secs(8));
    let mqtt = std::fs::read_to_string(&mqtt_log).unwrap_or_default();
    assert!(!mqtt.contains(&format!("fleet/v1/{device}/")), "the broker was reached by name without DNS:\n{mqtt}");
    assert_eq!(named.received(), 0, "the named output sent without DNS");
    let log = serial_log();
    assert!(
        log.contains("cannot connect to the broker"),
        "the broker by name is not being retried:\n{}",
        vm::serial_tail(&vm.serial_log)
    );
    assert!(!log.contains("edge-agent.service: Main process exited"), "the agent exited:\n{}", vm::serial_tail(&vm.serial_log));

    // The image's uplink qdisc and time sync (no NTP server is reachable
    // here, so only that the daemon runs).
    let facts = wait_for("the image's qdisc and time sync facts on the console", Duration::from_secs(60), || {
        let log = serial_log();
        log.contains("FACT timesyncd:").then_some(log)
    });
    assert!(
        facts.lines().any(|l| l.contains("FACT qdisc: qdisc fq ") && l.contains("enp0s2")),
        "the uplink's root qdisc is not fq:\n{}",
        facts.lines().filter(|l| l.contains("FACT")).collect::<Vec<_>>().join("\n")
    );
    assert!(facts.contains("FACT timesyncd: active"), "systemd-timesyncd is not running");

    // 2. DNS back.
    let _dns = dns_server(dns_port);
    let back = Instant::now();
    let status_topic = format!("fleet/v1/{device}/status ");
    let online = |log: &str| log.lines().any(|l| l.starts_with(&status_topic) && l.contains("\"online\":true"));
    let mut named_at = None;
    wait_for(
        &format!("{device} online by name after DNS returned (serial log {})", vm.serial_log.display()),
        Duration::from_secs(120),
        || {
            vm.check_alive();
            if named_at.is_none() && named.received() > 0 {
                named_at = Some(back.elapsed());
            }
            online(&std::fs::read_to_string(&mqtt_log).unwrap_or_default()).then_some(())
        },
    );
    let to_online = back.elapsed();
    let to_named = named_at.unwrap_or_else(|| {
        wait_for("the named output's stream", Duration::from_secs(120), || (named.received() > 0).then(|| back.elapsed()))
    });
    record("vm_dns", "DNS back to online, broker by name (s)", format!("{:.1}", to_online.as_secs_f64()));
    record("vm_dns", "DNS back to first packet, output by name (s)", format!("{:.1}", to_named.as_secs_f64()));

    // The named output's outage reached the fleet as an alarm: raised while
    // offline, it is in the session's outbox or still raised at connect.
    let alarm = wait_for("OUTPUT_DOWN for output:named over MQTT", Duration::from_secs(60), || {
        let log = std::fs::read_to_string(&mqtt_log).unwrap_or_default();
        log.lines().find(|l| l.contains("OUTPUT_DOWN") && l.contains("output:named")).map(str::to_owned)
    });
    // Its message is the output's error when it was raised: the resolution
    // error, or "output connecting" while the first lookup still waited on
    // resolved's timeout (the status line above names the host either way).
    assert!(alarm.contains("\"state\":\"raised\""), "{alarm}");

    // Both streams flow on; the one by address was never disturbed.
    let before = (primary.received(), named.received());
    wait_for("both outputs streaming", Duration::from_secs(60), || {
        (primary.received() > before.0 + 20_000 && named.received() > before.1 + 20_000).then_some(())
    });
    vm.stop();
    vm::discard_image(&out);
}
