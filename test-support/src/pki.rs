//! A throw-away PKI made with the `openssl` CLI: one CA, a server
//! certificate for `localhost`/127.0.0.1 and client certificates whose CN is
//! the MQTT identity (device id or `controller`), all P-256, X.509 v3.
//!
//! Each key and certificate comes from one `openssl req -x509 -CA` run
//! (OpenSSL ≥ 3.0) and is written under a temporary name first: a
//! certificate file that exists is complete, so a directory can be kept and
//! reused (fleet-bench caches thousands of client certificates).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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
# 10.0.2.100: the broker's address inside the QEMU tests' guests (guestfwd).
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:10.0.2.100
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Validity of every certificate: long enough for a cached directory to
/// serve many runs; [`Pki::open`] renews the CA a day before it expires.
const DAYS: &str = "30";

/// A client identity's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A PKI directory: `ca.{crt,key}`, `server.{crt,key}`, `clients/*.{crt,key}`.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run openssl (apt-get install openssl): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

impl Pki {
    /// Opens `dir`, making it and the CA and server certificate if missing.
    /// A CA that expires within a day is replaced, and every certificate
    /// with it.
    pub fn open(dir: &Path) -> io::Result<Pki> {
        std::fs::create_dir_all(dir.join("clients"))?;
        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF)?;
        let valid = dir.join("ca.crt").exists()
            && dir.join("ca.key").exists()
            && openssl(dir, &["x509", "-in", "ca.crt", "-noout", "-checkend", "86400"]).is_ok();
        if !valid {
            for f in ["ca.crt", "ca.key", "server.crt", "server.key"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let _ = std::fs::remove_dir_all(dir.join("clients"));
            std::fs::create_dir_all(dir.join("clients"))?;
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    "ca.key.tmp",
                    "-out",
                    "ca.crt.tmp",
                    "-days",
                    DAYS,
                    "-subj",
                    "/CN=edge-test-ca",
                    "-config",
                    "openssl.cnf",
                    "-extensions",
                    "v3_ca",
                ],
            )?;
            std::fs::rename(dir.join("ca.key.tmp"), dir.join("ca.key"))?;
            std::fs::rename(dir.join("ca.crt.tmp"), dir.join("ca.crt"))?;
        }
        let pki = Pki { dir: dir.to_owned() };
        if !pki.server_cert().exists() {
            pki.issue(&pki.server_cert(), &pki.server_key(), "localhost", "v3_server")?;
        }
        Ok(pki)
    }

    /// A fresh PKI in `dir/pki`, for one test.
    ///
    /// # Panics
    /// If openssl fails (with its message).
    #[must_use]
    pub fn new(dir: &Path) -> Pki {
        Pki::open(&dir.join("pki")).unwrap_or_else(|e| panic!("test PKI in {}: {e}", dir.display()))
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    fn paths(&self, name: &str) -> ClientCert {
        let d = self.dir.join("clients");
        ClientCert { ca: self.ca(), cert: d.join(format!("{name}.crt")), key: d.join(format!("{name}.key")) }
    }

    /// Key + certificate with CN `cn`, signed by the CA.
    fn issue(&self, crt: &Path, key: &Path, cn: &str, ext: &str) -> io::Result<()> {
        let tmp_key = key.with_extension("key.tmp");
        let tmp_crt = crt.with_extension("crt.tmp");
        let (tk, tc) = (tmp_key.display().to_string(), tmp_crt.display().to_string());
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &tk,
                "-out",
                &tc,
                "-days",
                DAYS,
                "-subj",
                &format!("/CN={cn}"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-config",
                "openssl.cnf",
                "-extensions",
                ext,
            ],
        )?;
        // The certificate last: its presence marks a complete pair.
        std::fs::rename(&tmp_key, key)?;
        std::fs::rename(&tmp_crt, crt)?;
        Ok(())
    }

    /// The client identity `name` (CN = `name`), issued now if missing.
    pub fn try_client(&self, name: &str) -> io::Result<ClientCert> {
        let c = self.paths(name);
        if !c.cert.exists() || !c.key.exists() {
            self.issue(&c.cert, &c.key, name, "v3_client")?;
        }
        Ok(c)
    }

    /// [`Pki::try_client`] for tests.
    ///
    /// # Panics
    /// If openssl fails (with its message).
    #[must_use]
    pub fn client(&self, name: &str) -> ClientCert {
        self.try_client(name).unwrap_or_else(|e| panic!("client certificate {name}: {e}"))
    }

    /// Issues the missing client certificates of `names` with `jobs`
    /// parallel openssl processes (a few thousand take minutes on one).
    /// Returns how many were made; progress goes to stderr every 500.
    pub fn ensure_clients(&self, names: &[String], jobs: usize) -> io::Result<usize> {
        let todo: Vec<&String> = names.iter().filter(|n| !self.paths(n).cert.exists() || !self.paths(n).key.exists()).collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let err: Mutex<Option<io::Error>> = Mutex::new(None);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..jobs.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = todo.get(i) else { return };
                    if let Err(e) = self.try_client(name) {
                        *err.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        next.store(todo.len(), Ordering::Relaxed);
                        return;
                    }
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d.is_multiple_of(500) {
                        eprintln!("pki: issued {d}/{} client certificates ({:.0} s)", todo.len(), started.elapsed().as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pki_is_made_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let a = pki.client("dev-a");
        assert!(a.cert.exists() && a.key.exists() && a.ca.exists());
        let before = std::fs::read(&a.cert).unwrap();
        assert_eq!(pki.ensure_clients(&["dev-a".into(), "dev-b".into()], 2).unwrap(), 1);
        let again = Pki::open(&pki.dir).unwrap();
        assert_eq!(std::fs::read(&again.client("dev-a").cert).unwrap(), before);
        openssl(&pki.dir, &["verify", "-CAfile", "ca.crt", "server.crt", "clients/dev-b.crt"]).unwrap();
    }
}
