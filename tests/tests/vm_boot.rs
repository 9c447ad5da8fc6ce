//! The flashable image, booted the way a box boots (OVMF -> systemd-boot ->
//! slot A) in QEMU TCG, talking only to a host mosquitto and a host SRT
//! listener through guestfwd forwards (`edge_tests::vm`): passes when the
//! agent is online on MQTT (retained presence) and the stream arrives.
//! Needs root (image/build.sh) and qemu-system-x86 (from bookworm-backports;
//! scripts/setup.sh installs it): without them the test fails with the
//! reason rather than skipping, so CI cannot go green blind.

#![cfg(test)]

use std::process::Command;
use std::time::Duration;

use edge_tests::broker::{free_tcp_port, record_all, Broker};
use edge_tests::vm::{self, Vm, BOOT, PASS};
use edge_tests::{bin_dir, free_udp_port, record, wait_for, SrtListenerPeer};

#[test]
fn vm_boots_online_and_streams() {
    vm::require_tools();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // Outputs under the target dir so a failed run leaves the image and the
    // serial log behind for inspection.
    let out = bin_dir().join("vm-image");
    let build = vm::build_image(dir.path(), &out, &[]);
    record("vm_boot", "image build (s)", format!("{:.1}", build.as_secs_f64()));

    let mqtt_port = free_tcp_port();
    let broker = Broker::start(dir.path(), mqtt_port);
    let mqtt_log = dir.path().join("mqtt.log");
    let _recorder = record_all(broker.port, &mqtt_log);
    let srt_port = free_udp_port();
    let peer = SrtListenerPeer::start(srt_port, 500, Some((PASS, 16)), &dir.path().join("vm.ts"));

    // The DMI serial the box reports; first boot turns it into its id.
    let serial = format!("vmtest-{:08x}", fastrand::u32(..));
    let device = format!("edge-{serial}");
    let mut vm = Vm::boot(
        &out,
        "boot",
        &serial,
        &[vm::tcp_forward("10.0.2.100:1883", mqtt_port), vm::srt_forward("10.0.2.101:9000", srt_port)],
    );

    let status_topic = format!("fleet/v1/{device}/status ");
    let online = |log: &str| log.lines().any(|l| l.starts_with(&status_topic) && l.contains("\"online\":true"));
    let mut first_packet = None;
    wait_for(&format!("{device} online on MQTT (serial log {})", vm.serial_log.display()), BOOT, || {
        vm.check_alive();
        if first_packet.is_none() && peer.received() > 0 {
            first_packet = Some(vm.started.elapsed());
        }
        online(&std::fs::read_to_string(&mqtt_log).unwrap_or_default()).then_some(())
    });
    let to_online = vm.started.elapsed();
    let to_packet = first_packet.unwrap_or_else(|| {
        wait_for("the stream at the SRT listener", Duration::from_secs(120), || (peer.received() > 0).then(|| vm.started.elapsed()))
    });
    record("vm_boot", "boot to online (s)", format!("{:.1}", to_online.as_secs_f64()));
    record("vm_boot", "boot to first packet (s)", format!("{:.1}", to_packet.as_secs_f64()));

    // Retained presence: a fresh subscriber gets it without the device
    // publishing again.
    let retained = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &mqtt_port.to_string(), "-C", "1", "-W", "10"])
        .args(["-t", &format!("fleet/v1/{device}/status")])
        .output()
        .unwrap_or_else(|e| panic!("mosquitto_sub: {e}"));
    let retained = String::from_utf8_lossy(&retained.stdout);
    assert!(retained.contains("\"online\":true"), "no retained online status: {retained:?}");

    // The stream keeps flowing and is a transport stream: more bytes, then
    // a sync byte every 188.
    let before = peer.received();
    wait_for("more TS at the listener", Duration::from_secs(60), || (peer.received() > before + 20_000).then_some(()));
    let ts = std::fs::read(&peer.output).unwrap_or_default();
    let synced = ts.chunks_exact(188).take(100).filter(|p| p.first() == Some(&0x47)).count();
    assert!(synced >= 95, "received data is not an aligned MPEG-TS ({synced}/100 sync bytes)");
    vm.stop();
    vm::discard_image(&out);
}
