//! A front-panel board simulated on a pseudo-terminal, to run beside the
//! demo or a bench agent: it answers the agent's commands, prints the LEDs
//! and the tally whenever they change, and presses its button on a signal.
//!
//! ```text
//! panel-sim /tmp/edge-panel          # the agent's [panel] port = "/tmp/edge-panel"
//! kill -USR1 <pid>                   # long press on `front` (toggles streaming)
//! kill -USR2 <pid>                   # unplug, or plug back in
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hal::panel::{Led, LedState, Press, SimBoard, SimState};
use tokio::signal::unix::{signal, SignalKind};

fn led_text(l: LedState) -> String {
    match l.color {
        Some(c) if l.mode.as_str() != "off" => format!("{}/{}", l.mode, c),
        _ => l.mode.to_string(),
    }
}

fn describe(s: &SimState) -> String {
    let leds: Vec<String> = Led::ALL.iter().map(|&l| format!("{l} {:<11}", led_text(s.leds[l.index()]))).collect();
    format!("panel  {}  tally {}", leds.join("  "), s.tally)
}

async fn run(link: PathBuf) -> Result<(), String> {
    let mut board = SimBoard::start(&link, "panel-sim-1").map_err(|e| e.to_string())?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    println!("panel-sim: board on {} (USR1: long press, USR2: unplug/plug)", link.display());
    let mut shown = String::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = if board.is_plugged() { describe(&board.state()) } else { "panel  (unplugged)".to_owned() };
                if now != shown {
                    println!("{now}");
                    shown = now;
                }
            }
            _ = usr1.recv() => {
                println!("panel-sim: long press on `front`");
                if let Err(e) = board.press("front", Press::Long) {
                    println!("panel-sim: press failed: {e}");
                }
            }
            _ = usr2.recv() => {
                if board.is_plugged() {
                    board.unplug().await;
                } else if let Err(e) = board.replug() {
                    println!("panel-sim: replug failed: {e}");
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    board.unplug().await;
    Ok(())
}

fn main() -> ExitCode {
    let Some(link) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: panel-sim LINK");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("panel-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(link)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("panel-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
