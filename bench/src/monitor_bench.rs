//! `edge-bench monitor`: the encode's CPU with and without the content
//! monitor (thumbnails + black/frozen/silent analysis), side by side.
//!
//! # Method
//! Each side runs in a child process of its own (`monitor-child`), one
//! after the other, so neither shares caches, thread pools or cores with
//! the other. The child runs the agent's media path as the pipeline
//! supervisor does (`agent::pipeline`): the test-pattern capture
//! (`capture::run`), the encoding graph (`graph::build`, with the encoder
//! the agent would choose), and the frame pump (`pump::Pump`); the TS is
//! drained by an appsink callback that counts bytes, as the agent's hands
//! it to the fan-out. The only difference between the sides is the call the
//! supervisor makes to `monitor::attach` (the two video branches and the
//! audio branch of `agent/src/pipeline/monitor.rs`); `[monitor]` has no
//! switch of its own, so "without" is the graph without that call.
//!
//! CPU is utime + stime of `/proc/self/stat` (all threads of the child,
//! capture and pump included) over `--seconds`, counted from `--warmup-s`
//! after the first TS, so start-up and the encoder's first GOP are left out.
//!
//! # Caveats
//! - 10 ms tick resolution; at 720p30 and 20 s a side each reading is
//!   several CPU seconds, so the resolution does not matter; `--seconds 3`
//!   is a smoke test.
//! - One run is one sample; background load on a 2-core box moves the
//!   figures by several per cent. The absolute difference (% of a core) is
//!   the figure to read, the ratio shows how it compares with the encode.

// Byte and tick counts far below 2^52: the float conversions are exact.
#![allow(clippy::cast_precision_loss)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::pipeline::{self, capture, graph, monitor, pump, slate, PipelineStats};
use agent::shutdown::Shutdown;
use anyhow::{anyhow, bail, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::procs;

#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// Seconds measured per side.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of encoding before the measurement starts.
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
}

#[derive(Debug, clap::Args)]
pub struct MonitorChildArgs {
    /// Attach the monitor branches.
    #[arg(long)]
    with_monitor: bool,
    #[arg(long)]
    seconds: u64,
    #[arg(long)]
    warmup_s: u64,
    #[arg(long)]
    width: u32,
    #[arg(long)]
    height: u32,
    #[arg(long)]
    fps: u32,
}

/// What one side measured.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Side {
    encoder: String,
    cpu_s: f64,
    wall_s: f64,
    ts_mbps: f64,
    thumbnails: u64,
}

pub fn run(a: &MonitorArgs) -> Result<()> {
    println!(
        "edge-bench monitor: {}x{}@{} test pattern, {} s per side after {} s warm-up; load {}",
        a.width,
        a.height,
        a.fps,
        a.seconds,
        a.warmup_s,
        procs::loadavg()
    );
    let without = side(a, false)?;
    let with = side(a, true)?;
    if with.thumbnails == 0 {
        bail!("the side with the monitor made no thumbnail: the branches did not run");
    }
    let row = |name: &str, s: &Side| {
        vec![
            name.to_owned(),
            s.encoder.clone(),
            format!("{:.2}", s.cpu_s),
            format!("{:.1}", 100.0 * s.cpu_s / s.wall_s),
            format!("{:.2}", s.ts_mbps),
            s.thumbnails.to_string(),
        ]
    };
    let header = ["side", "encoder", "CPU s", "% of a core", "TS Mbit/s", "thumbnails"];
    print!("{}", crate::table::render(&header, &[row("without monitor", &without), row("with monitor", &with)]));
    let extra = 100.0 * (with.cpu_s / with.wall_s - without.cpu_s / without.wall_s);
    println!("ratio with/without: {:.3} ({extra:+.1} % of a core)", with.cpu_s / without.cpu_s);
    Ok(())
}

fn side(a: &MonitorArgs, with_monitor: bool) -> Result<Side> {
    let exe = std::env::current_exe().context("cannot find the bench's own executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("monitor-child");
    if with_monitor {
        cmd.arg("--with-monitor");
    }
    for (k, v) in [("--seconds", a.seconds), ("--warmup-s", a.warmup_s)] {
        cmd.args([k, &v.to_string()]);
    }
    for (k, v) in [("--width", a.width), ("--height", a.height), ("--fps", a.fps)] {
        cmd.args([k, &v.to_string()]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("cannot start monitor-child")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout from monitor-child"))?;
    let lines = procs::lines(stdout);
    let timeout = Duration::from_secs(a.seconds + a.warmup_s + 30);
    let found = procs::wait_line(&lines, timeout, |l| l.strip_prefix("side ").and_then(|j| serde_json::from_str::<Side>(j).ok()));
    // By its id: the child ends by itself after the line; a hung one is
    // killed.
    if found.is_none() {
        let _ = child.kill();
    }
    let status = child.wait().context("monitor-child")?;
    let s = found.ok_or_else(|| anyhow!("monitor-child printed no result within {timeout:?} ({status})"))?;
    if !status.success() {
        bail!("monitor-child failed: {status}");
    }
    Ok(s)
}

/// One side: the agent's capture, encode and pump, with or without the
/// monitor branches, measured from inside.
pub fn agent_child(a: &MonitorChildArgs) -> Result<()> {
    gst::init().context("GStreamer")?;
    let toml = format!(
        "device_id = \"edge-bench\"\n\n[input]\nkind = \"test-pattern\"\n\n[video]\nwidth = {}\nheight = {}\nframerate = {}\n\n\
         # Required by the file, never started: the TS is counted, not sent.\n\
         [[outputs]]\nname = \"unused\"\nkind = \"rtp\"\naddress = \"127.0.0.1:9\"\n",
        a.width, a.height, a.fps
    );
    let cfg = agent::config::from_str(&toml).map_err(|e| anyhow!("bench configuration refused: {e}"))?;
    let report = agent::choose_encoder(&cfg).map_err(|e| anyhow!("no encoder: {e}"))?;
    let chosen = report.chosen().ok_or_else(|| anyhow!("no encoder: {}", report.why()))?;
    let (kind, factory) = (chosen.kind, chosen.factory);

    // As the supervisor's `with_media` and `run_once` do.
    let stats = Arc::new(PipelineStats::default());
    stats.content.configure(monitor::Thresholds::from_config(&cfg));
    let stop = Shutdown::new();
    let capture = {
        let (cfg, store, stop, controls) = (cfg.clone(), stats.frames.clone(), stop.clone(), stats.pattern.clone());
        let discovery = pipeline::hal_discovery();
        std::thread::Builder::new().name("capture".into()).spawn(move || capture::run(&cfg, &store, discovery, &stop, &controls))?
    };
    let g = graph::build(&cfg, kind, factory)?;
    let (video, audio) = g.inputs.clone().ok_or_else(|| anyhow!("the graph has no app sources"))?;
    if a.with_monitor {
        monitor::attach(&g.pipeline, &cfg, &stats.content, &stats.input)?;
        monitor::mute_on_request(&g.pipeline, &stats.pattern);
    }
    let ts_bytes = Arc::new(AtomicU64::new(0));
    let counted = ts_bytes.clone();
    g.sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                    // A copy, as the agent makes for the fan-out.
                    let data = bytes::Bytes::copy_from_slice(map.as_slice());
                    counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let (events, _events_rx) = std::sync::mpsc::channel();
    let p = pump::Pump {
        video,
        audio,
        slate: slate::render(cfg.video.width.get(), cfg.video.height.get(), cfg.device_id.as_str())?,
        store: stats.frames.clone(),
        status: stats.input.clone(),
        events,
    };
    let pump_stop = Shutdown::new();
    let pump = {
        let (cfg, pump_stop) = (cfg.clone(), pump_stop.clone());
        std::thread::Builder::new().name("frame-pump".into()).spawn(move || p.run(&cfg, &pump_stop))?
    };
    g.pipeline.set_state(gst::State::Playing).map_err(|e| anyhow!("pipeline refused to play: {e}"))?;

    let measured = measure(a, &ts_bytes, &stats);
    pump_stop.trigger();
    stop.trigger();
    let _ = g.pipeline.set_state(gst::State::Null);
    let _ = pump.join();
    let _ = capture.join();
    let (cpu_s, wall_s, bytes, thumbnails) = measured?;
    let side = Side { encoder: factory.to_owned(), cpu_s, wall_s, ts_mbps: bytes as f64 * 8.0 / wall_s / 1e6, thumbnails };
    println!("side {}", serde_json::to_string(&side)?);
    Ok(())
}

/// CPU seconds, wall seconds, TS bytes and thumbnails of the window.
fn measure(a: &MonitorChildArgs, ts_bytes: &AtomicU64, stats: &PipelineStats) -> Result<(f64, f64, u64, u64)> {
    let tck = procs::clk_tck()? as f64;
    let ticks = || procs::read_stat(Path::new("/proc/self/stat")).map(|s| s.ticks);
    if !test_support::wait_until(Duration::from_secs(20), || ts_bytes.load(Ordering::Relaxed) > 0) {
        bail!("no TS from the encoder within 20 s");
    }
    std::thread::sleep(Duration::from_secs(a.warmup_s));
    let (t0, c0, b0) = (Instant::now(), ticks()?, ts_bytes.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(a.seconds));
    let (wall, c1, b1) = (t0.elapsed().as_secs_f64(), ticks()?, ts_bytes.load(Ordering::Relaxed));
    let thumbnails = stats.content.status(Instant::now()).thumbnails;
    Ok(((c1 - c0) as f64 / tck, wall, b1 - b0, thumbnails))
}
