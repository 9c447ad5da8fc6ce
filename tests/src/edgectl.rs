//! `edgectl`, the operator's CLI, as the tests run it against a test broker.

use std::io::Write as _;
use std::process::{Command, Stdio};

use test_support::broker::Broker;

use crate::bin_dir;

/// `edgectl` against a plain broker on `127.0.0.1:port`.
pub fn plain(port: u16, timeout_s: u32) -> Command {
    let mut cmd = Command::new(bin_dir().join("edgectl"));
    cmd.args(["--broker", &format!("127.0.0.1:{port}"), "--insecure-plaintext", "--timeout", &timeout_s.to_string()]);
    cmd
}

/// `edgectl` as the fleet's `controller` client of an mTLS broker.
pub fn controller(broker: &Broker, timeout_s: u32) -> Command {
    let c = broker.client("controller");
    let mut cmd = Command::new(bin_dir().join("edgectl"));
    cmd.args(["--broker", &broker.addr(), "--timeout", &timeout_s.to_string(), "--ca"])
        .arg(&c.ca)
        .arg("--cert")
        .arg(&c.cert)
        .arg("--key")
        .arg(&c.key);
    cmd
}

/// Runs `cmd` with `args` (and `stdin`, if any): exit code, stdout, stderr.
///
/// # Panics
/// If edgectl cannot be started.
pub fn run(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd
        .spawn()
        .and_then(|mut child| {
            // Closed once written, so edgectl sees the end of its input.
            if let (Some(mut input), Some(s)) = (child.stdin.take(), stdin) {
                input.write_all(s.as_bytes())?;
            }
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("cannot run edgectl: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}
