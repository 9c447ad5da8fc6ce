//! `edge-bench fec`: CPU per Mbit/s of the agent's RTP-FEC output versus
//! ffmpeg's `prompeg` and GStreamer's `rtpst2022-1-fecenc` sending the same
//! TS file with the same SMPTE 2022-1 matrix (L=10, D=10, column + row),
//! plus the raw throughput of the sans-IO packetiser and encoder.
//!
//! The three senders run one after the other, each as its own process to
//! its own block of loopback ports, where the bench counts the packets per
//! port. A sender's CPU is sampled from `/proc` every 20 ms until it exits
//! (read once more as a zombie, before it is reaped); the figure used is
//! the CPU from just before its first media packet arrived to its exit, so
//! start-up (plugin registry, probing) is left out for all three alike.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent::fanout::{FanOut, TsChunk};
use agent::output::udp_batch::BatchSocket;
use agent::output::{OutputHandle, OutputState};
use agent::shutdown::Shutdown;
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use rtp_fec::{FecEncoder, FecMatrix, FecMode, RtpPacketizer};
use test_support::ChildGuard;

use crate::procs::{self, ScratchDir};
use crate::table;
use crate::tsgen::{round_u64, Schedule, TsGen, CHUNK};

/// The FEC matrix every sender uses.
const L: u8 = 10;
const D: u8 = 10;
const RTP_HEADER: u64 = 12;

/// Settings of `edge-bench fec`.
#[derive(Debug, Clone, clap::Args)]
pub struct FecArgs {
    /// Length of the test TS (and so of each sender's run), seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Media packets per pass of the in-process encoder throughput
    /// measurement (passes repeat until each measurement took ≥ 1 s).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1000..))]
    pub raw_packets: u64,
    /// Keep the scratch directory (test TS, sender logs) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Feed the agent in bursts: every this many ms, all chunks due in that
    /// period at once (33 ≈ a muxer emitting per 30 fps frame; the output's
    /// pacer then spreads them). 0 = one chunk at a time, evenly spaced.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub burst_ms: u64,
    /// The agent output's `pacing` setting. `kernel` on a machine without
    /// fq sends the kernel path's batches unpaced: its CPU less fq's own
    /// work, an estimate of the fq path where fq cannot be had.
    #[arg(long, default_value = "auto", value_parser = ["auto", "userspace", "kernel"])]
    pub pacing: String,
}

/// Settings of the hidden `fec-agent-child` subcommand (the agent side).
#[derive(Debug, Clone, clap::Args)]
pub struct FecChildArgs {
    /// The TS file to send, in 1316-byte chunks.
    #[arg(long)]
    pub file: PathBuf,
    /// Media port P (FEC to P+2 and P+4).
    #[arg(long)]
    pub port: u16,
    /// Constant feed rate, bit/s (the file's average rate).
    #[arg(long)]
    pub rate_bps: u64,
    #[arg(long, default_value_t = 0)]
    pub burst_ms: u64,
    #[arg(long, default_value = "auto")]
    pub pacing: String,
}

/// The agent side: the agent's fan-out (which packetises once for all RTP
/// outputs) and its real `rtp-fec` output, configured from TOML text, fed
/// the file's chunks at its average rate. Prints the output's final status
/// as JSON and exits.
pub fn agent_child(a: &FecChildArgs) -> Result<()> {
    let file = std::fs::File::open(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
    let mut file = std::io::BufReader::with_capacity(1 << 16, file);
    let toml = format!(
        "device_id = \"edge-bench\"\n\n[input]\nkind = \"test-pattern\"\n\n[[outputs]]\nname = \"rtpfec\"\n\
         kind = \"rtp-fec\"\naddress = \"127.0.0.1:{}\"\nfec_columns = {L}\nfec_rows = {D}\nfec_mode = \"column-and-row\"\npacing = \"{}\"\n",
        a.port, a.pacing
    );
    let cfg = agent::config::from_str(&toml).map_err(|e| anyhow!("bench configuration refused: {e}"))?;
    let fan = FanOut::new(0x0EDB_E7C4);
    let shutdown = Shutdown::new();
    let cloud = agent::cloud::Cloud::new(&cfg);
    let outputs = cfg
        .outputs
        .iter()
        .map(|o| {
            fan.set_nominal_bps(a.rate_bps);
            OutputHandle::start(o, cloud.dest(o, false), &fan, &shutdown)
        })
        .collect::<Result<Vec<_>, _>>()
        .context("cannot start the output")?;
    if !test_support::wait_until(Duration::from_secs(5), || {
        outputs.iter().all(|o| o.status.snapshot().state == OutputState::Connected)
    }) {
        bail!("the rtp-fec output did not open its socket within 5 s");
    }
    let sched = Schedule::new(a.rate_bps as f64, CHUNK).with_burst(Duration::from_millis(a.burst_ms));
    let mut chunk = [0u8; CHUNK];
    // Read as it goes (not the whole file up front), so RSS stays the
    // output's; a last partial chunk is dropped.
    for i in 0u64.. {
        if std::io::Read::read_exact(&mut file, &mut chunk).is_err() {
            break;
        }
        sched.wait(i);
        fan.publish(&TsChunk { data: Bytes::copy_from_slice(&chunk), produced: Instant::now() });
    }
    // Let the output's pacer empty its queue before stopping it.
    std::thread::sleep(Duration::from_millis(300));
    let mut finals = Vec::new();
    for o in outputs {
        let status = o.status.clone();
        o.stop(&fan);
        finals.push(status.snapshot());
    }
    println!("final {}", serde_json::to_string(&finals)?);
    Ok(())
}

/// Packets and bytes that arrived on one port.
#[derive(Debug, Default)]
struct PortCount {
    packets: AtomicU64,
    bytes: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

/// Plain UDP receivers on a block of ports.
#[derive(Debug)]
struct Receivers {
    counts: Vec<Arc<PortCount>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Receivers {
    fn start(socks: Vec<UdpSocket>) -> Result<Receivers> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut counts = Vec::new();
        let mut threads = Vec::new();
        for sock in socks {
            // Senders that do not pace (ffmpeg, gst) send a frame at a time.
            let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            let count = Arc::new(PortCount::default());
            let (c, stop) = (count.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let now = Instant::now();
                        c.packets.fetch_add(1, Ordering::Relaxed);
                        c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        let mut first = c.first.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert(now);
                        *c.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
                    }
                }
            }));
            counts.push(count);
        }
        Ok(Receivers { counts, stop, threads })
    }

    fn finish(self) -> Vec<Arc<PortCount>> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.counts
    }
}

/// What one sender did.
#[derive(Debug)]
struct SenderRun {
    label: &'static str,
    media_packets: u64,
    ts_bytes: u64,
    column_packets: u64,
    row_packets: u64,
    /// First to last media packet received.
    stream_s: f64,
    /// CPU from just before the first media packet to exit.
    stream_cpu_s: f64,
    /// The window of `stream_cpu_s` (sample before first packet → exit).
    cpu_window_s: f64,
    lifetime_cpu_s: f64,
    rss_kb: u64,
    /// CPU and context switches per thread name over the stream (from the
    /// 100 ms thread samples; each thread's last ≤ 100 ms are missing).
    threads: Vec<(String, f64, u64)>,
    notes: Vec<String>,
}

impl SenderRun {
    fn ts_mbps(&self) -> f64 {
        self.ts_mbit() / self.stream_s
    }
    fn ts_mbit(&self) -> f64 {
        self.ts_bytes as f64 * 8.0 / 1e6
    }
    /// The figure: CPU seconds of the run per Mbit/s sent.
    fn cpu_per_mbps(&self) -> f64 {
        self.stream_cpu_s / self.ts_mbps()
    }
    /// The same cost independent of the run's length: CPU ms per Mbit sent.
    fn cpu_ms_per_mbit(&self) -> f64 {
        1000.0 * self.stream_cpu_s / self.ts_mbit()
    }
    fn threads_note(&self) -> String {
        let per = |sw: u64| sw as f64 / self.media_packets.max(1) as f64;
        let parts: Vec<String> =
            self.threads.iter().filter(|(_, s, _)| *s > 0.0).map(|(n, s, sw)| format!("{n} {s:.2} s/{:.2}", per(*sw))).collect();
        let total: u64 = self.threads.iter().map(|t| t.2).sum();
        format!(
            "{}: {:.2} context switches per media packet; by thread (CPU s/switches per media packet): {}",
            self.label,
            per(total),
            if parts.is_empty() { "-".into() } else { parts.join(", ") }
        )
    }
}

/// Runs one sender (spawned by `make`, given the media port) to completion.
fn run_sender(label: &'static str, scratch: &Path, tck: f64, limit: Duration, make: impl FnOnce(u16) -> Command) -> Result<SenderRun> {
    // P, P+1 (ffmpeg's RTCP), P+2, P+3, P+4, P+5: all bound so that nothing
    // a sender emits meets a closed port.
    let (port, socks) = procs::bind_port_block(6)?;
    let receivers = Receivers::start(socks)?;
    let log_path = scratch.join(format!("{}.log", label.split_whitespace().next().unwrap_or("sender")));
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = make(port);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log));
    let mut child = ChildGuard::spawn(label, &mut cmd)?;
    let pid = child.pid();
    let out = procs::lines(child.take_stdout()?);

    let started = Instant::now();
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let mut thread_samples: Vec<(Instant, Vec<procs::ThreadSample>)> = Vec::new();
    let mut rss_kb = 0;
    let (final_ticks, ended) = loop {
        let st = procs::proc_stat(pid)?;
        let now = Instant::now();
        if st.is_zombie() {
            break (st.ticks, now);
        }
        samples.push((now, st.ticks));
        rss_kb = rss_kb.max(procs::vm_hwm_kb(pid).unwrap_or(0));
        if samples.len() % 5 == 1 {
            if let Ok(t) = procs::threads(pid) {
                thread_samples.push((now, t));
            }
        }
        if started.elapsed() > limit {
            bail!("{label} did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status: ExitStatus = child.child.wait()?;
    std::thread::sleep(Duration::from_millis(200));
    let counts = receivers.finish();
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        bail!("{label} failed ({status}): {}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let media = &counts[0];
    let (Some(first), Some(last)) =
        (*media.first.lock().unwrap_or_else(|p| p.into_inner()), *media.last.lock().unwrap_or_else(|p| p.into_inner()))
    else {
        bail!("{label}: no media packet arrived");
    };
    let (base_at, base_ticks) = samples.iter().rev().find(|(t, _)| *t <= first).copied().unwrap_or((started, 0));
    let media_packets = media.packets.load(Ordering::Relaxed);
    // Threads that ended before the last sample (the output's, joined at
    // the end) count up to their own last sample.
    let before = thread_samples.iter().rev().find(|(t, _)| *t <= first).map_or(&[][..], |(_, s)| &s[..]);
    let after = procs::last_of_each_thread(thread_samples.iter().map(|(_, s)| &s[..]));
    let threads = procs::thread_delta(before, &after, tck);
    let mut notes = Vec::new();
    let finals: Vec<String> = out.try_iter().collect();
    for line in finals {
        if let Some(j) = line.strip_prefix("final ") {
            let v: Vec<serde_json::Value> = serde_json::from_str(j).unwrap_or_default();
            for o in v {
                notes.push(format!(
                    "agent output: {} media sent, {} column + {} row FEC sent, {} send errors, {} dropped (queue full), \
                     {} stale; pacing {} at {} Mbit/s, max {} packets in 1 ms",
                    o["chunks_sent"],
                    o["rtp"]["fec_column_sent"],
                    o["rtp"]["fec_row_sent"],
                    o["rtp"]["send_errors"],
                    o["dropped_queue_full"],
                    o["dropped_stale"],
                    o["rtp"]["pacing"],
                    o["rtp"]["pace_mbps"],
                    o["rtp"]["max_burst_packets_1ms"],
                ));
            }
        }
    }
    Ok(SenderRun {
        label,
        media_packets,
        ts_bytes: media.bytes.load(Ordering::Relaxed) - RTP_HEADER * media_packets,
        column_packets: counts[2].packets.load(Ordering::Relaxed),
        row_packets: counts[4].packets.load(Ordering::Relaxed),
        stream_s: (last - first).as_secs_f64(),
        stream_cpu_s: (final_ticks - base_ticks) as f64 / tck,
        cpu_window_s: (ended - base_at).as_secs_f64(),
        lifetime_cpu_s: final_ticks as f64 / tck,
        rss_kb,
        threads,
        notes,
    })
}

fn make_test_ts(dir: &Path, seconds: u64) -> Result<PathBuf> {
    let path = dir.join("src.ts");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args(["-b:v", "8M", "-maxrate", "8M", "-bufsize", "2M", "-g", "60", "-c:a", "aac", "-f", "mpegts"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .context("cannot run ffmpeg (install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg could not make the test TS ({status})");
    }
    Ok(path)
}

fn ts_duration_s(path: &Path) -> Result<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1"])
        .arg(path)
        .output()
        .context("cannot run ffprobe")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().with_context(|| format!("ffprobe printed duration {text:?}"))
}

/// In-process throughput of the sans-IO core, TS payload bits per second of
/// this thread's CPU (and of wall time).
#[derive(Debug)]
struct Raw {
    label: &'static str,
    packets: u64,
    cpu_s: f64,
    wall_s: f64,
}

fn raw_throughput(n: u64, tck: f64) -> Result<Vec<Raw>> {
    let mut gen = TsGen::new(0x100, 42);
    let pool: Vec<[u8; CHUNK]> = (0..64)
        .map(|_| {
            let mut c = [0u8; CHUNK];
            gen.fill(&mut c);
            c
        })
        .collect();
    let matrix = FecMatrix::new(L, D)?;
    let mut results = Vec::new();
    for (label, mode) in [
        ("packetize only", None),
        ("packetize + FEC 10×10 column only", Some(FecMode::ColumnOnly)),
        ("packetize + FEC 10×10 column + row", Some(FecMode::ColumnAndRow)),
    ] {
        let mut pk = RtpPacketizer::new(0x1234_5678, 0);
        let mut enc = mode.map(|m| FecEncoder::new(matrix, m));
        let cpu0 = procs::own_thread_ticks()?;
        let t0 = Instant::now();
        let mut ts = 0u32;
        let mut packets = 0u64;
        // Whole passes of `n` packets, for at least one second (CPU ticks
        // are 10 ms).
        while packets == 0 || t0.elapsed() < Duration::from_secs(1) {
            for (i, chunk) in (0..n).zip(pool.iter().cycle()) {
                ts = ts.wrapping_add(if i % 3 == 0 { 3000 } else { 0 });
                let pkt = pk.packetize(chunk, ts)?;
                if let Some(enc) = enc.as_mut() {
                    let out = enc.push(pkt.as_bytes())?;
                    std::hint::black_box(out);
                }
                std::hint::black_box(pkt);
            }
            packets += n;
        }
        let wall_s = t0.elapsed().as_secs_f64();
        let cpu_s = (procs::own_thread_ticks()? - cpu0) as f64 / tck;
        results.push(Raw { label, packets, cpu_s, wall_s });
    }
    Ok(results)
}

/// What the kernel's UDP send path costs this thread per datagram, with
/// nothing of the sender's own around it: 1328-byte datagrams (RTP header +
/// 7 TS packets) to a loopback port a thread drains, one `sendto` each, or
/// 8 per `sendmmsg` through the agent's own batch socket (about its mean
/// batch with fq and frame bursts). Every sender in the table pays this path once
/// per datagram; no sender can cost less than its datagrams times it.
#[derive(Debug)]
struct KernelFloor {
    sendto_us: f64,
    sendmmsg8_us: f64,
}

fn kernel_floor(tck: f64) -> Result<KernelFloor> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let to = rx.local_addr()?;
    let drain = Receivers::start(vec![rx])?;
    let datagram = [0x47u8; 12 + CHUNK];
    let measure = |send: &mut dyn FnMut() -> u64| -> Result<f64> {
        let cpu0 = procs::own_thread_ticks()?;
        let t0 = Instant::now();
        let mut sent = 0u64;
        while t0.elapsed() < Duration::from_secs(1) {
            sent += send();
        }
        let cpu_s = (procs::own_thread_ticks()? - cpu0) as f64 / tck;
        Ok(1e6 * cpu_s / sent.max(1) as f64)
    };
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let sendto_us = measure(&mut || u64::from(tx.send_to(&datagram, to).is_ok()))?;
    let mut batch = BatchSocket::new(UdpSocket::bind("127.0.0.1:0")?);
    let eight = [(&datagram[..], to); 8];
    let sendmmsg8_us = measure(&mut || {
        let out = batch.send(&eight, false);
        out.sent + out.errors
    })?;
    drain.finish();
    Ok(KernelFloor { sendto_us, sendmmsg8_us })
}

/// Runs the three senders and the raw measurement, and prints the tables.
pub fn run(a: &FecArgs) -> Result<()> {
    let tck = procs::clk_tck()? as f64;
    let mut scratch = ScratchDir::new("fec")?;
    scratch.keep = a.keep;
    let load_start = procs::loadavg();
    println!("edge-bench fec: SMPTE 2022-1 L={L} D={D} column + row, {} s test TS, 127.0.0.1", a.seconds);
    println!("making the test TS with ffmpeg (testsrc2 720p30 x264 ultrafast 8 Mbit/s + AAC) ...");
    let src = make_test_ts(&scratch.path, a.seconds)?;
    let size = std::fs::metadata(&src)?.len();
    let duration = ts_duration_s(&src)?;
    let rate_bps = round_u64(size as f64 * 8.0 / duration);
    println!(
        "test TS: {} bytes, {duration:.2} s, {:.2} Mbit/s average; senders run sequentially: agent, ffmpeg, gst",
        size,
        rate_bps as f64 / 1e6
    );
    let limit = Duration::from_secs(a.seconds * 2 + 30);
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    let src_str = src.to_str().ok_or_else(|| anyhow!("non-UTF-8 temp path"))?.to_owned();

    println!("running agent (rtp-fec output) ...");
    let agent =
        run_sender("agent rtp-fec output", &scratch.path, tck, limit, |port| {
            let mut c = Command::new(&exe);
            c.arg("fec-agent-child")
                .args(["--file", &src_str, "--port", &port.to_string(), "--rate-bps", &rate_bps.to_string()])
                .args(["--burst-ms", &a.burst_ms.to_string(), "--pacing", &a.pacing]);
            c
        })?;
    println!("running ffmpeg -fec prompeg ...");
    let ffmpeg = run_sender("ffmpeg -fec prompeg", &scratch.path, tck, limit, |port| {
        let mut c = Command::new("ffmpeg");
        c.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", &src_str])
            .args(["-c", "copy", "-f", "rtp_mpegts", "-fec", &format!("prompeg=l={L}:d={D}")])
            .arg(format!("rtp://127.0.0.1:{port}"));
        c
    })?;
    println!("running gst-launch-1.0 rtpst2022-1-fecenc ...");
    let gst = run_sender("gst rtpst2022-1-fecenc", &scratch.path, tck, limit, |port| {
        // udpsink sync=true (its default) plays the tsparse timestamps
        // (from PCR) in real time, like ffmpeg -re.
        let pipeline = format!(
            "filesrc location={src_str} ! tsparse set-timestamps=true alignment=7 ! rtpmp2tpay ssrc=0 ! \
             rtpst2022-1-fecenc name=fec columns={L} rows={D} ! udpsink host=127.0.0.1 port={port} sync=true \
             fec.fec_0 ! udpsink host=127.0.0.1 port={} async=false sync=false \
             fec.fec_1 ! udpsink host=127.0.0.1 port={} async=false sync=false",
            port + 2,
            port + 4
        );
        let mut c = Command::new("gst-launch-1.0");
        c.arg("-q").args(pipeline.split_whitespace());
        c
    })?;

    let runs = [&agent, &ffmpeg, &gst];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.label.to_owned(),
                r.media_packets.to_string(),
                r.column_packets.to_string(),
                r.row_packets.to_string(),
                format!("{:.2}", r.ts_mbps()),
                format!("{:.2}", r.stream_s),
                format!("{:.2}", r.stream_cpu_s),
                format!("{:.4}", r.cpu_per_mbps()),
                format!("{:.2}", r.cpu_ms_per_mbit()),
                format!("{:.1}", 100.0 * r.stream_cpu_s / r.cpu_window_s),
                format!("{:.1}", r.rss_kb as f64 / 1024.0),
                format!("{:.2}", r.lifetime_cpu_s),
            ]
        })
        .collect();
    println!();
    print!(
        "{}",
        table::render(
            &[
                "sender",
                "media pkts P",
                "col FEC P+2",
                "row FEC P+4",
                "TS Mbit/s",
                "stream s",
                "CPU s",
                "CPU s per Mbit/s",
                "CPU ms per Mbit",
                "% of a core",
                "RSS MB",
                "lifetime CPU s",
            ],
            &rows
        )
    );
    let ratio = |r: &SenderRun| (agent.cpu_per_mbps() / r.cpu_per_mbps(), agent.cpu_ms_per_mbit() / r.cpu_ms_per_mbit());
    let cheaper = |x: f64| if x <= 1.0 { format!("{:.1}× cheaper", 1.0 / x) } else { format!("{x:.1}× dearer") };
    let (vs_ffmpeg, vs_ffmpeg_mbit) = ratio(&ffmpeg);
    let (vs_gst, vs_gst_mbit) = ratio(&gst);
    println!();
    println!(
        "ratio agent/ffmpeg (CPU s per Mbit/s): {vs_ffmpeg:.2}×  (agent {}; per Mbit sent {vs_ffmpeg_mbit:.2}×; goal ≥ 3× cheaper: {})",
        cheaper(vs_ffmpeg),
        if vs_ffmpeg <= 1.0 / 3.0 { "met" } else { "NOT met" }
    );
    println!("ratio agent/gst    (CPU s per Mbit/s): {vs_gst:.2}×  (agent {}; per Mbit sent {vs_gst_mbit:.2}×)", cheaper(vs_gst));
    let floor = kernel_floor(tck)?;
    let datagrams = agent.media_packets + agent.column_packets + agent.row_packets;
    let floor_s = datagrams as f64 * floor.sendmmsg8_us / 1e6;
    println!(
        "kernel floor: the UDP send path alone costs this machine {:.1} µs CPU per datagram by sendto, {:.1} µs by \
         sendmmsg of 8 (measured in-process after the runs); the agent's {datagrams} datagrams at the latter = {floor_s:.2} CPU s \
         = {:.2}× ffmpeg's whole run (the goal needs the agent's whole run under {:.2} CPU s)",
        floor.sendto_us,
        floor.sendmmsg8_us,
        floor_s / ffmpeg.stream_cpu_s,
        ffmpeg.cpu_per_mbps() / 3.0 * agent.ts_mbps(),
    );
    let most = runs.iter().map(|r| r.media_packets).max().unwrap_or(0);
    let least = runs.iter().map(|r| r.media_packets).min().unwrap_or(0);
    println!(
        "media packet counts differ by {:.2}% across senders (the agent drops the file's last partial 1316-byte chunk)",
        100.0 * (most - least) as f64 / most.max(1) as f64
    );

    println!();
    println!(
        "raw sans-IO core (in-process, one thread, passes of {} media packets of 1316 B TS for ≥ 1 s; Gbit/s of TS payload):",
        a.raw_packets
    );
    let raw = raw_throughput(a.raw_packets, tck)?;
    let raw_rows: Vec<Vec<String>> = raw
        .iter()
        .map(|r| {
            let bits = r.packets as f64 * CHUNK as f64 * 8.0;
            vec![
                r.label.to_owned(),
                r.packets.to_string(),
                format!("{:.3}", r.wall_s),
                format!("{:.2}", r.cpu_s),
                if r.cpu_s > 0.0 { format!("{:.2}", bits / r.cpu_s / 1e9) } else { "-".into() },
                format!("{:.2}", bits / r.wall_s / 1e9),
                format!("{:.0}", r.wall_s * 1e9 / r.packets as f64),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["core", "packets", "wall s", "thread CPU s", "Gbit/s per core (CPU)", "Gbit/s (wall)", "ns per packet"],
            &raw_rows
        )
    );

    println!();
    println!("notes:");
    for n in &agent.notes {
        println!("- {n}");
    }
    for r in runs {
        println!("- {}", r.threads_note());
    }
    println!(
        "- the agent side is the agent's real code in a child process: fan-out (RTP packetising, once for all RTP \
         outputs) + rtp-fec output thread (pacer at nominal + 30% + FEC overhead, FEC encoder, UDP sends to P/P+2/P+4), \
         fed the file's 1316-byte chunks at its average rate ({:.2} Mbit/s, {}) by a thread that is counted too",
        rate_bps as f64 / 1e6,
        if a.burst_ms > 0 { format!("in bursts every {} ms", a.burst_ms) } else { "one chunk at a time".to_owned() }
    );
    println!(
        "- ffmpeg and gst also read and demux/parse the file and pace it by its timestamps (ffmpeg -re; gst tsparse + \
         udpsink sync=true): the comparison is the reference tool doing the same job"
    );
    println!(
        "- CPU = utime+stime from /proc/<pid>/stat (CLK_TCK {tck}), sampled every 20 ms; 'CPU s' runs from the sample \
         before the first media packet arrived to the sender's exit (start-up excluded); 'lifetime' includes start-up"
    );
    println!(
        "- CPU s per Mbit/s = CPU s / TS Mbit/s, TS = RTP payload of the media packets received, over first→last \
         media packet; CPU ms per Mbit does not depend on how long a sender took"
    );
    println!("- load average (1/5/15 min) at start: {load_start}; at end: {}", procs::loadavg());
    if a.keep {
        println!("- scratch directory kept: {}", scratch.path.display());
    }
    Ok(())
}
