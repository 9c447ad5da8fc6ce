//! The controller's one inbox: every change to the running agent arrives
//! here as an [`Action`], from whichever adapter saw it (fleet command,
//! desired configuration, front-panel button, signal, AWS monitor), and is
//! processed in order on the controller's thread and answered.

use std::sync::mpsc;
use std::time::Duration;

use fleet::wire::ReasonCode;
use fleet::Command;
use serde_json::Value;

use crate::adapt::AdaptStatus;
use crate::cloud::CloudReport;
use crate::config::AgentConfig;

/// A change to the running agent.
#[derive(Debug)]
pub enum Action {
    /// A device command (`stream.start`, `output.disable`, `identify`, …)
    /// from the fleet or the front panel.
    Command(Command),
    /// A validated configuration to apply at the least disruptive depth and
    /// persist; `raw` is the document as received (the rollback target).
    ApplyConfig { cfg: Box<AgentConfig>, raw: Value },
    /// SIGUSR1: simulated input signal loss on or off.
    ToggleSimulatedLoss,
    /// SIGUSR2: the test pattern switches format, as a source would.
    ToggleAlternateFormat,
    /// The AWS monitor's latest pass.
    CloudReport(CloudReport),
    /// The rate controller's target video bitrate and why: applied live
    /// to the running encoder (never a pipeline restart) and published.
    /// `None` status: adaptation is off, back to the configured bitrate.
    SetVideoTarget { kbps: u32, status: Option<Box<AdaptStatus>> },
    /// Stop the pipeline and every output, then the controller.
    Shutdown,
}

impl Action {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Command(c) => c.name(),
            Action::ApplyConfig { .. } => "apply-config",
            Action::ToggleSimulatedLoss => "toggle-simulated-loss",
            Action::ToggleAlternateFormat => "toggle-alternate-format",
            Action::CloudReport(_) => "cloud-report",
            Action::SetVideoTarget { .. } => "set-video-target",
            Action::Shutdown => "shutdown",
        }
    }
}

/// Why an action failed: the fleet's reason code and a message for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    pub code: ReasonCode,
    pub message: String,
}

impl ActionError {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        ActionError { code, message: message.into() }
    }
}

/// The answer to an action: an optional result document, or why not.
pub type Outcome = Result<Option<Value>, ActionError>;

/// An action with where to send its answer.
#[derive(Debug)]
pub struct Envelope {
    pub action: Action,
    pub reply: Option<mpsc::Sender<Outcome>>,
}

/// The sending side of the controller's inbox; cheap to clone, one per
/// adapter.
#[derive(Debug, Clone)]
pub struct Inbox(mpsc::Sender<Envelope>);

impl Inbox {
    /// A new inbox and the receiving end the controller drains.
    pub fn channel() -> (Inbox, mpsc::Receiver<Envelope>) {
        let (tx, rx) = mpsc::channel();
        (Inbox(tx), rx)
    }

    /// Hands an action over without waiting for its answer. `false` when
    /// the controller has stopped.
    pub fn post(&self, action: Action) -> bool {
        self.0.send(Envelope { action, reply: None }).is_ok()
    }

    /// Hands an action over and waits up to `timeout` for its answer.
    pub fn ask(&self, action: Action, timeout: Duration) -> Outcome {
        let (tx, rx) = mpsc::channel();
        let name = action.name();
        if self.0.send(Envelope { action, reply: Some(tx) }).is_err() {
            return Err(ActionError::new(ReasonCode::Internal, "the agent is shutting down"));
        }
        match rx.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ActionError::new(
                ReasonCode::Internal,
                format!("{name}: no answer from the controller within {} s", timeout.as_secs()),
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ActionError::new(ReasonCode::Internal, "the agent is shutting down")),
        }
    }
}
