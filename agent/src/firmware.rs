//! `firmware.update` on the box: have the root helper stream a RAUC bundle
//! into the other slot (or, where it cannot, download the bundle, check its
//! SHA-256 and hand the file over), report.
//!
//! # Design
//! The agent runs unprivileged and sandboxed (no capabilities, read-only
//! system), so it never installs anything itself. It talks to a root
//! helper through files in its own state directory (`update/`, on the data
//! partition):
//!
//! 1. streaming first: the agent writes `pending.json` (command id, the slot
//!    it runs from) and then `request`: a fresh random token and, on a
//!    second line, the bundle's URL. `edge-update.path` starts
//!    `edge-update.service` (root), which checks the URL's shape and runs
//!    `rauc install <url>`: RAUC reads only the parts of the bundle it needs
//!    over HTTP range requests (through the kernel's nbd driver), checks the
//!    signature against the slot's keyring before it uses the manifest, and
//!    the dm-verity hash tree (its root hash is in the signed manifest) on
//!    every block it reads. Nothing is stored on `/data`, and the SHA-256
//!    the command carries is not checked: the signature and the verity tree
//!    are the integrity check, and a hash of the whole file would need the
//!    whole file;
//! 2. the fallback: when the helper answers `unstreamable` (no nbd driver, a
//!    server without range requests, a URL it does not stream), or the URL
//!    is not one it would stream ([`streamable`]), the agent downloads to
//!    `bundle.raucb.part`, hashing as it writes, renames it to `bundle.raucb`
//!    only if the SHA-256 matches, and sends a request without a URL; the
//!    helper takes the bundle as a hard link into its own directory and
//!    runs `rauc install` on that;
//! 3. either way the helper writes `progress` lines and finally `result`,
//!    each prefixed with the token, into the root-owned [`STATUS_DIR`]: it
//!    never writes in the agent's directory, where the agent could plant a
//!    symlink (issue #15, finding 2);
//! 4. the agent reports progress as `in_progress` responses and the result
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
//! The fallback download is plain HTTP/1.1 `GET` (with TLS for https); a
//! dropped connection is resumed with `Range` when the server supports it.
//! The transport needs no integrity of its own: RAUC's signature (and, for
//! a download, the digest) is checked before anything is written to a slot.
//! The bytes a streamed install moved are the helper's count of what RAUC
//! read through nbd (each read is one HTTP range request; the page cache
//! answers repeats without one); `vm_update` compares it with what the
//! test's file server counted. The download is bounded
//! (header sizes, free space, an overall deadline; see `Limits`). The
//! downgrade check compares the version the command names with this
//! agent's; the root helper checks the signed manifest's version again
//! (the agent's word is not trusted there).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet::{CommandUpdate, ReasonCode};
use serde_json::{json, Value};

/// Largest bundle accepted (a 2 GiB slot compresses to far less); the free
/// space of the data partition usually bounds it lower ([`space_for_bundle`]).
const MAX_BUNDLE: u64 = 2 << 30;
/// Room left on the data partition after the bundle: the agent's state, logs
/// and the helper's files must still fit while the bundle is there.
const FREE_SPACE_MARGIN: u64 = 32 << 20;
/// Every download may take this long, whatever its size...
const DEADLINE_FLOOR: Duration = Duration::from_secs(600);
/// ...plus one second per this many bytes announced (1 MB/s): a stalled
/// uplink that still trickles a byte every few seconds must end some time.
const DEADLINE_BYTES_PER_S: u64 = 1_000_000;
/// Longest response header line, and longest response head, accepted: a
/// server that never sends a newline must not grow a string without end.
const MAX_HEADER_LINE: u64 = 8 * 1024;
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// No byte from the server for this long ends the download.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The helper must finish `rauc install` within this (a streamed install
/// includes the transfer).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(1800);
/// Longest URL the helper streams (`update-helper`, `valid_url`).
const MAX_STREAM_URL: usize = 2048;
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
    /// The bundle does not fit: larger than `MAX_BUNDLE` or than the free
    /// space of the data partition less `FREE_SPACE_MARGIN`.
    #[error(
        "bundle of {size} bytes or more does not fit: {limit} bytes available for it (free space on the data partition less a margin)"
    )]
    TooLarge { size: u64, limit: u64 },
    /// The response head is malformed or oversized.
    #[error("download failed: bad response: {0}")]
    BadResponse(String),
    /// The download went on past its overall deadline.
    #[error("download did not finish within its deadline of {secs} s ({bytes} bytes received)")]
    Deadline { secs: u64, bytes: u64 },
    /// The bundle's version is lower than the running one.
    #[error("bundle version {bundle} is lower than the running {running}; set allow_downgrade to install it")]
    Downgrade { bundle: String, running: String },
    /// The version argument is not dot-separated numbers.
    #[error("version {0:?} is not dot-separated numbers")]
    Version(String),
    /// The download is not the file the command named.
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    Digest { expected: String, actual: String },
    /// RAUC refused or failed to install the bundle.
    #[error("install failed: {0}")]
    Install(String),
}

/// What the helper answered to a request.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Installed into the slot of boot name `slot`; a streamed install also
    /// says how many bytes RAUC read through nbd (`read=N`), which is what
    /// it fetched over HTTP.
    Installed { slot: String, read: Option<u64> },
    /// It cannot stream this bundle (why): download it instead.
    Unstreamable(String),
}

impl FirmwareError {
    fn reason(&self) -> ReasonCode {
        match self {
            FirmwareError::Busy | FirmwareError::Downgrade { .. } => ReasonCode::PreconditionFailed,
            FirmwareError::Url(_) | FirmwareError::Version(_) => ReasonCode::InvalidArgs,
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
    /// Bounds of the download ([`Limits::DEFAULT`]; smaller in tests).
    limits: Limits,
}

impl Firmware {
    /// `state_dir` is the agent's state directory (the data partition).
    pub fn new(state_dir: &Path) -> Firmware {
        let fw = Firmware {
            dir: state_dir.join("update"),
            status: PathBuf::from(STATUS_DIR),
            shared: Arc::default(),
            limits: Limits::DEFAULT,
        };
        fw.settle_after_boot();
        fw
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `firmware.update` for request `id`. A bundle `version` lower
    /// than this agent's is refused unless `allow_downgrade`.
    pub fn start(
        &self,
        id: &str,
        url: &str,
        sha256: &str,
        version: Option<&str>,
        allow_downgrade: bool,
    ) -> Result<(), (ReasonCode, String)> {
        check_version(env!("CARGO_PKG_VERSION"), version, allow_downgrade).map_err(|e| (e.reason(), e.to_string()))?;
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
            let result = me.run(&id, &url, &sha256, allow_downgrade).map_err(|e| {
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

    fn run(&self, id: &str, url: &str, sha256: &str, allow_downgrade: bool) -> Result<Option<Value>, FirmwareError> {
        parse_url(url)?;
        std::fs::create_dir_all(&self.dir)?;
        // The old `.part` too: the free space measured for a download must
        // not count a leftover's blocks as taken.
        for stale in ["request", "reported", "bundle.raucb", "bundle.raucb.part"] {
            let _ = std::fs::remove_file(self.dir.join(stale));
        }
        let from = booted_slot().unwrap_or_default();
        let pending = json!({"id": id, "from": from, "sha256": sha256, "boot_id": boot_id()});
        write_file(&self.dir.join("pending.json"), pending.to_string().as_bytes())?;
        let started = Instant::now();
        let mut streamed = false;
        let mut answer = Answer::Unstreamable("the URL is not one the helper streams".into());
        if streamable(url) {
            self.progress(id, json!({"phase": "streaming"}));
            answer = self.request_install(id, Some(url), allow_downgrade)?;
            streamed = matches!(answer, Answer::Installed { .. });
        }
        if let Answer::Unstreamable(why) = &answer {
            tracing::info!(id, why, "the bundle cannot be streamed; downloading it");
            self.progress(id, json!({"phase": "downloading", "why": why}));
            let bytes = self.download_verified(id, url, sha256)?;
            answer = match self.request_install(id, None, allow_downgrade)? {
                Answer::Installed { slot, .. } => Answer::Installed { slot, read: Some(bytes) },
                other => other,
            };
        }
        let _ = std::fs::remove_file(self.dir.join("bundle.raucb"));
        match answer {
            Answer::Installed { slot, read } => {
                let secs = started.elapsed().as_secs();
                tracing::info!(id, slot, streamed, bytes_moved = read, secs, "bundle installed");
                // `bytes_moved`: over the network for this install, streamed
                // or downloaded; null when the helper could not count it.
                Ok(Some(json!({
                    "installed": slot, "from": from, "rebooting": true, "streamed": streamed,
                    "bytes_moved": read, "seconds": secs,
                })))
            }
            Answer::Unstreamable(why) => {
                let _ = std::fs::remove_file(self.dir.join("pending.json"));
                Err(FirmwareError::Install(format!("the helper answered a downloaded bundle with: {why}")))
            }
        }
    }

    /// Downloads `url` to `bundle.raucb` if its SHA-256 is `sha256`; the
    /// bytes it took.
    fn download_verified(&self, id: &str, url: &str, sha256: &str) -> Result<u64, FirmwareError> {
        let part = self.dir.join("bundle.raucb.part");
        let started = Instant::now();
        let fail = |e: FirmwareError| {
            let _ = std::fs::remove_file(self.dir.join("pending.json"));
            e
        };
        let (bytes, actual) =
            download(url, &part, &self.limits, |n| self.progress(id, json!({"phase": "downloading", "bytes": n}))).map_err(fail)?;
        if actual != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(fail(FirmwareError::Digest { expected: sha256.to_owned(), actual }));
        }
        if let Err(e) = std::fs::rename(&part, self.dir.join("bundle.raucb")) {
            let _ = std::fs::remove_file(&part);
            return Err(fail(e.into()));
        }
        tracing::info!(id, bytes, secs = started.elapsed().as_secs(), "bundle downloaded and its SHA-256 matches");
        self.progress(id, json!({"phase": "verified", "bytes": bytes}));
        Ok(bytes)
    }

    /// Asks the helper to install: the bundle at `url` (streamed), or
    /// without one the downloaded `bundle.raucb`; waits for its answer.
    fn request_install(&self, id: &str, url: Option<&str>, allow_downgrade: bool) -> Result<Answer, FirmwareError> {
        // A token of this request, so an answer left from an earlier one
        // (the helper's directory outlives a failed update) is never taken
        // for this one's.
        let token = request_token(id);
        // The root helper checks the version again from the signed manifest
        // and refuses a downgrade unless the request allows it (and then
        // logs and reports that it did): the agent's check in `start` is a
        // courtesy, not the boundary.
        let mut request = if allow_downgrade { format!("{token} allow-downgrade\n") } else { format!("{token}\n") };
        if let Some(url) = url {
            request.push_str(url);
            request.push('\n');
        }
        write_file(&self.dir.join("request"), request.as_bytes())?;
        if url.is_none() {
            self.progress(id, json!({"phase": "installing"}));
        }
        let answer = self.await_helper(id, &token);
        let _ = std::fs::remove_file(self.dir.join("request"));
        answer
    }

    /// Polls the helper's answer to request `token`.
    fn await_helper(&self, id: &str, token: &str) -> Result<Answer, FirmwareError> {
        let deadline = Instant::now() + self.limits.install_timeout;
        let (mut last, mut reported) = (String::new(), Instant::now());
        let answer = |name: &str| {
            let text = std::fs::read_to_string(self.status.join(name)).ok()?;
            text.trim().strip_prefix(token)?.strip_prefix(' ').map(str::to_owned)
        };
        loop {
            if let Some(result) = answer("result") {
                let result = result.trim();
                if let Some(why) = result.strip_prefix("unstreamable") {
                    return Ok(Answer::Unstreamable(why.trim().to_owned()));
                }
                return match result.strip_prefix("installed") {
                    Some(rest) => Ok(installed(rest)),
                    None => {
                        let _ = std::fs::remove_file(self.dir.join("pending.json"));
                        Err(FirmwareError::Install(result.trim_start_matches("failed").trim().to_owned()))
                    }
                };
            }
            let progress = answer("progress").unwrap_or_default();
            let progress = progress.trim();
            // Unchanged progress is repeated every heartbeat: the session
            // ends a long-running command after `timeout_s` without any, and
            // RAUC can stay on one step (checking a large bundle) for longer.
            let changed = !progress.is_empty() && progress != last;
            if changed || reported.elapsed() >= self.limits.heartbeat {
                if changed {
                    last = progress.to_owned();
                }
                reported = Instant::now();
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
        let confirmed = slot
            .as_ref()
            .map(|s| std::fs::read_to_string(Path::new(BOOT_STATE_DIR).join(format!("state-{s}"))).is_ok_and(|t| t.trim() == "good"));
        let mut last: Value = std::fs::read_to_string(self.dir.join("last-update.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        if let Some(obj) = last.as_object_mut() {
            if obj.get("outcome").and_then(Value::as_str) == Some("trial") && confirmed == Some(true) {
                obj.insert("outcome".into(), json!("confirmed"));
            }
        }
        json!({"slot": slot, "confirmed": confirmed, "last_update": last, "busy": self.lock().busy})
    }
}

/// The numbers of a version (`1.4.2-rc1` -> [1, 4, 2]); `None` if it does
/// not start with dot-separated numbers.
fn version_numbers(v: &str) -> Option<Vec<u64>> {
    let numbers = v.split(['-', '+']).next()?;
    numbers.split('.').map(|n| if n.bytes().all(|b| b.is_ascii_digit()) { n.parse().ok() } else { None }).collect()
}

/// Refuses a `bundle` version lower than `running` unless `allow_downgrade`
/// (numbers compared in order, a missing one counting as 0; labels after
/// `-`/`+` are ignored, so `1.2.0-rc1` is not lower than `1.2.0`). Without a
/// version there is nothing to compare: RAUC's signature check still applies.
fn check_version(running: &str, bundle: Option<&str>, allow_downgrade: bool) -> Result<(), FirmwareError> {
    let Some(bundle) = bundle else { return Ok(()) };
    let theirs = version_numbers(bundle).ok_or_else(|| FirmwareError::Version(bundle.to_owned()))?;
    let ours = version_numbers(running).ok_or_else(|| FirmwareError::Version(running.to_owned()))?;
    let len = theirs.len().max(ours.len());
    let pad = |v: &[u64]| (0..len).map(|i| v.get(i).copied().unwrap_or(0)).collect::<Vec<u64>>();
    if pad(&theirs) < pad(&ours) && !allow_downgrade {
        return Err(FirmwareError::Downgrade { bundle: bundle.to_owned(), running: running.to_owned() });
    }
    Ok(())
}

/// Bytes the bundle may take in `dir`: its filesystem's free space (for an
/// unprivileged process) less [`FREE_SPACE_MARGIN`], at most [`MAX_BUNDLE`].
fn space_for_bundle(dir: &Path) -> Result<u64, FirmwareError> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    // fsblkcnt_t and c_ulong are at most 64 bits wide on Linux.
    let free = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    Ok(free.saturating_sub(FREE_SPACE_MARGIN).min(MAX_BUNDLE))
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

/// Whether the helper would stream `url` (the same rule as its `valid_url`):
/// http or https, a host name or IPv4 address with an optional port, then
/// only letters, digits and `. _ ~ % / + = & ? , : -`, at most
/// [`MAX_STREAM_URL`] bytes. Any other URL is downloaded by the agent.
fn streamable(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else { return false };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = authority.split_once(':').map_or((authority, None), |(h, p)| (h, Some(p)));
    let host_ok = host.len() <= 253
        && host.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~%/+=&?,:-".contains(&b));
    url.len() <= MAX_STREAM_URL && host_ok && port_ok && path_ok
}

/// The helper's `installed SLOT [read=BYTES]` after `installed`.
fn installed(rest: &str) -> Answer {
    let mut words = rest.split_whitespace();
    let slot = words.next().unwrap_or_default().to_owned();
    let read = words.find_map(|w| w.strip_prefix("read=")?.parse().ok());
    Answer::Installed { slot, read }
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

/// Bounds of one download.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Bytes the bundle may take; `None`: measured ([`space_for_bundle`]).
    max_bytes: Option<u64>,
    /// Overall deadline: this floor plus one second per `bytes_per_s`
    /// bytes announced.
    deadline_floor: Duration,
    bytes_per_s: u64,
    /// Connections tried, the first included.
    attempts: u32,
    /// Longest time without a progress update while the helper installs
    /// (well inside the 30 s default `timeout_s`).
    heartbeat: Duration,
    /// The helper's answer must come within this.
    install_timeout: Duration,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        max_bytes: None,
        deadline_floor: DEADLINE_FLOOR,
        bytes_per_s: DEADLINE_BYTES_PER_S,
        attempts: DOWNLOAD_ATTEMPTS,
        heartbeat: Duration::from_secs(10),
        install_timeout: INSTALL_TIMEOUT,
    };

    fn deadline(&self, announced: u64) -> Duration {
        self.deadline_floor + Duration::from_secs(announced / self.bytes_per_s.max(1))
    }
}

/// GETs `url` into `dest`; returns its length and SHA-256 (lower-case hex).
/// A connection that drops mid-body is resumed with an HTTP `Range`
/// request (RFC 9110 section 14.2), up to [`DOWNLOAD_ATTEMPTS`] in all, with
/// a growing pause: a venue uplink that blips must not cost a 400 MB
/// restart. A server that ignores `Range` (200) is downloaded from the start.
/// Bounded by `limits` (size and overall deadline); on any failure `dest`
/// is removed: a partial bundle is of no use to the next update (which
/// starts over) and takes room on a small data partition.
fn download(url: &str, dest: &Path, limits: &Limits, progress: impl FnMut(u64)) -> Result<(u64, String), FirmwareError> {
    let result = download_to(url, dest, limits, progress);
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

fn download_to(url: &str, dest: &Path, limits: &Limits, mut progress: impl FnMut(u64)) -> Result<(u64, String), FirmwareError> {
    let u = parse_url(url)?;
    let started = Instant::now();
    let mut deadline = started + limits.deadline_floor;
    let mut file = std::fs::File::create(dest)?;
    // Measured with the (now empty) part file in place.
    let limit = match limits.max_bytes {
        Some(max) => max,
        None => space_for_bundle(dest.parent().unwrap_or(Path::new(".")))?,
    };
    let late = |bytes: u64, deadline: Instant| FirmwareError::Deadline { secs: (deadline - started).as_secs(), bytes };
    let mut hasher = openssl::sha::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut total, mut reported) = (0u64, Instant::now());
    let mut attempt = 1;
    loop {
        let result = (|| -> Result<Option<u64>, FirmwareError> {
            let (mut reader, body) = get(&u, total, deadline)?;
            if body.start != total {
                // Range ignored: start over.
                (total, hasher) = (0, openssl::sha::Sha256::new());
                file.set_len(0)?;
                std::io::Seek::rewind(&mut file)?;
            }
            if let Some(len) = body.complete {
                if len > limit {
                    return Err(FirmwareError::TooLarge { size: len, limit });
                }
                deadline = started + limits.deadline(len);
            }
            loop {
                if Instant::now() >= deadline {
                    return Err(late(total, deadline));
                }
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(body.complete);
                }
                let chunk = buf.get(..n).unwrap_or_default();
                hasher.update(chunk);
                file.write_all(chunk)?;
                total += n as u64;
                if total > limit {
                    return Err(FirmwareError::TooLarge { size: total, limit });
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
        if Instant::now() >= deadline {
            // The read that failed may have been cut short by the deadline.
            return Err(late(total, deadline));
        }
        if attempt >= limits.attempts {
            return match result {
                Err(e) => Err(e),
                Ok(_) => Err(FirmwareError::Http(format!("connection closed after {total} bytes ({attempt} attempts)"))),
            };
        }
        tracing::warn!(total, attempt, "bundle download interrupted; resuming");
        // Still alive: the session counts silence against `timeout_s`.
        progress(total);
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
/// response head; returns the body reader. No read waits past `deadline`
/// (nor longer than [`IO_TIMEOUT`]).
fn get(u: &Url, from: u64, deadline: Instant) -> Result<(BufReader<Box<dyn ReadWrite>>, Body), FirmwareError> {
    let tcp = TcpStream::connect((u.host, u.port))?;
    let wait = deadline.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), IO_TIMEOUT);
    tcp.set_read_timeout(Some(wait))?;
    tcp.set_write_timeout(Some(wait))?;
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
    let body = read_head(&mut reader, from, deadline)?;
    Ok((reader, body))
}

/// Reads the response head to a `GET` sent with `Range: bytes=from-` when
/// `from > 0`; leaves `reader` at the body's first byte. Apart from the
/// socket (pure over any [`BufRead`]), so the fuzz target can drive it.
fn read_head(reader: &mut impl BufRead, from: u64, deadline: Instant) -> Result<Body, FirmwareError> {
    let mut line = String::new();
    let mut head = 0;
    read_head_line(reader, &mut line, &mut head)?;
    let status = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    if status != "200" && !(status == "206" && from > 0) {
        return Err(FirmwareError::Http(if status.is_empty() { "no status line".into() } else { status }));
    }
    let (mut length, mut range): (Option<u64>, Option<(u64, Option<u64>)>) = (None, None);
    loop {
        if read_head_line(reader, &mut line, &mut head)? == 0 || line.trim().is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(FirmwareError::BadResponse("the response head did not arrive before the deadline".into()));
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
        ("206", Some((start, complete))) if start == from => {
            // Checked: a broken or hostile server's Content-Length can come
            // near u64::MAX, and `start + length` overflowed (a panic with
            // overflow checks, a wrapped, wrong length without). Found writing
            // the fuzz target firmware_http (docs/fuzzing.md).
            let complete = match complete {
                Some(c) => Some(c),
                None => length
                    .map(|l| {
                        start
                            .checked_add(l)
                            .ok_or_else(|| FirmwareError::BadResponse(format!("Content-Length {l} after byte {start}")))
                    })
                    .transpose()?,
            };
            Body { start, complete }
        }
        ("206", _) => return Err(FirmwareError::Http(format!("206 without a Content-Range starting at {from}"))),
        _ => Body { start: 0, complete: length },
    };
    Ok(body)
}

/// [`read_head`] over bytes, for the fuzz target `firmware_http`
/// (`fuzz/`, `docs/fuzzing.md`): the body's start and the whole file's
/// length, or the error's message. Not an API.
#[doc(hidden)]
pub fn fuzz_response_head(head: &[u8], from: u64) -> Result<(u64, Option<u64>), String> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    read_head(&mut &head[..], from, deadline).map(|b| (b.start, b.complete)).map_err(|e| e.to_string())
}

/// Reads one line of the response head into `line`, at most
/// [`MAX_HEADER_LINE`] bytes, and counts it into `head` (at most
/// [`MAX_HEADER_BLOCK`] in all).
fn read_head_line(reader: &mut impl BufRead, line: &mut String, head: &mut usize) -> Result<usize, FirmwareError> {
    line.clear();
    let n = reader.by_ref().take(MAX_HEADER_LINE + 1).read_line(line)?;
    if n as u64 > MAX_HEADER_LINE {
        return Err(FirmwareError::BadResponse(format!("a header line is longer than {MAX_HEADER_LINE} bytes")));
    }
    *head += n;
    if *head > MAX_HEADER_BLOCK {
        return Err(FirmwareError::BadResponse(format!("the response head is longer than {MAX_HEADER_BLOCK} bytes")));
    }
    Ok(n)
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

    /// Regression (found writing the fuzz target firmware_http,
    /// docs/fuzzing.md): a resume answered with an open total (`/*`) and
    /// a Content-Length near u64::MAX overflowed `start + length`; it is a
    /// bad response now, not a panic.
    #[test]
    fn a_resume_whose_length_overflows_is_a_bad_response() {
        let head = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1024-4095/*\r\nContent-Length: 18446744073709551615\r\n\r\n";
        let e = fuzz_response_head(head, 1024).unwrap_err();
        assert!(e.contains("Content-Length 18446744073709551615 after byte 1024"), "{e}");
        // The same resume with a sane length still gives the whole file's.
        let head = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1024-4095/*\r\nContent-Length: 3072\r\n\r\n";
        assert_eq!(fuzz_response_head(head, 1024), Ok((1024, Some(4096))));
        assert_eq!(fuzz_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 0), Ok((0, Some(10))));
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
                    write!(
                        s,
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\n\r\n",
                        rest.len(),
                        body.len() - 1,
                        body.len()
                    )
                    .unwrap();
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

    /// Generous bounds with an explicit size limit (no statvfs in tests).
    const TEST_LIMITS: Limits = Limits {
        max_bytes: Some(1 << 30),
        deadline_floor: Duration::from_secs(30),
        bytes_per_s: 1_000_000,
        attempts: DOWNLOAD_ATTEMPTS,
        heartbeat: Duration::from_millis(100),
        install_timeout: Duration::from_secs(10),
    };
    const ONE_ATTEMPT: Limits = Limits { attempts: 1, ..TEST_LIMITS };

    /// A one-connection server on 127.0.0.1: reads the request head, then
    /// `answer` writes whatever it likes (write errors end it: the client
    /// may have hung up on purpose).
    fn scripted_server(
        answer: impl FnOnce(&mut std::net::TcpStream) -> std::io::Result<()> + Send + 'static,
    ) -> (u16, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && matches!(s.read(&mut byte), Ok(1)) {
                head.push(byte[0]);
            }
            let _ = answer(&mut s);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read(&mut byte);
        });
        (port, server)
    }

    #[test]
    fn failed_download_leaves_no_part_file() {
        let body = vec![3u8; 50_000];
        let (port, server) = flaky_server(body, vec![Some(10_000)], true);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("bundle.raucb.part");
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dest, &ONE_ATTEMPT, |_| {}).unwrap_err();
        let _ = server.join();
        assert!(err.to_string().contains("closed after 10000 bytes"), "{err}");
        assert!(!dest.exists(), "the partial bundle is removed");
    }

    #[test]
    fn an_oversize_header_line_fails_clearly() {
        let (port, server) = scripted_server(|s| write!(s, "HTTP/1.1 200 OK\r\nX-Junk: {}\r\n\r\nbody", "a".repeat(9_000)));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b");
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dest, &TEST_LIMITS, |_| {}).unwrap_err();
        let _ = server.join();
        assert!(err.to_string().contains("header line is longer than 8192 bytes"), "{err}");
        assert!(!dest.exists());
        // Many short lines: the head as a whole is bounded too.
        let (port, server) = scripted_server(|s| {
            s.write_all(b"HTTP/1.1 200 OK\r\n")?;
            for _ in 0..2_000 {
                s.write_all(b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")?;
            }
            s.write_all(b"\r\n")
        });
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dest, &TEST_LIMITS, |_| {}).unwrap_err();
        let _ = server.join();
        assert!(err.to_string().contains("response head is longer than 65536 bytes"), "{err}");
    }

    #[test]
    fn a_slow_drip_past_the_deadline_fails_clearly() {
        let (port, server) = scripted_server(|s| {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")?;
            // 20 bytes per 50 ms; bounded so the thread ends whatever happens.
            for _ in 0..200 {
                s.write_all(&[9u8; 20])?;
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        });
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b");
        let limits = Limits { deadline_floor: Duration::from_millis(700), bytes_per_s: u64::MAX, ..TEST_LIMITS };
        let started = Instant::now();
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dest, &limits, |_| {}).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(matches!(err, FirmwareError::Deadline { bytes, .. } if bytes > 0), "{err}");
        assert!(err.to_string().contains("did not finish within its deadline"), "{err}");
        assert!(!dest.exists());
        let _ = server.join();
    }

    #[test]
    fn the_deadline_grows_with_the_announced_size() {
        assert_eq!(Limits::DEFAULT.deadline(0), Duration::from_secs(600));
        assert_eq!(Limits::DEFAULT.deadline(400_000_000), Duration::from_secs(1000));
    }

    #[test]
    fn a_bundle_larger_than_the_space_for_it_is_refused_or_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b");
        let small = Limits { max_bytes: Some(5_000), ..ONE_ATTEMPT };
        // Announced too large: refused before the body.
        let (port, server) = flaky_server(vec![1u8; 10_000], vec![None], true);
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dest, &small, |_| {}).unwrap_err();
        let _ = server.join();
        assert!(matches!(err, FirmwareError::TooLarge { size: 10_000, limit: 5_000 }), "{err}");
        assert!(!dest.exists());
        // No length announced: cut off once the body grows past the limit.
        let (port, server) = scripted_server(|s| {
            s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            s.write_all(&[1u8; 10_000])
        });
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dest, &small, |_| {}).unwrap_err();
        let _ = server.join();
        assert!(matches!(err, FirmwareError::TooLarge { size, limit: 5_000 } if size > 5_000), "{err}");
        assert!(err.to_string().contains("free space"), "{err}");
        assert!(!dest.exists());
        // The measured limit: some room, never above the cap.
        let room = space_for_bundle(dir.path()).unwrap();
        assert!(room <= MAX_BUNDLE);
    }

    #[test]
    fn lower_versions_are_refused_unless_downgrades_are_allowed() {
        assert!(check_version("1.4.2", Some("1.4.2"), false).is_ok());
        assert!(check_version("1.4.2", Some("1.10.0"), false).is_ok(), "numeric, not text, comparison");
        assert!(check_version("1.4.2", Some("1.4.2-rc1"), false).is_ok());
        assert!(check_version("1.4", Some("1.4.0"), false).is_ok());
        assert!(check_version("1.4.2", None, false).is_ok(), "nothing to compare");
        let e = check_version("1.4.2", Some("1.4.1"), false).unwrap_err();
        assert_eq!(e.reason(), ReasonCode::PreconditionFailed);
        assert!(e.to_string().contains("allow_downgrade"), "{e}");
        assert!(check_version("1.10.0", Some("1.9.9"), false).is_err());
        assert!(check_version("1.4.2", Some("1.4.1"), true).is_ok());
        assert_eq!(check_version("1.4.2", Some("x.y"), true).unwrap_err().reason(), ReasonCode::InvalidArgs);
    }

    #[test]
    fn start_refuses_a_downgrade_and_the_flag_lets_it_through() {
        let dir = tempfile::tempdir().unwrap();
        let fw = Firmware {
            dir: dir.path().join("update"),
            status: dir.path().join("status"),
            shared: Arc::default(),
            limits: ONE_ATTEMPT,
        };
        // A port nobody listens on: the download fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/b");
        let sha = "ab".repeat(32);
        let (reason, detail) = fw.start("d1", &url, &sha, Some("0.0.1"), false).unwrap_err();
        assert_eq!(reason, ReasonCode::PreconditionFailed, "{detail}");
        assert!(detail.contains("lower than the running"), "{detail}");
        assert!(!fw.lock().busy && fw.take_updates().is_empty(), "nothing started");

        fw.start("d2", &url, &sha, Some("0.0.1"), true).unwrap();
        // The helper's part: it cannot stream this one, so the agent falls
        // back to downloading it.
        let (request, _) = play_helper(&fw, "unstreamable the kernel's nbd driver is not available");
        assert!(request.ends_with(&format!(" allow-downgrade\n{url}\n")), "{request:?}");
        match done(&fw).last() {
            Some(CommandUpdate::Done { id, result: Err((_, detail)) }) => {
                assert_eq!(id, "d2");
                assert!(detail.contains("download failed"), "{detail}");
            }
            other => panic!("expected the download to be tried and fail: {other:?}"),
        }
    }

    /// Plays `update-helper` once for `fw`: waits (bounded) for a request,
    /// answers it with `answer` in the status directory; the request's text
    /// and whether a downloaded bundle was there.
    fn play_helper(fw: &Firmware, answer: &str) -> (String, bool) {
        let until = Instant::now() + Duration::from_secs(10);
        let request = loop {
            if let Ok(text) = std::fs::read_to_string(fw.dir.join("request")) {
                break text;
            }
            assert!(Instant::now() < until, "no request within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let bundle = fw.dir.join("bundle.raucb").exists();
        let token = request.split_whitespace().next().unwrap_or_default();
        std::fs::create_dir_all(&fw.status).unwrap();
        std::fs::write(fw.status.join("result"), format!("{token} {answer}\n")).unwrap();
        (request, bundle)
    }

    fn test_firmware(dir: &Path) -> Firmware {
        Firmware { dir: dir.join("update"), status: dir.join("status"), shared: Arc::default(), limits: ONE_ATTEMPT }
    }

    fn done(fw: &Firmware) -> Vec<CommandUpdate> {
        let until = Instant::now() + Duration::from_secs(10);
        let mut all = Vec::new();
        loop {
            all.extend(fw.take_updates());
            if all.iter().any(|u| matches!(u, CommandUpdate::Done { .. })) || Instant::now() > until {
                return all;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The usual path: the URL goes to the helper, nothing is downloaded,
    /// and the SHA-256 is not checked (RAUC's signature and verity tree are).
    #[test]
    fn an_http_bundle_is_streamed_by_the_helper_without_a_download() {
        let dir = tempfile::tempdir().unwrap();
        let fw = test_firmware(dir.path());
        // Nobody listens there: a download would fail.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/b/x.raucb?X-Amz-Signature=ab%2F&X-Amz-Expires=300");
        fw.start("s1", &url, &"00".repeat(32), None, false).unwrap();
        let (request, bundle) = play_helper(&fw, "installed b read=123456");
        let token = request.lines().next().unwrap();
        assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{request:?}");
        assert_eq!(request.lines().nth(1), Some(url.as_str()));
        assert!(!bundle, "nothing downloaded");
        let updates = done(&fw);
        let phases: Vec<_> = updates
            .iter()
            .filter_map(|u| match u {
                CommandUpdate::Progress { result, .. } => result["phase"].as_str().map(str::to_owned),
                _ => None,
            })
            .collect();
        assert!(phases.contains(&"streaming".to_owned()) && !phases.contains(&"downloading".to_owned()), "{phases:?}");
        match updates.last() {
            Some(CommandUpdate::Done { result: Ok(Some(v)), .. }) => {
                assert_eq!((v["installed"].as_str(), v["streamed"].as_bool()), (Some("b"), Some(true)), "{v}");
                assert_eq!(v["bytes_moved"], 123456, "the helper's count of what RAUC read: {v}");
            }
            other => panic!("expected success: {other:?}"),
        }
        assert!(!fw.dir.join("request").exists());
    }

    /// The fallback: the helper cannot stream, the agent downloads, checks
    /// the SHA-256 and sends the file.
    #[test]
    fn an_unstreamable_bundle_is_downloaded_checked_and_sent_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let fw = test_firmware(dir.path());
        let body = vec![5u8; 70_000];
        let (port, server) = flaky_server(body.clone(), vec![None], true);
        let url = format!("http://127.0.0.1:{port}/b");
        fw.start("f1", &url, &sha_hex(&body), None, false).unwrap();
        play_helper(&fw, "unstreamable range requests not supported by server");
        // The second request: no URL, the bundle beside it.
        let until = Instant::now() + Duration::from_secs(10);
        let (request, bundle) = loop {
            let r = std::fs::read_to_string(fw.dir.join("request")).unwrap_or_default();
            if r.lines().count() == 1 {
                break play_helper(&fw, "installed b");
            }
            assert!(Instant::now() < until, "no second request");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(server.join().unwrap(), ["0"]);
        assert_eq!(request.lines().count(), 1, "{request:?}");
        assert!(bundle, "the downloaded bundle is there for the helper");
        match done(&fw).last() {
            Some(CommandUpdate::Done { result: Ok(Some(v)), .. }) => {
                assert_eq!(v["streamed"], false, "{v}");
                assert_eq!(v["bytes_moved"], body.len(), "the bytes downloaded: {v}");
            }
            other => panic!("expected success: {other:?}"),
        }
        assert!(!fw.dir.join("bundle.raucb").exists(), "the agent's bundle is removed after the install");
    }

    #[test]
    fn only_urls_the_helper_accepts_are_streamed() {
        for ok in [
            "http://10.0.2.102/good.raucb",
            "https://updates.example.com:8443/a/b-1.2.3.raucb",
            "https://bucket.s3.amazonaws.com/x.raucb?X-Amz-Credential=a%2Fb&X-Amz-Signature=0f",
        ] {
            assert!(streamable(ok), "{ok}");
        }
        for bad in [
            "ftp://x/y",
            "file:///data/b.raucb",
            "http://user@x/y",
            "http://x/$(reboot)",
            "http://x/a b",
            "http://x/a'b",
            "http://x/a;b",
            "http://x/a#frag",
            "http://[::1]/b",
            "http://-x/b",
            "http://x:123456/b",
            "http://x/a\nb",
            "http:///b",
        ] {
            assert!(!streamable(bad), "{bad}");
        }
        assert!(!streamable(&format!("http://x/{}", "a".repeat(MAX_STREAM_URL))));
    }

    /// RAUC may sit on one step longer than the command's `timeout_s`: the
    /// agent repeats its progress so the session does not time it out.
    #[test]
    fn a_quiet_install_still_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::create_dir_all(&status).unwrap();
        let fw = Firmware { dir: dir.path().join("update"), status: status.clone(), shared: Arc::default(), limits: ONE_ATTEMPT };
        let helper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1_200));
            std::fs::write(status.join("result"), "0123456789abcdef installed b\n").unwrap();
        });
        assert_eq!(fw.await_helper("q1", "0123456789abcdef").unwrap(), Answer::Installed { slot: "b".into(), read: None });
        helper.join().unwrap();
        let beats = fw.take_updates().iter().filter(|u| matches!(u, CommandUpdate::Progress { id, .. } if id == "q1")).count();
        assert!(beats >= 2, "{beats} progress updates in 1.2 s of silence");
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
        let (n, digest) = download(&format!("http://127.0.0.1:{port}/b"), &dest, &TEST_LIMITS, |_| {}).unwrap();
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
        let (n, digest) = download(&format!("http://127.0.0.1:{port}/b"), &dest, &TEST_LIMITS, |_| {}).unwrap();
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
        let err = download(&format!("http://127.0.0.1:{port}/b"), &dir.path().join("b"), &TEST_LIMITS, |_| {}).unwrap_err();
        assert_eq!(server.join().unwrap().len(), DOWNLOAD_ATTEMPTS as usize);
        assert!(err.to_string().contains("5000 bytes (5 attempts)"), "{err}");
    }

    #[test]
    fn download_hashes_what_a_real_server_sends() {
        let body = vec![7u8; 300_000];
        let (port, server) = flaky_server(body.clone(), vec![None], true);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("b");
        let (n, digest) = download(&format!("http://127.0.0.1:{port}/b"), &dest, &TEST_LIMITS, |_| {}).unwrap();
        assert_eq!(server.join().unwrap(), ["0"]);
        assert_eq!((n, digest), (body.len() as u64, sha_hex(&body)));
        assert_eq!(std::fs::read(dest).unwrap(), body);
    }
}
