//! edge-bench: CPU cost of the agent's outputs, measured side by side with
//! the reference tools in one run and printed as ratios.
//!
//! # Background
//! The project's rule: performance is measured in benchmarks, not asserted in
//! timed tests. Two issues set the goals:
//! - **SRT** (`edge-bench srt`): CPU seconds per Mbit/s of the agent's two
//!   SRT outputs versus `srt-live-transmit` relaying the same TS at the same
//!   rate to the same kind of listener. Goal ≤ 1.0×.
//! - **FEC** (`edge-bench fec`): CPU per Mbit/s of the agent's RTP-FEC output
//!   versus ffmpeg's `prompeg` and GStreamer's `rtpst2022-1-fecenc` on the
//!   same TS, plus the raw throughput of the sans-IO packetiser and FEC
//!   encoder in Gbit/s per core. Goal: at least 3× cheaper than ffmpeg.
//!
//! # Method
//! - **The agent's real code, in its own process.** The bench re-executes
//!   itself (`srt-agent-child`, `fec-agent-child`); the child builds the
//!   agent's configuration from TOML text (`agent::config::from_str`), its
//!   `FanOut` and `OutputHandle`s exactly as the agent does, and publishes
//!   paced `TsChunk`s as the agent's GStreamer appsink would. Its CPU is then
//!   the outputs' alone (plus the producer thread, which is reported).
//! - **Same input, same rate.** SRT: synthetic but valid TS (sync byte, one
//!   PID, running continuity counter, pseudo-random payload so AES works on
//!   realistic bytes), 7 packets per 1316-byte chunk, at a constant rate
//!   (`--mbps`, default 20) for `--seconds` (default 20). The reference relays
//!   get the same chunks over UDP from the bench. FEC: one file made with
//!   ffmpeg (720p30 x264 8 Mbit/s + AAC); ffmpeg (`-re`) and gst (tsparse
//!   timestamps, `udpsink sync=true`) play it in real time, the agent child
//!   is fed its chunks at the file's average rate. By default chunks arrive
//!   one at a time, evenly spaced; `--burst-ms 33` instead sends each 33 ms
//!   worth at once, as a muxer does per 30 fps frame (both sides alike).
//! - **CPU from `/proc`.** utime + stime of `/proc/<pid>/stat` in clock ticks
//!   (`getconf CLK_TCK`, normally 100, so 10 ms resolution), summed over all
//!   threads (libsrt's included); peak RSS from `VmHWM` in
//!   `/proc/<pid>/status`. SRT reads CPU at feed start and 1 s after feed
//!   end; FEC samples every 20 ms and counts from just before the first
//!   media packet to exit (a zombie's `stat` still holds its final times).
//! - **Sequential sides.** On a 2-core box, running sides concurrently makes
//!   them compete for cores and caches; each side (and each FEC sender) runs
//!   alone, in a fixed order, in the same invocation.
//! - **Delivery is checked**, not assumed: SRT receivers are
//!   `srt-live-transmit` listeners whose output the bench counts, and each
//!   output must deliver ≥ 99 % of its bytes (else exit status 2 when the
//!   agent fell short, 3 when only the reference did: the agent is fine but
//!   that run's CPU comparison is not valid); FEC
//!   receivers are plain UDP sockets counting packets per port (P, P+2, P+4).
//!
//! # Caveats
//! - Everything runs on 127.0.0.1: no real NIC, no loss, tiny RTT, so SRT
//!   retransmission and NIC offload costs are absent on both sides alike.
//! - Receivers and the bench's own feeder share the two cores with the
//!   measured processes; they are not counted but do perturb.
//! - 10 ms tick resolution: at the default lengths the CPU figures are
//!   ≈1 s, so ±1 % per reading; `--seconds 2` runs are smoke tests only.
//! - **The feed's shape matters.** `srt-live-transmit` polls its UDP input
//!   through libsrt's epoll and reads several datagrams per wake-up, while
//!   the agent's threads wake per chunk when chunks come one at a time; the
//!   tables print context switches per chunk per thread to show it. Compare
//!   the default with `--burst-ms 33`. `srt --no-aes` isolates encryption
//!   (both sides link Debian's GnuTLS flavour of libsrt by default).
//! - The agent child counts its producer thread (TS generation or file
//!   chunks, pacing, fan-out publish). The SRT goal ratio counts the
//!   bench's UDP feeder on the reference side too (the same job), and the
//!   table also shows the agent's CPU without its producer. ffmpeg and gst
//!   also demux/parse the file.
//! - One run is one sample; background load moves the figures by several
//!   per cent. Compare ratios, not absolute seconds, across machines.
//!
//! # Usage
//! ```text
//! cargo build --release -p edge-bench
//! target/release/edge-bench srt              # 2 × 20 Mbit/s, 20 s per side
//! target/release/edge-bench fec              # 20 s TS, 3 senders, raw core
//! target/release/edge-bench srt --seconds 2  # smoke test
//! target/release/edge-bench fec --seconds 2 --raw-packets 10000
//! target/release/edge-bench srt --burst-ms 33  # frame-sized bursts
//! target/release/edge-bench monitor          # 720p30, 20 s without and with the content monitor
//! ```
//! Needs `srt-live-transmit` (srt-tools), `ffmpeg`/`ffprobe` and
//! `gst-launch-1.0` with gst-plugins-good/-bad on `PATH`.

mod adapt_bench;
mod fec_bench;
mod monitor_bench;
mod procs;
mod srt_bench;
mod table;
mod tsgen;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Side-by-side CPU benchmarks of edge-agent's outputs against the
/// reference tools (srt-live-transmit, ffmpeg, GStreamer), printed as ratios.
///
/// CPU is utime+stime from /proc/PID/stat of the measured processes; the
/// sides run one after the other on 127.0.0.1, in one invocation.
#[derive(Debug, Parser)]
#[command(name = "edge-bench", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Agent's two SRT outputs vs two srt-live-transmit relays (goal ≤ 1.0×).
    ///
    /// Feeds synthetic TS (1316-byte chunks) at --mbps for --seconds to (1) a
    /// child process running the agent's fan-out and two real SRT caller
    /// outputs (AES-128, --latency-ms), then (2) two `srt-live-transmit
    /// udp://… srt://…?mode=caller` relays fed over UDP by the bench. Each
    /// side sends to two srt-live-transmit listeners whose output is counted.
    /// Prints Mbit/s delivered, CPU s, CPU s per Mbit/s, % of a core, peak
    /// RSS and the agent/reference ratio; exits with status 2 if any output
    /// delivered less than 99 % of its bytes.
    /// The adaptive-bitrate controller against a fluid bottleneck.
    Adapt(adapt_bench::AdaptArgs),
    Srt(srt_bench::SrtArgs),
    /// Agent's RTP-FEC output vs ffmpeg prompeg and GStreamer fecenc (goal ≥ 3× cheaper than ffmpeg).
    ///
    /// Makes a --seconds long TS with ffmpeg, then sends it with SMPTE 2022-1
    /// FEC L=10 D=10 (column + row) by (1) a child process running the
    /// agent's fan-out and real rtp-fec output, (2) `ffmpeg -re … -f
    /// rtp_mpegts -fec prompeg`, (3) `gst-launch-1.0 … rtpst2022-1-fecenc`,
    /// one after the other, each to UDP sockets of the bench that count
    /// packets per port. Prints CPU s per Mbit/s of each sender, the ratios
    /// agent/ffmpeg and agent/gst, and the in-process throughput of the
    /// sans-IO packetiser + FEC encoder in Gbit/s per core.
    Fec(fec_bench::FecArgs),
    /// The agent's encode with and without the content monitor (thumbnails
    /// + black/frozen/silent analysis): CPU of each and the ratio.
    ///
    /// Runs the agent's capture, encoding graph and frame pump on the test
    /// pattern in a child process for --seconds, first without the monitor
    /// branches (`monitor::attach` not called), then with them, and prints
    /// CPU s, % of a core and TS Mbit/s of each, and the with/without ratio.
    Monitor(monitor_bench::MonitorArgs),
    /// (internal) the agent side of `srt`.
    #[command(hide = true)]
    SrtAgentChild(srt_bench::SrtChildArgs),
    /// (internal) the agent side of `fec`.
    #[command(hide = true)]
    FecAgentChild(fec_bench::FecChildArgs),
    /// (internal) one side of `monitor`.
    #[command(hide = true)]
    MonitorChild(monitor_bench::MonitorChildArgs),
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Srt(a) => Ok(match srt_bench::run(&a)? {
            srt_bench::Delivery::Ok => ExitCode::SUCCESS,
            srt_bench::Delivery::AgentShort => ExitCode::from(2),
            srt_bench::Delivery::ReferenceShort => ExitCode::from(3),
        }),
        Cmd::Adapt(a) => adapt_bench::run(&a).map(|()| ExitCode::SUCCESS),
        Cmd::Fec(a) => fec_bench::run(&a).map(|()| ExitCode::SUCCESS),
        Cmd::SrtAgentChild(a) => srt_bench::agent_child(&a).map(|()| ExitCode::SUCCESS),
        Cmd::FecAgentChild(a) => fec_bench::agent_child(&a).map(|()| ExitCode::SUCCESS),
        Cmd::Monitor(a) => monitor_bench::run(&a).map(|()| ExitCode::SUCCESS),
        Cmd::MonitorChild(a) => monitor_bench::agent_child(&a).map(|()| ExitCode::SUCCESS),
    }
}
