//! The media pipeline: input → encoder → MPEG-TS → fan-out, kept running.
//!
//! Two GStreamer pipelines joined by the [`frames::FrameStore`]:
//! - [`capture`] reads the input (V4L2, DeckLink, the test pattern) and is
//!   rebuilt on its own whenever the input fails;
//! - [`graph`] encodes and muxes; the [`pump::Pump`] feeds it one frame per
//!   period, live or the [`slate`], so the transport stream never breaks.
//!
//! [`Supervisor`] runs both on their own threads, turns bus messages into
//! typed [`PipelineEvent`]s, and rebuilds the encoding graph with exponential
//! backoff after an error, an EOS or a stall (no TS for [`STALL_TIMEOUT`])
//! — a box nobody is watching must heal itself.

pub mod capture;
pub mod encoder;
pub mod flv;
pub mod frames;
pub mod graph;
pub mod monitor;
pub mod pump;
pub mod slate;
pub mod tone;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::fanout::{FanOut, TsChunk, TS_CHUNK_BYTES};
use crate::shutdown::Shutdown;
use hal::encoder::EncoderKind;

/// No TS output for this long while PLAYING counts as a failure.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A gap this long between two turns of the supervisor's loop (which turns
/// every 100 ms) means the host, not the pipeline, stopped.
const HOST_STALL: Duration = Duration::from_secs(1);

/// Errors building or starting the pipeline.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// A GStreamer element is not installed.
    #[error("GStreamer element `{0}` is not installed (see scripts/setup.sh)")]
    MissingElement(String),
    /// Elements could not be linked.
    #[error("cannot link pipeline: {0}")]
    Link(String),
    /// The encoder could not be configured.
    #[error("cannot configure encoder: {0}")]
    Encoder(String),
    /// The pipeline refused to start.
    #[error("pipeline refused to start: {0}")]
    Start(String),
}

/// What the pipeline reports to the rest of the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineEvent {
    /// PLAYING and producing TS.
    Started,
    /// An element posted an error; the pipeline will be rebuilt.
    Error { element: String, message: String },
    /// A non-fatal warning from an element.
    Warning { element: String, message: String },
    /// The stream ended (a live source should never do this).
    Eos,
    /// No TS was produced for [`STALL_TIMEOUT`].
    Stalled,
    /// About to rebuild, after `delay`.
    Restarting { attempt: u32, delay: Duration },
    /// The input's signal changed (locked with a format, lost, …).
    InputSignal(hal::capture::Signal),
}

/// Counters of the media path, shared with status and telemetry.
#[derive(Debug)]
pub struct PipelineStats {
    pub ts_chunks: AtomicU64,
    pub ts_bytes: AtomicU64,
    pub restarts: AtomicU64,
    /// The input as the frame pump sees it.
    pub input: Arc<Mutex<pump::InputStatus>>,
    /// Capture → pump hand-over (simulated loss is toggled here).
    pub frames: Arc<frames::FrameStore>,
    /// Black, frozen, silent and the newest thumbnail ([`monitor`]).
    pub content: Arc<monitor::ContentMonitor>,
    /// Live controls of the test pattern (`input.pattern`).
    pub pattern: Arc<capture::PatternControls>,
    /// Milliseconds since `epoch` of the last TS chunk (0: none yet).
    last_chunk_ms: AtomicU64,
    epoch: Instant,
}

impl Default for PipelineStats {
    fn default() -> Self {
        PipelineStats {
            ts_chunks: AtomicU64::new(0),
            ts_bytes: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            input: Arc::new(Mutex::new(pump::InputStatus::new("test-pattern"))),
            frames: Arc::new(frames::FrameStore::default()),
            content: Arc::default(),
            pattern: Arc::default(),
            last_chunk_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl PipelineStats {
    /// How long ago the last TS chunk left the muxer; `None` before the first.
    pub fn since_last_chunk(&self) -> Option<Duration> {
        match self.last_chunk_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms_since(self.epoch).saturating_sub(ms))),
        }
    }
}

/// Builds a fresh graph for each (re)start.
pub type GraphBuilder = Box<dyn Fn() -> Result<graph::Graph, PipelineError> + Send>;

/// Runs the pipeline and restarts it when it fails.
pub struct Supervisor {
    build: GraphBuilder,
    /// Capture and pump settings; `None` for injected graphs with their own
    /// sources.
    media: Option<AgentConfig>,
    factory: String,
    fan: Arc<FanOut>,
    pub stats: Arc<PipelineStats>,
    events: Sender<PipelineEvent>,
    shutdown: Shutdown,
    encoder: Arc<Mutex<Option<gst::Element>>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("factory", &self.factory).finish_non_exhaustive()
    }
}

impl Supervisor {
    pub fn new(
        cfg: AgentConfig,
        kind: EncoderKind,
        factory: &str,
        fan: Arc<FanOut>,
        events: Sender<PipelineEvent>,
        shutdown: Shutdown,
    ) -> Self {
        let name = factory.to_owned();
        let media = cfg.clone();
        let build: GraphBuilder = Box::new(move || graph::build(&cfg, kind, &name));
        Self::with_builder(build, factory, fan, events, shutdown).with_media(media)
    }

    /// Feeds the built graphs from capture of `cfg.input`, with the slate
    /// while it has no signal.
    pub fn with_media(mut self, cfg: AgentConfig) -> Self {
        *self.stats.input.lock().unwrap_or_else(|p| p.into_inner()) = pump::InputStatus::new(cfg.input.kind_name());
        self.stats.content.configure(monitor::Thresholds::from_config(&cfg));
        self.media = Some(cfg);
        self
    }

    /// A supervisor over any graph (tests inject graphs that fail).
    pub fn with_builder(
        build: GraphBuilder,
        factory: &str,
        fan: Arc<FanOut>,
        events: Sender<PipelineEvent>,
        shutdown: Shutdown,
    ) -> Self {
        Supervisor {
            build,
            media: None,
            factory: factory.to_owned(),
            fan,
            stats: Arc::new(PipelineStats::default()),
            events,
            shutdown,
            encoder: Arc::new(Mutex::new(None)),
        }
    }

    /// A handle to the running encoder element, for live changes.
    pub fn encoder_handle(&self) -> Arc<Mutex<Option<gst::Element>>> {
        self.encoder.clone()
    }

    /// Runs until shutdown. Each iteration builds a fresh encoding graph;
    /// capture runs beside it for the whole run.
    pub fn run(self) {
        let capture = self.media.clone().and_then(|cfg| {
            let (store, stop, controls) = (self.stats.frames.clone(), self.shutdown.clone(), self.stats.pattern.clone());
            let discovery = hal_discovery();
            std::thread::Builder::new()
                .name("capture".into())
                .spawn(move || capture::run(&cfg, &store, discovery, &stop, &controls))
                .map_err(|e| error!(error = %e, "cannot start the capture thread; slate only"))
                .ok()
        });
        self.supervise();
        if let Some(t) = capture {
            let _ = t.join();
        }
    }

    fn supervise(&self) {
        let epoch = self.stats.epoch;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        while !self.shutdown.is_triggered() {
            let outcome = self.run_once(epoch);
            if self.shutdown.is_triggered() {
                break;
            }
            if let Err(e) = outcome {
                error!(error = %e, "pipeline failed");
                let _ = self.events.send(PipelineEvent::Error { element: "pipeline".into(), message: e.to_string() });
            }
            self.stats.restarts.fetch_add(1, Ordering::Relaxed);
            let delay = backoff.next_delay();
            let _ = self.events.send(PipelineEvent::Restarting { attempt: backoff.attempts(), delay });
            warn!(?delay, attempt = backoff.attempts(), "restarting pipeline");
            if self.shutdown.wait_timeout(delay) {
                break;
            }
        }
    }

    /// Builds, plays and watches one pipeline until it fails or shutdown.
    fn run_once(&self, epoch: Instant) -> Result<(), PipelineError> {
        let g = (self.build)()?;
        if let (Some(cfg), Some(_)) = (&self.media, &g.inputs) {
            // Off the hot path; without it the stream still goes out.
            if let Err(e) = monitor::attach(&g.pipeline, cfg, &self.stats.content, &self.stats.input) {
                warn!(error = %e, "content monitoring and thumbnails are off");
            }
            if matches!(cfg.input, crate::config::InputConfig::TestPattern { .. }) {
                monitor::mute_on_request(&g.pipeline, &self.stats.pattern);
            }
        }
        install_sink(&g.sink, self.fan.clone(), self.stats.clone(), epoch);
        *self.encoder.lock().unwrap_or_else(|p| p.into_inner()) = Some(g.encoder.clone());
        let pump_stop = Shutdown::new();
        let pump = match (&self.media, g.inputs.clone()) {
            (Some(cfg), Some((video, audio))) => Some(self.start_pump(cfg, video, audio, &pump_stop)?),
            _ => None,
        };
        let result = self.watch(&g.pipeline, epoch);
        pump_stop.trigger();
        *self.encoder.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = g.pipeline.set_state(gst::State::Null);
        if let Some(t) = pump {
            let _ = t.join();
        }
        result
    }

    fn start_pump(
        &self,
        cfg: &AgentConfig,
        video: gst_app::AppSrc,
        audio: gst_app::AppSrc,
        stop: &Shutdown,
    ) -> Result<std::thread::JoinHandle<()>, PipelineError> {
        let slate = slate::render(cfg.video.width.get(), cfg.video.height.get(), cfg.device_id.as_str())?;
        let pump = pump::Pump {
            video,
            audio,
            slate,
            store: self.stats.frames.clone(),
            status: self.stats.input.clone(),
            events: self.events.clone(),
        };
        let (cfg, stop) = (cfg.clone(), stop.clone());
        std::thread::Builder::new()
            .name("frame-pump".into())
            .spawn(move || pump.run(&cfg, &stop))
            .map_err(|e| PipelineError::Start(format!("cannot start the frame pump: {e}")))
    }

    fn watch(&self, pipeline: &gst::Pipeline, epoch: Instant) -> Result<(), PipelineError> {
        let bus = pipeline.bus().ok_or_else(|| PipelineError::Start("pipeline has no bus".into()))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| PipelineError::Start(drain_error(&bus).unwrap_or_else(|| "state change failed".into())))?;
        let started = Instant::now();
        let mut announced = false;
        // TS from this run reached the fan-out: say so once, also when the
        // run ends before the next loop turn (a short-lived graph's TS is
        // still TS the receivers got).
        let announce = |announced: &mut bool| -> bool {
            let fresh = self.stats.last_chunk_ms.load(Ordering::Relaxed) >= ms_since_at(epoch, started);
            if fresh && !*announced {
                *announced = true;
                info!(encoder = %self.factory, "pipeline playing, TS flowing");
                let _ = self.events.send(PipelineEvent::Started);
            }
            fresh
        };
        // This loop turns at least every 100 ms. A much longer gap means the
        // whole host stalled (a VM paused, a thermal or memory stall), and
        // the pipeline's threads stalled with it: that silence is not the
        // pipeline's, and rebuilding for it would break the TS on every
        // output for nothing. Silence counts from the end of such a gap.
        let mut last_turn = Instant::now();
        let mut resumed_ms = 0u64;
        while !self.shutdown.is_triggered() {
            let now_ms = ms_since(epoch);
            let gap = last_turn.elapsed();
            last_turn = Instant::now();
            if gap > HOST_STALL {
                warn!(stalled_ms = gap.as_millis(), "the host stalled; pipeline silence counts from now");
                resumed_ms = now_ms;
            }
            let last = self.stats.last_chunk_ms.load(Ordering::Relaxed);
            let fresh = announce(&mut announced);
            let since = if fresh { last } else { ms_since_at(epoch, started) };
            let silent_for = now_ms.saturating_sub(since.max(resumed_ms));
            if Duration::from_millis(silent_for) > STALL_TIMEOUT {
                let _ = self.events.send(PipelineEvent::Stalled);
                return Err(PipelineError::Start(format!("no TS for {} s", STALL_TIMEOUT.as_secs())));
            }
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
            if matches!(msg.view(), gst::MessageView::Error(_) | gst::MessageView::Eos(_)) {
                announce(&mut announced);
            }
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                    let message = e.error().to_string();
                    let _ = self.events.send(PipelineEvent::Error { element: element.clone(), message: message.clone() });
                    return Err(PipelineError::Start(format!("{element}: {message}")));
                }
                gst::MessageView::Warning(w) => {
                    let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                    let message = w.error().to_string();
                    warn!(%element, %message, "pipeline warning");
                    let _ = self.events.send(PipelineEvent::Warning { element, message });
                }
                gst::MessageView::Eos(_) => {
                    let _ = self.events.send(PipelineEvent::Eos);
                    return Err(PipelineError::Start("unexpected end of stream".into()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Capture discovery over the real sysfs and /dev, or the roots named by
/// `EDGE_SYSFS_ROOT` / `EDGE_DEV_ROOT` (development and tests on fake trees).
pub fn hal_discovery() -> hal::capture::Discovery {
    let root = |var: &str, default: &str| std::env::var_os(var).map_or_else(|| default.into(), std::path::PathBuf::from);
    let scanner = hal::capture::SysfsScanner::new(root("EDGE_SYSFS_ROOT", "/sys"), root("EDGE_DEV_ROOT", "/dev"));
    let decklink: Box<dyn hal::capture::DeckLinkProbe + Send> = match hal::capture::GstDeckLinkProbe::new() {
        Ok(p) => Box::new(p),
        Err(_) => Box::new(hal::capture::FakeDeckLinkProbe::default()),
    };
    hal::capture::Discovery::from_parts(scanner, Box::new(hal::capture::V4l2CtlProbe::default()), decklink)
}

/// The inputs of this box (capture devices with their signal, then the
/// test pattern), for `probe` and fleet inventory.
pub fn discover_inputs() -> Vec<hal::input::InputInfo> {
    let mut discovery = hal_discovery();
    if let Err(e) = discovery.rescan(Instant::now()) {
        warn!(error = %e, "capture discovery failed");
    }
    hal::input::inventory(discovery.devices())
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn ms_since_at(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

fn drain_error(bus: &gst::Bus) -> Option<String> {
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(e.error().to_string());
        }
    }
    None
}

/// The appsink callback runs on GStreamer's streaming thread: it copies the
/// buffer once into `Bytes`, cuts it into 1316-byte chunks and offers each to
/// the fan-out, which never blocks.
fn install_sink(sink: &gst_app::AppSink, fan: Arc<FanOut>, stats: Arc<PipelineStats>, epoch: Instant) {
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                let Ok(map) = buffer.map_readable() else { return Ok(gst::FlowSuccess::Ok) };
                let data = Bytes::copy_from_slice(map.as_slice());
                let produced = Instant::now();
                let mut offset = 0;
                while offset < data.len() {
                    let end = (offset + TS_CHUNK_BYTES).min(data.len());
                    fan.publish(&TsChunk { data: data.slice(offset..end), produced });
                    stats.ts_chunks.fetch_add(1, Ordering::Relaxed);
                    offset = end;
                }
                stats.ts_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                stats.last_chunk_ms.store(ms_since(epoch).max(1), Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A graph that produces a little TS and then ends, as a failing input would.
    fn short_graph() -> Result<graph::Graph, PipelineError> {
        gst::init().map_err(|e| PipelineError::Start(e.to_string()))?;
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("videotestsrc").property("num-buffers", 15i32).build().unwrap();
        let encoder = gst::ElementFactory::make("x264enc").build().unwrap();
        encoder.set_property_from_str("speed-preset", "ultrafast");
        encoder.set_property_from_str("tune", "zerolatency");
        let mux = gst::ElementFactory::make("mpegtsmux").property("alignment", 7i32).build().unwrap();
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline.add_many([&src, &encoder, &mux, sink.upcast_ref()]).unwrap();
        gst::Element::link_many([&src, &encoder, &mux, sink.upcast_ref()]).unwrap();
        Ok(graph::Graph { pipeline, encoder, sink, inputs: None })
    }

    #[test]
    fn end_of_stream_becomes_typed_events_and_a_rebuild() {
        let (tx, rx) = mpsc::channel();
        let shutdown = Shutdown::new();
        let fan = Arc::new(FanOut::new(1));
        let sup = Supervisor::with_builder(Box::new(short_graph), "x264enc", fan, tx, shutdown.clone());
        let stats = sup.stats.clone();
        let t = std::thread::spawn(move || sup.run());
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(ev) = rx.recv_timeout(Duration::from_millis(200)) {
                seen.push(ev);
            }
            let starts = seen.iter().filter(|e| **e == PipelineEvent::Started).count();
            if starts >= 2 {
                break;
            }
        }
        shutdown.trigger();
        t.join().unwrap();
        assert!(seen.contains(&PipelineEvent::Eos), "{seen:?}");
        assert!(seen.iter().any(|e| matches!(e, PipelineEvent::Restarting { attempt: 1, .. })), "{seen:?}");
        assert!(seen.iter().filter(|e| **e == PipelineEvent::Started).count() >= 2, "{seen:?}");
        assert!(stats.restarts.load(Ordering::Relaxed) >= 1);
        assert!(stats.ts_chunks.load(Ordering::Relaxed) > 0);
    }
}
