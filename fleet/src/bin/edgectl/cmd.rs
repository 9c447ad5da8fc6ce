//! `edgectl cmd` and `edgectl config push`: publish, then wait for the
//! device's answer.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use fleet::clock::unix_ms_now;
use fleet::topics;
use fleet::wire::{self, CommandRequest, CommandResponse, CommandState, ConfigStatus, DesiredConfig, ReportedConfig};
use fleet::Command;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::conn::{BrokerArgs, Ctl};
use crate::Exit;
use crate::{show, term};

#[derive(Debug, clap::Args)]
pub struct CmdArgs {
    device: String,
    /// Command name, e.g. stream.start, output.disable, telemetry.boost.
    name: String,
    /// Arguments as KEY=VALUE (VALUE parsed as JSON when it parses, else a string).
    args: Vec<String>,
    /// Arguments as one JSON object instead.
    #[arg(long, conflicts_with = "args")]
    json_args: Option<String>,
    /// Seconds the device may take once started (sent as timeout_s).
    #[arg(long, default_value_t = 30)]
    device_timeout: u32,
    /// The device's answer as JSON (`cmd/res`) instead of lines.
    #[arg(long)]
    json: bool,
}

/// A fresh command id: time-ordered like a ULID (ms, then randomness).
pub fn new_id() -> String {
    format!("{:012x}{:016x}", unix_ms_now(), fastrand::u64(..))
}

fn parse_args(a: &CmdArgs) -> Result<Value> {
    if let Some(j) = &a.json_args {
        return serde_json::from_str(j).context("--json-args");
    }
    let mut m = Map::new();
    for kv in &a.args {
        let Some((k, v)) = kv.split_once('=') else { bail!("argument `{kv}` is not KEY=VALUE") };
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        m.insert(k.to_owned(), v);
    }
    Ok(Value::Object(m))
}

/// Sends `command` and waits for a terminal answer.
/// The request expires when edgectl stops waiting (`deadline`), so a box
/// that comes online later never runs a command nobody waits for.
pub(crate) async fn send(
    ctl: &mut Ctl,
    device: &str,
    command: &Command,
    timeout_s: u32,
    deadline: Instant,
) -> Result<Option<CommandResponse>> {
    let res_topic = topics::topic(device, topics::CMD_RES);
    ctl.subscribe(std::slice::from_ref(&res_topic)).await?;
    ctl.sync(deadline).await?;
    let id = new_id();
    let req = CommandRequest {
        id: id.clone(),
        name: command.name().to_owned(),
        args: command.args(),
        expires_at: Some(unix_ms_now() + u64::try_from(deadline.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(0)),
        timeout_s: Some(timeout_s),
    };
    ctl.publish(&topics::topic(device, topics::CMD_REQ), serde_json::to_vec(&req)?, false, deadline).await?;
    // Other messages (e.g. the config report a confirm causes) stay readable.
    let mut other = Vec::new();
    let mut answer = None;
    while let Some(m) = ctl.next(deadline).await? {
        let r = (m.topic == res_topic).then(|| wire::parse::<CommandResponse>(&m.payload).ok()).flatten();
        match r {
            Some(r) if r.id == id => {
                if r.state.is_terminal() {
                    answer = Some(r);
                    break;
                }
                // Accepted, in progress: the answer follows on stdout.
                eprint!("{}", show::command(device, command.name(), &r));
            }
            _ => other.push(m),
        }
    }
    ctl.requeue(other);
    Ok(answer)
}

pub async fn run(args: &BrokerArgs, a: &CmdArgs) -> Result<Exit> {
    if let Err(e) = topics::validate_device_id(&a.device) {
        eprintln!("edgectl: {e}");
        return Ok(Exit::Usage);
    }
    let command = match parse_args(a).map(|v| Command::parse(&a.name, &v)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            eprintln!("edgectl: {e}");
            return Ok(Exit::Usage);
        }
        Err(e) => {
            eprintln!("edgectl: {e:#}");
            return Ok(Exit::Usage);
        }
    };
    let mut ctl = Ctl::connect(args).await?;
    let deadline = Instant::now() + args.timeout();
    let answer = send(&mut ctl, &a.device, &command, a.device_timeout, deadline).await?;
    ctl.close().await;
    Ok(match answer {
        Some(r) => {
            if a.json {
                println!("{}", term::json(serde_json::to_string(&r)?));
            } else {
                print!("{}", show::command(&a.device, command.name(), &r));
            }
            if r.state == CommandState::Succeeded {
                Exit::Ok
            } else {
                Exit::Refused
            }
        }
        None => {
            eprintln!("edgectl: no answer from {} within {} s", a.device, args.timeout);
            Exit::Timeout
        }
    })
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    device: String,
    /// The agent configuration: TOML, or JSON if the name ends in .json.
    file: PathBuf,
    /// Push with a confirm window, then confirm once the device reports
    /// `pending_confirm` (proves the device still reaches the broker).
    #[arg(long)]
    confirm: bool,
    /// Confirm window in seconds (without --confirm: confirm yourself with
    /// `edgectl cmd DEVICE config.confirm version=N`).
    #[arg(long)]
    confirm_within: Option<u32>,
    /// Version to publish (default: one above the highest seen).
    #[arg(long)]
    version: Option<u64>,
    /// The device's report as JSON (`config/reported`) instead of a line.
    #[arg(long)]
    json: bool,
    /// Clear passphrases in FILE are sealed to the device's certificate
    /// before anything is published (docs/secrets.md).
    #[command(flatten)]
    seal: crate::seal::SealTarget,
}

fn read_config(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).with_context(|| format!("{}", path.display()));
    }
    let t: toml::Value = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::to_value(t)?)
}

/// Waits for a `config/reported` answering `version` that is not `skip`.
pub(crate) async fn wait_report(
    ctl: &mut Ctl,
    topic: &str,
    version: u64,
    skip: Option<ConfigStatus>,
    deadline: Instant,
) -> Result<Option<ReportedConfig>> {
    while let Some(m) = ctl.next(deadline).await? {
        if m.topic != topic {
            continue;
        }
        let Ok(r) = wire::parse::<ReportedConfig>(&m.payload) else { continue };
        if r.av == version && Some(r.status) != skip {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

pub async fn push(args: &BrokerArgs, a: &PushArgs) -> Result<Exit> {
    if let Err(e) = topics::validate_device_id(&a.device) {
        eprintln!("edgectl: {e}");
        return Ok(Exit::Usage);
    }
    let mut config = match read_config(&a.file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgectl: {e:#}");
            return Ok(Exit::Usage);
        }
    };
    let mut ctl = Ctl::connect(args).await?;
    // Before anything is published: the broker and this controller's
    // retained desired document must never hold a clear passphrase.
    let sealed = crate::seal::seal_document(&mut ctl, args, &a.device, &a.seal, &mut config).await?;
    if sealed > 0 {
        eprintln!("sealed {sealed} secret(s) to {}'s certificate", a.device);
    }
    let deadline = Instant::now() + args.timeout();
    let reported_topic = topics::topic(&a.device, topics::CONFIG_REPORTED);
    let desired_topic = topics::topic(&a.device, topics::CONFIG_DESIRED);
    ctl.subscribe(&[reported_topic.clone(), desired_topic.clone()]).await?;
    let mut highest = 0;
    for m in ctl.sync(deadline).await? {
        let v = if m.topic == desired_topic {
            serde_json::from_slice::<Value>(&m.payload).ok().and_then(|v| v.get("version").and_then(Value::as_u64))
        } else {
            wire::parse::<ReportedConfig>(&m.payload).ok().map(|r| r.av)
        };
        highest = highest.max(v.unwrap_or(0));
    }
    let version = a.version.unwrap_or(highest + 1);
    let confirm_within_s = a.confirm_within.or(a.confirm.then_some(60));
    let doc = DesiredConfig { version, confirm_within_s, config };
    let payload = serde_json::to_vec(&doc)?;
    ctl.publish(&desired_topic, payload, true, deadline).await?;
    eprintln!("pushed version {version} to {}", a.device);
    let Some(mut r) = wait_report(&mut ctl, &reported_topic, version, None, deadline).await? else {
        eprintln!("edgectl: no report for version {version} within {} s", args.timeout);
        ctl.close().await;
        return Ok(Exit::Timeout);
    };
    if r.status == ConfigStatus::PendingConfirm && a.confirm {
        let cmd = Command::ConfigConfirm { version };
        match send(&mut ctl, &a.device, &cmd, 30, deadline).await? {
            Some(c) if c.state == CommandState::Succeeded => {}
            Some(c) => {
                if a.json {
                    println!("{}", term::json(serde_json::to_string(&c)?));
                } else {
                    print!("{}", show::command(&a.device, cmd.name(), &c));
                }
                ctl.close().await;
                return Ok(Exit::Refused);
            }
            None => {
                eprintln!("edgectl: no answer to config.confirm from {} within {} s", a.device, args.timeout);
                ctl.close().await;
                return Ok(Exit::Timeout);
            }
        }
        match wait_report(&mut ctl, &reported_topic, version, Some(ConfigStatus::PendingConfirm), deadline).await? {
            Some(r2) => r = r2,
            None => {
                eprintln!("edgectl: confirmed, but no report of version {version} within {} s", args.timeout);
                ctl.close().await;
                return Ok(Exit::Timeout);
            }
        }
    }
    ctl.close().await;
    if a.json {
        println!("{}", term::json(serde_json::to_string(&r)?));
    } else {
        print!("{}", show::config_report(&a.device, &r));
    }
    Ok(match r.status {
        ConfigStatus::Applied | ConfigStatus::PendingConfirm => Exit::Ok,
        ConfigStatus::Rejected | ConfigStatus::RolledBack => Exit::Refused,
    })
}
