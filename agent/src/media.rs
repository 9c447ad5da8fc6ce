//! Starting the media path (encoder, pipeline, outputs) apart from the
//! fleet link, with fallbacks.
//!
//! # Background
//! A box nobody can reach is worse than a box that does not stream: when a
//! fleet-pushed configuration cannot start on this box (an encoder it does
//! not have, a graph that does not build), exiting makes systemd restart
//! the agent until `StartLimitAction=reboot`, and the box reboots in a
//! loop, offline, with the bad configuration persisted.
//!
//! # Design
//! - The fleet link, the status file and systemd's READY and watchdog run
//!   before and independently of the media path (`run` in the crate root); this
//!   module's thread starts the media path and then becomes the controller
//!   thread.
//! - Configurations are tried in order ([`Candidate`]): the one the fleet
//!   applied, the last good one (the last that streamed for
//!   [`LAST_GOOD_AFTER`], kept by [`LastGood`]), the local file. The first
//!   that starts runs; each failure is logged and kept in the
//!   [`StartStatus`], which raises `CONFIG_FALLBACK` and tells the fleet
//!   session (`config/reported`: `rolled_back`, `start_failed`).
//! - When none starts, the thread answers the controller's inbox itself
//!   ([`idle`]): a desired configuration from the fleet is tried as a
//!   start, and on success the controller takes over. The agent stays
//!   online and managed; `MEDIA_START_FAILED` is raised meanwhile.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fleet::wire::{Alarm, ReasonCode, Severity};
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::action::{Action, ActionError, Envelope};
use crate::config::AgentConfig;
use crate::controller::Controller;
use crate::pipeline::PipelineEvent;
use crate::shutdown::Shutdown;
use crate::state::{Snapshot, SnapshotReader};

/// How long a configuration must stream before it becomes the last good one.
pub const LAST_GOOD_AFTER: Duration = Duration::from_secs(5);

/// Where a configuration to start comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigSource {
    /// Applied by the fleet (persisted in the state directory).
    Fleet,
    /// The last configuration that streamed ([`LastGood`]).
    LastGood,
    /// The local configuration file.
    File,
}

impl ConfigSource {
    /// In words, for alarms and the fleet report.
    pub fn describe(self) -> &'static str {
        match self {
            ConfigSource::Fleet => "the fleet-applied configuration",
            ConfigSource::LastGood => "the last good configuration",
            ConfigSource::File => "the local configuration file",
        }
    }
}

/// One configuration to try, with its raw document (secrets included:
/// the rollback target and what is persisted).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub source: ConfigSource,
    pub cfg: AgentConfig,
    pub raw: Value,
}

/// One configuration that did not start, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartFailure {
    pub config: ConfigSource,
    pub error: String,
}

/// What the start of the media path came to (status file, alarms, fleet).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartStatus {
    /// Which configuration runs; `None` while starting or when none could.
    pub running: Option<ConfigSource>,
    /// The configurations that did not start, in the order tried.
    pub failures: Vec<StartFailure>,
    /// Every candidate has been tried.
    pub settled: bool,
    /// What runs, for the fleet session (never serialised: secrets).
    #[serde(skip)]
    running_raw: Option<Value>,
    /// The fleet session has been told about a fallback.
    #[serde(skip)]
    fleet_told: bool,
}

/// Shared between the media thread (writer), the fleet adapter and the
/// status file (readers).
pub type SharedStartStatus = Arc<Mutex<StartStatus>>;

impl StartStatus {
    /// `CONFIG_FALLBACK` (major) while another configuration runs than the
    /// first one tried, `MEDIA_START_FAILED` (critical) while none runs.
    /// The message names each failure; it is fixed once settled, so the
    /// alarm is raised once.
    pub fn alarm(&self) -> Option<Alarm> {
        if !self.settled || self.failures.is_empty() {
            return None;
        }
        let why = self.failures.iter().map(|f| format!("{} did not start: {}", f.config.describe(), f.error)).collect::<Vec<_>>();
        let why = why.join("; ");
        Some(match self.running {
            Some(r) => Alarm::raised("CONFIG_FALLBACK", "config", Severity::Major, &format!("{why}; running {}", r.describe())),
            None => Alarm::raised(
                "MEDIA_START_FAILED",
                "config",
                Severity::Critical,
                &format!("{why}; nothing streams: push a configuration that can start"),
            ),
        })
    }

    /// A fleet-applied configuration did not start: what the fleet
    /// session reports, once.
    pub fn take_fallback(&mut self) -> Option<fleet::ConfigFallback> {
        if !self.settled || self.fleet_told {
            return None;
        }
        let failed = self.failures.iter().find(|f| f.config == ConfigSource::Fleet)?;
        self.fleet_told = true;
        Some(fleet::ConfigFallback {
            reason: failed.error.clone(),
            running: self.running_raw.clone(),
            running_name: self.running.map_or("nothing (no configuration could start)", ConfigSource::describe).to_owned(),
        })
    }

    /// A configuration from the fleet runs now: the start failures are over.
    pub fn fleet_applied(&mut self) {
        self.failures.clear();
        self.running = Some(ConfigSource::Fleet);
        self.settled = true;
    }
}

fn lock(s: &SharedStartStatus) -> std::sync::MutexGuard<'_, StartStatus> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the media thread needs besides the candidates.
#[derive(Debug)]
pub struct MediaContext {
    pub reader: SnapshotReader,
    pub events: Sender<PipelineEvent>,
    pub shutdown: Shutdown,
    /// Where an applied configuration is persisted (fleet management on).
    pub persist: Option<PathBuf>,
    pub status: SharedStartStatus,
}

/// Starts the media thread: tries `candidates` in order, then runs the
/// controller on `inbox` (or answers it itself while nothing runs).
pub fn spawn(candidates: Vec<Candidate>, ctx: MediaContext, inbox: Receiver<Envelope>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("controller".into()).spawn(move || {
        for c in candidates {
            if ctx.shutdown.is_triggered() {
                return;
            }
            let (source, raw) = (c.source, c.raw.clone());
            match start(c.cfg, c.raw, &ctx) {
                Ok(ctl) => {
                    {
                        let mut s = lock(&ctx.status);
                        (s.running, s.running_raw, s.settled) = (Some(source), Some(raw), true);
                    }
                    if let Some(a) = lock(&ctx.status).alarm() {
                        warn!(alarm = %a.message, "started on a fallback configuration");
                    }
                    return ctl.run(inbox);
                }
                Err(e) => {
                    error!(config = source.describe(), error = %e, "configuration cannot start; trying the next");
                    lock(&ctx.status).failures.push(StartFailure { config: source, error: e });
                }
            }
        }
        lock(&ctx.status).settled = true;
        error!("no configuration can start; staying online for the fleet to push one");
        idle(&ctx, inbox);
    })
}

/// Chooses the encoder and starts the controller for one configuration.
fn start(cfg: AgentConfig, raw: Value, ctx: &MediaContext) -> Result<Controller, String> {
    let report = crate::pipeline::encoder::choose_encoder(&cfg).map_err(|e| e.to_string())?;
    let chosen = report.chosen().ok_or_else(|| format!("no encoder: {}", report.why()))?;
    info!(encoder = chosen.factory, why = %report.why(), "encoder chosen");
    let persist = ctx.persist.clone();
    Controller::start(cfg, raw, report, ctx.events.clone(), ctx.shutdown.clone(), persist, ctx.reader.clone())
        .map(|(ctl, _)| ctl)
        .map_err(|e| e.to_string())
}

/// Nothing runs: a configuration from the fleet is tried as a start (and
/// persisted when it starts); other changes are refused with the reason.
fn idle(ctx: &MediaContext, inbox: Receiver<Envelope>) {
    while let Ok(Envelope { action, reply }) = inbox.recv() {
        let answer = |outcome| {
            if let Some(r) = &reply {
                let _ = r.send(outcome);
            }
        };
        match action {
            Action::ApplyConfig { cfg, raw } => match start(*cfg, raw, ctx) {
                Ok(mut ctl) => {
                    ctl.persist_raw();
                    lock(&ctx.status).fleet_applied();
                    info!("configuration from the fleet started");
                    answer(Ok(Some(json!({ "changes": ["media path started"] }))));
                    return ctl.run(inbox);
                }
                Err(e) => answer(Err(ActionError::new(ReasonCode::Internal, format!("cannot start: {e}")))),
            },
            Action::Shutdown => return answer(Ok(None)),
            other => {
                let why = format!("{}: the media path is not running (no configuration could start)", other.name());
                answer(Err(ActionError::new(ReasonCode::PreconditionFailed, why)));
            }
        }
    }
}

/// Where the agent keeps the last configuration that streamed.
pub fn last_good_config_path(state_dir: &Path) -> PathBuf {
    state_dir.join("last-good-config.json")
}

/// Keeps the last good configuration: once the running one has sent
/// transport stream for [`LAST_GOOD_AFTER`] without a stall, it is written
/// atomically (once per distinct configuration).
#[derive(Debug)]
pub struct LastGood {
    path: PathBuf,
    written: Option<Arc<Value>>,
    streaming_since: Option<(Arc<Value>, Instant)>,
}

impl LastGood {
    pub fn new(state_dir: &Path) -> LastGood {
        let path = last_good_config_path(state_dir);
        // A restart on the same configuration does not rewrite it.
        let written = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).map(Arc::new);
        LastGood { path, written, streaming_since: None }
    }

    /// Called on every tick of the main loop.
    pub fn observe(&mut self, snap: &Snapshot) {
        let flowing = snap.pipeline.as_ref().is_some_and(|p| {
            p.ts_bytes.load(std::sync::atomic::Ordering::Relaxed) > 0
                && p.since_last_chunk().is_some_and(|d| d < crate::pipeline::STALL_TIMEOUT)
        });
        if !flowing {
            self.streaming_since = None;
            return;
        }
        if self.written.as_deref() == Some(snap.raw.as_ref()) {
            return;
        }
        match &self.streaming_since {
            Some((raw, since)) if raw.as_ref() == snap.raw.as_ref() => {
                if since.elapsed() < LAST_GOOD_AFTER {
                    return;
                }
            }
            _ => {
                self.streaming_since = Some((snap.raw.clone(), Instant::now()));
                return;
            }
        }
        // The file's passphrases sealed to the box's own certificate: the
        // state directory holds no clear secret, and the document passes
        // parse_desired at the next start, which refuses clear ones
        // (docs/secrets.md).
        let mut doc = snap.raw.as_ref().clone();
        if let Some(tls) = snap.cfg.fleet.as_ref().and_then(|f| f.tls.as_ref()) {
            let sealed =
                fleet::sealed::DeviceKey::load(&tls.cert, &tls.key).and_then(|key| fleet::sealed::seal_document(&mut doc, key.cert()));
            if let Err(e) = sealed {
                warn!(error = %e, "cannot seal the last good configuration's secrets");
            }
        }
        let written = serde_json::to_vec_pretty(&doc)
            .map_err(std::io::Error::other)
            .and_then(|b| fleet::store::write_atomically(&self.path, &b));
        match written {
            Ok(()) => {
                info!(path = %self.path.display(), "configuration streamed; kept as the last good one");
                self.written = Some(snap.raw.clone());
            }
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot keep the last good configuration");
                // Retried after another full period.
                self.streaming_since = None;
            }
        }
    }
}
