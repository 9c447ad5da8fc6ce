//! The benchmark program keeps working: each bench for a few seconds. They exit
//! non-zero if any output delivered less than 99 % of its bytes. Speed is
//! not asserted here; the ratios come from full runs by hand.

#![cfg(test)]

use std::process::Command;

fn run(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-bench")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Exit 3: only the reference tool fell short of 99 % (seen on a
    // steal-heavy machine: srt-live-transmit 94 %, the agent 99.95 %). The
    // agent is what this test guards; that run's ratio is just not valid.
    let ok = out.status.success() || out.status.code() == Some(3);
    assert!(ok, "edge-bench {args:?} failed:\n{text}");
    assert!(text.contains("ratio"), "no ratio printed:\n{text}");
}

#[test]
fn srt_bench_smoke() {
    run(&["srt", "--seconds", "2"]);
}

#[test]
fn fec_bench_smoke() {
    run(&["fec", "--seconds", "2", "--raw-packets", "10000"]);
}

#[test]
fn monitor_bench_smoke() {
    run(&["monitor", "--seconds", "3", "--warmup-s", "1", "--width", "640", "--height", "360"]);
}
