//! The agent as a child process, configured from a string, observed through
//! its status file.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{agent_bin, wait_for, ChildGuard};

#[derive(Debug)]
pub struct AgentProc {
    pub proc: ChildGuard,
    pub status_file: PathBuf,
    pub log_file: PathBuf,
}

impl AgentProc {
    /// Writes `config` into `dir` and starts `edge-agent run` on it.
    pub fn start(dir: &std::path::Path, config: &str) -> Self {
        Self::start_with(dir, config, &[])
    }

    /// As [`AgentProc::start`], run through `wrapper` (e.g. `ip netns exec
    /// NS`, which execs the agent: the guard's PID is still the agent's).
    pub fn start_with(dir: &std::path::Path, config: &str, wrapper: &[&str]) -> Self {
        let cfg = dir.join("agent.toml");
        std::fs::write(&cfg, config).unwrap_or_else(|e| panic!("write config: {e}"));
        let status_file = dir.join("status.json");
        // A previous run's status must not be mistaken for this one's.
        let _ = std::fs::remove_file(&status_file);
        let log_file = dir.join("agent.log");
        let log = std::fs::File::create(&log_file).unwrap_or_else(|e| panic!("create log: {e}"));
        let agent = agent_bin();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&agent);
                c
            }
            None => Command::new(&agent),
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--status-file")
            .arg(&status_file)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start edge-agent: {e}"));
        AgentProc { proc: ChildGuard::new("edge-agent", child), status_file, log_file }
    }

    /// The latest status document, if written yet.
    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&self.status_file).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The status of one output by name.
    pub fn output(&self, name: &str) -> Option<serde_json::Value> {
        self.status()?["outputs"].as_array()?.iter().find(|o| o["name"] == name).cloned()
    }

    /// Waits until output `name` is in `state`; returns its status.
    pub fn wait_output_state(&self, name: &str, state: &str, timeout: Duration) -> serde_json::Value {
        wait_for(&format!("output {name} to be {state}"), timeout, || self.output(name).filter(|o| o["state"] == state))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// SIGINT, then waits for a clean exit; returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let t = std::time::Instant::now();
        self.proc.signal("INT");
        let status = self.proc.wait_timeout(Duration::from_secs(5));
        assert!(status.is_some_and(|s| s.success()), "agent did not exit cleanly: {status:?}\n{}", self.log());
        t.elapsed()
    }
}
