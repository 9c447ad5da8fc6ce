//! Commands: parse, deduplicate, expire, rate-limit, dispatch, answer.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Delivery, Output, Qos, Session, KEY_COMMANDS};
use crate::clock::Now;
use crate::command::Command;
use crate::idempotency::Outcome;
use crate::limits::{
    COMMAND_TIMEOUT_DEFAULT_S, COMMAND_TIMEOUT_MAX_S, LONG_COMMAND_TIMEOUT_MAX_S, MAX_COMMANDS_IN_FLIGHT, MAX_ID_LEN, MAX_MESSAGE,
};
use crate::topics;
use crate::wire::{self, CommandRequest, CommandState, ReasonCode};

/// A command the device is running.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    /// When it ends `timed_out`.
    deadline: Instant,
    /// For a long-running command, its `timeout_s`: a window of silence, not
    /// a total, because each progress update pushes the deadline this far
    /// past it (a firmware install outlasts any fixed timeout; what must
    /// end it is a device that stopped reporting). `None` for the others.
    window: Option<Duration>,
}

/// A final answer computed by the session.
type Answer = Result<Option<Value>, (ReasonCode, String)>;

/// Best-effort id of a request that failed strict parsing.
fn loose_id(payload: &[u8]) -> String {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID_LEN)
        .unwrap_or_default()
}

impl Session {
    fn respond(&mut self, now: Now, id: &str, outcome: &Outcome, duplicate: bool) {
        let seq = self.next_seq();
        let doc = wire::CommandResponse {
            v: wire::PROTOCOL_VERSION,
            ts: now.rfc3339(),
            seq,
            bdseq: self.bdseq,
            id: id.to_owned(),
            state: outcome.state,
            reason: outcome.reason,
            detail: outcome.detail.clone(),
            duplicate,
            result: outcome.result.clone(),
        };
        let delivery = if outcome.state.is_terminal() { Delivery::Durable } else { Delivery::BestEffort };
        self.publish(topics::CMD_RES, &doc, Qos::AtLeastOnce, false, delivery);
    }

    /// Rejects without remembering (the same id may be retried).
    fn reject_transient(&mut self, now: Now, id: &str, reason: ReasonCode, detail: String) {
        self.stats.commands_rejected += 1;
        let o = Outcome { state: CommandState::Rejected, reason: Some(reason), detail, result: None };
        self.respond(now, id, &o, false);
    }

    /// Records a session-level answer (success, or a rejection) under `id`,
    /// persists the cache, publishes it.
    fn finish(&mut self, now: Now, id: &str, answer: Answer) {
        let o = match answer {
            Ok(result) => Outcome { state: CommandState::Succeeded, reason: None, detail: String::new(), result },
            Err((reason, detail)) => {
                self.stats.commands_rejected += 1;
                Outcome { state: CommandState::Rejected, reason: Some(reason), detail, result: None }
            }
        };
        self.finish_outcome(now, id, o);
    }

    fn finish_outcome(&mut self, now: Now, id: &str, o: Outcome) {
        self.in_flight.remove(id);
        self.idem.put(id, o.clone());
        let bytes = self.idem.to_bytes();
        self.save(KEY_COMMANDS, &bytes);
        self.respond(now, id, &o, false);
    }

    pub(super) fn handle_command(&mut self, now: Now, payload: &[u8]) {
        if payload.len() > MAX_MESSAGE {
            let id = loose_id(payload);
            let detail = format!("{} bytes > {MAX_MESSAGE}", payload.len());
            return self.reject_transient(now, &id, ReasonCode::PayloadTooLarge, detail);
        }
        let req: CommandRequest = match wire::parse(payload) {
            Ok(r) => r,
            Err(e) => return self.reject_transient(now, &loose_id(payload), ReasonCode::BadRequest, e),
        };
        if req.id.is_empty() || req.id.len() > MAX_ID_LEN {
            return self.reject_transient(now, "", ReasonCode::BadRequest, format!("id must be 1-{MAX_ID_LEN} bytes"));
        }
        if let Some(o) = self.idem.get(&req.id).cloned() {
            return self.respond(now, &req.id, &o, true);
        }
        if let Some(exp) = req.expires_at {
            if exp <= now.unix_ms() {
                let detail = format!("expired at {exp} ms, now {} ms", now.unix_ms());
                return self.finish(now, &req.id, Err((ReasonCode::Expired, detail)));
            }
        }
        let timeout_s = req.timeout_s.unwrap_or(COMMAND_TIMEOUT_DEFAULT_S);
        let max_s = if req.name == "firmware.update" { LONG_COMMAND_TIMEOUT_MAX_S } else { COMMAND_TIMEOUT_MAX_S };
        if !(1..=max_s).contains(&timeout_s) {
            let detail = format!("timeout_s must be 1..={max_s}");
            return self.finish(now, &req.id, Err((ReasonCode::BadRequest, detail)));
        }
        if self.in_flight.len() >= MAX_COMMANDS_IN_FLIGHT {
            let detail = format!("{MAX_COMMANDS_IN_FLIGHT} commands in flight");
            return self.reject_transient(now, &req.id, ReasonCode::RateLimited, detail);
        }
        if !self.command_bucket.try_take(now.mono) {
            return self.reject_transient(now, &req.id, ReasonCode::RateLimited, "over 5 commands/s".into());
        }
        let command = match Command::parse(&req.name, &req.args) {
            Ok(c) => c,
            Err(e) => return self.finish(now, &req.id, Err((e.reason, e.detail))),
        };
        match command {
            Command::ConfigConfirm { version } => {
                let answer = self.confirm(now, version);
                self.finish(now, &req.id, answer);
            }
            Command::TelemetryBoost { interval_s, duration_s } => {
                let until = now.mono + Duration::from_secs(u64::from(duration_s));
                self.boost = Some((interval_s, until));
                if let Some(next) = self.next_telemetry.as_mut() {
                    *next = (*next).min(now.mono + Duration::from_secs(u64::from(interval_s)));
                }
                let result = serde_json::json!({ "interval_s": interval_s, "until_ms": now.unix_ms() + u64::from(duration_s) * 1000 });
                self.finish(now, &req.id, Ok(Some(result)));
            }
            Command::Rebirth => {
                self.out.push_back(Output::NeedBirth);
                self.finish(now, &req.id, Ok(None));
            }
            command => {
                let accepted = Outcome { state: CommandState::Accepted, reason: None, detail: String::new(), result: None };
                self.idem.put(&req.id, accepted.clone());
                let window = Duration::from_secs(u64::from(timeout_s));
                let long = command.is_long_running().then_some(window);
                self.in_flight.insert(req.id.clone(), InFlight { deadline: now.mono + window, window: long });
                self.respond(now, &req.id, &accepted, false);
                self.out.push_back(Output::Execute { id: req.id, command });
            }
        }
    }

    /// The device finished command `id` (ignored if it already timed out).
    pub fn command_result(&mut self, now: Now, id: &str, result: Result<Option<Value>, (ReasonCode, String)>) {
        if !self.in_flight.contains_key(id) {
            return;
        }
        self.command_failed_or_done(now, id, result);
    }

    /// A command started before this process (`reboot`) ended: answered
    /// unless the id already has a final answer (a duplicate never turns a
    /// `timed_out` into a `succeeded`).
    pub fn command_result_after_restart(&mut self, now: Now, id: &str, result: Result<Option<Value>, (ReasonCode, String)>) {
        if self.in_flight.contains_key(id) {
            return self.command_result(now, id, result);
        }
        if id.is_empty() || id.len() > MAX_ID_LEN || self.idem.get(id).is_some_and(|o| o.state.is_terminal()) {
            return;
        }
        self.command_failed_or_done(now, id, result);
    }

    fn command_failed_or_done(&mut self, now: Now, id: &str, result: Result<Option<Value>, (ReasonCode, String)>) {
        match result {
            Ok(v) => self.finish(now, id, Ok(v)),
            Err((reason, detail)) => {
                let o = Outcome { state: CommandState::Failed, reason: Some(reason), detail, result: None };
                self.finish_outcome(now, id, o);
            }
        }
    }

    /// A long-running command `id` is still going: an `in_progress` response
    /// carrying `result` (best effort; ignored once it ended or timed out).
    /// It also moves the command's deadline to a full window from now.
    pub fn command_progress(&mut self, now: Now, id: &str, result: Value) {
        let Some(f) = self.in_flight.get_mut(id) else { return };
        if let Some(window) = f.window {
            f.deadline = f.deadline.max(now.mono + window);
        }
        let o = Outcome { state: CommandState::InProgress, reason: None, detail: String::new(), result: Some(result) };
        self.respond(now, id, &o, false);
    }

    pub(super) fn expire_commands(&mut self, now: Now) {
        let late: Vec<String> = self.in_flight.iter().filter(|(_, f)| now.mono >= f.deadline).map(|(id, _)| id.clone()).collect();
        for id in late {
            let o = Outcome {
                state: CommandState::TimedOut,
                reason: None,
                detail: if self.in_flight.get(&id).is_some_and(|f| f.window.is_some()) {
                    "the device reported no progress within timeout_s".into()
                } else {
                    "the device did not finish within timeout_s".into()
                },
                result: None,
            };
            self.finish_outcome(now, &id, o);
        }
    }
}
