//! `reboot` over MQTT reboots the box for real (issue 14, item 5): the
//! image booted in QEMU (OVMF, systemd-boot, slot A; `edge_tests::vm`),
//! the command sent as a controller sends it, the unprivileged agent's
//! request carried out by the root path (`edge-reboot.path` and
//! `edge-reboot.service`), the box down and up again, and the agent back
//! online reporting the command's completion with the boot time. QEMU
//! resets on a guest reboot (image/qemu/run.sh passes no `-no-reboot`).
//! Needs root and qemu-system-x86 like vm_boot; fails, never skips, without.

#![cfg(test)]

use std::process::Command;
use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::vm::{self, Vm, BOOT, PASS};
use edge_tests::{bin_dir, free_udp_port, record, wait_for, SrtListenerPeer};
use serde_json::Value;

/// The payloads on `fleet/v1/<device>/<suffix>` in the recorder's log, in order.
fn messages(log: &str, device: &str, suffix: &str) -> Vec<Value> {
    let topic = format!("fleet/v1/{device}/{suffix} ");
    log.lines().filter_map(|l| l.strip_prefix(&topic)).filter_map(|p| serde_json::from_str(p).ok()).collect()
}

#[test]
fn reboot_over_mqtt_reboots_the_vm_and_the_agent_reports_it_done() {
    vm::require_tools();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = bin_dir().join("vm-image-reboot");
    let build = vm::build_image_with(dir.path(), &out, &[], |extra| {
        // The root path's journal on the serial console too.
        let unit = "[Unit]\nDescription=Test only: the reboot path's journal on the serial console\n\n[Service]\n\
                    ExecStart=/bin/sh -c 'exec journalctl -f -o short-monotonic -u edge-reboot.path -u edge-reboot \
                    >/dev/ttyS0'\n\n[Install]\nWantedBy=multi-user.target\n";
        std::fs::write(extra.join("etc/systemd/system/edge-test-reboot-console.service"), unit)
            .unwrap_or_else(|e| panic!("write unit: {e}"));
    });
    record("vm_reboot", "image build (s)", format!("{:.1}", build.as_secs_f64()));

    let mqtt_port = free_tcp_port();
    let broker = Broker::start(dir.path(), mqtt_port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(broker.port, &mqtt_log);
    let srt_port = free_udp_port();
    let _peer = SrtListenerPeer::start(srt_port, 500, Some((PASS, 16)), &dir.path().join("vm.ts"));
    let serial = format!("vmreboot-{:08x}", fastrand::u32(..));
    let device = format!("edge-{serial}");
    let mut vm = Vm::boot(
        &out,
        "reboot",
        &serial,
        &[vm::tcp_forward("10.0.2.100:1883", mqtt_port), vm::srt_forward("10.0.2.101:9000", srt_port)],
    );
    let log = || std::fs::read_to_string(&mqtt_log).unwrap_or_default();
    let presence = |l: &str| messages(l, &device, "status").into_iter().map(|s| s["online"] == true).collect::<Vec<bool>>();
    wait_for(&format!("{device} online (serial log {})", vm.serial_log.display()), BOOT, || {
        vm.check_alive();
        presence(&log()).last().copied().unwrap_or(false).then_some(())
    });
    record("vm_reboot", "boot to online (s)", format!("{:.1}", vm.started.elapsed().as_secs_f64()));
    let onlines_before = presence(&log()).iter().filter(|o| **o).count();

    // The command as a controller sends it.
    let id = format!("reboot-{:08x}", fastrand::u32(..));
    let request = format!(r#"{{"id":"{id}","name":"reboot","timeout_s":60}}"#);
    let sent = Instant::now();
    let published = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mqtt_port.to_string(), "-q", "1"])
        .args(["-t", &format!("fleet/v1/{device}/cmd/req"), "-m", &request])
        .status()
        .unwrap_or_else(|e| panic!("mosquitto_pub: {e}"));
    assert!(published.success());
    let responses = |l: &str| messages(l, &device, "cmd/res").into_iter().filter(|r| r["id"] == id.as_str()).collect::<Vec<_>>();

    // Down: the agent says it goes offline (its clean stop) ...
    wait_for("the box to go offline", BOOT, || {
        vm.check_alive();
        (presence(&log()).last() == Some(&false)).then_some(())
    });
    let to_offline = sent.elapsed();
    // ... and up again: a new online, then the command's end.
    wait_for("the box back online", BOOT, || {
        vm.check_alive();
        let p = presence(&log());
        (p.iter().filter(|o| **o).count() > onlines_before && p.last() == Some(&true)).then_some(())
    });
    let to_online = sent.elapsed();
    let done = wait_for("the reboot reported done", Duration::from_secs(60), || {
        responses(&log()).into_iter().find(|r| r["state"] == "succeeded" || r["state"] == "failed")
    });
    let to_done = sent.elapsed();
    let states: Vec<String> = responses(&log()).iter().map(|r| r["state"].as_str().unwrap_or("?").to_owned()).collect();
    println!("{id}: {states:?}; final {done}");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["rebooted"], true, "{done}");
    assert!(done["result"]["booted_at"].as_str().is_some(), "the boot time: {done}");
    assert!(states.iter().any(|s| s == "in_progress"), "progress before the reboot: {states:?}");

    // The serial console saw the root path act and a second boot.
    let console = std::fs::read_to_string(&vm.serial_log).unwrap_or_default();
    assert!(console.contains("rebooting at edge-agent's request"), "{}", vm::serial_tail(&vm.serial_log));
    assert!(console.contains("reboot: Restarting system"), "the kernel restarted: {}", vm::serial_tail(&vm.serial_log));
    // OVMF starts the boot loader once per boot.
    assert_eq!(console.matches("BdsDxe: starting").count(), 2, "two boots: {}", vm::serial_tail(&vm.serial_log));

    record("vm_reboot", "command to offline (s)", format!("{:.1}", to_offline.as_secs_f64()));
    record("vm_reboot", "command to back online (s)", format!("{:.1}", to_online.as_secs_f64()));
    record("vm_reboot", "command to reported done (s)", format!("{:.1}", to_done.as_secs_f64()));
    vm.stop();
    vm::discard_image(&out);
}
