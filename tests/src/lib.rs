//! Shared support for the integration tests: real peers as child processes.
//!
//! Every child is wrapped in [`ChildGuard`], which kills it by PID when the
//! test ends (also on panic); every wait has a timeout; every port comes from
//! binding port 0 on loopback.

pub mod agent_proc;
pub mod broker;
pub mod moto;
pub mod peers;
pub mod relay;
pub mod udp;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub use agent_proc::AgentProc;
pub use relay::{free_udp_port, free_udp_port_triple};
pub use peers::{ffprobe, SrtListenerPeer};

/// Kills the child by PID on drop, then reaps it.
#[derive(Debug)]
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn new(name: &str, child: Child) -> Self {
        ChildGuard { child, name: name.to_owned() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by PID (e.g. `libc::SIGTERM` as 15).
    pub fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status();
    }

    /// Waits up to `timeout` for the child to exit; `None` if it did not.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The directory that holds the workspace's built binaries: the test binary
/// lives in `<target>/debug/deps/`, the binaries one level up.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    }
}

/// Path of the `edge-agent` binary built by `cargo build --workspace`.
pub fn agent_bin() -> PathBuf {
    let p = bin_dir().join("edge-agent");
    assert!(p.exists(), "{} not built: run `cargo build --workspace --bins` first (scripts/test.sh does)", p.display());
    p
}

/// Polls `cond` every 50 ms until it returns `Some`, or panics after `timeout`
/// with `what` in the message. For conditions that can only be observed from
/// outside (a status file, a receiver's output), not as a delay.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
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
