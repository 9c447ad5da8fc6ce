//! An SRT rendezvous output against a real peer: libsrt's
//! `srt-live-transmit` in rendezvous mode stands in for a peer decoder
//! behind its own firewall; both sides bind a known port and call each
//! other. A TS checker judges what the peer received.

#![cfg(test)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::{config_toml, free_udp_port, record, wait_for, AgentProc, ChildGuard};
use ts_tools::TsAnalyzer;

const PASS: &str = "correct-horse-battery-staple";
const LATENCY_MS: u32 = 200;
const CONNECT: Duration = Duration::from_secs(15);
const TEST: &str = "srt_rendezvous";

/// `srt-live-transmit` bound to `port`, meeting the agent at `agent_port`,
/// writing what it receives to `output`. It does not reconnect (`-a:no`).
struct RendezvousPeer {
    output: PathBuf,
    proc: ChildGuard,
}

impl RendezvousPeer {
    fn start(port: u16, agent_port: u16, output: &Path) -> Self {
        // srt-live-transmit: host:port is the peer, `port=` the local port.
        let uri =
            format!("srt://127.0.0.1:{agent_port}?mode=rendezvous&port={port}&latency={LATENCY_MS}&passphrase={PASS}&pbkeylen=16");
        let out = std::fs::File::create(output).unwrap_or_else(|e| panic!("create {}: {e}", output.display()));
        let proc = ChildGuard::spawn(
            "srt-live-transmit",
            Command::new("srt-live-transmit")
                .args(["-q", "-a:no", &uri, "file://con"])
                .stdout(Stdio::from(out))
                .stderr(Stdio::null())
                .stdin(Stdio::null()),
        )
        .unwrap_or_else(|e| panic!("{e} (install srt-tools)"));
        RendezvousPeer { output: output.to_owned(), proc }
    }

    fn received(&self) -> u64 {
        std::fs::metadata(&self.output).map(|m| m.len()).unwrap_or(0)
    }
}

fn analyze(file: &Path) -> TsAnalyzer {
    let mut a = TsAnalyzer::new();
    a.push(&std::fs::read(file).unwrap_or_default());
    a
}

/// The rendezvous output meets its peer, streams with the caller's
/// statistics, and after the peer is killed (SIGKILL, as with a cut cable)
/// and started again on the same port, meets it again.
#[test]
fn rendezvous_output_meets_its_peer_and_meets_it_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let (agent_port, peer_port) = (free_udp_port(), free_udp_port());
    let output = format!(
        "[[outputs]]\nname = \"peer\"\nkind = \"srt\"\nmode = \"rendezvous\"\naddress = \"127.0.0.1:{peer_port}\"\n\
         bind = \"127.0.0.1:{agent_port}\"\nlatency_ms = {LATENCY_MS}\npassphrase = \"{PASS}\"\npbkeylen = 16\n"
    );
    let mut agent = AgentProc::start(dir.path(), &config_toml("rendezvous-01", 1500, &output));

    let mut peer = RendezvousPeer::start(peer_port, agent_port, &file("p1.ts"));
    agent.wait_output_state("peer", "connected", CONNECT);
    wait_for("the peer to receive", CONNECT, || (peer.received() > 200_000).then_some(()));
    let o =
        wait_for("SRT statistics", CONNECT, || agent.output("peer").filter(|o| o["srt"]["packets_sent"].as_i64().unwrap_or(0) > 0));
    assert_eq!(o["srt"]["negotiated_latency_ms"], LATENCY_MS, "{o}");

    // Killed: the agent notices when libsrt's idle timeout expires and
    // calls again with the caller's backoff; the new peer answers.
    peer.proc.kill();
    let restarted = Instant::now();
    let peer = RendezvousPeer::start(peer_port, agent_port, &file("p2.ts"));
    wait_for("the restarted peer to receive", CONNECT, || (peer.received() > 0).then_some(()));
    record(TEST, "data_after_peer_restart_s", format!("{:.2}", restarted.elapsed().as_secs_f64()));
    wait_for("the restarted peer to keep receiving", CONNECT, || (peer.received() > 200_000).then_some(()));
    let o = agent.output("peer").unwrap();
    assert_eq!((o["state"].as_str(), o["connects"].as_u64()), (Some("connected"), Some(2)), "{o}");

    agent.stop();
    assert!(!agent.log().contains(PASS), "the passphrase leaked into the log");
    for name in ["p1.ts", "p2.ts"] {
        let ts = analyze(&file(name));
        record(TEST, &format!("{name}_cc_errors"), ts.cc_errors());
        assert_eq!((ts.sync_errors, ts.cc_errors()), (0, 0), "{name} damaged");
        assert!(ts.packets > 1_000, "{name}: only {} TS packets", ts.packets);
    }
}
