//! kill -9 at random moments during configuration writes: whatever is on
//! disk afterwards must parse, as the old or the new version. The writer is
//! the agent's own `write_atomically` (the function that persists a
//! fleet-applied configuration), in a child process so it can be killed.

#![cfg(test)]

use std::process::{Command, Stdio};
use std::time::Duration;

use edge_tests::{bin_dir, record, ChildGuard};

#[test]
fn kill_9_during_config_writes_leaves_the_old_or_the_new_file() {
    let iterations: u32 = std::env::var("EDGE_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dual-srt.toml")).unwrap();
    let raw: serde_json::Value = toml::from_str(&example).unwrap();
    // Two valid configurations that differ in the video bitrate.
    let mut a = raw.clone();
    a["video"]["bitrate_kbps"] = 2600.into();
    let mut b = raw.clone();
    b["video"]["bitrate_kbps"] = 4000.into();
    let (doc_a, doc_b) = (serde_json::to_vec_pretty(&a).unwrap(), serde_json::to_vec_pretty(&b).unwrap());
    let (file_a, file_b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    std::fs::write(&file_a, &doc_a).unwrap();
    std::fs::write(&file_b, &doc_b).unwrap();
    let target = dir.path().join("applied-config.json");
    std::fs::write(&target, &doc_a).unwrap();
    let (mut saw_a, mut saw_b) = (0u32, 0u32);
    for i in 0..iterations {
        let child = Command::new(bin_dir().join("config_writer"))
            .arg(&target)
            .arg(&file_a)
            .arg(&file_b)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut guard = ChildGuard::new("config_writer", child);
        // A random moment within the writer's first few hundred writes.
        std::thread::sleep(Duration::from_micros(fastrand::u64(500..20_000)));
        guard.signal("KILL");
        assert!(guard.wait_timeout(Duration::from_secs(5)).is_some(), "writer did not die");
        let bytes = std::fs::read(&target).unwrap_or_else(|e| panic!("iteration {i}: file missing: {e}"));
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("iteration {i}: file does not parse: {e}"));
        let text = toml::to_string(&doc).unwrap();
        agent::config::from_str(&text).unwrap_or_else(|e| panic!("iteration {i}: not a valid configuration: {e}"));
        match doc["video"]["bitrate_kbps"].as_u64() {
            Some(2600) => saw_a += 1,
            Some(4000) => saw_b += 1,
            other => panic!("iteration {i}: neither version: {other:?}"),
        }
    }
    record("crash_consistency", "kill -9 iterations during writes", iterations);
    record("crash_consistency", "left old / new version", format!("{saw_a} / {saw_b}"));
    assert!(saw_a > 0 && saw_b > 0, "kills never landed between writes: {saw_a}/{saw_b}");
}
