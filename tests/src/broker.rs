//! A real mosquitto broker for the agent's fleet tests (plain TCP on
//! loopback; mutual TLS and ACLs are proven by the fleet crate's own tests),
//! and a `mosquitto_sub` recorder of everything published.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{wait_for, ChildGuard};

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind a TCP port: {e}"))
}

#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    proc: Option<ChildGuard>,
}

impl Broker {
    /// Starts mosquitto on `port` with persistence in `dir` (so a restart
    /// keeps the recorder's queued messages).
    pub fn start(dir: &Path, port: u16) -> Broker {
        let mut b = Broker { port, dir: dir.to_owned(), proc: None };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        let text = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\nautosave_interval 1\npersistence_location {}/\nmax_packet_size 131072\n{}",
            self.port,
            self.dir.display(),
            // Started as root, mosquitto drops to user `mosquitto`, which
            // cannot read a private temp dir (docs/fleet-protocol.md#test-broker).
            if running_as_root() { "user root\n" } else { "" },
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write mosquitto.conf: {e}"));
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto (apt-get install mosquitto): {e}"));
        self.proc = Some(ChildGuard::new("mosquitto", child));
        let port = self.port;
        wait_for("mosquitto to accept connections", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing answers
    /// — a broker that is overloaded or stuck.
    pub fn pause(&self) {
        if let Some(p) = &self.proc {
            p.signal("STOP");
        }
    }

    pub fn resume(&self) {
        if let Some(p) = &self.proc {
            p.signal("CONT");
        }
    }

    /// Stops the broker (SIGKILL: as if its host died).
    pub fn stop(&mut self) {
        self.proc = None;
    }
}

/// Records every message under `fleet/#` as `topic payload` lines.
pub fn record_all(port: u16, file: &Path) -> ChildGuard {
    let out = std::fs::File::create(file).unwrap_or_else(|e| panic!("create {}: {e}", file.display()));
    let child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-q", "1", "-c", "-i", "test-recorder", "-t", "fleet/#"])
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start mosquitto_sub (apt-get install mosquitto-clients): {e}"));
    ChildGuard::new("mosquitto_sub", child)
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
