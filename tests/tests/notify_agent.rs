//! The real `edge-agent` binary under a fake systemd: a `NOTIFY_SOCKET`
//! datagram socket and `WATCHDOG_USEC`, as `Type=notify` + `WatchdogSec=`
//! give it. Expects READY=1, STATUS= lines and regular WATCHDOG=1 pings
//! while it streams to a real srt-live-transmit, then STOPPING=1 on SIGTERM.

#![cfg(test)]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::{agent_bin, config_toml, free_udp_port, record, srt_output, ChildGuard, SrtListenerPeer};

#[test]
fn agent_binary_sends_ready_status_and_watchdog_pings() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let port = free_udp_port();
    let _peer = SrtListenerPeer::start(port, 200, None, &dir.path().join("out.ts"));
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, config_toml("notify-01", 800, &srt_output("primary", port, 200, None)))
        .unwrap_or_else(|e| panic!("write config: {e}"));
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap_or_else(|e| panic!("bind notify socket: {e}"));
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap_or_else(|e| panic!("timeout: {e}"));

    let started = Instant::now();
    let child = Command::new(agent_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        // 2 s: the agent pings every second (half the interval).
        .env("WATCHDOG_USEC", "2000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start edge-agent: {e}"));
    let mut agent = ChildGuard::new("edge-agent", child);

    let (mut ready, mut status, mut pings) = (None, 0usize, 0usize);
    let deadline = started + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !(ready.is_some() && status >= 1 && pings >= 3) {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        // One datagram may carry several assignments, one per line.
        for line in String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).lines() {
            match line {
                "READY=1" => ready = ready.or(Some(started.elapsed())),
                "WATCHDOG=1" => pings += 1,
                l if l.starts_with("STATUS=") => status += 1,
                _ => {}
            }
        }
    }
    let ready = ready.unwrap_or_else(|| panic!("no READY=1 within 60 s"));
    assert!(status >= 1, "no STATUS= line");
    assert!(pings >= 3, "only {pings} WATCHDOG=1 pings");
    record("notify_agent", "start to READY=1 (ms)", ready.as_millis());

    agent.signal("TERM");
    let mut stopping = false;
    let stop_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < stop_deadline && !stopping {
        if let Ok(n) = sock.recv(&mut buf) {
            stopping = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).lines().any(|l| l == "STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    assert!(agent.wait_timeout(Duration::from_secs(10)).is_some(), "agent did not exit after SIGTERM");
}
