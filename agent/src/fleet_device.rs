//! The agent as a fleet [`Device`]: inventory, state, telemetry and alarms
//! read from the published [`Snapshot`], and remote commands and
//! configuration handed to the controller's inbox as [`Action`]s.
//!
//! Reads never wait for the controller. Changes come back as jobs
//! ([`Device::execute_job`], [`Device::apply_config_job`]) that the fleet
//! client runs off its runtime: a slow apply (encoder probe, pipeline
//! teardown) never delays MQTT keep-alives.

use std::sync::Mutex;
use std::time::Duration;

use fleet::wire::{Alarm, ReasonCode, Severity};
use fleet::{Command, CommandResult, ConfigRejection, Device, Job};
use serde_json::{json, Value};

use crate::action::{Action, Inbox};
use crate::adapt::AdaptStatus;
use crate::config::{self, AgentConfig};
use crate::state::{SharedPanelReadings, Snapshot, SnapshotReader};

/// An output down for longer than this raises OUTPUT_DOWN (a reconnect
/// after a listener restart takes ~1 s and should not page anyone).
const OUTPUT_DOWN_AFTER: Duration = Duration::from_secs(5);

/// How long a fleet change may wait for the controller: an encoder probe
/// with trial encodes plus a pipeline rebuild take seconds, not minutes.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The fleet's view of the agent.
#[derive(Debug)]
pub struct AgentDevice {
    snapshot: SnapshotReader,
    inbox: Inbox,
    /// Read when alarms are collected (every session tick).
    overheat: Mutex<(hal::sensors::Sensors, hal::sensors::OverheatMonitor)>,
    under_systemd: bool,
    /// `firmware.update`; `None` outside an image (tests, development).
    firmware: Option<crate::firmware::Firmware>,
    /// The front panel's readings, when a board is configured.
    panel: Option<SharedPanelReadings>,
    /// The last thumbnail published (its number) and when.
    thumbnail_sent: Option<(u64, std::time::Instant)>,
    /// A `thumbnail.request` was accepted: the next poll publishes the
    /// newest thumbnail whatever the cadence.
    thumbnail_requested: bool,
    /// Which configuration the media path started on, and what did not start.
    start: Option<crate::media::SharedStartStatus>,
    /// `reboot` through the root path; `None` without a state directory.
    reboot: Option<crate::reboot::Reboot>,
}

impl AgentDevice {
    pub fn new(snapshot: SnapshotReader, inbox: Inbox) -> Self {
        AgentDevice {
            snapshot,
            inbox,
            overheat: Mutex::new((
                hal::sensors::Sensors::new(hal::sensors::SensorPaths::default()),
                hal::sensors::OverheatMonitor::new(85_000, 5_000),
            )),
            under_systemd: std::env::var_os("NOTIFY_SOCKET").is_some(),
            firmware: None,
            panel: None,
            thumbnail_sent: None,
            thumbnail_requested: false,
            start: None,
            reboot: None,
        }
    }

    /// Enables `firmware.update` (keeps its files in the fleet state dir).
    pub fn with_firmware(mut self, firmware: crate::firmware::Firmware) -> Self {
        self.firmware = Some(firmware);
        self
    }

    /// Raises `CONFIG_FALLBACK` / `MEDIA_START_FAILED` and tells the
    /// session when a fleet-applied configuration did not start.
    pub fn with_start_status(mut self, start: crate::media::SharedStartStatus) -> Self {
        self.start = Some(start);
        self
    }

    fn start_status(&self) -> Option<std::sync::MutexGuard<'_, crate::media::StartStatus>> {
        self.start.as_ref().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Enables `reboot` (its request and pending files in the fleet state dir).
    pub fn with_reboot(mut self, reboot: crate::reboot::Reboot) -> Self {
        self.reboot = Some(reboot);
        self
    }

    /// Reports the front panel's readings in telemetry.
    pub fn with_panel(mut self, readings: SharedPanelReadings) -> Self {
        self.panel = Some(readings);
        self
    }

    fn snap(&self) -> std::sync::Arc<Snapshot> {
        self.snapshot.load()
    }
}

/// Parses a desired configuration (JSON with the TOML file's structure)
/// through the same loader as the file, so errors name the same keys.
///
/// `[fleet]` is the box's own: from a desired config it would move the box
/// to another broker or state directory. A section equal to the running
/// one (an operator pushing the box's own `agent.toml` with one bitrate
/// changed) is accepted and changes nothing; a different one is refused,
/// naming the first key that differs (`fleet.broker`, `fleet.tls.ca`).
pub fn parse_desired(value: &Value, running: &AgentConfig) -> Result<AgentConfig, ConfigRejection> {
    let mut value = value.clone();
    open_secrets(&mut value, running)?;
    let text =
        toml::to_string(&value).map_err(|e| ConfigRejection { key: None, reason: format!("not a configuration document: {e}") })?;
    let mut cfg = config::from_str_unvalidated(&text).map_err(|e| match e {
        config::ConfigError::Invalid(inv) => ConfigRejection { key: Some(inv.key).filter(|k| !k.is_empty()), reason: inv.message },
        other => ConfigRejection { key: None, reason: other.to_string() },
    })?;
    if let Some(key) = cfg.fleet.as_ref().and_then(|theirs| fleet_difference(running.fleet.as_ref(), theirs)) {
        // The box's values stay out of the reason: it is published to the broker.
        let reason = format!("{key} is local to the box: leave [fleet] out or push the box's own section unchanged");
        return Err(ConfigRejection { key: Some(key), reason });
    }
    // Where signed AWS requests go and which file holds their credentials
    // are the box's own, like `[fleet]`: from a desired config they would
    // send signed requests to any host and read any file the agent can.
    let aws = |c: &AgentConfig| c.aws.as_ref().map(|a| (a.endpoint_url.clone(), a.credentials_file.clone())).unwrap_or_default();
    let (mine, theirs) = (aws(running), aws(&cfg));
    if theirs.0 != mine.0 {
        return Err(ConfigRejection { key: Some("aws.endpoint_url".into()), reason: "aws.endpoint_url is local to the box".into() });
    }
    if theirs.1 != mine.1 {
        return Err(ConfigRejection {
            key: Some("aws.credentials_file".into()),
            reason: "aws.credentials_file is local to the box".into(),
        });
    }
    cfg.fleet = running.fleet.clone();
    cfg.validate().map_err(|(key, reason)| ConfigRejection { key: Some(key), reason })?;
    Ok(cfg)
}

/// Opens the sealed secrets of a desired document with the box's fleet TLS
/// key, in memory only; refuses clear ones (`docs/secrets.md`). The key is
/// read only when the document holds a secret.
fn open_secrets(doc: &mut Value, running: &AgentConfig) -> Result<(), ConfigRejection> {
    let mut probe = doc.clone();
    if fleet::sealed::open_document(&mut probe, None).is_ok() {
        return Ok(());
    }
    let tls = running.fleet.as_ref().and_then(|f| f.tls.as_ref());
    // A plaintext fleet link (`insecure_plaintext`, local development
    // only) carries everything in clear and gives the box no key to seal
    // to: clear passphrases pass there, with a warning. Every box with
    // TLS refuses them.
    if tls.is_none() && !fleet::sealed::has_sealed_secrets(doc) {
        tracing::warn!(
            "a pushed configuration carries passphrases in clear: accepted only because the fleet link is insecure_plaintext"
        );
        return Ok(());
    }
    let key = tls.and_then(|t| match fleet::sealed::DeviceKey::load(&t.cert, &t.key) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the fleet TLS key to open sealed secrets");
            None
        }
    });
    fleet::sealed::open_document(doc, key.as_ref()).map_err(|r| ConfigRejection { key: Some(r.key), reason: r.reason })
}

/// Seals the clear secrets of `raw` (a document from the box's own file) to
/// the box's fleet certificate; without fleet TLS there is nothing to seal to.
pub fn seal_own_secrets(raw: &mut Value, cfg: &AgentConfig) -> Result<usize, fleet::sealed::SealError> {
    let Some(tls) = cfg.fleet.as_ref().and_then(|f| f.tls.as_ref()) else { return Ok(0) };
    let key = fleet::sealed::DeviceKey::load(&tls.cert, &tls.key)?;
    fleet::sealed::seal_document(raw, key.cert())
}

/// The box's fleet certificate (public) as PEM, for `info`: the controller
/// seals secrets to it (`docs/secrets.md`). Parsed and written out again so
/// that only a certificate is ever published, whatever the file holds.
fn fleet_certificate(cfg: &AgentConfig) -> Option<String> {
    let tls = cfg.fleet.as_ref()?.tls.as_ref()?;
    let pem = std::fs::read(&tls.cert).ok()?;
    let cert = openssl::x509::X509::from_pem(&pem).ok()?;
    String::from_utf8(cert.to_pem().ok()?).ok()
}

/// The first key in which a desired `[fleet]` section differs from the
/// box's (`fleet` when the box has none); `None` when they are equal.
/// Both are parsed, so defaults written out or left out compare equal.
fn fleet_difference(mine: Option<&fleet::FleetSettings>, theirs: &fleet::FleetSettings) -> Option<String> {
    fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).find_map(|k| {
                first_difference(&format!("{path}.{k}"), a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null))
            }),
            _ => (a != b).then(|| path.to_owned()),
        }
    }
    let Some(mine) = mine else { return Some("fleet".to_owned()) };
    if mine == theirs {
        return None;
    }
    // Serialising settings cannot fail short of a non-UTF-8 path; then the
    // section as a whole is named.
    let tree = |s: &fleet::FleetSettings| serde_json::to_value(s).unwrap_or(Value::Null);
    Some(first_difference("fleet", &tree(mine), &tree(theirs)).unwrap_or_else(|| "fleet".to_owned()))
}

impl Device for AgentDevice {
    fn info(&self) -> Value {
        let ctl = self.snap();
        let report = &ctl.encoder_report;
        let (a, b, c) = srt::libsrt_version();
        json!({
            "serial": ctl.device_id(),
            "model": "edge-agent",
            "firmware": env!("CARGO_PKG_VERSION"),
            "versions": {
                "agent": env!("CARGO_PKG_VERSION"),
                "gstreamer": gstreamer::version_string().to_string(),
                "libsrt": format!("{a}.{b}.{c}"),
            },
            "encoder": { "chosen": ctl.factory, "why": report.why(), "candidates": report.candidates },
            "inputs": crate::pipeline::discover_inputs(),
            "input": ctl.input_status(),
            "outputs": ctl.cfg.outputs.iter().map(|o| json!({"name": o.name().as_str(), "kind": kind(o)})).collect::<Vec<_>>(),
            "certificate": fleet_certificate(&ctl.cfg),
        })
    }

    fn state(&self) -> Value {
        let ctl = self.snap();
        let outputs: Vec<Value> = ctl
            .output_snapshots()
            .iter()
            .map(|s| json!({"name": s.name, "state": s.state, "connects": s.connects, "last_error": s.last_error}))
            .collect();
        // The video rate goes into the retained state (not only telemetry)
        // so `edgectl` shows target against configured and why: the state
        // is republished when the target moves (at most once a second).
        let video = json!({
            "configured_kbps": ctl.cfg.video.bitrate_kbps.get(),
            "target_kbps": ctl.video_target_kbps(),
            "reason": ctl.adapt.as_ref().map(|a| a.reason.clone()),
            "adapt_error": ctl.adapt_error,
        });
        json!({
            "stream": if ctl.is_streaming() { "streaming" } else { "stopped" },
            // Which configuration runs (`fleet`, `last-good`, `file`).
            "config": self.start_status().and_then(|s| s.running),
            "encoder": ctl.factory,
            "video": video,
            "outputs": outputs,
        })
    }

    fn telemetry(&self) -> Value {
        let ctl = self.snap();
        let stats = ctl.pipeline.clone();
        let load = |f: fn(&crate::pipeline::PipelineStats) -> u64| stats.as_ref().map_or(0, |s| f(s));
        let mut sensors = hal::sensors::Sensors::new(hal::sensors::SensorPaths::default());
        json!({
            "encoder": {
                "factory": ctl.factory,
                "bitrate_kbps": ctl.cfg.video.bitrate_kbps.get(),
                // The adaptive target (= bitrate_kbps while adaptation is off).
                "target_kbps": ctl.video_target_kbps(),
                "adapt": ctl.adapt.as_deref(),
                "adapt_error": ctl.adapt_error,
                "ts_bytes": load(|s| s.ts_bytes.load(std::sync::atomic::Ordering::Relaxed)),
                "restarts": load(|s| s.restarts.load(std::sync::atomic::Ordering::Relaxed)),
            },
            "input": ctl.input_status(),
            "outputs": ctl.output_snapshots(),
            "panel": self.panel.as_ref().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            "system": sensors.snapshot(std::path::Path::new("/")),
            // Flow destinations and health, MediaLive channel: present when
            // an output is named by flow ARN or a channel is configured.
            "cloud": ctl.cloud.has_work().then(|| ctl.cloud_report.as_ref().clone()),
            "firmware": self.firmware.as_ref().map(crate::firmware::Firmware::report),
        })
    }

    fn alarms(&self) -> Vec<Alarm> {
        let ctl = self.snap();
        let mut v = Vec::new();
        let start_alarm = self.start_status().and_then(|s| s.alarm());
        if !ctl.is_streaming() && start_alarm.is_none() {
            v.push(Alarm::raised("STREAM_STOPPED", "encoder", Severity::Warning, "stream stopped by command"));
        }
        v.extend(start_alarm);
        if let Some(s) = &ctl.pipeline {
            if s.since_last_chunk().is_some_and(|d| d > Duration::from_secs(2)) {
                v.push(Alarm::raised("ENCODER_FAILURE", "encoder", Severity::Critical, "no transport stream from the encoder"));
            }
        }
        if let Some(input) = ctl.input_status() {
            // Unknown = capture has not had its first chance yet: not an
            // alarm until the frame watchdog has a verdict.
            if input.slate && input.signal != hal::capture::Signal::Unknown {
                let what = input.source.as_deref().unwrap_or("no capture device");
                let msg = format!("no signal on {what}; slate on air");
                v.push(Alarm::raised("NO_SIGNAL", "input", Severity::Critical, &msg));
            }
        }
        // Content alarms (docs/monitoring.md): held while the slate is on
        // air, which NO_SIGNAL already reports. Messages name the settings,
        // not live figures: a changed message would be a new raise event.
        if let Some(c) = ctl.pipeline.as_ref().map(|s| s.content.status(std::time::Instant::now())) {
            let m = &ctl.cfg.monitor;
            if c.black() {
                let msg = format!("picture black (mean luma <= {}) for {} s or more", m.black_luma_max.get(), m.black_after_s.get());
                v.push(Alarm::raised("BLACK_PICTURE", "video", Severity::Major, &msg));
            }
            if c.frozen() {
                let msg = format!("picture unchanged for {} s or more", m.frozen_after_s.get());
                v.push(Alarm::raised("FROZEN_PICTURE", "video", Severity::Major, &msg));
            }
            if c.silent() {
                let msg = format!("audio below {} dBFS for {} s or more", m.silent_dbfs.get(), m.silent_after_s.get());
                v.push(Alarm::raised("SILENT_AUDIO", "audio", Severity::Warning, &msg));
            }
        }
        for s in ctl.output_snapshots() {
            if s.down_for_s > OUTPUT_DOWN_AFTER.as_secs_f64() {
                let msg = s.last_error.clone().unwrap_or_else(|| format!("output {}", s.state));
                v.push(Alarm::raised("OUTPUT_DOWN", &format!("output:{}", s.name), Severity::Major, &msg));
            }
        }
        for a in ctl.cloud_report.alarms() {
            let severity = match a.severity {
                edge_cloud::Severity::Warning => Severity::Warning,
                edge_cloud::Severity::Major => Severity::Major,
                edge_cloud::Severity::Critical => Severity::Critical,
            };
            v.push(Alarm::raised(a.code, &a.component, severity, &a.message));
        }
        v.extend(adapt_alarms(ctl.adapt.as_deref()));
        if let Some(e) = &ctl.adapt_error {
            v.push(Alarm::raised("ADAPT_REFUSED", "encoder", Severity::Warning, e));
        }
        // Every SRT output fails with the same reason; one alarm says why.
        if let (version, srt::version::Verdict::Refused(why)) = srt::version::runtime_verdict() {
            v.push(Alarm::raised("LIBSRT_REFUSED", &format!("libsrt:{version}"), Severity::Critical, &why));
        }
        if let Some(e) = &ctl.persist_error {
            v.push(Alarm::raised("STATE_WRITE_FAILED", "state", Severity::Major, e));
        }
        let hot = {
            let mut guard = self.overheat.lock().unwrap_or_else(|p| p.into_inner());
            let (sensors, monitor) = &mut *guard;
            if let Some(t) = sensors.snapshot(std::path::Path::new("/")).hottest_millicelsius() {
                let _ = monitor.update(t);
            }
            monitor.is_raised()
        };
        if hot {
            v.push(Alarm::raised("OVERHEAT", "board", Severity::Critical, "temperature above 85 °C"));
        }
        v
    }

    /// The document the session keeps as its rollback target (persisted in
    /// the state directory): secrets from the box's own file are sealed to
    /// the box's certificate first, so the state holds no clear passphrase
    /// and a rollback passes [`parse_desired`], which refuses clear ones.
    fn running_config(&self) -> Value {
        let snap = self.snap();
        let mut raw = snap.raw.as_ref().clone();
        if let Err(e) = seal_own_secrets(&mut raw, &snap.cfg) {
            tracing::warn!(error = %e, "cannot seal the running configuration's secrets for the fleet's rollback copy");
        }
        raw
    }

    fn execute(&mut self, cmd: &Command) -> CommandResult {
        (self.execute_job(cmd))()
    }

    fn execute_job(&mut self, cmd: &Command) -> Job<CommandResult> {
        match cmd {
            Command::Reboot => {
                // Long-running: the session calls `start`, never this.
                Box::new(|| Err((ReasonCode::Internal, "reboot runs in the background (start)".into())))
            }
            Command::ChannelStart | Command::ChannelStop => {
                // An AWS call (seconds): in the job, never in the controller.
                let cloud = self.snap().cloud.clone();
                let start = matches!(cmd, Command::ChannelStart);
                Box::new(move || {
                    cloud.channel_command(start).map(|state| Some(json!({"state": state}))).map_err(|e| (ReasonCode::Internal, e))
                })
            }
            Command::LogsFetch { since_seq, since_ms, max_lines } => {
                // Read-only: answered from the process's log ring, not through
                // the controller's inbox. Reading lines changes nothing the
                // controller owns, and the logs are wanted most when the
                // controller is busy or stuck (a slow apply, a hung probe),
                // which is when a request in its inbox would wait or time out.
                let q = crate::logring::LogQuery {
                    since_seq: *since_seq,
                    since_ms: *since_ms,
                    max_lines: usize::try_from(*max_lines).unwrap_or(usize::MAX),
                };
                Box::new(move || match crate::logring::fetch(&q, fleet::command::LOGS_RESULT_BUDGET) {
                    Some(r) => serde_json::to_value(r).map(Some).map_err(|e| (ReasonCode::Internal, e.to_string())),
                    None => Err((ReasonCode::Unsupported, "this process keeps no log ring".into())),
                })
            }
            Command::ThumbnailRequest => {
                // Answered here, like the cadence: the fleet client's next
                // poll of `thumbnail()` (within a second) publishes it.
                let Some(t) = self.snap().pipeline.as_ref().and_then(|p| p.content.thumbnail()) else {
                    let why = "no thumbnail yet (the stream is stopped or the first picture is not taken)";
                    return Box::new(move || Err((ReasonCode::PreconditionFailed, why.into())));
                };
                self.thumbnail_requested = true;
                let (seq, bytes) = (t.seq, t.jpeg.len());
                Box::new(move || Ok(Some(json!({"thumbnail": seq, "bytes": bytes}))))
            }
            other => {
                let (inbox, cmd) = (self.inbox.clone(), other.clone());
                Box::new(move || inbox.ask(Action::Command(cmd), CHANGE_TIMEOUT).map_err(|e| (e.code, e.message)))
            }
        }
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigRejection> {
        parse_desired(config, &self.snap().cfg).map(|_| ())
    }

    fn apply_config(&mut self, config: &Value) -> Result<(), String> {
        (self.apply_config_job(config))()
    }

    fn apply_config_job(&mut self, config: &Value) -> Job<Result<(), String>> {
        let parsed = parse_desired(config, &self.snap().cfg);
        // What is saved and reported as the running document leaves out a
        // `[fleet]` that was accepted for being equal to the box's own: the
        // section stays the file's, so a later local edit of it is not
        // refused at the next start (main.rs re-checks the saved document
        // against the file).
        let mut raw = config.clone();
        if let Some(doc) = raw.as_object_mut() {
            doc.remove("fleet");
        }
        let (inbox, start) = (self.inbox.clone(), self.start.clone());
        Box::new(move || {
            let cfg = parsed.map_err(|r| r.reason)?;
            inbox.ask(Action::ApplyConfig { cfg: Box::new(cfg), raw }, CHANGE_TIMEOUT).map_err(|e| e.message)?;
            // A configuration from the fleet runs: a fallback at start is over.
            if let Some(s) = start {
                s.lock().unwrap_or_else(|p| p.into_inner()).fleet_applied();
            }
            Ok(())
        })
    }

    fn outputs_healthy(&self) -> bool {
        self.snap().outputs_healthy()
    }

    fn start(&mut self, id: &str, cmd: &Command) -> Result<(), (ReasonCode, String)> {
        match (cmd, &self.firmware) {
            (Command::FirmwareUpdate { url, sha256, version, allow_downgrade }, Some(fw)) if self.under_systemd => {
                fw.start(id, url, sha256, version.as_deref(), *allow_downgrade)
            }
            (Command::Reboot, _) => match &self.reboot {
                Some(r) if self.under_systemd => r.start(id),
                _ => Err((
                    ReasonCode::Unsupported,
                    "not running under systemd with a state directory; refusing to reboot the host".into(),
                )),
            },
            (Command::FirmwareUpdate { .. }, _) => {
                Err((ReasonCode::Unsupported, "firmware.update needs the A/B image (systemd, RAUC)".into()))
            }
            (other, _) => Err((ReasonCode::Unsupported, format!("{} does not run in the background", other.name()))),
        }
    }

    /// The newest thumbnail, once per `monitor.thumbnail_publish_s` and
    /// only when it is a new one; at once, new or not, after a
    /// `thumbnail.request`.
    fn thumbnail(&mut self) -> Option<Vec<u8>> {
        let snap = self.snap();
        let t = snap.pipeline.as_ref()?.content.thumbnail()?;
        let now = std::time::Instant::now();
        let every = snap.cfg.monitor.thumbnail_publish_s.duration();
        // Polled once a second: half a poll early is on time.
        let early = |at: std::time::Instant| now.saturating_duration_since(at) + Duration::from_millis(500) < every;
        let requested = std::mem::take(&mut self.thumbnail_requested);
        if !requested && self.thumbnail_sent.is_some_and(|(seq, at)| seq == t.seq || early(at)) {
            return None;
        }
        self.thumbnail_sent = Some((t.seq, now));
        Some(t.jpeg.as_ref().clone())
    }

    fn take_config_fallback(&mut self) -> Option<fleet::ConfigFallback> {
        self.start_status()?.take_fallback()
    }

    fn poll_command_updates(&mut self) -> Vec<fleet::CommandUpdate> {
        let mut v = self.firmware.as_ref().map(crate::firmware::Firmware::take_updates).unwrap_or_default();
        v.extend(self.reboot.as_ref().map(crate::reboot::Reboot::take_updates).unwrap_or_default());
        v
    }
}

fn kind(o: &config::OutputConfig) -> &'static str {
    match o {
        config::OutputConfig::Srt(_) => "srt",
        config::OutputConfig::Rtp(_) => "rtp",
        config::OutputConfig::RtpFec(_) => "rtp-fec",
        config::OutputConfig::Rtmp(_) => "rtmp",
        config::OutputConfig::Rist(_) => "rist",
    }
}

/// The rate controller's alarms. `BITRATE_ADAPTED` stands for an adaptation
/// episode: the session turns its raise and clear into the fleet events that
/// mark where adaptation started and ended (its message is fixed for the
/// episode, so nothing is published in between; the state carries the live
/// target). `PATH_CONGESTED`: a path that cannot carry the floor.
fn adapt_alarms(adapt: Option<&AdaptStatus>) -> Vec<Alarm> {
    let Some(a) = adapt else { return Vec::new() };
    let mut v = Vec::new();
    if let Some(because) = &a.adapting_because {
        let msg = format!("video bitrate below the configured {} kbit/s; started by: {because}", a.ceiling_kbps);
        v.push(Alarm::raised("BITRATE_ADAPTED", "encoder", Severity::Warning, &msg));
    }
    for p in a.paths.iter().filter(|p| p.congested) {
        let msg = format!(
            "cannot carry the floor ({} kbit/s): {:?}, base RTT {:.0} ms, {:.1} % retransmitted; no longer sets the video rate",
            a.floor_kbps, p.verdict, p.base_rtt_ms, p.retrans_pct
        );
        v.push(Alarm::raised("PATH_CONGESTED", &format!("output:{}", p.output), Severity::Major, &msg));
    }
    v
}

#[cfg(test)]
mod secret_tests {
    use openssl::x509::{X509NameBuilder, X509};
    use serde_json::json;

    use super::parse_desired;
    use crate::config;

    const PASS: &str = "correct-horse-battery-staple";

    /// A box with a self-signed fleet certificate (the CA is not checked
    /// when opening: the key is what matters), its running config, and
    /// that certificate.
    fn a_box(dir: &std::path::Path) -> (config::AgentConfig, X509) {
        let key = fleet::enroll::load_or_make_key(&dir.join("box.key")).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, "demo-01").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        let (from, until) = (openssl::asn1::Asn1Time::days_from_now(0).unwrap(), openssl::asn1::Asn1Time::days_from_now(1).unwrap());
        b.set_not_before(&from).unwrap();
        b.set_not_after(&until).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
        let cert = b.build();
        std::fs::write(dir.join("box.crt"), cert.to_pem().unwrap()).unwrap();
        let d = dir.display();
        let text = format!(
            "device_id = \"demo-01\"\n[input]\nkind = \"test-pattern\"\n[[outputs]]\nname = \"primary\"\nkind = \"srt\"\n\
             address = \"127.0.0.1:9001\"\n[fleet]\nbroker = \"127.0.0.1:8883\"\ndevice_id = \"demo-01\"\nstate_dir = \"{d}/state\"\n\
             [fleet.tls]\nca = \"{d}/box.crt\"\ncert = \"{d}/box.crt\"\nkey = \"{d}/box.key\"\n"
        );
        (config::from_str(&text).unwrap(), cert)
    }

    fn desired(passphrase: serde_json::Value) -> serde_json::Value {
        json!({"device_id": "demo-01", "input": {"kind": "test-pattern"},
               "outputs": [{"name": "primary", "kind": "srt", "address": "127.0.0.1:9001", "passphrase": passphrase}]})
    }

    #[test]
    fn a_desired_config_opens_sealed_passphrases_and_refuses_clear_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (running, cert) = a_box(dir.path());
        let sealed = fleet::sealed::seal(&cert, PASS).unwrap();
        let cfg = parse_desired(&desired(json!({ "sealed": sealed })), &running).unwrap();
        let config::OutputConfig::Srt(srt) = &cfg.outputs[0] else { panic!("not srt") };
        assert_eq!(srt.passphrase.as_ref().map(|p| p.expose()), Some(PASS));

        let e = parse_desired(&desired(json!(PASS)), &running).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("outputs[0].passphrase"));
        assert!(e.reason.contains("in clear") && !e.reason.contains(PASS), "{}", e.reason);

        // Sealed to another box: refused, naming the key.
        let other = tempfile::tempdir().unwrap();
        let (_, other_cert) = a_box(other.path());
        let e = parse_desired(&desired(json!({ "sealed": fleet::sealed::seal(&other_cert, PASS).unwrap() })), &running).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("outputs[0].passphrase"));
        assert!(e.reason.contains("does not open"), "{}", e.reason);
    }

    /// What the fleet session keeps as its rollback target holds the file's
    /// passphrase sealed to the box, and still parses as a desired config.
    #[test]
    fn the_files_passphrases_are_sealed_for_the_rollback_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (running, _) = a_box(dir.path());
        let mut raw = desired(json!(PASS));
        assert_eq!(super::seal_own_secrets(&mut raw, &running).unwrap(), 1);
        assert!(!raw.to_string().contains(PASS));
        parse_desired(&raw, &running).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::adapt_alarms;
    use crate::adapt::{Params, PathInput, Policy, RateController, SrtSample};

    fn sample(rtt_ms: f64, send_buffer_ms: i64, sent: i64, retrans: i64) -> PathInput {
        PathInput::Srt(SrtSample {
            rtt_ms,
            send_buffer_ms,
            packets_sent: sent,
            packets_retransmitted: retrans,
            packets_dropped: 0,
            bandwidth_mbps: 100.0,
            latency_ms: 1000,
        })
    }

    /// One alarm for the whole episode, with one message: the session's
    /// alarm diff then publishes exactly a raise when the target leaves the
    /// ceiling and a clear when it is back.
    #[test]
    fn an_adaptation_episode_is_one_alarm_with_a_fixed_message() {
        let mut c = RateController::new(Params::new(Policy::FollowAll, 500, 2500));
        let t0 = Instant::now();
        let (mut sent, mut messages, mut saw_ceiling_after) = (0, Vec::new(), false);
        for i in 0..600u32 {
            let now = t0 + Duration::from_millis(200) * i;
            sent += 50;
            // 20 s clean, 20 s of a queue building with retransmissions, then clean.
            let bad = (100..200).contains(&i);
            let input = if bad { sample(20.0 + f64::from(i - 99) * 5.0, 900, sent, sent / 5) } else { sample(20.0, 5, sent, 0) };
            let (status, _) = c.tick(now, &[("primary".to_owned(), input)]);
            let alarms = adapt_alarms(Some(&status));
            let adapted: Vec<_> = alarms.iter().filter(|a| a.code == "BITRATE_ADAPTED").collect();
            assert_eq!(adapted.len(), usize::from(status.target_kbps < status.ceiling_kbps), "{status:?}");
            if let Some(a) = adapted.first() {
                if messages.last() != Some(&a.message) {
                    messages.push(a.message.clone());
                }
            } else if !messages.is_empty() {
                saw_ceiling_after = true;
            }
        }
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("2500 kbit/s"), "{messages:?}");
        assert!(saw_ceiling_after, "never back at the ceiling");
        assert!(adapt_alarms(None).is_empty());
    }
}
