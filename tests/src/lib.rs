//! Shared support for the integration tests: real peers as child processes.
//!
//! Every child is wrapped in [`ChildGuard`], which kills it by PID when the
//! test ends (also on panic); every wait has a timeout; every port comes from
//! binding port 0 on loopback. The guard, ports, waits and the broker come
//! from the test-support crate, shared with fleet's tests and the benches.

pub mod agent_proc;
pub mod edgectl;
pub mod moto;
pub mod peers;
pub mod relay;
pub mod rist;
pub mod udp;
pub mod vivid;
pub mod vm;

/// test-support's mosquitto and recorder, where these tests look for them.
pub mod broker {
    pub use test_support::broker::{record_all, Broker};
    pub use test_support::ports::free_tcp_port;
}

use std::path::PathBuf;

pub use agent_proc::AgentProc;
pub use peers::{ffprobe, SrtCallerPeer, SrtListenerPeer};
pub use test_support::ports::{free_udp_port, free_udp_port_triple};
pub use test_support::{bin_dir, wait_for, ChildGuard};

/// Path of the `edge-agent` binary built by `cargo build --workspace`.
pub fn agent_bin() -> PathBuf {
    let p = bin_dir().join("edge-agent");
    assert!(p.exists(), "{} not built: run `cargo build --workspace --bins` first (scripts/test.sh does)", p.display());
    p
}

/// Records a measured figure for the results table (`docs/results.md`,
/// rendered by the `results` binary from `<target>/results.jsonl`) and
/// prints it, so a `--no-capture` run shows it too.
pub fn record(test: &str, figure: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    println!("FIGURE {test}: {figure} = {value}");
    let path = bin_dir().join("results.jsonl");
    let line = serde_json::json!({ "test": test, "figure": figure, "value": value.to_string() });
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// Resident memory (kB), open file descriptors and threads of a process.
pub fn proc_usage(pid: u32) -> (u64, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    (field("VmRSS:"), fds, field("Threads:"))
}

/// A minimal agent configuration for tests: small picture to spare the CPU.
pub fn config_toml(device: &str, video_kbps: u32, outputs: &str) -> String {
    format!(
        r#"device_id = "{device}"

[input]
kind = "test-pattern"

[video]
width = 640
height = 360
framerate = 25
bitrate_kbps = {video_kbps}
keyframe_interval = 50
x264_preset = "ultrafast"

[status]
interval_s = 1

{outputs}"#
    )
}

/// An `[[outputs]]` entry of kind srt.
pub fn srt_output(name: &str, port: u16, latency_ms: u32, secret: Option<(&str, u8)>) -> String {
    let mut s = format!("[[outputs]]\nname = \"{name}\"\nkind = \"srt\"\naddress = \"127.0.0.1:{port}\"\nlatency_ms = {latency_ms}\n");
    if let Some((pass, keylen)) = secret {
        s.push_str(&format!("passphrase = \"{pass}\"\npbkeylen = {keylen}\n"));
    }
    s.push('\n');
    s
}

/// An `[[outputs]]` entry of kind srt in listener mode on `127.0.0.1:port`.
pub fn srt_listener_output(name: &str, port: u16, latency_ms: u32, secret: Option<(&str, u8)>, stream_id: Option<&str>) -> String {
    let mut s = format!(
        "[[outputs]]\nname = \"{name}\"\nkind = \"srt\"\nmode = \"listener\"\nlisten = \"127.0.0.1:{port}\"\nlatency_ms = {latency_ms}\n"
    );
    if let Some((pass, keylen)) = secret {
        s.push_str(&format!("passphrase = \"{pass}\"\npbkeylen = {keylen}\n"));
    }
    if let Some(id) = stream_id {
        s.push_str(&format!("stream_id = \"{id}\"\n"));
    }
    s.push('\n');
    s
}
