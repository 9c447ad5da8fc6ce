//! The front panel, driven from the agent's state.
//!
//! # Design
//! [`desired`] is a pure function from what the agent is doing to what the
//! LEDs and the tally lamp show; [`PanelDriver`] runs the serial link
//! (`hal::panel::PanelLink`) on its own thread and runtime, pushes that
//! state four times a second and turns button presses into the same
//! [`Command`]s the fleet sends, posted to the controller's inbox (a long
//! press on `front` toggles streaming). The board may be absent, unplugged or reset at any time:
//! the link reconnects by itself and the stream never waits for it.
//!
//! | LED | Shows |
//! |---|---|
//! | power | green: streaming live · amber fast: live but black, frozen or silent · amber blink: slate (no input signal) · red blink: stream stopped |
//! | network | green: fleet online (or, without fleet, an output connected) · amber blink: connecting · red fast: nothing reachable |
//! | primary / backup (first / second output) | green: connected · amber blink: connecting · red fast: failing · off: disabled |
//! | tally | red: on air (live picture leaving the box) · off otherwise |
//!
//! While an `identify` command runs, every LED blinks fast blue and the
//! tally shows green, so the technician finds the right box in the rack.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet::Command;
use hal::panel::{Led, LedColor, LedMode, LedState, PanelDesired, PanelEvent, PanelLink, PanelLinkConfig, Press, Tally};
use tracing::{info, warn};

use crate::action::{Action, Inbox};
use crate::output::{OutputSnapshot, OutputState};
use crate::shutdown::Shutdown;
pub use crate::state::PanelReadings;
use crate::state::{SharedPanelReadings, Snapshot, SnapshotReader};

/// What the panel needs to know, from the published snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelInputs {
    pub streaming: bool,
    /// The slate is on air (no input signal).
    pub slate: bool,
    /// The picture is black or frozen, or the sound silent (content alarms).
    pub content_fault: bool,
    pub outputs: Vec<OutputState>,
    /// `None` without fleet management.
    pub fleet_online: Option<bool>,
    pub identifying: bool,
}

fn led(mode: LedMode, color: LedColor) -> LedState {
    LedState::new(mode, Some(color))
}

fn output_led(state: Option<&OutputState>) -> LedState {
    match state {
        Some(OutputState::Connected) => led(LedMode::On, LedColor::Green),
        Some(OutputState::Connecting | OutputState::Listening) => led(LedMode::Blink, LedColor::Amber),
        Some(OutputState::Backoff) => led(LedMode::Fast, LedColor::Red),
        Some(OutputState::Disabled | OutputState::Stopped) | None => LedState::OFF,
    }
}

/// The panel for the agent's state.
pub fn desired(s: &PanelInputs) -> PanelDesired {
    let mut d = PanelDesired::default();
    if s.identifying {
        for &l in Led::ALL {
            d.set_led(l, led(LedMode::Fast, LedColor::Blue));
        }
        d.tally = Tally::Green;
        return d;
    }
    let any_connected = s.outputs.contains(&OutputState::Connected);
    d.set_led(
        Led::Power,
        match (s.streaming, s.slate) {
            (false, _) => led(LedMode::Blink, LedColor::Red),
            (true, true) => led(LedMode::Blink, LedColor::Amber),
            (true, false) if s.content_fault => led(LedMode::Fast, LedColor::Amber),
            (true, false) => led(LedMode::On, LedColor::Green),
        },
    );
    d.set_led(
        Led::Network,
        match (s.fleet_online, any_connected) {
            (Some(true), _) | (None, true) => led(LedMode::On, LedColor::Green),
            (Some(false), true) => led(LedMode::Blink, LedColor::Amber),
            (_, false) => led(LedMode::Fast, LedColor::Red),
        },
    );
    d.set_led(Led::Primary, output_led(s.outputs.first()));
    d.set_led(Led::Backup, output_led(s.outputs.get(1)));
    d.tally = if s.streaming && !s.slate && any_connected { Tally::Red } else { Tally::Off };
    d
}

/// Reads the agent's state for [`desired`].
pub fn inputs(ctl: &Snapshot, fleet_online: Option<bool>) -> PanelInputs {
    let input = ctl.input_status();
    PanelInputs {
        streaming: ctl.is_streaming(),
        slate: input.is_some_and(|i| i.slate),
        content_fault: ctl.pipeline.as_ref().is_some_and(|p| {
            let c = p.content.status(std::time::Instant::now());
            c.black() || c.frozen() || c.silent()
        }),
        outputs: ctl.output_snapshots().into_iter().map(|s: OutputSnapshot| s.state).collect(),
        fleet_online,
        identifying: ctl.identifying(),
    }
}

/// The running panel link; stops when dropped or on shutdown.
#[derive(Debug)]
pub struct PanelDriver {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Shutdown,
    pub readings: SharedPanelReadings,
}

impl PanelDriver {
    /// How often LED state is recomputed.
    const TICK: Duration = Duration::from_millis(250);

    /// Starts driving the board at `port`. `fleet_online` is polled each
    /// tick (it returns `None` without fleet management).
    /// `readings` is where the board's figures go (telemetry reads them).
    pub fn start(
        port: PathBuf,
        snapshot: SnapshotReader,
        inbox: Inbox,
        readings: SharedPanelReadings,
        fleet_online: Box<dyn Fn() -> Option<bool> + Send>,
        shutdown: &Shutdown,
    ) -> std::io::Result<PanelDriver> {
        let stop = Shutdown::new();
        let (stop2, readings2, outer) = (stop.clone(), readings.clone(), shutdown.clone());
        let thread = std::thread::Builder::new().name("panel".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return warn!(error = %e, "front panel disabled: no runtime"),
            };
            rt.block_on(drive(port, Agent { snapshot, inbox }, fleet_online, readings2, stop2, outer));
        })?;
        Ok(PanelDriver { thread: Some(thread), stop, readings })
    }
}

impl Drop for PanelDriver {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The panel's two ways into the agent: what it is, and where changes go.
struct Agent {
    snapshot: SnapshotReader,
    inbox: Inbox,
}

async fn drive(
    port: PathBuf,
    agent: Agent,
    fleet_online: Box<dyn Fn() -> Option<bool> + Send>,
    readings: Arc<Mutex<PanelReadings>>,
    stop: Shutdown,
    shutdown: Shutdown,
) {
    let (link, mut events) = match PanelLink::spawn(&port, PanelLinkConfig::default()) {
        Ok(x) => x,
        Err(e) => return warn!(error = %e, "front panel disabled"),
    };
    info!(port = %port.display(), "front panel link started");
    let mut tick = tokio::time::interval(PanelDriver::TICK);
    while !stop.is_triggered() && !shutdown.is_triggered() {
        tokio::select! {
            _ = tick.tick() => {
                let state = inputs(&agent.snapshot.load(), fleet_online());
                link.set_desired(desired(&state));
                let mut r = readings.lock().unwrap_or_else(|p| p.into_inner());
                r.connected = link.status().connected;
            }
            ev = events.recv() => match ev {
                Some(ev) => on_event(ev, &agent, &readings),
                None => break,
            },
        }
    }
}

fn on_event(ev: PanelEvent, agent: &Agent, readings: &Mutex<PanelReadings>) {
    let mut r = readings.lock().unwrap_or_else(|p| p.into_inner());
    match ev {
        PanelEvent::Button { name, press: Press::Long } if name == "front" => {
            drop(r);
            let streaming = agent.snapshot.load().is_streaming();
            let cmd = if streaming { Command::StreamStop } else { Command::StreamStart };
            warn!(?cmd, "front-panel long press");
            // Posted, not awaited: the panel keeps its link serviced while
            // the controller starts or stops the pipeline.
            if !agent.inbox.post(Action::Command(cmd)) {
                warn!("front-panel command dropped: the agent is shutting down");
            }
        }
        PanelEvent::Button { name, press } => info!(%name, ?press, "front-panel button (no action)"),
        PanelEvent::Hello { firmware } => r.firmware = Some(firmware),
        PanelEvent::Temp { millicelsius } => r.temp_millicelsius = Some(millicelsius),
        PanelEvent::Fan { rpm } => r.fan_rpm = Some(rpm),
        PanelEvent::Psu { millivolts, milliamps } => (r.psu_millivolts, r.psu_milliamps) = (Some(millivolts), Some(milliamps)),
        PanelEvent::Connected => info!("front panel connected"),
        PanelEvent::Disconnected { reason } => warn!(%reason, "front panel disconnected; streaming goes on"),
        PanelEvent::Refused { seq, reason } => warn!(seq, %reason, "front panel refused a command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PanelInputs {
        PanelInputs {
            streaming: true,
            slate: false,
            content_fault: false,
            outputs: vec![OutputState::Connected, OutputState::Connected],
            fleet_online: Some(true),
            identifying: false,
        }
    }

    #[test]
    fn all_well_is_green_and_on_air() {
        let d = desired(&base());
        for &l in Led::ALL {
            assert_eq!(d.led(l), led(LedMode::On, LedColor::Green), "{l}");
        }
        assert_eq!(d.tally, Tally::Red);
    }

    #[test]
    fn each_fault_shows_on_its_own_led() {
        let d = desired(&PanelInputs { outputs: vec![OutputState::Connected, OutputState::Backoff], ..base() });
        assert_eq!(d.led(Led::Backup).mode, LedMode::Fast);
        assert_eq!(d.led(Led::Primary), led(LedMode::On, LedColor::Green));
        let d = desired(&PanelInputs { slate: true, ..base() });
        assert_eq!(d.led(Led::Power), led(LedMode::Blink, LedColor::Amber));
        assert_eq!(d.tally, Tally::Off, "the slate is not on air");
        let d = desired(&PanelInputs { streaming: false, ..base() });
        assert_eq!(d.led(Led::Power), led(LedMode::Blink, LedColor::Red));
        let d = desired(&PanelInputs { fleet_online: Some(false), ..base() });
        assert_eq!(d.led(Led::Network), led(LedMode::Blink, LedColor::Amber));
        let d = desired(&PanelInputs { outputs: vec![OutputState::Disabled], fleet_online: None, ..base() });
        assert_eq!(d.led(Led::Network), led(LedMode::Fast, LedColor::Red));
        assert_eq!(d.led(Led::Backup), LedState::OFF, "no second output");
    }

    #[test]
    fn black_frozen_or_silent_blinks_power_amber_fast_and_stays_on_air() {
        let d = desired(&PanelInputs { content_fault: true, ..base() });
        assert_eq!(d.led(Led::Power), led(LedMode::Fast, LedColor::Amber));
        assert_eq!(d.tally, Tally::Red);
        // The slate says more (no signal at all).
        let d = desired(&PanelInputs { content_fault: true, slate: true, ..base() });
        assert_eq!(d.led(Led::Power), led(LedMode::Blink, LedColor::Amber));
    }

    #[test]
    fn identify_overrides_everything() {
        let d = desired(&PanelInputs { identifying: true, streaming: false, ..base() });
        assert!(Led::ALL.iter().all(|&l| d.led(l) == led(LedMode::Fast, LedColor::Blue)));
        assert_eq!(d.tally, Tally::Green);
    }
}
