//! Capture: from a device (or the test pattern) to raw frames in the output
//! format, handed to the [`FrameStore`].
//!
//! ```text
//! v4l2src | decklinkvideosrc | videotestsrc+timeoverlay
//!   ─ deinterlace ─ videoconvert ─ videoscale ─ I420 W×H ─ appsink → FrameStore
//! decklinkaudiosrc | alsasrc ─ audioconvert ─ audioresample ─ S16 48k ─ appsink → FrameStore
//! ```
//!
//! Capture runs in its own pipeline on its own thread and is rebuilt with
//! backoff whenever it fails: a pulled cable, a source that switches format
//! and makes the driver error out, a dongle unplugged. The encoding
//! pipeline keeps running on the slate meanwhile.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use hal::capture::{CaptureDevice, CaptureKind, Discovery, Signal, VideoFormat};
use tracing::{info, warn};

use super::frames::FrameStore;
use super::graph::make;
use super::PipelineError;
use crate::backoff::Backoff;
use crate::config::{AgentConfig, AudioSource, DeckLinkConnection, InputConfig};
use crate::shutdown::Shutdown;

/// Live controls of the test pattern (`input.pattern`), so the content
/// alarms can be tried without a camera: black instead of bars, the
/// running clock stopped (a still picture), the tone muted.
#[derive(Debug, Default)]
pub struct PatternControls {
    black: AtomicBool,
    still: AtomicBool,
    mute: AtomicBool,
}

impl PatternControls {
    /// Changes what is given; `None` keeps the current setting.
    pub fn set(&self, black: Option<bool>, motion: Option<bool>, tone: Option<bool>) {
        let put = |flag: &AtomicBool, v: Option<bool>| {
            if let Some(v) = v {
                flag.store(v, Ordering::Relaxed);
            }
        };
        put(&self.black, black);
        put(&self.still, motion.map(|m| !m));
        put(&self.mute, tone.map(|t| !t));
    }

    pub fn black(&self) -> bool {
        self.black.load(Ordering::Relaxed)
    }
    pub fn still(&self) -> bool {
        self.still.load(Ordering::Relaxed)
    }
    pub fn muted(&self) -> bool {
        self.mute.load(Ordering::Relaxed)
    }
}

/// A concrete thing to capture from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    TestPattern,
    V4l2 { path: PathBuf },
    DeckLink { number: u32, connection: DeckLinkConnection },
}

impl CaptureSource {
    /// How status and telemetry name it.
    pub fn label(&self) -> String {
        match self {
            CaptureSource::TestPattern => "test-pattern".to_owned(),
            CaptureSource::V4l2 { path } => path.display().to_string(),
            CaptureSource::DeckLink { number, .. } => format!("decklink:{number}"),
        }
    }

    fn from_device(d: &CaptureDevice) -> Option<CaptureSource> {
        match d.kind {
            CaptureKind::DeckLink => Some(CaptureSource::DeckLink { number: d.index, connection: DeckLinkConnection::Auto }),
            CaptureKind::V4l2Hdmi | CaptureKind::V4l2Uvc => d.path.clone().map(|path| CaptureSource::V4l2 { path }),
        }
    }
}

/// Turns the configured input into a source, looking devices up where the
/// configuration names them by id or asks for `auto`. `None`: nothing to
/// capture from right now (the slate stays on air; try again later).
pub fn resolve(input: &InputConfig, discovery: &mut Discovery) -> Option<CaptureSource> {
    match input {
        InputConfig::TestPattern { .. } => Some(CaptureSource::TestPattern),
        InputConfig::Decklink { device_number, connection, .. } => {
            Some(CaptureSource::DeckLink { number: *device_number, connection: *connection })
        }
        InputConfig::V4l2 { device, .. } if device.starts_with("/dev/") => Some(CaptureSource::V4l2 { path: PathBuf::from(device) }),
        InputConfig::V4l2 { device, .. } => {
            rescan(discovery);
            discovery.devices().iter().find(|d| &d.id == device).and_then(CaptureSource::from_device)
        }
        InputConfig::Auto { .. } => {
            rescan(discovery);
            let devices = discovery.devices();
            hal::capture::select_auto(devices)
                .or_else(|| hal::capture::auto_order(devices).into_iter().next())
                .and_then(CaptureSource::from_device)
        }
    }
}

fn rescan(discovery: &mut Discovery) {
    if let Err(e) = discovery.rescan(Instant::now()) {
        warn!(error = %e, "capture discovery failed");
    }
}

/// The sound capture should deliver, if any (tone and silence are made by
/// the frame pump, not captured).
fn captured_audio(cfg: &AgentConfig, source: &CaptureSource) -> Option<gst::Element> {
    let alsa = |dev: &str| -> Option<gst::Element> {
        let src = make("alsasrc", "audio-capture").ok()?;
        src.set_property("device", dev);
        Some(src)
    };
    match (cfg.audio.source, source, cfg.audio.alsa_device.as_deref()) {
        (AudioSource::Embedded | AudioSource::Auto, CaptureSource::DeckLink { number, .. }, _) => {
            let src = make("decklinkaudiosrc", "audio-capture").ok()?;
            src.set_property("device-number", i32::try_from(*number).unwrap_or(0));
            Some(src)
        }
        (AudioSource::Alsa | AudioSource::Auto, CaptureSource::V4l2 { .. }, Some(dev)) => alsa(dev),
        (AudioSource::Alsa, _, Some(dev)) => alsa(dev),
        _ => None,
    }
}

/// A capture pipeline and its sinks.
#[derive(Debug)]
pub struct CaptureGraph {
    pub pipeline: gst::Pipeline,
    video: gst_app::AppSink,
    audio: Option<gst_app::AppSink>,
    /// Where the source's own caps are observed (before scaling).
    caps_pad: gst::Pad,
}

/// Builds the capture pipeline for `source`, delivering frames in the
/// configured output format.
pub fn build(cfg: &AgentConfig, source: &CaptureSource) -> Result<CaptureGraph, PipelineError> {
    let pipeline = gst::Pipeline::with_name("capture");
    let add = |els: &[&gst::Element]| -> Result<(), PipelineError> {
        pipeline.add_many(els.iter().copied()).map_err(|e| PipelineError::Link(e.to_string()))?;
        gst::Element::link_many(els.iter().copied()).map_err(|e| PipelineError::Link(e.to_string()))
    };
    let mut head: Vec<gst::Element> = Vec::new();
    match source {
        CaptureSource::TestPattern => {
            let src = make("videotestsrc", "video-src")?;
            src.set_property("is-live", true);
            src.set_property_from_str("pattern", "smpte");
            let caps = super::graph::capsfilter("pattern-caps", pattern_caps(cfg, false))?;
            // The running clock makes a frozen picture obvious at the
            // receiver; the device id says which box a feed comes from.
            let clock = make("timeoverlay", "clock")?;
            clock.set_property("text", cfg.device_id.as_str());
            clock.set_property_from_str("halignment", "center");
            clock.set_property_from_str("valignment", "bottom");
            clock.set_property("shaded-background", true);
            clock.set_property("font-desc", "Monospace 32");
            head.extend([src, caps, clock]);
        }
        CaptureSource::V4l2 { path } => {
            let src = make("v4l2src", "video-src")?;
            src.set_property("device", path.display().to_string());
            src.set_property("do-timestamp", true);
            head.push(src);
        }
        CaptureSource::DeckLink { number, connection } => {
            let src = make("decklinkvideosrc", "video-src")?;
            src.set_property("device-number", i32::try_from(*number).unwrap_or(0));
            src.set_property_from_str("mode", "auto");
            src.set_property_from_str("connection", connection.gst_nick());
            head.push(src);
        }
    }
    // Interlaced venue sources (1080i50/i59.94) are deinterlaced; the
    // element passes progressive video through untouched.
    let deinterlace = make("deinterlace", "deinterlace")?;
    let convert = make("videoconvert", "capture-convert")?;
    let scale = make("videoscale", "capture-scale")?;
    // Letterbox rather than distort when the source aspect differs.
    scale.set_property("add-borders", true);
    let out_caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", i32::try_from(cfg.video.width.get()).unwrap_or(1280))
        .field("height", i32::try_from(cfg.video.height.get()).unwrap_or(720))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let video = gst_app::AppSink::builder().name("capture-video").caps(&out_caps).sync(false).max_buffers(2).drop(true).build();
    let caps_pad = deinterlace.static_pad("sink").ok_or_else(|| PipelineError::Link("deinterlace has no sink pad".into()))?;
    let mut chain: Vec<&gst::Element> = head.iter().collect();
    chain.extend([&deinterlace, &convert, &scale, video.upcast_ref()]);
    add(&chain)?;

    let audio = match captured_audio(cfg, source) {
        Some(src) => {
            let convert = make("audioconvert", "capture-audio-convert")?;
            let resample = make("audioresample", "capture-audio-resample")?;
            let caps = super::graph::raw_audio_caps(cfg);
            let sink = gst_app::AppSink::builder().name("capture-audio").caps(&caps).sync(false).build();
            add(&[&src, &convert, &resample, sink.upcast_ref()])?;
            Some(sink)
        }
        None => None,
    };
    Ok(CaptureGraph { pipeline, video, audio, caps_pad })
}

/// The test pattern's caps: the output format, or (simulating a source
/// that switches format) 960×540 at twice the rate.
fn pattern_caps(cfg: &AgentConfig, alternate: bool) -> gst::Caps {
    if !alternate {
        return super::graph::raw_video_caps(&cfg.video, None);
    }
    let fr = cfg.video.framerate;
    gst::Caps::builder("video/x-raw")
        .field("width", 960i32)
        .field("height", 540i32)
        .field("framerate", gst::Fraction::new(i32::try_from(fr.num * 2).unwrap_or(60), i32::try_from(fr.den).unwrap_or(1)))
        .build()
}

/// The input format from a caps event: broadcast notation needs the frame
/// rate and whether the source is interlaced.
fn video_format(caps: &gst::CapsRef) -> Option<VideoFormat> {
    let s = caps.structure(0)?;
    let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
    let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
    let fps = s.get::<gst::Fraction>("framerate").unwrap_or_else(|_| gst::Fraction::new(0, 1));
    let interlaced = s.get::<&str>("interlace-mode").is_ok_and(|m| m != "progressive");
    Some(VideoFormat {
        width,
        height,
        fps_num: u32::try_from(fps.numer()).unwrap_or(0),
        fps_den: u32::try_from(fps.denom()).unwrap_or(1),
        interlaced,
    })
}

/// Connects the sinks to the store. The input format is read from the
/// caps the source negotiates unless `timings` gives it: a receiver with a
/// scaler (vivid has one) negotiates the output size with the downstream
/// caps, and its caps then describe the scaled picture, not the source.
fn wire(g: &CaptureGraph, store: &Arc<FrameStore>, timings: Option<VideoFormat>) {
    let frames = store.clone();
    g.video.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buf) = sample.buffer_owned() {
                    frames.put_frame(buf, Instant::now());
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    if let Some(audio) = &g.audio {
        let sound = store.clone();
        audio.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        let samples: Vec<i16> = map.as_slice().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                        sound.put_audio(&samples);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    if let Some(f) = timings {
        store.set_format(f);
        return;
    }
    let formats = store.clone();
    g.caps_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(ev)) = &info.data {
            if let gst::EventView::Caps(c) = ev.view() {
                if let Some(f) = video_format(c.caps()) {
                    formats.set_format(f);
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Why a capture run ended.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    /// Capture failed or must be reopened: retried with backoff.
    Failed(String),
    /// The receiver reports no usable signal (`ENOLINK`, `ENOLCK`,
    /// `ERANGE`): the slate stays on air and the signal is asked for again
    /// every [`SIGNAL_POLL`].
    NoSignal(Signal),
}

/// How often capture asks a DV-timings receiver for its signal, before and
/// while streaming: one `v4l2-ctl` run each, so once a second.
const SIGNAL_POLL: Duration = Duration::from_secs(1);

/// Keeps a capture pipeline running for the configured input until
/// `stop`, rebuilding it (and, for `auto`, re-choosing the device) after
/// failures. Never touches the encoding pipeline.
pub fn run(cfg: &AgentConfig, store: &Arc<FrameStore>, mut discovery: Discovery, stop: &Shutdown, controls: &Arc<PatternControls>) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    // A box waiting for a cable retries every few seconds for hours: say
    // each distinct failure once, not every retry.
    let mut last_error = String::new();
    while !stop.is_triggered() {
        let outcome = match resolve(&cfg.input, &mut discovery) {
            None => Err(Stop::Failed("no capture device present".to_owned())),
            Some(source) => run_once(cfg, &source, store, stop, &mut backoff, controls, &discovery),
        };
        store.reset(None);
        if stop.is_triggered() {
            break;
        }
        let delay = match outcome {
            Err(Stop::NoSignal(signal)) => {
                store.set_probed_signal(signal);
                let e = format!("the receiver reports {}", signal_name(signal));
                if e != last_error {
                    warn!(error = %e, "no signal; the slate is on air");
                    last_error = e;
                }
                SIGNAL_POLL
            }
            Err(Stop::Failed(e)) if e != last_error => {
                warn!(error = %e, "capture failed; the slate is on air");
                last_error = e;
                backoff.next_delay()
            }
            Err(Stop::Failed(e)) => {
                tracing::debug!(error = %e, "capture still failing");
                backoff.next_delay()
            }
            Ok(()) => {
                last_error.clear();
                backoff.next_delay()
            }
        };
        if stop.wait_timeout(delay) {
            break;
        }
    }
}

/// The `state` name a signal serialises to (`no_link`, `cannot_lock`, …).
fn signal_name(signal: Signal) -> String {
    serde_json::to_value(signal).ok().and_then(|v| v["state"].as_str().map(str::to_owned)).unwrap_or_default()
}

/// What a poll of the receiver means for a capture opened in `opened`:
/// `None` to go on. Both formats come from the same probe (snapped to
/// standard rates by `BtTimings::format`), so they compare exactly: a switch
/// from 1080p60 to 1080p59.94 is a change too.
fn verdict(opened: VideoFormat, now: Signal) -> Option<Stop> {
    match now {
        Signal::Locked(f) if f == opened => None,
        Signal::Locked(f) => Some(Stop::Failed(format!("input format changed from {opened} to {f}; reopening"))),
        // The probe could not ask (v4l2-ctl slow or failing): the frame
        // watchdog still guards the picture.
        Signal::Unknown => None,
        other => Some(Stop::NoSignal(other)),
    }
}

/// Applies `input.pattern` to the test pattern from its own streaming
/// thread, between two frames: black, or still (75 % bars, as SMPTE bars
/// carry a noise patch, and no running clock).
fn follow_controls(g: &CaptureGraph, controls: Arc<PatternControls>) {
    let (Some(src), Some(clock)) = (g.pipeline.by_name("video-src"), g.pipeline.by_name("clock")) else { return };
    let Some(pad) = src.static_pad("src") else { return };
    // Weak: the probe lives on the source's own pad.
    let (src, clock) = (src.downgrade(), clock.downgrade());
    let shown = std::sync::Mutex::new((false, false));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let want = (controls.black(), controls.still());
        let mut shown = shown.lock().unwrap_or_else(|p| p.into_inner());
        if *shown != want {
            *shown = want;
            let pattern = match want {
                (true, _) => "black",
                (false, true) => "smpte75",
                (false, false) => "smpte",
            };
            if let Some(src) = src.upgrade() {
                src.set_property_from_str("pattern", pattern);
            }
            if let Some(clock) = clock.upgrade() {
                clock.set_property("silent", want.1);
            }
            info!(pattern, clock = !want.1, "test pattern changed");
        }
        gst::PadProbeReturn::Ok
    });
}

/// How long a capture may run without a frame before it is rebuilt (and,
/// for `auto`, another device considered): some drivers never recover from a
/// lost lock without a fresh open.
const REOPEN_AFTER: Duration = Duration::from_secs(10);

fn run_once(
    cfg: &AgentConfig,
    source: &CaptureSource,
    store: &Arc<FrameStore>,
    stop: &Shutdown,
    backoff: &mut Backoff,
    controls: &Arc<PatternControls>,
    discovery: &Discovery,
) -> Result<(), Stop> {
    // A receiver with DV timings says whether there is a signal before
    // anything is opened, and its timings must be set before streaming
    // (VIDIOC_S_DV_TIMINGS is refused while buffers are allocated). A node
    // without DV timings (UVC) answers Unknown and the frame watchdog
    // decides.
    let opened = match source {
        CaptureSource::V4l2 { path } => match discovery.query_signal(path) {
            Signal::Locked(f) => {
                if let Err(e) = discovery.apply_detected_timings(path) {
                    warn!(error = %e, "capturing in the node's current timings");
                }
                Some((path.clone(), f))
            }
            Signal::Unknown => None,
            other => return Err(Stop::NoSignal(other)),
        },
        _ => None,
    };
    let g = build(cfg, source).map_err(|e| Stop::Failed(e.to_string()))?;
    store.reset(Some(source.label()));
    wire(&g, store, opened.as_ref().map(|(_, f)| *f));
    let bus = g.pipeline.bus().ok_or_else(|| Stop::Failed("capture pipeline has no bus".to_owned()))?;
    if *source == CaptureSource::TestPattern {
        follow_controls(&g, controls.clone());
    }
    let watched = Watched { source, opened: opened.as_ref().map(|(p, f)| (p.as_path(), *f)), discovery };
    let result = watch(cfg, &g, &bus, &watched, store, stop, backoff);
    let _ = g.pipeline.set_state(gst::State::Null);
    result
}

/// What [`watch`] keeps an eye on besides the bus.
struct Watched<'a> {
    source: &'a CaptureSource,
    /// A DV-timings node and the format it was opened in: polled every
    /// [`SIGNAL_POLL`].
    opened: Option<(&'a std::path::Path, VideoFormat)>,
    discovery: &'a Discovery,
}

fn watch(
    cfg: &AgentConfig,
    g: &CaptureGraph,
    bus: &gst::Bus,
    w: &Watched<'_>,
    store: &FrameStore,
    stop: &Shutdown,
    backoff: &mut Backoff,
) -> Result<(), Stop> {
    let source = w.source;
    g.pipeline.set_state(gst::State::Playing).map_err(|_| Stop::Failed(format!("{} refused to start", source.label())))?;
    info!(source = %source.label(), "capture started");
    let started = Instant::now();
    let mut last_seen = started;
    let mut next_poll = started + SIGNAL_POLL;
    let mut alternate = false;
    while !stop.is_triggered() {
        if *source == CaptureSource::TestPattern && store.alternate_format() != alternate {
            alternate = !alternate;
            // Renegotiates upstream while playing: the scaler adapts, the
            // encoding pipeline never sees it.
            if let Some(f) = g.pipeline.by_name("pattern-caps") {
                f.set_property("caps", pattern_caps(cfg, alternate));
            }
        }
        if let Some((_, at)) = store.latest() {
            if at > last_seen {
                last_seen = at;
                backoff.reset();
            }
        }
        // Simulated loss is a test of the slate path, not a dead driver.
        if last_seen.elapsed() > REOPEN_AFTER && !store.simulated_loss() && *source != CaptureSource::TestPattern {
            return Err(Stop::Failed(format!("no frame from {} for {} s; reopening", source.label(), REOPEN_AFTER.as_secs())));
        }
        // Some receivers (vivid among them) go on delivering frames, noise
        // or the last picture, without a signal or after the source changed
        // format: only the receiver's own answer tells.
        if let Some((path, opened)) = w.opened {
            if Instant::now() >= next_poll {
                next_poll = Instant::now() + SIGNAL_POLL;
                if let Some(stop) = verdict(opened, w.discovery.query_signal(path)) {
                    backoff.reset();
                    return Err(stop);
                }
            }
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else { continue };
        match msg.view() {
            gst::MessageView::Error(e) => {
                let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                return Err(Stop::Failed(format!("{element}: {}", e.error())));
            }
            gst::MessageView::Eos(_) => return Err(Stop::Failed(format!("{} ended", source.label()))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P480: VideoFormat = VideoFormat { width: 640, height: 480, fps_num: 60000, fps_den: 1001, interlaced: false };

    #[test]
    fn a_receiver_without_signal_stops_capture_with_its_reason() {
        for s in [Signal::NoLink, Signal::CannotLock, Signal::OutOfRange, Signal::NoSignal] {
            assert_eq!(verdict(P480, s), Some(Stop::NoSignal(s)));
        }
        assert_eq!(signal_name(Signal::CannotLock), "cannot_lock");
    }

    #[test]
    fn capture_reopens_when_the_timings_change() {
        assert_eq!(verdict(P480, Signal::Locked(P480)), None);
        let p576 = VideoFormat { width: 720, height: 576, fps_num: 50, fps_den: 1, interlaced: false };
        match verdict(P480, Signal::Locked(p576)) {
            Some(Stop::Failed(e)) => assert!(e.contains("640x480p59.94 to 720x576p50"), "{e}"),
            other => panic!("unexpected {other:?}"),
        }
        let p60 = VideoFormat { fps_num: 60, fps_den: 1, ..P480 };
        assert!(verdict(P480, Signal::Locked(p60)).is_some(), "59.94 to 60 is a change");
        // A probe hiccup is not a loss.
        assert_eq!(verdict(P480, Signal::Unknown), None);
    }
}
