//! Real peers: libsrt's `srt-live-transmit` as the SRT listener (what a
//! MediaConnect `srt-listener` source runs) and `ffprobe` as the judge of the
//! transport stream.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ChildGuard;

/// An `srt-live-transmit` listener writing what it receives to a file.
#[derive(Debug)]
pub struct SrtListenerPeer {
    pub port: u16,
    pub output: PathBuf,
    pub stats: PathBuf,
    pub proc: ChildGuard,
}

impl SrtListenerPeer {
    /// Starts a listener on `port` with the given latency and optional
    /// passphrase/key length; received TS goes to `output`, JSON stats every
    /// second to `output` + ".stats.json".
    pub fn start(port: u16, latency_ms: u32, secret: Option<(&str, u8)>, output: &Path) -> Self {
        Self::start_at("127.0.0.1", port, latency_ms, secret, output)
    }

    /// As [`Self::start`], listening on another loopback address (an
    /// emulated flow's ingest IP such as moto's `127.0.0.0`).
    pub fn start_at(ip: &str, port: u16, latency_ms: u32, secret: Option<(&str, u8)>, output: &Path) -> Self {
        let mut uri = format!("srt://{ip}:{port}?mode=listener&latency={latency_ms}");
        if let Some((pass, keylen)) = secret {
            uri.push_str(&format!("&passphrase={pass}&pbkeylen={keylen}"));
        }
        let stats = output.with_extension("stats.json");
        let out = std::fs::File::create(output).unwrap_or_else(|e| panic!("create {}: {e}", output.display()));
        let child = Command::new("srt-live-transmit")
            .args(["-q", "-s:1000", "-pf:json", &format!("-statsout:{}", stats.display()), &uri, "file://con"])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start srt-live-transmit (install srt-tools): {e}"));
        SrtListenerPeer { port, output: output.to_owned(), stats, proc: ChildGuard::new("srt-live-transmit", child) }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        std::fs::metadata(&self.output).map(|m| m.len()).unwrap_or(0)
    }

    /// The most recent JSON stats line, if any.
    pub fn last_stats(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&self.stats).ok()?;
        text.lines().rev().find_map(|l| serde_json::from_str(l).ok())
    }
}

/// An `srt-live-transmit` caller pulling from an SRT listener (what a
/// MediaLive `SRT_CALLER` input or a MediaConnect `srt-caller` source runs),
/// writing what it receives to a file. It does not reconnect (`-a:no`): a
/// caller that is dropped or refused exits, and a test starts a new one.
#[derive(Debug)]
pub struct SrtCallerPeer {
    pub port: u16,
    pub output: PathBuf,
    pub proc: ChildGuard,
}

impl SrtCallerPeer {
    /// Calls `127.0.0.1:port` with the given latency, optional
    /// passphrase/key length and optional stream id; received TS goes to
    /// `output`.
    pub fn start(port: u16, latency_ms: u32, secret: Option<(&str, u8)>, stream_id: Option<&str>, output: &Path) -> Self {
        let mut uri = format!("srt://127.0.0.1:{port}?mode=caller&latency={latency_ms}");
        if let Some((pass, keylen)) = secret {
            uri.push_str(&format!("&passphrase={pass}&pbkeylen={keylen}"));
        }
        if let Some(id) = stream_id {
            uri.push_str(&format!("&streamid={id}"));
        }
        let out = std::fs::File::create(output).unwrap_or_else(|e| panic!("create {}: {e}", output.display()));
        let child = Command::new("srt-live-transmit")
            .args(["-q", "-a:no", &uri, "file://con"])
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start srt-live-transmit (install srt-tools): {e}"));
        SrtCallerPeer { port, output: output.to_owned(), proc: ChildGuard::new("srt-live-transmit", child) }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        std::fs::metadata(&self.output).map(|m| m.len()).unwrap_or(0)
    }
}

/// `ffprobe` of a TS file: programs, streams and per-packet sizes.
pub fn ffprobe(file: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(extra)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffprobe (install ffmpeg): {e}"));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ffprobe output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}
