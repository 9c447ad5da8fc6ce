//! `firmware.update` on the box: download a RAUC bundle, check its SHA-256,
//! hand it to the root helper that installs it into the other slot, report.
//!
//! # Design
//! The agent runs unprivileged and sandboxed (no capabilities, read-only
//! system), so it never installs anything itself. It talks to a root
//! helper through files in its own state directory (`update/`, on the data
//! partition):
//!
//! 1. the agent downloads to `bundle.raucb.part`, hashing as it writes, and
//!    renames it to `bundle.raucb` only if the SHA-256 matches;
//! 2. it writes `pending.json` (command id, the slot it runs from) and then
//!    `request` (a fresh random token); `edge-update.path` starts
//!    `edge-update.service` (root), which takes the bundle as a hard link
//!    into its own directory and runs `rauc install` (RAUC checks the
//!    signature against the slot's keyring), writing `progress` lines and
//!    finally `result`, each prefixed with the token, into the root-owned
//!    [`STATUS_DIR`]: the helper never writes in the agent's directory,
//!    where the agent could plant a symlink (issue #15, finding 2);
//! 3. the agent reports progress as `in_progress` responses and the result
//!    as `succeeded`/`failed`, removes its request and bundle, then writes
//!    `reported`; the helper reboots after that (bounded wait) into the new
//!    slot as a one-shot trial.
//!
//! After the reboot [`Firmware::report`] (in telemetry) tells what happened:
//! the booted slot, whether it is confirmed (`edge-mark-good.service`
//! confirms it once this agent is streaming and online), and the outcome of
//! the last update (`trial`, `confirmed`, or `fell_back` when the box came
//! back up on the slot it updated from).
//!
//! # Limitations
//! Plain HTTP/1.1 `GET` (with TLS for https); a dropped connection is
//! resumed with `Range` when the server supports it. The transport
//! needs no integrity of its own: the digest and RAUC's signature are both
//! checked before anything is written to a slot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet::{CommandUpdate, ReasonCode};
use serde_json::{json, Value};

/// Largest bundle accepted (a 2 GiB slot compresses to far less).
const MAX_BUNDLE: u64 = 2 << 30;
/// No byte from the server for this long ends the download.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The helper must finish `rauc install` within this.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(1800);
/// Where the root helper keeps what RAUC's bootloader backend decided.
const BOOT_STATE_DIR: &str = "/data/boot";
/// Where the root helper writes `progress` and `result` (root-owned,
/// readable by the agent; `update-helper`).
const STATUS_DIR: &str = "/run/edge-update";

/// Why an update failed (each becomes the `failed` response's detail).
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// An update is already running.
    #[error("an update is already running")]
    Busy,
    /// The URL cannot be fetched by this client.
    #[error("unsupported URL: {0}")]
    Url(String),
    /// The server answered something other than 200.
    #[error("download failed: HTTP {0}")]
    Http(String),
    /// Reading, writing or connecting failed.
    #[error("download failed: {0}")]
    Io(#[from] std::io::Error),
    /// TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The bundle is larger than [`MAX_BUNDLE`].
    #[error("bundle larger than {MAX_BUNDLE} bytes")]
    TooLarge,
    /// The download is not the file the command named.
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    Digest { expected: String, actual: String },
    /// RAUC refused or failed to install the bundle.
    #[error("install failed: {0}")]
    Install(String),
}

impl FirmwareError {
    fn reason(&self) -> ReasonCode {
        match self {
            FirmwareError::Busy => ReasonCode::PreconditionFailed,
            FirmwareError::Url(_) => ReasonCode::InvalidArgs,
            _ => ReasonCode::Internal,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    busy: bool,
    updates: Vec<CommandUpdate>,
}

/// Runs updates in the background and reports on them.
#[derive(Debug, Clone)]
pub struct Firmware {
    dir: PathBuf,
    /// The helper's answers ([`STATUS_DIR`]; a temporary one in tests).
    status: PathBuf,
    shared: Arc<Mutex<Shared>>,
}

impl Firmware {
    /// `state_dir` is the agent's state directory (the data partition).
    pub fn new(state_dir: &Path) -> Firmware {
        let fw = Firmware { dir: state_dir.join("update"), status: PathBuf::from(STATUS_DIR), shared: Arc::default() };
        fw.settle_after_boot();
        fw
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `firmware.update` for request `id`.
    pub fn start(&self, id: &str, url: &str, sha256: &str) -> Result<(), (ReasonCode, String)> {
        {
            let mut s = self.lock();
            if s.busy {
                let e = FirmwareError::Busy;
                return Err((e.reason(), e.to_string()));
            }
            s.busy = true;
        }
        let (me, id, url, sha256) = (self.clone(), id.to_owned(), url.to_owned(), sha256.to_owned());
        let spawned = std::thread::Builder::new().name("firmware".into()).spawn(move || {
            let result = me.run(&id, &url, &sha256).map_err(|e| {
                tracing::warn!(id, error = %e, "firmware update failed");
                (e.reason(), e.to_string())
            });
            let mut s = me.lock();
            s.updates.push(CommandUpdate::Done { id, result });
            s.busy = false;
        });
        spawned.map(|_| ()).map_err(|e| {
            self.lock().busy = false;
            (ReasonCode::Internal, format!("cannot start the update thread: {e}"))
        })
    }

    /// Progress and ends since the last call.
    pub fn take_updates(&self) -> Vec<CommandUpdate> {
        let mut s = self.lock();
        let done = s.updates.iter().any(|u| matches!(u, CommandUpdate::Done { .. }));
        let updates = std::mem::take(&mut s.updates);
        drop(s);
        if done {
            // The result is in the session's durable outbox now; the helper
            // may reboot (it waits for this file, bounded).
            let _ = std::fs::write(self.dir.join("reported"), b"");
        }
        updates
    }

    fn progress(&self, id: &str, result: Value) {
        self.lock().updates.push(CommandUpdate::Progress { id: id.to_owned(), result });
    }

    fn run(&self, id: &str, url: &str, sha256: &str) -> Result<Option<Value>, FirmwareError> {
        std::fs::create_dir_all(&self.dir)?;
        for stale in ["request", "reported", "bundle.raucb"] {
            let _ = std::fs::remove_file(self.dir.join(stale));
        }
        let part = self.dir.join("bundle.raucb.part");
        let started = Instant::now();
        let (bytes, actual) = download(url, &part, |n| self.progress(id, json!({"phase": "downloading", "bytes": n})))?;
        if actual != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(FirmwareError::Digest { expected: sha256.to_owned(), actual });
        }
        std::fs::rename(&part, self.dir.join("bundle.raucb"))?;
        tracing::info!(id, bytes, secs = started.elapsed().as_secs(), "bundle downloaded and its SHA-256 matches");
        self.progress(id, json!({"phase": "verified", "bytes": bytes}));

        let from = booted_slot().unwrap_or_default();
        let pending = json!({"id": id, "from": from, "sha256": sha256, "boot_id": boot_id()});
        write_file(&self.dir.join("pending.json"), pending.to_string().as_bytes())?;
        // A token of this request, so an answer left from an earlier one
        // (the helper's directory outlives a failed update) is never taken
        // for this one's.
        let token = request_token(id);
        write_file(&self.dir.join("request"), token.as_bytes())?;
        self.progress(id, json!({"phase": "installing"}));
        let answer = self.await_helper(id, &token);
        // The helper has its own link to the bundle; the request is done.
        for done in ["request", "bundle.raucb"] {
            let _ = std::fs::remove_file(self.dir.join(done));
        }
        answer.map(|slot| Some(json!({"installed": slot, "from": from, "rebooting": true})))
    }

    /// Polls the helper's answer to request `token`: the slot installed.
    fn await_helper(&self, id: &str, token: &str) -> Result<String, FirmwareError> {
        let deadline = Instant::now() + INSTALL_TIMEOUT;
        let mut last = String::new();
        let answer = |name: &str| {
            let text = std::fs::read_to_string(self.status.join(name)).ok()?;
            text.trim().strip_prefix(token)?.strip_prefix(' ').map(str::to_owned)
        };
        loop {
            if let Some(result) = answer("result") {
                let result = result.trim();
                return match result.strip_prefix("installed") {
                    Some(slot) => Ok(slot.trim().to_owned()),
                    None => {
                        let _ = std::fs::remove_file(self.dir.join("pending.json"));
                        Err(FirmwareError::Install(result.trim_start_matches("failed").trim().to_owned()))
                    }
                };
            }
            let progress = answer("progress").unwrap_or_default();
            let progress = progress.trim();
            if !progress.is_empty() && progress != last {
                last = progress.to_owned();
                self.progress(id, json!({"phase": "installing", "rauc": last}));
            }
            if Instant::now() > deadline {
                return Err(FirmwareError::Install("the install helper did not finish in time".into()));
            }
            // The helper reports through files; polled like the status file.
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// After a reboot: did the update we started come up, or fall back?
    fn settle_after_boot(&self) {
        let Ok(text) = std::fs::read_to_string(self.dir.join("pending.json")) else { return };
        let Ok(pending) = serde_json::from_str::<Value>(&text) else { return };
        let from = pending.get("from").and_then(Value::as_str).unwrap_or_default();
        let Some(booted) = booted_slot() else { return };
        let outcome = if booted == from { "fell_back" } else { "trial" };
        // Whether any boot since the update ran another slot: a fallback
        // after a failed trial, or one where the new slot never started.
        let boots = std::fs::read_to_string(Path::new(BOOT_STATE_DIR).join("boots")).unwrap_or_default();
        let since = pending.get("boot_id").and_then(Value::as_str).map(|b| boots_since(&boots, b));
        let trial_booted = since.map(|v| v.iter().any(|slot| *slot != from));
        let doc = json!({"id": pending.get("id"), "from": from, "booted": booted, "outcome": outcome, "trial_booted": trial_booted});
        tracing::info!(outcome, from, booted, "firmware update outcome after reboot");
        if write_file(&self.dir.join("last-update.json"), doc.to_string().as_bytes()).is_ok() {
            let _ = std::fs::remove_file(self.dir.join("pending.json"));
        }
    }

    /// For telemetry: booted slot, whether it is confirmed, last update.
    pub fn report(&self) -> Value {
        let slot = booted_slot();
        let confirmed = slot.as_ref().map(|s| {
            std::fs::read_to_string(Path::new(BOOT_STATE_DIR).join(format!("state-{s}"))).is_ok_and(|t| t.trim() == "good")
        });
        let mut last: Value =
            std::fs::read_to_string(self.dir.join("last-update.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
        if let Some(obj) = last.as_object_mut() {
            if obj.get("outcome").and_then(Value::as_str) == Some("trial") && confirmed == Some(true) {
                obj.insert("outcome".into(), json!("confirmed"));
            }
        }
        json!({"slot": slot, "confirmed": confirmed, "last_update": last, "busy": self.lock().busy})
    }
}

/// A fresh token naming one install request (hex; `update-helper` accepts
/// 16-64 hex digits and nothing else).
fn request_token(id: &str) -> String {
    let mut seed = [0u8; 16];
    let random = openssl::rand::rand_bytes(&mut seed).is_ok();
    let mut h = openssl::sha::Sha256::new();
    h.update(&seed);
    h.update(id.as_bytes());
    if !random {
        // No CSPRNG: the time still tells requests apart (the token is not a secret).
        h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
    }
    h.finish().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// This boot's id (random per boot, `/proc/sys/kernel/random/boot_id`).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned())
}

/// The slots of the boots after boot `id` in the boot record written by
/// `provision` (`<boot id> <slot>` per line, oldest first); all of them if
/// `id` has rotated out.
fn boots_since<'a>(record: &'a str, id: &str) -> Vec<&'a str> {
    let lines: Vec<(&str, &str)> = record.lines().filter_map(|l| l.split_once(' ')).collect();
    let start = lines.iter().rposition(|(b, _)| *b == id).map_or(0, |i| i + 1);
    lines.get(start..).unwrap_or_default().iter().map(|(_, slot)| slot.trim()).collect()
}

/// `rauc.slot=` from the kernel command line (set by each boot entry).
pub fn booted_slot() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline.split_whitespace().find_map(|w| w.strip_prefix("rauc.slot=")).map(str::to_owned)
}

fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, path)
}

struct Url<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_url(url: &str) -> Result<Url<'_>, FirmwareError> {
    let bad = || FirmwareError::Url(url.to_owned());
    let (tls, rest) = match url.split_once("://") {
        Some(("http", r)) => (false, r),
        Some(("https", r)) => (true, r),
        _ => return Err(bad()),
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    Ok(Url { tls, host, port, path })
}

/// Attempts per download: the first plus resumes after a dropped connection.
const DOWNLOAD_ATTEMPTS: u32 = 5;

/// GETs `url` into `dest`; returns its length and SHA-256 (lower-case hex).
/// A connection that drops mid-body is resumed with an HTTP `Range`
/// request (RFC 9110 section 14.2), up to [`DOWNLOAD_ATTEMPTS`] in all, with
/// a growing pause: a venue uplink that blips must not cost a 400 MB
/// restart. A server that ignores `Range` (200) is downloaded from the start.
fn download(url: &str, dest: &Path, mut progress: impl FnMut(u64)) -> Result<(u64, String), FirmwareError> {
    let u = parse_url(url)?;
    let mut file = std::fs::File::create(dest)?;
    let mut hasher = openssl::sha::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut total, mut reported) = (0u64, Instant::now());
    let mut attempt = 1;
    loop {
        let result = (|| -> Result<Option<u64>, FirmwareError> {
            let (mut reader, body) = get(&u, total)?;
            if body.start != total {
                // Range ignored: start over.
                (total, hasher) = (0, openssl::sha::Sha256::new());
                file.set_len(0)?;
                std::io::Seek::rewind(&mut file)?;
            }
            if body.complete.is_some_and(|l| l > MAX_BUNDLE) {
                return Err(FirmwareError::TooLarge);
            }
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(body.complete);
                }
                let chunk = buf.get(..n).unwrap_or_default();
                hasher.update(chunk);
                file.write_all(chunk)?;
                total += n as u64;
                if total > MAX_BUNDLE {
                    return Err(FirmwareError::TooLarge);
                }
                if reported.elapsed() >= Duration::from_secs(2) {
                    reported = Instant::now();
                    progress(total);
                }
            }
        })();
        let short = match &result {
            Ok(Some(len)) => *len != total,
            Ok(None) => false,
            Err(FirmwareError::Io(_)) => true,
            Err(_) => false,
        };
        if !short {
            result?;
            break;
        }
        if attempt >= DOWNLOAD_ATTEMPTS {
            return match result {
                Err(e) => Err(e),
                Ok(_) => Err(FirmwareError::Http(format!("connection closed after {total} bytes ({attempt} attempts)"))),
            };
        }
        tracing::warn!(total, attempt, "bundle download interrupted; resuming");
        std::thread::sleep(Duration::from_millis(500 << attempt.min(5)));
        attempt += 1;
    }
    file.sync_all()?;
    let digest = hasher.finish().iter().map(|b| format!("{b:02x}")).collect();
    Ok((total, digest))
}

/// Where a response body starts and how long the whole file is.
struct Body {
    /// Offset of the body's first byte in the file (0 for a 200).
    start: u64,
    /// The whole file's length, when the server said.
    complete: Option<u64>,
}

/// Sends `GET` (with `Range: bytes=from-` when `from > 0`) and reads the
/// response head; returns the body reader.
fn get(u: &Url, from: u64) -> Result<(BufReader<Box<dyn ReadWrite>>, Body), FirmwareError> {
    let tcp = TcpStream::connect((u.host, u.port))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut stream: Box<dyn ReadWrite> = if u.tls {
        let connector = native_tls::TlsConnector::new().map_err(|e| FirmwareError::Tls(e.to_string()))?;
        Box::new(connector.connect(u.host, tcp).map_err(|e| FirmwareError::Tls(e.to_string()))?)
    } else {
        Box::new(tcp)
    };
    let range = if from > 0 { format!("Range: bytes={from}-\r\n") } else { String::new() };
    write!(stream, "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: edge-agent\r\n{range}\r\n", u.path, u.host)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    if status != "200" && !(status == "206" && from > 0) {
        return Err(FirmwareError::Http(if status.is_empty() { "no status line".into() } else { status }));
    }
    let (mut length, mut range): (Option<u64>, Option<(u64, Option<u64>)>) = (None, None);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().ok();
            }
            if k.eq_ignore_ascii_case("content-range") {
                range = parse_content_range(v);
            }
            if k.eq_ignore_ascii_case("transfer-encoding") && !v.eq_ignore_ascii_case("identity") {
                return Err(FirmwareError::Http(format!("unsupported transfer-encoding {v}")));
            }
        }
    }
    let body = match (status.as_str(), range) {
        ("206", Some((start, complete))) if start == from => Body { start, complete: complete.or(length.map(|l| start + l)) },
        ("206", _) => return Err(FirmwareError::Http(format!("206 without a Content-Range starting at {from}"))),
        _ => Body { start: 0, complete: length },
    };
    Ok((reader, body))
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) -> (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let (range, complete) = v.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, complete.trim().parse().ok()))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_parts() {
        let u = parse_url("http://10.0.2.102:8080/b/x.raucb").unwrap();
        assert_eq!((u.tls, u.host, u.port, u.path), (false, "10.0.2.102", 8080, "/b/x.raucb"));
        let u = parse_url("https://updates.example").unwrap();
        assert_eq!((u.tls, u.host, u.port, u.path), (true, "updates.example", 443, "/"));
        assert!(parse_url("ftp://x/y").is_err());
        assert!(parse_url("http://user@x/y").is_err());
        assert!(parse_url("http://x:port/y").is_err());
    }

    #[test]
    fn boots_since_lists_the_slots_booted_after_the_update() {
        let record = "b0 a\nb1 a\nb2 b\nb3 a\n";
        assert_eq!(boots_since(record, "b1"), ["b", "a"]);
        assert_eq!(boots_since(record, "b3"), Vec::<&str>::new());
        // The update's boot rotated out of the record: every boot counts.
        assert_eq!(boots_since(record, "gone"), ["a", "a", "b", "a"]);
        assert_eq!(boots_since("garbage\n\n", "b1"), Vec::<&str>::new());
    }

    /// A real HTTP server on 127.0.0.1 (it reads the whole request head
    /// and closes gently: unread bytes would make the kernel send RST).
    /// Serves `body` once per entry of `plan` on one listener: `Some(n)`
    /// sends only the first `n` bytes of the answer and then drops the
    /// connection; `honour_range` decides between 206 and a fresh 200.
    fn flaky_server(body: Vec<u8>, plan: Vec<Option<usize>>, honour_range: bool) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut ranges = Vec::new();
            for cut in plan {
                let (mut s, _) = listener.accept().unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let from: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Range: bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse().ok())
                    .unwrap_or(0);
                ranges.push(from.to_string());
                let rest = if honour_range { &body[from..] } else { &body[..] };
                if honour_range && from > 0 {
                    write!(s, "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\n\r\n", rest.len(), body.len() - 1, body.len()).unwrap();
                } else {
                    write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", rest.len()).unwrap();
                }
                s.write_all(&rest[..cut.unwrap_or(rest.len()).min(rest.len())]).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let _ = s.read(&mut byte);
            }
            ranges
        });
        (port, server)
    }

    fn sha_hex(body: &[u8]) -> String {
        openssl::sha::sha256(body).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn dropped_download_resumes_with_range() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (port, server) = flaky_server(body.clone(), vec![Some(100_000), Some(50_000), None], true);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b");
        let (n, digest) = download(&format!("http://127.0.0.1:{port}/b"), &dest, |_| {}).unwrap();
        assert_eq!(server.join().unwrap(), ["0", "100000", "150000"]);
        assert_eq!((n, digest), (body.len() as u64, sha_hex(&body)));
        assert_eq!(std::fs::read(dest).unwrap(), body);
    }

    #[test]
    fn server_without_range_support_restarts_the_download() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let (port, server) = flaky_server(body.clone(), vec![Some(70_000), None], false);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b");
        let (n, digest) = download(&format!("http://127.0.0.1:{port}/b"), &dest, |_| {}).unwrap();
        assert_eq!(server.join().unwrap(), ["0", "70000"]);
        assert_eq!((n, digest), (body.len() as u64, sha_hex(&body)));
        assert_eq!(std::fs::read(dest).unwrap(), body);
    }

    #[test]
    fn download_gives_up_after_the_last_attempt() {
        let body = vec![1u8; 10_000];
        let plan = vec![Some(1_000); DOWNLOAD_ATTEMPTS as usize];
        let (port, server) = flaky_server(body, plan, true);
        let dir = tempfile::tempdir().unwrap();
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dir.path().join("b"), |_| {}).unwrap_err();
        assert_eq!(server.join().unwrap().len(), DOWNLOAD_ATTEMPTS as usize);
        assert!(err.to_string().contains("5000 bytes (5 attempts)"), "{err}");
    }

    #[test]
    fn download_hashes_what_a_real_server_sends() {
        let body = vec![7u8; 300_000];
        let (port, server) = flaky_server(body.clone(), vec![None], true);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b");
        let (n, digest) = download(&format!("http://127.0.0.1:{port}/b"), &dest, |_| {}).unwrap();
        assert_eq!(server.join().unwrap(), ["0"]);
        assert_eq!((n, digest), (body.len() as u64, sha_hex(&body)));
        assert_eq!(std::fs::read(dest).unwrap(), body);
    }
}
