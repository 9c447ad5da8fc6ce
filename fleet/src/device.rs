//! [`Device`]: what the fleet layer needs from the box, and [`FakeDevice`].
//!
//! Every method must return quickly (it runs on the fleet runtime, under the
//! device mutex). Work that can take long (a configuration applied, a
//! command carried out) is handed back as a [`Job`] by
//! [`Device::execute_job`] and [`Device::apply_config_job`]: the client runs
//! it on a blocking thread, outside the mutex, while the MQTT connection
//! stays alive; jobs run one at a time, in the order the session asked.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::command::Command;
use crate::wire::{Alarm, ReasonCode, Severity};

/// Why a desired config is invalid: the key path and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRejection {
    /// e.g. `outputs[1].latency_ms`; `None` when it concerns the document.
    pub key: Option<String>,
    pub reason: String,
}

/// Work handed back by the device, run off the fleet runtime.
pub type Job<T> = Box<dyn FnOnce() -> T + Send>;

/// A command's result or why it failed.
pub type CommandResult = Result<Option<Value>, (ReasonCode, String)>;

/// The box as the fleet sees it. Implemented by the agent; [`FakeDevice`]
/// for tests and the simulator.
pub trait Device: Send {
    /// Birth certificate: serial, model, ports, codecs, firmware, versions.
    fn info(&self) -> Value;
    /// Streams, per-output status (published retained when it changes).
    fn state(&self) -> Value;
    /// Counters for one telemetry message (≤16 KB as JSON).
    fn telemetry(&self) -> Value;
    /// The active alarms (state `raised`); the session turns differences
    /// into raise/clear events.
    fn alarms(&self) -> Vec<Alarm>;
    /// The running configuration as JSON (the rollback target before any
    /// desired config was applied).
    fn running_config(&self) -> Value;
    /// Runs a device command (never `config.confirm`, `telemetry.boost` or
    /// `rebirth`: the session handles those). `Ok(result)` or a reason.
    /// `Reboot` must only schedule the reboot (a few seconds later): the
    /// result is stored and published after this returns.
    fn execute(&mut self, cmd: &Command) -> Result<Option<Value>, (ReasonCode, String)>;
    /// Checks a desired config without touching the running one.
    fn validate_config(&self, config: &Value) -> Result<(), ConfigRejection>;
    /// Stages and applies a validated config, and persists it (atomically:
    /// [`crate::store::write_atomically`]); also used to roll back.
    fn apply_config(&mut self, config: &Value) -> Result<(), String>;
    /// Whether every enabled output is up (the commit-confirm health gate).
    fn outputs_healthy(&self) -> bool;

    /// [`Device::execute`] as a job: called under the device mutex, it
    /// returns at once; the job may take as long as the work does. Devices
    /// whose commands are quick keep this default.
    fn execute_job(&mut self, cmd: &Command) -> Job<CommandResult> {
        let r = self.execute(cmd);
        Box::new(move || r)
    }

    /// [`Device::apply_config`] as a job (see [`Device::execute_job`]).
    fn apply_config_job(&mut self, config: &Value) -> Job<Result<(), String>> {
        let r = self.apply_config(config);
        Box::new(move || r)
    }

    /// Starts a long-running command ([`Command::is_long_running`]) in the
    /// background under request `id`; progress and the end come from
    /// [`Device::poll_command_updates`]. Devices without any refuse.
    fn start(&mut self, id: &str, cmd: &Command) -> Result<(), (ReasonCode, String)> {
        let _ = id;
        Err((ReasonCode::Unsupported, format!("{} is not supported by this device", cmd.name())))
    }

    /// Progress and ends of the commands started with [`Device::start`],
    /// oldest first (polled once a second).
    fn poll_command_updates(&mut self) -> Vec<CommandUpdate> {
        Vec::new()
    }

    /// A JPEG of the picture to publish now on `thumbnail`, if one is due
    /// (polled once a second; the device keeps its own cadence, and answers
    /// a `thumbnail.request` it accepted at the next poll). Devices without
    /// a picture keep this default.
    fn thumbnail(&mut self) -> Option<Vec<u8>> {
        None
    }

    /// A configuration the session had applied could not start on this
    /// box (at process start, before any desired config of this run): the
    /// device fell back to another one, or runs none. Polled once a second;
    /// returned once. The session reports it on `config/reported`.
    fn take_config_fallback(&mut self) -> Option<ConfigFallback> {
        None
    }
}

/// What [`Device::take_config_fallback`] hands over.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFallback {
    /// Why the fleet-applied configuration did not start (encoder, pipeline).
    pub reason: String,
    /// The configuration running now (`None`: nothing could start). The
    /// session reports its version when it is the last known good one.
    pub running: Option<Value>,
    /// What runs, in words (`last good configuration`, `local file`).
    pub running_name: String,
}

/// What a device reports about a command it runs in the background.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandUpdate {
    /// Still running: published as an `in_progress` response with `result`.
    Progress { id: String, result: Value },
    /// Finished: published as `succeeded` or `failed`.
    Done { id: String, result: Result<Option<Value>, (ReasonCode, String)> },
    /// A command started before the process restarted ended (`reboot`: the
    /// box came back). Published although this session did not start it,
    /// unless the id already has a final answer.
    DoneAfterRestart { id: String, result: Result<Option<Value>, (ReasonCode, String)> },
}

/// A scriptable device: two outputs (`primary`, `backup`), a stream flag,
/// alarms derived from them, and config hooks for tests:
/// `{"video":{"bitrate_kbps":N}}` must be 100–50000, `"fail_apply":true`
/// makes the apply fail, `"break_outputs":true` makes outputs unhealthy.
#[derive(Debug, Clone)]
pub struct FakeDevice {
    pub device_id: String,
    pub streaming: bool,
    pub outputs: BTreeMap<String, bool>,
    pub config: Value,
    pub executed: Vec<Command>,
    pub applied: Vec<Value>,
    pub extra_alarms: Vec<Alarm>,
    pub telemetry_count: u64,
    /// Ends of background commands (`reboot`) for the next poll.
    pub updates: Vec<CommandUpdate>,
}

impl FakeDevice {
    /// A streaming device with both outputs enabled.
    pub fn new(device_id: &str) -> FakeDevice {
        FakeDevice {
            device_id: device_id.to_owned(),
            streaming: true,
            outputs: [("primary".to_owned(), true), ("backup".to_owned(), true)].into_iter().collect(),
            config: json!({"video": {"bitrate_kbps": 2500}}),
            executed: Vec::new(),
            applied: Vec::new(),
            extra_alarms: Vec::new(),
            telemetry_count: 0,
            updates: Vec::new(),
        }
    }
}

impl Device for FakeDevice {
    fn info(&self) -> Value {
        json!({"serial": self.device_id, "model": "fake", "firmware": "0.1.0", "outputs": self.outputs.keys().collect::<Vec<_>>()})
    }

    fn state(&self) -> Value {
        json!({"streaming": self.streaming, "outputs": self.outputs})
    }

    fn telemetry(&self) -> Value {
        json!({"fps": if self.streaming { 30 } else { 0 }, "bitrate_kbps": self.config.pointer("/video/bitrate_kbps"), "n": self.telemetry_count})
    }

    fn alarms(&self) -> Vec<Alarm> {
        let mut v = self.extra_alarms.clone();
        if !self.streaming {
            v.push(Alarm::raised("STREAM_STOPPED", "encoder", Severity::Warning, "stream stopped by command"));
        }
        for (name, enabled) in &self.outputs {
            if !enabled {
                v.push(Alarm::raised("OUTPUT_DISABLED", &format!("output:{name}"), Severity::Minor, "output disabled"));
            }
        }
        v
    }

    fn running_config(&self) -> Value {
        self.config.clone()
    }

    fn execute(&mut self, cmd: &Command) -> Result<Option<Value>, (ReasonCode, String)> {
        self.executed.push(cmd.clone());
        match cmd {
            Command::StreamStart => self.streaming = true,
            Command::StreamStop => self.streaming = false,
            Command::OutputEnable { output } | Command::OutputDisable { output } => {
                let enable = matches!(cmd, Command::OutputEnable { .. });
                match self.outputs.get_mut(output) {
                    Some(e) => *e = enable,
                    None => return Err((ReasonCode::PreconditionFailed, format!("no output named `{output}`"))),
                }
            }
            Command::Identify { duration_s } => return Ok(Some(json!({ "identifying_s": duration_s }))),
            Command::Reboot => return Ok(Some(json!({ "rebooting": true }))),
            // The simulated box has no MediaLive channel behind it.
            Command::ChannelStart | Command::ChannelStop => {
                return Err((ReasonCode::PreconditionFailed, "no MediaLive channel configured".into()))
            }
            Command::FirmwareUpdate { .. } => return Err((ReasonCode::Unsupported, "the fake device has no slots".into())),
            Command::InputPattern { .. } => return Err((ReasonCode::Unsupported, "the fake device has no test pattern".into())),
            Command::LogsFetch { .. } => return Err((ReasonCode::Unsupported, "the fake device keeps no log".into())),
            Command::ThumbnailRequest => return Err((ReasonCode::PreconditionFailed, "the fake device has no picture".into())),
            Command::ConfigConfirm { .. } | Command::TelemetryBoost { .. } | Command::Rebirth => {
                return Err((ReasonCode::Unsupported, "handled by the session".into()))
            }
        }
        Ok(None)
    }

    fn validate_config(&self, config: &Value) -> Result<(), ConfigRejection> {
        if !config.is_object() {
            return Err(ConfigRejection { key: None, reason: "config must be an object".into() });
        }
        if let Some(b) = config.pointer("/video/bitrate_kbps") {
            match b.as_u64() {
                Some(100..=50_000) => {}
                _ => {
                    return Err(ConfigRejection {
                        key: Some("video.bitrate_kbps".into()),
                        reason: "must be an integer in 100..=50000".into(),
                    })
                }
            }
        }
        Ok(())
    }

    fn apply_config(&mut self, config: &Value) -> Result<(), String> {
        if config.get("fail_apply") == Some(&Value::Bool(true)) {
            return Err("fake apply failure".into());
        }
        self.config = config.clone();
        self.applied.push(config.clone());
        Ok(())
    }

    fn outputs_healthy(&self) -> bool {
        self.config.get("break_outputs") != Some(&Value::Bool(true))
    }

    /// `reboot` (a simulated box is back at once).
    fn start(&mut self, id: &str, cmd: &Command) -> Result<(), (ReasonCode, String)> {
        match cmd {
            Command::Reboot => {
                self.executed.push(cmd.clone());
                self.updates.push(CommandUpdate::Done { id: id.to_owned(), result: Ok(Some(json!({ "rebooting": true }))) });
                Ok(())
            }
            other => Err((ReasonCode::Unsupported, format!("{} is not supported by the fake device", other.name()))),
        }
    }

    fn poll_command_updates(&mut self) -> Vec<CommandUpdate> {
        std::mem::take(&mut self.updates)
    }
}
