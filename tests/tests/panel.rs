//! The front panel with the real agent: a board simulated on a
//! pseudo-terminal (hal::panel::SimBoard, reachable through a by-id style
//! symlink) and real libsrt receivers.

#![cfg(test)]

use std::time::Duration;

use edge_tests::{config_toml, free_udp_port, record, srt_output, wait_for, AgentProc, SrtListenerPeer};
use hal::panel::{Led, LedColor, LedMode, LedState, Press, SimBoard, Tally};
use ts_tools::TsAnalyzer;

const CONNECT: Duration = Duration::from_secs(20);

fn green() -> LedState {
    LedState::new(LedMode::On, Some(LedColor::Green))
}

#[test]
fn leds_follow_the_stream_a_long_press_toggles_it_and_unplugging_never_touches_it() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("usb-edge-panel-if00");
    let mut board = {
        let _guard = rt.enter();
        SimBoard::start(&link, "sim-1.0").unwrap()
    };
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let primary = SrtListenerPeer::start(p1, 200, None, &dir.path().join("p.ts"));
    let backup = SrtListenerPeer::start(p2, 200, None, &dir.path().join("b.ts"));
    let outputs = srt_output("primary", p1, 200, None) + &srt_output("backup", p2, 200, None);
    let config = config_toml("panel-01", 1200, &outputs) + &format!("\n[panel]\nport = \"{}\"\n", link.display());
    let mut agent = AgentProc::start(dir.path(), &config);
    agent.wait_output_state("primary", "connected", CONNECT);
    agent.wait_output_state("backup", "connected", CONNECT);

    let leds = |b: &SimBoard| b.state().leds;
    wait_for("all LEDs green and the tally on air", CONNECT, || {
        let s = board.state();
        (s.leds.iter().all(|l| *l == green()) && s.tally == Tally::Red).then_some(())
    });

    // The primary receiver goes away: only its LED says so.
    drop(primary);
    wait_for("the primary LED to show the failure", CONNECT, || {
        let l = leds(&board);
        (l[Led::Primary.index()] != green() && l[Led::Backup.index()] == green()).then_some(())
    });
    assert_eq!(board.state().tally, Tally::Red, "still on air through the backup");

    // Unplug the board for 3 s, then plug it back: the stream never notices,
    // and the board gets its whole state again after its HELLO.
    let before = backup.received();
    rt.block_on(board.unplug());
    wait_for("3 s of TS with the board unplugged", Duration::from_secs(30), || (backup.received() > before + 450_000).then_some(()));
    {
        let _guard = rt.enter();
        board.replug().unwrap();
    }
    wait_for("the board resynchronised after replug", CONNECT, || {
        let l = leds(&board);
        (l[Led::Power.index()] == green() && l[Led::Backup.index()] == green()).then_some(())
    });
    let status = agent.status().unwrap();
    assert_eq!(status["pipeline_restarts"], 0, "{status}");
    let backup_out = status["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "backup").cloned().unwrap();
    assert_eq!(backup_out["connects"], 1, "backup never reconnected: {backup_out}");
    let mut a = TsAnalyzer::new();
    a.push(&std::fs::read(&backup.output).unwrap());
    assert_eq!(a.cc_errors(), 0, "backup TS through the unplug");

    // A long press stops the stream; another starts it again.
    board.press("front", Press::Long).unwrap();
    wait_for("the stream stopped by the long press", Duration::from_secs(10), || agent.status().filter(|s| s["streaming"] == false));
    wait_for("the power LED to blink red", Duration::from_secs(5), || {
        (leds(&board)[Led::Power.index()] == LedState::new(LedMode::Blink, Some(LedColor::Red))).then_some(())
    });
    assert_eq!(board.state().tally, Tally::Off);
    let stopped_at = backup.received();
    board.press("front", Press::Long).unwrap();
    wait_for("the stream back after the second long press", Duration::from_secs(15), || {
        (backup.received() > stopped_at + 100_000).then_some(())
    });
    wait_for("the power LED green again", Duration::from_secs(10), || (leds(&board)[Led::Power.index()] == green()).then_some(()));
    agent.stop();
    record("panel", "unplugged 3 s: backup CC errors / reconnects / pipeline restarts", "0 / 0 / 0");
}
