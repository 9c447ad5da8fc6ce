//! The bench's mosquitto (plain TCP, or mTLS + ACL like the tests) and its
//! throw-away PKI: one CA, one P-256 key and certificate per device, made
//! with the `openssl` CLI (`req -x509 -CA`: key + signed cert in one
//! process) by a few parallel jobs, and cached between runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fleet::TlsSettings;

use crate::procs::ChildGuard;

/// CN of the identity `edgectl watch` uses (full controller rights).
pub const CONTROLLER: &str = "controller";
/// CN of the bench's own telemetry watcher (read-only).
pub const WATCHER: &str = "bench-watcher";

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// The fleet ACL of the tests, plus a read-only identity for the watcher.
const ACL: &str = "\
user controller
topic readwrite fleet/#

user bench-watcher
topic read fleet/#
topic read $SYS/#

pattern write fleet/v1/%u/status
pattern write fleet/v1/%u/info
pattern write fleet/v1/%u/state
pattern write fleet/v1/%u/telemetry
pattern write fleet/v1/%u/event
pattern write fleet/v1/%u/alarms
pattern write fleet/v1/%u/config/reported
pattern write fleet/v1/%u/cmd/res
pattern read fleet/v1/%u/config/desired
pattern read fleet/v1/%u/cmd/req
";

/// A cached PKI directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").current_dir(dir).args(args).stdin(Stdio::null()).output().context("openssl")?;
    if !out.status.success() {
        bail!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Pki {
    /// Opens `dir`, (re)creating the CA if missing or expiring within a day
    /// (then every certificate is re-issued).
    pub fn open(dir: &Path) -> Result<Pki> {
        std::fs::create_dir_all(dir.join("dev")).with_context(|| format!("create {}", dir.display()))?;
        std::fs::write(dir.join("bench.cnf"), OPENSSL_CNF)?;
        let valid = dir.join("ca.crt").exists()
            && dir.join("ca.key").exists()
            && openssl(dir, &["x509", "-in", "ca.crt", "-noout", "-checkend", "86400"]).is_ok();
        if !valid {
            for f in ["ca.crt", "ca.key", "server.crt", "server.key"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let _ = std::fs::remove_dir_all(dir.join("dev"));
            std::fs::create_dir_all(dir.join("dev"))?;
            openssl(dir, &[
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key.tmp",
                "-out", "ca.crt.tmp", "-days", "30", "-subj", "/CN=fleet-bench-ca", "-config", "bench.cnf", "-extensions", "v3_ca",
            ])?;
            std::fs::rename(dir.join("ca.key.tmp"), dir.join("ca.key"))?;
            std::fs::rename(dir.join("ca.crt.tmp"), dir.join("ca.crt"))?;
        }
        let pki = Pki { dir: dir.to_owned() };
        if !dir.join("server.crt").exists() {
            pki.issue("server", "localhost", "v3_server")?;
        }
        Ok(pki)
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.join("dev");
        (d.join(format!("{name}.crt")), d.join(format!("{name}.key")))
    }

    /// Key + certificate `dev/{name}.{key,crt}` (server: in the top dir).
    fn issue(&self, name: &str, cn: &str, ext: &str) -> Result<()> {
        let (crt, key) = if name == "server" {
            (self.dir.join("server.crt"), self.dir.join("server.key"))
        } else {
            self.paths(name)
        };
        let tmp_key = key.with_extension("key.tmp");
        let tmp_crt = crt.with_extension("crt.tmp");
        let (tk, tc) = (tmp_key.display().to_string(), tmp_crt.display().to_string());
        openssl(&self.dir, &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", &tk, "-out", &tc,
            "-days", "30", "-subj", &format!("/CN={cn}"), "-CA", "ca.crt", "-CAkey", "ca.key", "-config", "bench.cnf",
            "-extensions", ext,
        ])?;
        // The certificate last: its presence marks a complete pair.
        std::fs::rename(&tmp_key, &key)?;
        std::fs::rename(&tmp_crt, &crt)?;
        Ok(())
    }

    /// TLS settings of a client identity (CN = `name`).
    pub fn client(&self, name: &str) -> TlsSettings {
        let (cert, key) = self.paths(name);
        TlsSettings { ca: self.dir.join("ca.crt"), cert, key }
    }

    /// Issues the missing client certificates of `names` with `jobs`
    /// parallel openssl processes. Returns how many were made.
    pub fn ensure_clients(&self, names: &[String], jobs: usize) -> Result<usize> {
        let todo: Vec<&String> = names.iter().filter(|n| !self.paths(n).0.exists() || !self.paths(n).1.exists()).collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let err: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..jobs.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = todo.get(i) else { return };
                    if let Err(e) = self.issue(name, name, "v3_client") {
                        *err.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        next.store(todo.len(), Ordering::Relaxed);
                        return;
                    }
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d.is_multiple_of(500) {
                        eprintln!("fleet-bench: issued {d}/{} client certificates ({:.0} s)", todo.len(), started.elapsed().as_secs_f64());
                    }
                });
            }
        });
        if let Some(e) = err.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Err(e);
        }
        Ok(todo.len())
    }
}

/// A running mosquitto.
#[derive(Debug)]
pub struct Broker {
    pub guard: ChildGuard,
    pub port: u16,
    pub log: PathBuf,
    /// The `max_queued_messages` line, if set.
    pub queue_conf: String,
}

impl Broker {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Clients mosquitto logged "Outgoing messages are being dropped" for
    /// (it logs once per dropping episode), with how many episodes.
    pub fn drop_notices(&self) -> Vec<(String, usize)> {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out: Vec<(String, usize)> = Vec::new();
        for l in s.lines() {
            if let Some(rest) = l.split("Outgoing messages are being dropped for client ").nth(1) {
                let id = rest.trim_end_matches('.').to_owned();
                match out.iter_mut().find(|(c, _)| *c == id) {
                    Some((_, k)) => *k += 1,
                    None => out.push((id, 1)),
                }
            }
        }
        out
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
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

/// Starts mosquitto on 127.0.0.1 on a free port: mTLS + ACL with `pki`,
/// else plain TCP with anonymous access (no ACL: without certificates
/// there is no identity for `%u`). Waits (≤10 s) until it listens.
pub fn start(dir: &Path, pki: Option<&Pki>, max_queued: Option<u64>) -> Result<Broker> {
    let port = free_port()?;
    // As root mosquitto would switch to user `mosquitto`, which cannot read
    // the private run directory.
    let user = if running_as_root() { "user root\n" } else { "" };
    let queue_conf = max_queued.map_or(String::new(), |q| format!("max_queued_messages {q}\n"));
    let common = format!(
        "{user}per_listener_settings false\npersistence false\nmax_packet_size 131072\nsys_interval 1\n{queue_conf}\
         log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_timestamp_format %H:%M:%S\n"
    );
    let conf = match pki {
        Some(pki) => {
            std::fs::write(dir.join("fleet.acl"), ACL)?;
            let p = |f: &str| pki.dir.join(f).display().to_string();
            format!(
                "{common}allow_anonymous false\nacl_file {acl}\n\
                 listener {port} 127.0.0.1\nmax_connections -1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n\
                 require_certificate true\n# cert CN -> username -> client id\nuse_identity_as_username true\n\
                 use_username_as_clientid true\n",
                acl = dir.join("fleet.acl").display(),
                ca = p("ca.crt"),
                crt = p("server.crt"),
                key = p("server.key"),
            )
        }
        None => format!("{common}allow_anonymous true\nlistener {port} 127.0.0.1\nmax_connections -1\n"),
    };
    let conf_path = dir.join("mosquitto.conf");
    std::fs::write(&conf_path, conf)?;
    let log = dir.join("mosquitto.log");
    let log_file = std::fs::File::create(&log)?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .context("mosquitto (apt-get install mosquitto)")?;
    let mut broker = Broker { guard: ChildGuard::new(child), port, log, queue_conf: queue_conf.trim().to_owned() };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = broker.guard.exited() {
            bail!("mosquitto exited ({st}):\n{}", broker.log_tail());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(broker);
        }
        if Instant::now() > deadline {
            return Err(anyhow!("mosquitto did not listen on {port} within 10 s:\n{}", broker.log_tail()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
