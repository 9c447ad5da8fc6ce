//! A real mosquitto on 127.0.0.1: plain TCP with anonymous access, or mTLS
//! with the fleet ACL ([`crate::acl::FLEET_ACL`]) where the certificate CN
//! is the username and the client id. It can be frozen (SIGSTOP), stopped
//! cleanly or killed, and restarted on the same port with the same
//! configuration. Also a `mosquitto_sub` recorder.

use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::acl::FLEET_ACL;
use crate::child::ChildGuard;
use crate::pki::{ClientCert, Pki};
use crate::ports::free_tcp_port;
use crate::wait::poll;

/// How long mosquitto may take to listen, and to exit on SIGTERM.
const START: Duration = Duration::from_secs(10);

/// How to run the broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Port on 127.0.0.1 (default: a free one).
    pub port: Option<u16>,
    /// mTLS with this PKI's server certificate, clients must present one of
    /// its certificates, and the fleet ACL applies. `None`: plain TCP,
    /// anonymous, no ACL (without certificates there is no `%u`).
    pub pki: Option<Pki>,
    /// ACL lines put before the fleet ACL (extra `user` blocks, e.g. a
    /// read-only watcher); only with `pki`.
    pub extra_acl: String,
    /// Keep sessions and queued messages in the broker's directory across
    /// restarts (saved every second and on a clean exit).
    pub persistence: bool,
    /// More `mosquitto.conf` lines (e.g. `max_queued_messages 100`).
    pub extra_conf: String,
}

/// A running (or stopped) mosquitto; killed on drop.
#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    /// Holds `mosquitto.conf`, `mosquitto.log`, the ACL and the database.
    pub dir: PathBuf,
    /// The PKI of an mTLS broker.
    pub pki: Option<Pki>,
    proc: Option<ChildGuard>,
    _tmp: Option<tempfile::TempDir>,
}

impl Broker {
    /// Writes the configuration into `dir` (a new temporary directory when
    /// `None`) and starts mosquitto; waits (≤10 s) until it listens.
    pub fn launch(dir: Option<&Path>, opts: BrokerOptions) -> io::Result<Broker> {
        let (tmp, dir) = match dir {
            Some(d) => (None, d.to_owned()),
            None => {
                let t = tempfile::tempdir()?;
                let d = t.path().to_owned();
                (Some(t), d)
            }
        };
        let port = opts.port.unwrap_or_else(free_tcp_port);
        // Started as root, mosquitto drops to user `mosquitto`, which cannot
        // read a private temporary directory: stay root then.
        let user = if crate::running_as_root() { "user root\n" } else { "" };
        let persistence = if opts.persistence {
            format!("persistence true\nautosave_interval 1\npersistence_location {}/\n", dir.display())
        } else {
            "persistence false\n".to_owned()
        };
        let common = format!(
            "{user}per_listener_settings false\n{persistence}max_packet_size 131072\n\
             log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n{}\n",
            opts.extra_conf.trim_end(),
        );
        let conf = match &opts.pki {
            Some(pki) => {
                let acl = dir.join("fleet.acl");
                std::fs::write(&acl, format!("{}{FLEET_ACL}", opts.extra_acl))?;
                format!(
                    "{common}allow_anonymous false\nacl_file {acl}\n\
                     listener {port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\nrequire_certificate true\n\
                     # cert CN -> username -> client id\nuse_identity_as_username true\nuse_username_as_clientid true\n",
                    acl = acl.display(),
                    ca = pki.ca().display(),
                    crt = pki.server_cert().display(),
                    key = pki.server_key().display(),
                )
            }
            None => format!("{common}allow_anonymous true\nlistener {port} 127.0.0.1\n"),
        };
        std::fs::write(dir.join("mosquitto.conf"), conf)?;
        let mut b = Broker { port, dir, pki: opts.pki, proc: None, _tmp: tmp };
        b.try_restart()?;
        Ok(b)
    }

    /// Plain TCP on `port`, anonymous, persistent in `dir` (so a restart
    /// keeps a recorder's queued messages).
    ///
    /// # Panics
    /// If mosquitto does not start (with its log).
    pub fn start(dir: &Path, port: u16) -> Broker {
        let opts = BrokerOptions { port: Some(port), persistence: true, ..BrokerOptions::default() };
        Broker::launch(Some(dir), opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// mTLS + fleet ACL with a fresh PKI, in a temporary directory.
    /// `persistent`: keep sessions across a [`Broker::terminate`] and
    /// restart.
    ///
    /// # Panics
    /// If the PKI cannot be made or mosquitto does not start.
    pub fn mtls(persistent: bool) -> Broker {
        let run = || -> io::Result<Broker> {
            let tmp = tempfile::tempdir()?;
            let pki = Pki::open(&tmp.path().join("pki"))?;
            let mut b = Broker::launch(
                Some(tmp.path()),
                BrokerOptions { pki: Some(pki), persistence: persistent, ..BrokerOptions::default() },
            )?;
            b._tmp = Some(tmp);
            Ok(b)
        };
        run().unwrap_or_else(|e| panic!("mTLS broker: {e}"))
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The PKI of an mTLS broker.
    ///
    /// # Panics
    /// On a plain broker.
    pub fn pki(&self) -> &Pki {
        match &self.pki {
            Some(p) => p,
            None => panic!("a plain broker has no PKI"),
        }
    }

    /// A client certificate of this broker's PKI (issued if missing).
    ///
    /// # Panics
    /// On a plain broker, or if openssl fails.
    pub fn client(&self, identity: &str) -> ClientCert {
        self.pki().client(identity)
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ChildGuard::pid)
    }

    /// `Some(status)` once mosquitto has exited (or was stopped).
    pub fn exited(&mut self) -> Option<String> {
        match &mut self.proc {
            Some(p) => p.exited(),
            None => Some("stopped".into()),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("mosquitto.log")
    }

    /// Everything mosquitto logged (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing
    /// answers — a broker that is overloaded or stuck.
    pub fn pause(&self) {
        if let Some(p) = &self.proc {
            p.signal("STOP");
        }
    }

    /// Lets a paused broker run again (SIGCONT).
    pub fn resume(&self) {
        if let Some(p) = &self.proc {
            p.signal("CONT");
        }
    }

    /// SIGKILL: as if its host died (only the last autosave persists).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// SIGTERM and a bounded wait: mosquitto saves its database on a clean
    /// exit.
    pub fn terminate(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("CONT");
            p.terminate(START);
        }
    }

    /// Starts mosquitto again on the same port and configuration (a running
    /// one is terminated first).
    ///
    /// # Panics
    /// If it does not start.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Broker::restart`], returning the error (with the log's tail).
    pub fn try_restart(&mut self) -> io::Result<()> {
        self.terminate();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let mut cmd = Command::new("mosquitto");
        cmd.arg("-c").arg(self.dir.join("mosquitto.conf")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let mut guard = ChildGuard::spawn("mosquitto", &mut cmd)
            .map_err(|e| io::Error::new(e.kind(), format!("{e} (apt-get install mosquitto)")))?;
        let port = self.port;
        let up = poll(START, Duration::from_millis(20), || {
            if let Some(st) = guard.exited() {
                return Some(Err(st));
            }
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| Ok(()))
        });
        match up {
            Some(Ok(())) => {
                self.proc = Some(guard);
                Ok(())
            }
            Some(Err(st)) => Err(io::Error::other(format!("mosquitto exited ({st}):\n{}", self.log_tail(20)))),
            None => Err(io::Error::other(format!("mosquitto did not listen on {port} within {START:?}:\n{}", self.log_tail(20)))),
        }
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let s = self.log();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// `mosquitto -h`'s first line, e.g. `mosquitto version 2.0.11`.
pub fn version() -> String {
    Command::new("mosquitto")
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| "mosquitto (version unknown)".into())
}

/// Records every message under `fleet/#` but thumbnails on a plain broker as `topic
/// payload` lines in `file` (QoS 1, persistent session `test-recorder`, so
/// nothing is lost across a broker restart).
///
/// # Panics
/// If `mosquitto_sub` cannot be started.
pub fn record_all(port: u16, file: &Path) -> ChildGuard {
    let out = std::fs::File::create(file).unwrap_or_else(|e| panic!("create {}: {e}", file.display()));
    let mut cmd = Command::new("mosquitto_sub");
    // Thumbnails are binary JPEG (docs/monitoring.md): left out so the log
    // stays text that tests can read as a string.
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-q", "1", "-c", "-i", "test-recorder", "-t", "fleet/#"])
        .args(["-T", "fleet/v1/+/thumbnail"])
        .stdout(Stdio::from(out))
        .stderr(Stdio::null());
    ChildGuard::spawn("mosquitto_sub", &mut cmd).unwrap_or_else(|e| panic!("{e} (apt-get install mosquitto-clients)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_broker_pauses_stops_and_restarts_on_its_port() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_port();
        let mut b = Broker::start(dir.path(), port);
        assert!(b.exited().is_none());
        b.pause();
        b.resume();
        b.stop();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        b.restart();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        b.terminate();
        assert_eq!(b.exited().as_deref(), Some("stopped"));
    }

    #[test]
    fn an_mtls_broker_runs_the_fleet_acl() {
        let b = Broker::mtls(false);
        let acl = std::fs::read_to_string(b.dir.join("fleet.acl")).unwrap();
        assert_eq!(acl, FLEET_ACL);
        assert!(b.client("dev-1").cert.exists());
        assert!(TcpStream::connect(("127.0.0.1", b.port)).is_ok());
    }
}
