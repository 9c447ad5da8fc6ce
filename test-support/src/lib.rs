//! Support shared by the workspace's tests and benchmarks: real peers as
//! child processes, all on loopback, all bounded.
//!
//! - [`child`]: one guard that kills its child by PID and reaps it on drop
//!   (also on panic), so nothing outlives a test or a bench run.
//! - [`ports`]: loopback ports from binding port 0.
//! - [`wait`]: polling with a deadline, for conditions that can only be
//!   observed from outside (a file, a port), never as a delay.
//! - [`pki`]: a throw-away CA with server and client certificates, made
//!   with the `openssl` CLI.
//! - [`broker`]: mosquitto on 127.0.0.1, plain or with mTLS and the fleet
//!   ACL, that can be paused, stopped and restarted on its port.
//! - [`acl`]: the fleet ACL, the file operators deploy.
//!
//! This crate depends on no workspace crate, so that any of them (fleet
//! included) can dev-depend on it without a cycle.

pub mod acl;
pub mod broker;
pub mod child;
pub mod pki;
pub mod ports;
pub mod wait;

use std::path::{Path, PathBuf};

pub use child::ChildGuard;
pub use wait::{wait_for, wait_until};

/// The directory that holds the workspace's built binaries: a test binary
/// lives in `<target>/debug/deps/`, the binaries one level up; a binary
/// (a bench) lives there itself.
#[must_use]
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    }
}

/// Whether this process runs as root (real uid 0, from `/proc/self/status`):
/// root changes what a test may do (chown) and how mosquitto starts (it
/// drops to user `mosquitto` unless told otherwise).
#[must_use]
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
