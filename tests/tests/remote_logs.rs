//! `edgectl logs` against the real agent and a real mosquitto: the
//! start-up line comes back, a configured passphrase never does, and
//! `--follow` prints a line the agent logs after it started.

#![cfg(test)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edge_tests::broker::{free_tcp_port, Broker};
use edge_tests::{bin_dir, config_toml, free_udp_port, srt_output, wait_for, AgentProc, ChildGuard};

const PASS: &str = "remote-logs-never-shown-42";
const DEVICE: &str = "agent-logs";

fn edgectl(port: u16, args: &[&str]) -> (i32, String, String) {
    edge_tests::edgectl::run(edge_tests::edgectl::plain(port, 5), args, None)
}

#[test]
fn edgectl_logs_reads_the_real_agents_log_without_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _broker = Broker::start(dir.path(), port);
    // An encrypted SRT output nobody listens to: the passphrase is in the
    // configuration and the agent keeps logging its connection attempts.
    let outputs = srt_output("primary", free_udp_port(), 200, Some((PASS, 16)));
    let state = dir.path().join("state");
    let config = config_toml(DEVICE, 800, &outputs)
        + &format!(
            "\n[fleet]\nbroker = \"127.0.0.1:{port}\"\ninsecure_plaintext = true\ndevice_id = \"{DEVICE}\"\nstate_dir = \"{}\"\n",
            state.display()
        );
    let mut agent = AgentProc::start(dir.path(), &config);
    wait_for("the device online", Duration::from_secs(20), || {
        let (code, out, _) = edgectl(port, &["status", DEVICE]);
        (code == 0 && out.starts_with(&format!("{DEVICE}: online"))).then_some(())
    });

    // Everything since before the start: the start-up line is there.
    let (code, out, err) = edgectl(port, &["logs", DEVICE, "--since", "5m"]);
    assert_eq!(code, 0, "{out}{err}");
    println!("{out}");
    assert!(out.contains("encoder chosen"), "no start-up line: {out}{err}");
    assert!(!out.contains(PASS), "the passphrase came back through edgectl logs");
    assert!(out.lines().all(|l| l.contains("Z ") && l.contains(": ")), "not `TS LEVEL TARGET: MSG` lines: {out}");
    // The newest lines, as JSON documents.
    let (code, out, err) = edgectl(port, &["logs", DEVICE, "--max", "5", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let lines = doc["result"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 5, "{doc}");
    assert!(doc["result"]["next_seq"].as_u64().unwrap() > lines[0]["seq"].as_u64().unwrap(), "{doc}");
    // The device's parser bounds --max: a usage error, nothing sent.
    let (code, _, err) = edgectl(port, &["logs", DEVICE, "--max", "5000"]);
    assert_eq!(code, 2, "{err}");

    // --follow prints a line logged after it started.
    let mut follow = Command::new(bin_dir().join("edgectl"));
    follow
        .args(["--broker", &format!("127.0.0.1:{port}"), "--insecure-plaintext", "--timeout", "5", "logs", DEVICE, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut follower = ChildGuard::spawn("edgectl logs --follow", &mut follow).unwrap();
    let stdout = follower.take_stdout().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    seen.push(rx.recv_timeout(Duration::from_secs(10)).expect("no first line from --follow"));
    let (code, out, err) = edgectl(port, &["cmd", DEVICE, "identify", "duration_s=1"]);
    assert_eq!(code, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains("IDENTIFY requested");
                seen.push(l);
                if hit {
                    break;
                }
            }
            Err(_) => panic!("--follow never printed the IDENTIFY line; it printed:\n{}", seen.join("\n")),
        }
    }
    follower.kill();
    println!("--follow:\n{}", seen.join("\n"));
    agent.stop();

    let everything = seen.join("\n");
    assert!(!everything.contains(PASS), "the passphrase came back through edgectl logs");
    assert!(!agent.log().contains(PASS), "the passphrase is in the agent's own log");
}
