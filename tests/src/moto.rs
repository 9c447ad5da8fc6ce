//! A real `moto_server` (PyPI `moto[server]`, installed into `.venv-moto` by
//! `scripts/setup.sh`) emulating MediaConnect and MediaLive on loopback.
//!
//! moto's CLI cannot bind port 0 and report the port, so a free port is
//! found by binding `127.0.0.1:0` and closing it; if moto then loses the race
//! for it (it exits early), another port is tried. The server is killed by
//! PID when the guard drops.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ChildGuard;

/// A running moto server.
#[derive(Debug)]
pub struct MotoServer {
    pub port: u16,
    pub proc: ChildGuard,
}

/// The `moto_server` executable: `EDGE_MOTO_SERVER`, else the set-up
/// script's venv in the workspace.
pub fn moto_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGE_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-moto/bin/moto_server")
}

impl MotoServer {
    /// Starts moto and waits (≤ 30 s) until it answers.
    pub fn start() -> MotoServer {
        let bin = moto_bin();
        assert!(bin.exists(), "{} missing: run scripts/setup.sh (installs moto[server] into .venv-moto)", bin.display());
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0);
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut proc = ChildGuard::new("moto_server", child);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if proc.child.try_wait().ok().flatten().is_some() {
                    break; // lost the port race: try another
                }
                if http(port, "GET", "/moto-api/data.json").is_some_and(|(code, _)| code == 200) {
                    return MotoServer { port, proc };
                }
                // Polling a child's readiness: there is no event to await.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("moto_server did not start on any of 5 ports");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let r = http(self.port, "POST", "/moto-api/reset");
        assert!(r.as_ref().is_some_and(|(c, _)| *c == 200), "moto reset failed: {r:?}");
    }
}

/// One HTTP/1.0 request; `(status, body)`.
fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}
