//! `Notifier::from_env` as systemd runs it: `NOTIFY_SOCKET`, `WATCHDOG_USEC`
//! and `WATCHDOG_PID` in the environment of a fresh process.
//!
//! Environment variables are process-wide, so the notifier runs in a child:
//! this test binary again, running only the ignored `child_uses_the_environment`
//! test. The unit tests in `agent/src/notify.rs` cover the messages and the
//! watchdog guard; `notify_agent.rs` runs the real agent binary end to end.

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use agent::notify::{Notifier, WatchdogGuard};
    use edge_tests::ChildGuard;

    const CHILD: &str = "tests::child_uses_the_environment";
    /// Set for the child only, so `cargo test -- --ignored` (CI's VM run)
    /// passes over the child test instead of failing it.
    const CHILD_MARK: &str = "EDGE_TESTS_NOTIFY_CHILD";

    /// Runs the child with `env` and returns every message it sent, in order,
    /// up to and including STOPPING=1.
    fn messages_from_child(env: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", CHILD, "--ignored", "--test-threads=1", "--quiet"])
            .env("NOTIFY_SOCKET", &path)
            .env(CHILD_MARK, "1")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            // Piped, not inherited, so the child's test-harness lines do not mix
            // with ours; shown on failure. Its output is far below a pipe's
            // capacity, so it cannot block on a full pipe.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = ChildGuard::new("notify child", cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = m == "STOPPING=1\n";
                got.push(m);
                if done {
                    break;
                }
            }
        }
        let status = child.wait_timeout(Duration::from_secs(10));
        let mut output = String::new();
        // Read only after the child exited: until then the pipes have no EOF.
        if status.is_some() {
            if let Some(mut p) = child.child.stdout.take() {
                let _ = p.read_to_string(&mut output);
            }
            if let Some(mut p) = child.child.stderr.take() {
                let _ = p.read_to_string(&mut output);
            }
        }
        assert_eq!(got.last().map(String::as_str), Some("STOPPING=1\n"), "child did not finish: {got:?}\n{output}");
        assert!(status.is_some_and(|s| s.success()), "child failed: {status:?}\n{output}");
        got
    }

    #[test]
    fn watchdog_from_env_pings_at_half_the_interval() {
        let got = messages_from_child(&[("WATCHDOG_USEC", "200000")]);
        assert_eq!(got[0], "READY=1\nSTATUS=watchdog every Some(100ms)\n");
        let pings = got.iter().filter(|m| *m == "WATCHDOG=1\n").count();
        // The child ticks for 600 ms: an immediate ping, then one per 100 ms.
        assert!((3..=8).contains(&pings), "{pings} pings: {got:?}");
    }

    #[test]
    fn watchdog_for_another_pid_is_ignored() {
        // WATCHDOG_PID names the process systemd expects pings from; pid 1
        // is never this child.
        let got = messages_from_child(&[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")]);
        assert_eq!(got, ["READY=1\nSTATUS=watchdog every None\n", "STOPPING=1\n"]);
    }

    #[test]
    fn no_watchdog_without_watchdog_usec() {
        let got = messages_from_child(&[]);
        assert_eq!(got, ["READY=1\nSTATUS=watchdog every None\n", "STOPPING=1\n"]);
    }

    #[test]
    #[ignore = "child process of the tests above"]
    fn child_uses_the_environment() {
        if std::env::var_os(CHILD_MARK).is_none() {
            return;
        }
        let n = Notifier::from_env();
        assert!(n.is_enabled(), "NOTIFY_SOCKET not set");
        n.ready(&format!("watchdog every {:?}", n.watchdog_interval()));
        if let Some(guard) = WatchdogGuard::start(n.clone(), || true) {
            let end = Instant::now() + Duration::from_millis(600);
            while Instant::now() < end {
                guard.tick();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        n.stopping();
    }
}
