//! The AWS monitor: every poll interval, one [`Cloud::poll`] pass (flow
//! re-resolution, flow and channel health) on the cloud the agent runs on
//! now, handed to the controller as [`Action::CloudReport`]. AWS calls take
//! seconds; they run on this thread, never in the controller.
//!
//! [`Cloud::poll`]: crate::cloud::Cloud::poll

use std::time::Duration;

use crate::action::{Action, Inbox};
use crate::output::OutputState;
use crate::shutdown::Shutdown;
use crate::state::SnapshotReader;

/// Starts the monitor thread. The first pass comes a second after start,
/// so telemetry has flow health early.
pub fn spawn(snapshot: SnapshotReader, inbox: Inbox, stop: Shutdown) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("aws-monitor".into()).spawn(move || {
        let mut wait = Duration::from_secs(1);
        while !stop.wait_timeout(wait) {
            let snap = snapshot.load();
            let connected: Vec<String> =
                snap.output_snapshots().into_iter().filter(|s| s.state == OutputState::Connected).map(|s| s.name).collect();
            if snap.cloud.has_work() {
                let report = snap.cloud.poll(&|name| connected.iter().any(|c| c == name));
                if !inbox.post(Action::CloudReport(report)) {
                    return;
                }
            }
            wait = snap.cloud.poll_interval();
        }
    })
}
