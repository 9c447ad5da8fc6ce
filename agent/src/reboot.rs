//! `reboot` through a root-owned path, with its real outcome.
//!
//! # Background
//! The agent runs unprivileged (no capability, no polkit rule), so a
//! `systemctl reboot` of its own is refused; it used to report success
//! anyway.
//!
//! # Design
//! - The agent only creates [`REQUEST_FILE`] in its state directory.
//!   `edge-reboot.path` (root) sees it and starts `edge-reboot.service`,
//!   whose script treats the name's existence as the whole request: it
//!   removes it without following it and runs `systemctl reboot`. Nothing
//!   the agent writes is read by root (docs/image.md#reboot).
//! - Before the request the pending command (id, boot id, time) is written
//!   atomically to [`PENDING_FILE`]. The next agent start ([`Reboot::new`])
//!   answers it: `succeeded` with the boot time when the boot id changed,
//!   `failed` when the agent restarted without a reboot.
//! - While waiting, progress goes out every [`PROGRESS_EVERY`] (a
//!   long-running command's window); with no reboot within
//!   [`REBOOT_WITHIN`] the request is withdrawn and the command `failed`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet::wire::ReasonCode;
use fleet::CommandUpdate;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The trigger `edge-reboot.path` watches (in the agent's state directory).
pub const REQUEST_FILE: &str = "reboot-request";
/// The command waiting for the next boot to answer it.
pub const PENDING_FILE: &str = "reboot-pending.json";
/// How long a requested reboot may take to stop this process: systemd
/// stops every service first (the agent's own stop is bounded at 1.2 s).
pub const REBOOT_WITHIN: Duration = Duration::from_secs(120);
/// Progress while waiting: well inside the default 30 s command window.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pending {
    id: String,
    boot_id: String,
    requested_unix_ms: u64,
}

/// `reboot` for the fleet adapter; clones share the state.
#[derive(Debug, Clone)]
pub struct Reboot {
    dir: PathBuf,
    updates: Arc<Mutex<Vec<CommandUpdate>>>,
    busy: Arc<AtomicBool>,
}

impl Reboot {
    /// Uses `state_dir`; answers a reboot requested before this start.
    pub fn new(state_dir: &Path) -> Reboot {
        let r = Reboot { dir: state_dir.to_owned(), updates: Arc::default(), busy: Arc::default() };
        r.settle_after_start();
        r
    }

    fn push(&self, u: CommandUpdate) {
        self.updates.lock().unwrap_or_else(|p| p.into_inner()).push(u);
    }

    /// Progress and ends since the last call.
    pub fn take_updates(&self) -> Vec<CommandUpdate> {
        std::mem::take(&mut *self.updates.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn settle_after_start(&self) {
        let path = self.dir.join(PENDING_FILE);
        let Ok(bytes) = std::fs::read(&path) else { return };
        // A request left behind must not reboot the box later.
        let _ = std::fs::remove_file(self.dir.join(REQUEST_FILE));
        let _ = std::fs::remove_file(&path);
        let pending: Pending = match serde_json::from_slice(&bytes) {
            Ok(p) => p,
            Err(e) => return tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable pending reboot"),
        };
        let result = match (boot_id(), boot_time_unix_s()) {
            (Some(now), Some(booted)) if now != pending.boot_id => {
                let requested_s = pending.requested_unix_ms / 1000;
                tracing::info!(id = pending.id, booted, "the requested reboot happened");
                Ok(Some(json!({
                    "rebooted": true,
                    "booted_at": rfc3339(booted),
                    "requested_at": rfc3339(requested_s),
                    "request_to_boot_s": booted.saturating_sub(requested_s),
                })))
            }
            (Some(_), _) => Err((ReasonCode::Internal, "the agent restarted but the box did not reboot".to_owned())),
            (None, _) => Err((ReasonCode::Internal, "cannot tell whether the box rebooted (no boot id)".to_owned())),
        };
        self.push(CommandUpdate::DoneAfterRestart { id: pending.id, result });
    }

    /// Requests the reboot for command `id`; the answer comes from
    /// [`Reboot::take_updates`] (progress, a failure) or the next start.
    pub fn start(&self, id: &str) -> Result<(), (ReasonCode, String)> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err((ReasonCode::Busy, "a reboot is already requested".into()));
        }
        let requested_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0);
        let Some(boot_id) = boot_id() else {
            self.busy.store(false, Ordering::SeqCst);
            return Err((ReasonCode::Internal, "no boot id: the outcome could not be told after the reboot".into()));
        };
        let pending = Pending { id: id.to_owned(), boot_id, requested_unix_ms };
        let written = serde_json::to_vec(&pending)
            .map_err(std::io::Error::other)
            .and_then(|b| fleet::store::write_atomically(&self.dir.join(PENDING_FILE), &b))
            .and_then(|()| fleet::store::write_atomically(&self.dir.join(REQUEST_FILE), b""));
        if let Err(e) = written {
            self.withdraw();
            return Err((ReasonCode::Internal, format!("cannot request the reboot in {}: {e}", self.dir.display())));
        }
        tracing::warn!(id, "reboot requested");
        self.push(CommandUpdate::Progress { id: id.to_owned(), result: json!({"phase": "rebooting"}) });
        let (me, id) = (self.clone(), id.to_owned());
        let spawned = std::thread::Builder::new().name("reboot".into()).spawn(move || me.await_reboot(&id));
        spawned.map(|_| ()).map_err(|e| {
            self.withdraw();
            (ReasonCode::Internal, format!("cannot start the reboot watch: {e}"))
        })
    }

    /// Waits for the reboot to end this process; if it does not within
    /// [`REBOOT_WITHIN`], withdraws the request and fails the command.
    fn await_reboot(&self, id: &str) {
        let started = Instant::now();
        while started.elapsed() < REBOOT_WITHIN {
            // No event to await: what ends this wait is the process itself
            // being stopped by the reboot.
            std::thread::sleep(PROGRESS_EVERY.min(REBOOT_WITHIN.saturating_sub(started.elapsed())));
            let waited = started.elapsed().as_secs();
            self.push(CommandUpdate::Progress { id: id.to_owned(), result: json!({"phase": "rebooting", "waited_s": waited}) });
        }
        self.withdraw();
        let why = format!(
            "no reboot within {} s of the request: the root path (edge-reboot.path) did not act on {}",
            REBOOT_WITHIN.as_secs(),
            self.dir.join(REQUEST_FILE).display()
        );
        tracing::error!(id, "{why}");
        self.push(CommandUpdate::Done { id: id.to_owned(), result: Err((ReasonCode::Internal, why)) });
    }

    fn withdraw(&self) {
        let _ = std::fs::remove_file(self.dir.join(REQUEST_FILE));
        let _ = std::fs::remove_file(self.dir.join(PENDING_FILE));
        self.busy.store(false, Ordering::SeqCst);
    }
}

/// This boot's id (changes at every boot).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// When this boot started (unix seconds; `btime` in /proc/stat).
fn boot_time_unix_s() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn rfc3339(unix_s: u64) -> String {
    fleet::Now { mono: Instant::now(), wall: UNIX_EPOCH + Duration::from_secs(unix_s) }.rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_reboot_of_this_boot_is_a_failure_and_is_answered_once() {
        let dir = tempfile::tempdir().unwrap();
        let pending = Pending { id: "r1".into(), boot_id: boot_id().unwrap(), requested_unix_ms: 1 };
        std::fs::write(dir.path().join(PENDING_FILE), serde_json::to_vec(&pending).unwrap()).unwrap();
        std::fs::write(dir.path().join(REQUEST_FILE), b"").unwrap();
        let r = Reboot::new(dir.path());
        match r.take_updates().as_slice() {
            [CommandUpdate::DoneAfterRestart { id, result: Err((_, why)) }] => {
                assert_eq!(id, "r1");
                assert!(why.contains("did not reboot"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!dir.path().join(REQUEST_FILE).exists(), "a stale request is withdrawn");
        assert!(Reboot::new(dir.path()).take_updates().is_empty(), "answered once");
    }

    #[test]
    fn another_boot_id_is_success_with_the_boot_time() {
        let dir = tempfile::tempdir().unwrap();
        let pending = Pending { id: "r2".into(), boot_id: "an-earlier-boot".into(), requested_unix_ms: 1_000 };
        std::fs::write(dir.path().join(PENDING_FILE), serde_json::to_vec(&pending).unwrap()).unwrap();
        match Reboot::new(dir.path()).take_updates().as_slice() {
            [CommandUpdate::DoneAfterRestart { id, result: Ok(Some(v)) }] => {
                assert_eq!(id, "r2");
                assert_eq!(v["rebooted"], true);
                assert!(v["booted_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{v}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_that_cannot_be_written_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reboot::new(&dir.path().join("missing"));
        let (code, why) = r.start("r3").unwrap_err();
        assert_eq!(code, ReasonCode::Internal);
        assert!(why.contains("cannot request the reboot"), "{why}");
        // Not left busy: a retry is taken.
        assert!(r.start("r4").is_err_and(|(c, _)| c == ReasonCode::Internal));
    }
}
