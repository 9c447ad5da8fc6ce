//! The agent as a fleet [`Device`]: inventory, state, telemetry and alarms
//! from the [`Controller`], and remote commands and configuration applied
//! through it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet::wire::{Alarm, ReasonCode, Severity};
use fleet::{Command, ConfigRejection, Device};
use serde_json::{json, Value};

use crate::config::{self, AgentConfig};
use crate::controller::Controller;

/// An output down for longer than this raises OUTPUT_DOWN (a reconnect
/// after a listener restart takes ~1 s and should not page anyone).
const OUTPUT_DOWN_AFTER: Duration = Duration::from_secs(5);

/// Wraps the shared controller for the fleet session.
#[derive(Debug)]
pub struct AgentDevice {
    ctl: Arc<Mutex<Controller>>,
    /// Read when alarms are collected (every session tick).
    overheat: Mutex<(hal::sensors::Sensors, hal::sensors::OverheatMonitor)>,
    under_systemd: bool,
    /// `firmware.update`; `None` outside an image (tests, development).
    firmware: Option<crate::firmware::Firmware>,
}

impl AgentDevice {
    pub fn new(ctl: Arc<Mutex<Controller>>) -> Self {
        AgentDevice {
            ctl,
            overheat: Mutex::new((
                hal::sensors::Sensors::new(hal::sensors::SensorPaths::default()),
                hal::sensors::OverheatMonitor::new(85_000, 5_000),
            )),
            under_systemd: std::env::var_os("NOTIFY_SOCKET").is_some(),
            firmware: None,
        }
    }

    /// Enables `firmware.update` (keeps its files in the fleet state dir).
    pub fn with_firmware(mut self, firmware: crate::firmware::Firmware) -> Self {
        self.firmware = Some(firmware);
        self
    }

    fn ctl(&self) -> std::sync::MutexGuard<'_, Controller> {
        self.ctl.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Parses a desired configuration (JSON with the TOML file's structure)
/// through the same loader as the file, so errors name the same keys.
pub fn parse_desired(value: &Value, running: &AgentConfig) -> Result<AgentConfig, ConfigRejection> {
    if value.get("fleet").is_some() {
        return Err(ConfigRejection { key: Some("fleet".into()), reason: "fleet settings are local to the box".into() });
    }
    let text = toml::to_string(value).map_err(|e| ConfigRejection { key: None, reason: format!("not a configuration document: {e}") })?;
    let mut cfg = config::from_str_unvalidated(&text).map_err(|e| match e {
        config::ConfigError::Invalid(inv) => ConfigRejection { key: Some(inv.key).filter(|k| !k.is_empty()), reason: inv.message },
        other => ConfigRejection { key: None, reason: other.to_string() },
    })?;
    cfg.fleet = running.fleet.clone();
    cfg.validate().map_err(|(key, reason)| ConfigRejection { key: Some(key), reason })?;
    Ok(cfg)
}

impl Device for AgentDevice {
    fn info(&self) -> Value {
        let ctl = self.ctl();
        let report = ctl.encoder_report();
        let (a, b, c) = srt::libsrt_version();
        json!({
            "serial": ctl.config().device_id.as_str(),
            "model": "edge-agent",
            "firmware": env!("CARGO_PKG_VERSION"),
            "versions": {
                "agent": env!("CARGO_PKG_VERSION"),
                "gstreamer": gstreamer::version_string().to_string(),
                "libsrt": format!("{a}.{b}.{c}"),
            },
            "encoder": { "chosen": ctl.factory(), "why": report.why(), "candidates": report.candidates },
            "inputs": crate::pipeline::discover_inputs(),
            "input": ctl.input_status(),
            "outputs": ctl.config().outputs.iter().map(|o| json!({"name": o.name().as_str(), "kind": kind(o)})).collect::<Vec<_>>(),
        })
    }

    fn state(&self) -> Value {
        let ctl = self.ctl();
        let outputs: Vec<Value> = ctl
            .snapshots()
            .iter()
            .map(|s| json!({"name": s.name, "state": s.state, "connects": s.connects, "last_error": s.last_error}))
            .collect();
        json!({
            "stream": if ctl.is_streaming() { "streaming" } else { "stopped" },
            "encoder": ctl.factory(),
            "outputs": outputs,
        })
    }

    fn telemetry(&self) -> Value {
        let ctl = self.ctl();
        let stats = ctl.pipeline_stats();
        let load = |f: fn(&crate::pipeline::PipelineStats) -> u64| stats.as_ref().map_or(0, |s| f(s));
        let mut sensors = hal::sensors::Sensors::new(hal::sensors::SensorPaths::default());
        json!({
            "encoder": {
                "factory": ctl.factory(),
                "bitrate_kbps": ctl.config().video.bitrate_kbps.get(),
                "ts_bytes": load(|s| s.ts_bytes.load(std::sync::atomic::Ordering::Relaxed)),
                "restarts": load(|s| s.restarts.load(std::sync::atomic::Ordering::Relaxed)),
            },
            "input": ctl.input_status(),
            "outputs": ctl.snapshots(),
            "panel": ctl.panel_readings(),
            "system": sensors.snapshot(std::path::Path::new("/")),
            // Flow destinations and health, MediaLive channel: present when
            // an output is named by flow ARN or a channel is configured.
            "cloud": ctl.cloud().has_work().then(|| ctl.cloud().report()),
            "firmware": self.firmware.as_ref().map(crate::firmware::Firmware::report),
        })
    }

    fn alarms(&self) -> Vec<Alarm> {
        let ctl = self.ctl();
        let mut v = Vec::new();
        if !ctl.is_streaming() {
            v.push(Alarm::raised("STREAM_STOPPED", "encoder", Severity::Warning, "stream stopped by command"));
        }
        if let Some(s) = ctl.pipeline_stats() {
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
        for s in ctl.snapshots() {
            if s.down_for_s > OUTPUT_DOWN_AFTER.as_secs_f64() {
                let msg = s.last_error.clone().unwrap_or_else(|| format!("output {}", s.state));
                v.push(Alarm::raised("OUTPUT_DOWN", &format!("output:{}", s.name), Severity::Major, &msg));
            }
        }
        for a in ctl.cloud().report().alarms() {
            let severity = match a.severity {
                edge_cloud::Severity::Warning => Severity::Warning,
                edge_cloud::Severity::Major => Severity::Major,
                edge_cloud::Severity::Critical => Severity::Critical,
            };
            v.push(Alarm::raised(a.code, &a.component, severity, &a.message));
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

    fn running_config(&self) -> Value {
        self.ctl().raw_config().clone()
    }

    fn execute(&mut self, cmd: &Command) -> Result<Option<Value>, (ReasonCode, String)> {
        match cmd {
            Command::Identify { duration_s } => {
                let d = Duration::from_secs(u64::from(*duration_s));
                let mut ctl = self.ctl();
                ctl.identify(d);
                tracing::warn!(duration_s, "IDENTIFY requested: this box");
                return Ok(Some(json!({"front_panel": ctl.panel_configured()})));
            }
            Command::Reboot => {
                if !self.under_systemd {
                    return Err((ReasonCode::Unsupported, "not running under systemd; refusing to reboot the host".into()));
                }
                std::thread::spawn(|| {
                    std::thread::sleep(Duration::from_secs(3));
                    let _ = std::process::Command::new("systemctl").arg("reboot").status();
                });
                return Ok(Some(json!({"reboot_in_s": 3})));
            }
            Command::ChannelStart | Command::ChannelStop => {
                // AWS calls take up to ~10 s: not under the controller lock.
                let cloud = self.ctl().cloud();
                return cloud
                    .channel_command(matches!(cmd, Command::ChannelStart))
                    .map(|state| Some(json!({"state": state})))
                    .map_err(|e| (ReasonCode::Internal, e));
            }
            _ => {}
        }
        let mut ctl = self.ctl();
        let failed = |e: crate::controller::ControlError| (ReasonCode::Internal, e.to_string());
        match cmd {
            Command::StreamStart => ctl.start_pipeline().map_err(failed)?,
            Command::StreamStop => ctl.stop_pipeline(),
            Command::OutputEnable { output } | Command::OutputDisable { output } => {
                let enable = matches!(cmd, Command::OutputEnable { .. });
                ctl.set_output_enabled(output, enable).map_err(|e| match e {
                    crate::controller::ControlError::UnknownOutput(_) => (ReasonCode::InvalidArgs, e.to_string()),
                    other => failed(other),
                })?;
            }
            other => return Err((ReasonCode::Unsupported, format!("{other:?} is handled by the session"))),
        }
        Ok(None)
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigRejection> {
        let ctl = self.ctl();
        parse_desired(config, ctl.config()).map(|_| ())
    }

    fn apply_config(&mut self, config: &Value) -> Result<(), String> {
        let mut ctl = self.ctl();
        let cfg = parse_desired(config, ctl.config()).map_err(|r| r.reason)?;
        ctl.apply(cfg, config.clone()).map(|_| ()).map_err(|e| e.to_string())
    }

    fn outputs_healthy(&self) -> bool {
        self.ctl().outputs_healthy()
    }

    fn start(&mut self, id: &str, cmd: &Command) -> Result<(), (ReasonCode, String)> {
        match (cmd, &self.firmware) {
            (Command::FirmwareUpdate { url, sha256 }, Some(fw)) if self.under_systemd => fw.start(id, url, sha256),
            (Command::FirmwareUpdate { .. }, _) => {
                Err((ReasonCode::Unsupported, "firmware.update needs the A/B image (systemd, RAUC)".into()))
            }
            (other, _) => Err((ReasonCode::Unsupported, format!("{} does not run in the background", other.name()))),
        }
    }

    fn poll_command_updates(&mut self) -> Vec<fleet::CommandUpdate> {
        self.firmware.as_ref().map(crate::firmware::Firmware::take_updates).unwrap_or_default()
    }
}

fn kind(o: &config::OutputConfig) -> &'static str {
    match o {
        config::OutputConfig::Srt(_) => "srt",
        config::OutputConfig::Rtp(_) => "rtp",
        config::OutputConfig::RtpFec(_) => "rtp-fec",
    }
}
