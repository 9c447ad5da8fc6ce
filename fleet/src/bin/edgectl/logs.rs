//! `edgectl logs DEVICE [--since 10m|RFC3339] [--follow] [--max N] [--json]`:
//! the box's recent agent log lines through `logs.fetch`.
//!
//! Without `--since`: one answer, the newest lines that fit. With it:
//! every line since then, paged forward with `since_seq` (4 pages/s, under
//! the box's command rate). `--follow` then polls with `since_seq` every
//! 1.5 s until Ctrl-C; one MQTT connection throughout. Lines are device text: each goes
//! through [`term::text`]; `--json` prints each `cmd/res` as one line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use fleet::command::LOGS_DEFAULT_LINES;
use fleet::topics;
use fleet::wire::{CommandResponse, CommandState};
use fleet::Command;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::conn::{BrokerArgs, Ctl};
use crate::Exit;
use crate::{cmd, show, term};

/// Between polls of `--follow`.
const FOLLOW_EVERY: Duration = Duration::from_millis(1500);
/// Between pages while the box says `more`: under its 5 commands/s.
const PAGE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    device: String,
    /// Only lines logged since: a duration ago (`10m`, `2h`) or an RFC 3339 UTC time.
    #[arg(long)]
    since: Option<String>,
    /// Keep printing new lines (polling every 1.5 s) until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Most lines per answer (1..=1000; an answer is also capped at ~14 KiB).
    #[arg(long, default_value_t = LOGS_DEFAULT_LINES)]
    max: u32,
    /// Each answer (`cmd/res`) as one JSON line instead of log lines.
    #[arg(long)]
    json: bool,
}

/// `10m` ago or an RFC 3339 time, as unix ms.
fn since_ms(s: &str) -> Result<u64, String> {
    let t = match humantime::parse_duration(s) {
        Ok(d) => SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| format!("--since `{s}`: give a duration (10m) or an RFC 3339 time"))?,
    };
    Ok(t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

/// `2026-12-05T05:07:21.123Z  INFO agent::controller: message`.
fn line(l: &Value) -> String {
    let s = |k: &str| l.get(k).and_then(Value::as_str).unwrap_or("?");
    format!("{}\n", term::text(&format!("{} {:>5} {}: {}", s("ts"), s("level"), s("target"), s("msg"))))
}

/// One answer: printed; `Ok(Some(result))` when it succeeded.
fn print(device: &str, r: &CommandResponse, json_out: bool) -> Result<Option<Value>> {
    if json_out {
        println!("{}", term::json(serde_json::to_string(r)?));
    }
    if r.state != CommandState::Succeeded {
        if !json_out {
            eprint!("{}", show::command(device, "logs.fetch", r));
        }
        return Ok(None);
    }
    let result = r.result.clone().unwrap_or(Value::Null);
    if !json_out {
        let lines = result.get("lines").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        print!("{}", lines.iter().map(line).collect::<String>());
        if result.get("dropped") == Some(&Value::Bool(true)) {
            eprintln!("edgectl: some lines were overwritten on {} before they were fetched", term::text(device));
        }
    }
    Ok(Some(result))
}

pub async fn run(args: &BrokerArgs, a: &LogsArgs) -> Result<Exit> {
    if let Err(e) = topics::validate_device_id(&a.device) {
        eprintln!("edgectl: {e}");
        return Ok(Exit::Usage);
    }
    let since = match a.since.as_deref().map(since_ms).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edgectl: {e}");
            return Ok(Exit::Usage);
        }
    };
    // Checked with the device's own parser (max bounds, time format).
    let fetch = |since_seq: Option<u64>, since_ms: Option<u64>| {
        let mut args = json!({ "max_lines": a.max });
        if let Some(s) = since_seq {
            args["since_seq"] = json!(s);
        }
        let mut c = Command::parse("logs.fetch", &args)?;
        if let Command::LogsFetch { since_ms: ms, .. } = &mut c {
            *ms = since_ms;
        }
        Ok::<_, fleet::CommandError>(c)
    };
    // With --since every line since then, page by page (oldest first);
    // without, the newest that fit one answer.
    let first = match fetch(since.map(|_| 0), since) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgectl: {e}");
            return Ok(Exit::Usage);
        }
    };
    let mut ctl = Ctl::connect(args).await?;
    let answer = cmd::send(&mut ctl, &a.device, &first, 10, Instant::now() + args.timeout()).await?;
    let Some(r) = answer else {
        eprintln!("edgectl: no answer from {} within {} s", a.device, args.timeout);
        ctl.close().await;
        return Ok(Exit::Timeout);
    };
    let Some(result) = print(&a.device, &r, a.json)? else {
        ctl.close().await;
        return Ok(Exit::Refused);
    };
    if since.is_none() && result.get("truncated") == Some(&Value::Bool(true)) && !a.json {
        eprintln!("edgectl: only the newest lines that fit one message; use --since for more");
    }
    let mut next = result.get("next_seq").and_then(Value::as_u64).unwrap_or(1);
    let mut more = result.get("more") == Some(&Value::Bool(true));
    if !a.follow && !more {
        ctl.close().await;
        return Ok(Exit::Ok);
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if !more && !a.follow {
            break;
        }
        let pause = if more { PAGE_EVERY } else { FOLLOW_EVERY };
        tokio::select! {
            _ = &mut ctrl_c => break,
            () = tokio::time::sleep(pause) => {}
        }
        let c = fetch(Some(next), since)?;
        let deadline = Instant::now() + args.timeout();
        let answer = tokio::select! {
            _ = &mut ctrl_c => break,
            res = cmd::send(&mut ctl, &a.device, &c, 10, deadline) => res?,
        };
        more = false;
        match answer {
            None if a.follow => eprintln!("edgectl: no answer from {} within {} s; still trying", a.device, args.timeout),
            None => {
                eprintln!("edgectl: no answer from {} within {} s", a.device, args.timeout);
                ctl.close().await;
                return Ok(Exit::Timeout);
            }
            Some(r) => {
                let printed = print(&a.device, &r, a.json)?;
                if printed.is_none() && !a.follow {
                    ctl.close().await;
                    return Ok(Exit::Refused);
                }
                if let Some(result) = printed {
                    // Never backwards: a restarted box starts again at 1.
                    let n = result.get("next_seq").and_then(Value::as_u64).unwrap_or(next);
                    more = result.get("more") == Some(&Value::Bool(true));
                    if n < next {
                        eprintln!("edgectl: {} restarted its log; following from its first line", term::text(&a.device));
                        (next, more) = (1, true);
                    } else {
                        next = n;
                    }
                }
            }
        }
    }
    ctl.close().await;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_rfc3339() {
        assert_eq!(since_ms("2026-12-05T05:07:21Z"), Ok(1_796_447_241_000));
        let ago = since_ms("10m").unwrap();
        let now = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        assert!((now - ago).abs_diff(600_000) < 5_000, "{}", now - ago);
        assert!(since_ms("yesterday").is_err());
    }

    #[test]
    fn device_lines_cannot_drive_the_terminal() {
        let l = json!({"ts": "t", "level": "WARN", "target": "agent", "msg": "a\x1b[2J\nfake"});
        assert_eq!(line(&l), "t  WARN agent: a\\x1b[2J\\nfake\n");
    }
}
