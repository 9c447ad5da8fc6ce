//! The fleet benchmark keeps working: 200 simulated devices for 10 s against
//! a real mosquitto, with `edgectl watch`. Exit 0 means every device
//! connected, stayed connected and delivered telemetry in time. This is a
//! behaviour check; the 5,000-device figures come from running it by hand.

#![cfg(test)]

use std::process::Command;

#[test]
fn fleet_bench_smoke_200_devices() {
    // edgectl is another package's binary: cargo builds it for a workspace
    // build (scripts/test.sh), not for `-p edge-bench` alone.
    let edgectl = test_support::bin_dir().join("edgectl");
    assert!(edgectl.exists(), "{} not built: run `cargo build --workspace --bins` first", edgectl.display());
    let out = Command::new(env!("CARGO_BIN_EXE_fleet-bench"))
        .args(["--devices", "200", "--seconds", "10", "--edgectl"])
        .arg(&edgectl)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "fleet-bench failed:\n{text}");
    assert!(text.contains("RESULT: PASS"), "{text}");
}
