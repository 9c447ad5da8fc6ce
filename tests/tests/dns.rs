//! DNS is an environment, not configuration: with the box's DNS server
//! down, the agent runs, streams to the outputs given as IP addresses,
//! reports the named output's resolution failure as that output's error,
//! and reaches it by itself once DNS answers again.
//!
//! The whole scene runs in a network namespace the test makes, with its own
//! `resolv.conf` (`ip netns exec` mounts `/etc/netns/NAME/resolv.conf`)
//! pointing at the namespace's loopback, where a DNS responder the test
//! starts and stops stands in for the venue's DNS. Nothing leaves the box.
// An integration test crate is test code throughout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use edge_tests::{config_toml, srt_output, wait_for, AgentProc, ChildGuard};
use ts_tools::TsAnalyzer;

/// The namespace, its resolver file and everything run in it; removed on
/// every exit path.
struct Netns {
    name: String,
    etc: PathBuf,
}

impl Netns {
    fn create(name: &str) -> Netns {
        let etc = Path::new("/etc/netns").join(name);
        let ns = Netns { name: name.to_owned(), etc };
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        assert!(Command::new("ip").args(["netns", "add", name]).status().unwrap().success(), "ip netns add");
        assert!(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]).status().unwrap().success());
        std::fs::create_dir_all(&ns.etc).unwrap();
        // One attempt, one second: the agent's connect loop retries anyway.
        std::fs::write(ns.etc.join("resolv.conf"), "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n").unwrap();
        ns
    }

    fn exec(&self) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.name]
    }

    fn spawn(&self, what: &str, args: &[&str], stdout: Stdio) -> ChildGuard {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args).stdin(Stdio::null()).stdout(stdout).stderr(Stdio::null());
        ChildGuard::spawn(what, &mut cmd).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

fn srt_listener(ns: &Netns, port: u16, out: &Path) -> ChildGuard {
    let file = std::fs::File::create(out).unwrap();
    let uri = format!("srt://127.0.0.1:{port}?mode=listener&latency=300");
    ns.spawn("srt-live-transmit", &["srt-live-transmit", "-q", &uri, "file://con"], Stdio::from(file))
}

fn dns_server(ns: &Netns, name: &str) -> ChildGuard {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/dns_server.py");
    let mut g = ns.spawn(
        "dns_server.py",
        &["python3", script.to_str().unwrap(), "127.0.0.1", "53", &format!("{name}=127.0.0.1")],
        Stdio::piped(),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(g.take_stdout().unwrap()), &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "the DNS responder did not start");
    g
}

#[test]
fn dns_down_at_start_is_an_output_error_and_recovers_when_dns_returns() {
    if !test_support::running_as_root() {
        eprintln!("SKIPPED: needs root for a network namespace (CI runs as root)");
        return;
    }
    let ns = Netns::create(&format!("edge-dns-{}", std::process::id()));
    let dir = tempfile::tempdir().unwrap();
    let (p_ip, p_name) = (9101, 9102);
    let _primary = srt_listener(&ns, p_ip, &dir.path().join("primary.ts"));
    let backup_ts = dir.path().join("backup.ts");
    let _backup = srt_listener(&ns, p_name, &backup_ts);
    let host = "ingest-b.venue.test";
    let outputs = srt_output("primary", p_ip, 300, None)
        + &format!("[[outputs]]\nname = \"backup\"\nkind = \"srt\"\naddress = \"{host}:{p_name}\"\nlatency_ms = 300\n\n");
    let mut agent = AgentProc::start_with(dir.path(), &config_toml("dns-01", 1500, &outputs), &ns.exec());

    // DNS down: the agent runs and streams to the address it has.
    agent.wait_output_state("primary", "connected", Duration::from_secs(20));
    let err = wait_for("the backup's resolution failure", Duration::from_secs(20), || {
        agent.output("backup")?["last_error"].as_str().filter(|e| e.contains("cannot resolve")).map(str::to_owned)
    });
    assert!(err.contains(host), "the error names the host: {err}");
    assert!(agent.proc.exited().is_none(), "the agent must not exit on DNS failure:\n{}", agent.log());
    assert_eq!(agent.status().unwrap()["streaming"], true);
    let down_for = wait_for("OUTPUT_DOWN's threshold (5 s down)", Duration::from_secs(20), || {
        agent.output("backup")?["down_for_s"].as_f64().filter(|d| *d > 5.0)
    });

    // DNS back: the output resolves on its next attempt and connects.
    let _dns = dns_server(&ns, host);
    let o = agent.wait_output_state("backup", "connected", Duration::from_secs(20));
    println!("FIGURE backup_down_before_dns_returned_s={down_for:.1}");
    edge_tests::record(
        "dns",
        "named output connected after DNS returned (s, backoff cap 5 s)",
        format!("{:.1}", o["state_age_s"].as_f64().unwrap_or(0.0)),
    );
    wait_for("the backup to receive", Duration::from_secs(20), || (std::fs::metadata(&backup_ts).ok()?.len() > 200_000).then_some(()));
    assert_eq!(agent.output("primary").unwrap()["connects"], 1, "the primary never reconnected");
    agent.stop();
    let mut ts = TsAnalyzer::new();
    ts.push(&std::fs::read(dir.path().join("primary.ts")).unwrap());
    assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "the primary's stream was disturbed");
    assert!(ts.packets > 1000, "{} packets", ts.packets);
}
