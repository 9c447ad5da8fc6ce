//! PanelLink against SimBoard on a real pseudo-terminal, reached through a
//! symlink that is re-pointed on replug like `/dev/serial/by-id`. Every wait
//! has a timeout.

#![cfg(test)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hal::panel::{
    HostCommand, Led, LedColor, LedMode, LedState, PanelEvent, PanelLink, PanelLinkConfig, PanelStatus, Press, SimBoard, Tally,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

fn config() -> PanelLinkConfig {
    PanelLinkConfig {
        ack_timeout: Duration::from_millis(200),
        ping_interval: Duration::from_millis(500),
        silence_limit: Duration::from_secs(3),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..PanelLinkConfig::default()
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    sim: SimBoard,
    link: PanelLink,
    events: mpsc::Receiver<PanelEvent>,
}

impl Rig {
    async fn start() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("usb-edge_panel-if00");
        let sim = SimBoard::start(&path, "sim-1.0").unwrap();
        let (link, events) = PanelLink::spawn(&path, config()).unwrap();
        let mut rig = Rig { _dir: dir, sim, link, events };
        rig.event("connected", |e| matches!(e, PanelEvent::Connected)).await;
        rig.status_until("in sync", |s| s.in_sync).await;
        rig
    }

    /// Waits for an event matching `want`, skipping others.
    async fn event(&mut self, what: &str, want: impl Fn(&PanelEvent) -> bool) -> PanelEvent {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if want(&e) => return e,
                Ok(Some(_)) => {}
                Ok(None) => panic!("event channel closed waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; status {:?}", self.link.status()),
            }
        }
    }

    async fn status_until(&self, what: &str, want: impl Fn(&PanelStatus) -> bool) -> PanelStatus {
        let mut rx = self.link.watch_status();
        let r = tokio::time::timeout(WAIT, rx.wait_for(|s| want(s))).await;
        match r {
            Ok(Ok(s)) => s.clone(),
            _ => panic!("timed out waiting for {what}; status {:?}", self.link.status()),
        }
    }

    async fn board_until(&self, what: &str, want: impl Fn(&hal::panel::SimState) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !want(&self.sim.state()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; board {:?}", self.sim.state());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn green_on() -> LedState {
    LedState::new(LedMode::On, Some(LedColor::Green))
}

#[tokio::test]
async fn led_commands_reach_the_board_and_are_acknowledged() {
    let rig = Rig::start().await;
    assert_eq!(rig.link.status().firmware.as_deref(), Some("sim-1.0"));
    rig.link.set_led(Led::Primary, green_on());
    rig.link.set_led(Led::Backup, LedState::new(LedMode::Blink, Some(LedColor::Amber)));
    rig.link.set_tally(Tally::Red);
    rig.board_until("LEDs shown", |b| {
        b.leds[Led::Primary.index()] == green_on() && b.leds[Led::Backup.index()].mode == LedMode::Blink && b.tally == Tally::Red
    })
    .await;
    rig.status_until("acknowledged", |s| s.in_sync).await;
    assert!(rig.sim.state().malformed.is_empty(), "{:?}", rig.sim.state().malformed);
}

#[tokio::test]
async fn long_press_arrives_as_an_event_and_garbage_is_ignored() {
    let mut rig = Rig::start().await;
    rig.sim.send_raw("\u{1}\u{2}garbage\nBTN\nOK notanumber\n").unwrap();
    rig.sim.send_raw(&format!("{}\n", "x".repeat(300))).unwrap();
    rig.sim.press("front", Press::Long).unwrap();
    let e = rig.event("button", |e| matches!(e, PanelEvent::Button { .. })).await;
    assert_eq!(e, PanelEvent::Button { name: "front".to_owned(), press: Press::Long });
    rig.sim.send(&hal::panel::BoardMessage::Temp { millicelsius: 41_500 }).unwrap();
    let e = rig.event("temp", |e| matches!(e, PanelEvent::Temp { .. })).await;
    assert_eq!(e, PanelEvent::Temp { millicelsius: 41_500 });
    assert!(rig.link.status().connected, "garbage does not drop the link");
}

#[tokio::test]
async fn unplug_reports_disconnected_and_keeps_retrying_without_blocking() {
    let mut rig = Rig::start().await;
    rig.sim.unplug().await;
    rig.event("disconnected", |e| matches!(e, PanelEvent::Disconnected { .. })).await;
    let status = rig.status_until("not connected", |s| !s.connected).await;
    assert!(status.last_error.is_some());

    // Setters return at once while the board is gone.
    let t = Instant::now();
    for i in 0..1000 {
        let mode = if i % 2 == 0 { LedMode::On } else { LedMode::Off };
        rig.link.set_led(Led::Network, LedState::new(mode, None));
        rig.link.set_tally(if i % 2 == 0 { Tally::Green } else { Tally::Off });
    }
    assert!(t.elapsed() < Duration::from_millis(100), "setters blocked for {:?}", t.elapsed());

    let attempts = rig.link.status().open_attempts;
    rig.status_until("three more open attempts", |s| s.open_attempts >= attempts + 3).await;
    assert!(!rig.link.status().connected);
}

#[tokio::test]
async fn replug_at_the_same_path_resends_the_full_state() {
    let mut rig = Rig::start().await;
    rig.link.set_led(Led::Primary, green_on());
    rig.link.set_tally(Tally::Red);
    rig.status_until("in sync", |s| s.in_sync).await;
    rig.board_until("tally red", |b| b.tally == Tally::Red).await;

    rig.sim.unplug().await;
    rig.event("disconnected", |e| matches!(e, PanelEvent::Disconnected { .. })).await;
    // Changed while unplugged: must arrive after the replug too.
    rig.link.set_led(Led::Network, LedState::new(LedMode::Fast, Some(LedColor::Blue)));
    rig.sim.clear_log();
    rig.sim.replug().unwrap();
    // A new pty (the kernel may reuse the number) behind the same link.
    assert_eq!(std::fs::read_link(rig.sim.link()).ok().as_deref(), rig.sim.pts());
    rig.event("reconnected", |e| matches!(e, PanelEvent::Connected)).await;
    rig.status_until("in sync again", |s| s.in_sync && s.connections == 2).await;

    let want = rig.link.desired();
    let board = rig.sim.state();
    assert_eq!(board.leds, want.leds);
    assert_eq!(board.tally, Tally::Red);
    // Everything was sent, including the LEDs that are off.
    for led in Led::ALL {
        assert!(
            board.received.iter().any(|c| matches!(c, HostCommand::Led { led: l, .. } if l == led)),
            "{led} not re-sent: {:?}",
            board.received
        );
    }
    assert!(board.received.iter().any(|c| matches!(c, HostCommand::Tally { .. })));
}

#[tokio::test]
async fn board_reset_without_unplug_resends_the_state() {
    let mut rig = Rig::start().await;
    rig.link.set_led(Led::Power, green_on());
    rig.board_until("power on", |b| b.leds[Led::Power.index()] == green_on()).await;
    rig.sim.reset().unwrap();
    assert_eq!(rig.sim.state().leds[Led::Power.index()], LedState::OFF);
    rig.event("hello", |e| matches!(e, PanelEvent::Hello { .. })).await;
    rig.board_until("power on again", |b| b.leds[Led::Power.index()] == green_on()).await;
    assert_eq!(rig.link.status().connections, 1, "no reconnect needed");
}

#[tokio::test]
async fn missing_port_is_retried_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (link, _events) = PanelLink::spawn(dir.path().join("absent"), config()).unwrap();
    link.set_led(Led::Power, green_on());
    let mut rx = link.watch_status();
    let s = tokio::time::timeout(WAIT, rx.wait_for(|s| s.open_attempts >= 3)).await.unwrap().unwrap().clone();
    assert!(!s.connected && s.last_error.as_deref().is_some_and(|e| e.contains("absent")), "{s:?}");
}

#[test]
fn spawning_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(PanelLink::spawn("/nonexistent", PanelLinkConfig::default()).is_err());
    assert!(SimBoard::start("/nonexistent/link", "x").is_err());
}
