//! Content monitoring: is the box sending black, a frozen frame or
//! silence, and what does the picture look like (docs/monitoring.md).
//!
//! # Design
//! The encoding graph gets a tee after each app source; every monitoring
//! branch starts with a leaky queue of one or two buffers and ends in an
//! appsink with `drop=true`, so the encoder never waits for it: when the
//! analysis falls behind, frames are dropped from the branch, not delayed
//! on the encode.
//!
//! ```text
//! video-in ─ tee ─ (encode, as before)
//!                ├ queue(leaky) ─ videorate ─ 5 fps ─ videoscale ─ GRAY8 64×36 ─ appsink → luma, difference
//!                └ queue(leaky) ─ videorate ─ 1/N fps ─ videoscale ─ 320×h ─ jpegenc ─ appsink → thumbnail
//! audio-in ─ tee ─ (encode, as before)
//!                └ queue(leaky) ─ appsink → RMS and peak dBFS
//! ```
//!
//! The measures ([`mean_luma`], [`mean_abs_diff`], [`audio_level`]) and the
//! [`Detector`] are pure: no GStreamer, time as a parameter, unit-tested.
//!
//! While the slate is on air the input has no signal and `NO_SIGNAL` is
//! raised already: the detector is held reset then (the slate is static and
//! silent by design), and counts afresh once live pictures return.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde::Serialize;

use super::graph::{capsfilter, make};
use super::pump::InputStatus;
use super::PipelineError;
use crate::config::{AgentConfig, AudioSource, InputConfig, MonitorConfig};

/// Analysis picture: small enough to measure in microseconds, large enough
/// that a caption or a ball changes it.
pub const ANALYSIS_WIDTH: u32 = 64;
pub const ANALYSIS_HEIGHT: u32 = 36;
/// Analysis pictures per second.
pub const ANALYSIS_FPS: i32 = 5;
/// Mean absolute luma difference between two analysis pictures (8-bit
/// levels) at or below which the picture has not changed. ffmpeg's
/// `freezedetect` default is -60 dB, 0.001 of full scale = 0.26 levels.
pub const FROZEN_DIFF_MAX: f64 = 0.26;
/// The floor of the audio level: digital silence.
pub const MIN_DBFS: f64 = -120.0;
/// JPEG quality of thumbnails (libjpeg scale): ~10 KiB at 320×180.
const JPEG_QUALITY: i32 = 75;

/// Mean of 8-bit luma samples; 0 for an empty picture.
pub fn mean_luma(y: &[u8]) -> f64 {
    if y.is_empty() {
        return 0.0;
    }
    y.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / y.len() as f64
}

/// Mean absolute difference of two pictures of the same size, in 8-bit
/// levels; `None` when the sizes differ (the format changed).
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let sum: u64 = a.iter().zip(b).map(|(&x, &y)| u64::from(x.abs_diff(y))).sum();
    Some(sum as f64 / a.len() as f64)
}

/// RMS and peak level of interleaved S16 samples, in dBFS (full-scale sine
/// RMS = -3 dBFS), floored at [`MIN_DBFS`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AudioLevel {
    pub rms_dbfs: f64,
    pub peak_dbfs: f64,
}

pub fn audio_level(samples: &[i16]) -> AudioLevel {
    let db = |v: f64| if v <= 0.0 { MIN_DBFS } else { (20.0 * v.log10()).max(MIN_DBFS) };
    if samples.is_empty() {
        return AudioLevel { rms_dbfs: MIN_DBFS, peak_dbfs: MIN_DBFS };
    }
    let full = 32768.0;
    let sq: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sq / samples.len() as f64).sqrt() / full;
    let peak = samples.iter().map(|&s| i32::from(s).unsigned_abs()).max().unwrap_or(0);
    AudioLevel { rms_dbfs: db(rms), peak_dbfs: db(f64::from(peak) / full) }
}

/// Thresholds of the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub black_luma_max: f64,
    pub black_after: Duration,
    pub frozen_diff_max: f64,
    pub frozen_after: Duration,
    pub silent_dbfs: f64,
    pub silent_after: Duration,
    /// Whether sound is expected: with `audio.source = "silence"` (or a
    /// V4L2 input without ALSA) silence is the plan, not a fault.
    pub expect_audio: bool,
}

impl Thresholds {
    /// The thresholds of `[monitor]`; `expect_audio`: see the field.
    pub fn new(m: &MonitorConfig, expect_audio: bool) -> Thresholds {
        Thresholds {
            black_luma_max: f64::from(m.black_luma_max.get()),
            black_after: m.black_after_s.duration(),
            frozen_diff_max: FROZEN_DIFF_MAX,
            frozen_after: m.frozen_after_s.duration(),
            silent_dbfs: f64::from(m.silent_dbfs.get()),
            silent_after: m.silent_after_s.duration(),
            expect_audio,
        }
    }

    pub fn from_config(cfg: &AgentConfig) -> Thresholds {
        let expect_audio = match (cfg.audio.source, &cfg.input) {
            (AudioSource::Silence, _) => false,
            (AudioSource::Auto, InputConfig::V4l2 { .. }) => cfg.audio.alsa_device.is_some(),
            _ => true,
        };
        Thresholds::new(&cfg.monitor, expect_audio)
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::new(&MonitorConfig::default(), true)
    }
}

/// What the monitor sees now: the status file's `content` and the alarms'
/// source.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContentStatus {
    /// Mean luma of the last analysis picture (8-bit levels).
    pub luma: Option<f64>,
    /// Mean absolute difference to the picture before (8-bit levels).
    pub motion: Option<f64>,
    pub audio: Option<AudioLevel>,
    /// For how long (s) each condition has held; present once raised.
    pub black_for_s: Option<f64>,
    pub frozen_for_s: Option<f64>,
    pub silent_for_s: Option<f64>,
    /// The slate is on air: `NO_SIGNAL` says it, these alarms keep quiet.
    pub held_by_slate: bool,
    /// Thumbnails made since the pipeline started.
    pub thumbnails: u64,
    pub thumbnail_bytes: Option<usize>,
}

impl ContentStatus {
    pub fn black(&self) -> bool {
        self.black_for_s.is_some()
    }
    pub fn frozen(&self) -> bool {
        self.frozen_for_s.is_some()
    }
    pub fn silent(&self) -> bool {
        self.silent_for_s.is_some()
    }
}

/// The sans-IO detector: observations in, conditions out; `now` is always
/// a parameter. A condition is raised once it has held for its duration
/// and cleared at the first observation without it.
#[derive(Debug, Clone)]
pub struct Detector {
    th: Thresholds,
    prev: Option<Vec<u8>>,
    luma: Option<f64>,
    motion: Option<f64>,
    audio: Option<AudioLevel>,
    black_since: Option<Instant>,
    frozen_since: Option<Instant>,
    silent_since: Option<Instant>,
    slate: bool,
}

impl Detector {
    pub fn new(th: Thresholds) -> Detector {
        Detector {
            th,
            prev: None,
            luma: None,
            motion: None,
            audio: None,
            black_since: None,
            frozen_since: None,
            silent_since: None,
            slate: false,
        }
    }

    /// Holds (or releases) the detector while the slate is on air.
    fn hold(&mut self, slate: bool) -> bool {
        if slate {
            (self.black_since, self.frozen_since, self.silent_since, self.prev) = (None, None, None, None);
        }
        self.slate = slate;
        slate
    }

    /// One analysis picture (8-bit luma) seen at `now`.
    pub fn video(&mut self, now: Instant, y: &[u8], slate: bool) {
        if self.hold(slate) {
            return;
        }
        let luma = mean_luma(y);
        let motion = self.prev.as_deref().and_then(|p| mean_abs_diff(p, y));
        self.luma = Some(luma);
        self.motion = motion;
        self.black_since = if luma <= self.th.black_luma_max { self.black_since.or(Some(now)) } else { None };
        self.frozen_since = match motion {
            Some(d) if d <= self.th.frozen_diff_max => self.frozen_since.or(Some(now)),
            // The first picture, or one of another size: no verdict yet.
            None => self.frozen_since,
            Some(_) => None,
        };
        match &mut self.prev {
            Some(p) if p.len() == y.len() => p.copy_from_slice(y),
            _ => self.prev = Some(y.to_vec()),
        }
    }

    /// A block of interleaved S16 samples heard at `now`.
    pub fn audio(&mut self, now: Instant, samples: &[i16], slate: bool) {
        if self.hold(slate) {
            return;
        }
        let level = audio_level(samples);
        self.audio = Some(level);
        let quiet = self.th.expect_audio && level.rms_dbfs < self.th.silent_dbfs;
        self.silent_since = if quiet { self.silent_since.or(Some(now)) } else { None };
    }

    /// The conditions at `now`.
    pub fn status(&self, now: Instant) -> ContentStatus {
        let held = |since: Option<Instant>, after: Duration| {
            since.map(|t| now.saturating_duration_since(t)).filter(|d| *d >= after).map(|d| d.as_secs_f64())
        };
        ContentStatus {
            luma: self.luma,
            motion: self.motion,
            audio: self.audio,
            black_for_s: held(self.black_since, self.th.black_after),
            frozen_for_s: held(self.frozen_since, self.th.frozen_after),
            silent_for_s: held(self.silent_since, self.th.silent_after),
            held_by_slate: self.slate,
            thumbnails: 0,
            thumbnail_bytes: None,
        }
    }
}

/// One thumbnail: a baseline JPEG of the picture being encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub jpeg: Arc<Vec<u8>>,
    /// Counts up from 1 with each new thumbnail.
    pub seq: u64,
    pub at: Instant,
}

/// Shared between the monitoring branches (writers) and the readers
/// (status file, alarms, fleet): the detector and the newest thumbnail.
#[derive(Debug)]
pub struct ContentMonitor {
    detector: Mutex<Detector>,
    thumbnail: Mutex<Option<Thumbnail>>,
}

impl Default for ContentMonitor {
    fn default() -> Self {
        ContentMonitor::new(Thresholds::default())
    }
}

impl ContentMonitor {
    pub fn new(th: Thresholds) -> Self {
        ContentMonitor { detector: Mutex::new(Detector::new(th)), thumbnail: Mutex::new(None) }
    }

    fn detector(&self) -> std::sync::MutexGuard<'_, Detector> {
        self.detector.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// New thresholds (a fresh detector).
    pub fn configure(&self, th: Thresholds) {
        *self.detector() = Detector::new(th);
    }

    pub fn status(&self, now: Instant) -> ContentStatus {
        let mut s = self.detector().status(now);
        if let Some(t) = self.thumbnail() {
            s.thumbnails = t.seq;
            s.thumbnail_bytes = Some(t.jpeg.len());
        }
        s
    }

    /// The newest thumbnail, if one was made.
    pub fn thumbnail(&self) -> Option<Thumbnail> {
        self.thumbnail.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn put_thumbnail(&self, jpeg: Vec<u8>, now: Instant) {
        let mut t = self.thumbnail.lock().unwrap_or_else(|p| p.into_inner());
        let seq = t.as_ref().map_or(1, |t| t.seq + 1);
        *t = Some(Thumbnail { jpeg: Arc::new(jpeg), seq, at: now });
    }
}

/// The thumbnail's size for a `w`×`h` video: `width` wide, the height
/// following the aspect ratio, rounded to even (4:2:0).
pub fn thumbnail_size(width: u32, w: u32, h: u32) -> (u32, u32) {
    let height = u32::try_from(u64::from(width) * u64::from(h) / u64::from(w.max(1))).unwrap_or(u32::MAX - 1);
    (width, (height.max(2) + 1) & !1)
}

fn leaky_queue(name: &str, buffers: u32) -> Result<gst::Element, PipelineError> {
    let q = make("queue", name)?;
    q.set_property("max-size-buffers", buffers);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    q.set_property_from_str("leaky", "downstream");
    Ok(q)
}

fn sampler(name: &str) -> Result<gst::Element, PipelineError> {
    let r = make("videorate", name)?;
    // Never duplicates: a dropped branch frame is not made up again.
    r.set_property("drop-only", true);
    Ok(r)
}

/// `async=false`: a monitoring branch never takes part in the pipeline's
/// preroll. With GStreamer 1.26 (Debian 13) a branch whose sampler had not
/// passed a frame yet held the whole pipeline in PAUSED, the TS sink waiting
/// in preroll, in about half the starts ("no TS for 5 s"; under QEMU TCG
/// every start for minutes). Monitoring must never hold up the TS path.
fn branch_sink(name: &str) -> gst_app::AppSink {
    let sink = gst_app::AppSink::builder().name(name).sync(false).max_buffers(1).drop(true).build();
    sink.set_async(false);
    sink
}

/// Puts a tee between `src_name` and the element after it; returns the tee.
fn tee_after(pipeline: &gst::Pipeline, src_name: &str, tee_name: &str) -> Result<gst::Element, PipelineError> {
    let missing = |n: &str| PipelineError::Link(format!("monitor: no element `{n}` in the graph"));
    let src = pipeline.by_name(src_name).ok_or_else(|| missing(src_name))?;
    let src_pad = src.static_pad("src").ok_or_else(|| missing(src_name))?;
    let peer = src_pad.peer().ok_or_else(|| PipelineError::Link(format!("monitor: `{src_name}` is not linked")))?;
    let tee = make("tee", tee_name)?;
    pipeline.add(&tee).map_err(|e| PipelineError::Link(e.to_string()))?;
    src_pad.unlink(&peer).map_err(|e| PipelineError::Link(e.to_string()))?;
    src.link(&tee).map_err(|e| PipelineError::Link(e.to_string()))?;
    let tee_src = tee.request_pad_simple("src_%u").ok_or_else(|| PipelineError::Link("tee refused a pad".into()))?;
    tee_src.link(&peer).map_err(|e| PipelineError::Link(e.to_string()))?;
    Ok(tee)
}

fn add_branch(pipeline: &gst::Pipeline, tee: &gst::Element, chain: &[&gst::Element]) -> Result<(), PipelineError> {
    pipeline.add_many(chain.iter().copied()).map_err(|e| PipelineError::Link(e.to_string()))?;
    gst::Element::link_many(chain.iter().copied()).map_err(|e| PipelineError::Link(e.to_string()))?;
    tee.link(chain[0]).map_err(|e| PipelineError::Link(e.to_string()))
}

/// Adds the monitoring branches to a built encoding graph (before it
/// plays). Checks every element exists before touching the graph, so a
/// missing plugin leaves the graph as built.
pub fn attach(
    pipeline: &gst::Pipeline,
    cfg: &AgentConfig,
    monitor: &Arc<ContentMonitor>,
    input: &Arc<Mutex<InputStatus>>,
) -> Result<(), PipelineError> {
    for f in ["tee", "queue", "videorate", "videoscale", "videoconvert", "jpegenc", "appsink"] {
        if gst::ElementFactory::find(f).is_none() {
            return Err(PipelineError::MissingElement(f.to_owned()));
        }
    }
    let slate = {
        let input = input.clone();
        move || input.lock().unwrap_or_else(|p| p.into_inner()).slate
    };

    let vtee = tee_after(pipeline, "video-in", "monitor-video-tee")?;
    // Analysis: 5 fps of 64×36 luma.
    let caps = gst::Caps::builder("video/x-raw").field("framerate", gst::Fraction::new(ANALYSIS_FPS, 1)).build();
    let gray = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .field("width", ANALYSIS_WIDTH as i32)
        .field("height", ANALYSIS_HEIGHT as i32)
        .build();
    let sink = branch_sink("monitor-analysis");
    let chain = [
        leaky_queue("monitor-analysis-queue", 2)?,
        sampler("monitor-analysis-rate")?,
        capsfilter("monitor-analysis-fps", caps)?,
        make("videoscale", "monitor-analysis-scale")?,
        make("videoconvert", "monitor-analysis-convert")?,
        capsfilter("monitor-analysis-caps", gray)?,
    ];
    let mut refs: Vec<&gst::Element> = chain.iter().collect();
    refs.push(sink.upcast_ref());
    add_branch(pipeline, &vtee, &refs)?;
    let (m, is_slate) = (monitor.clone(), slate.clone());
    let row = ANALYSIS_WIDTH as usize;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) else { return Ok(gst::FlowSuccess::Ok) };
                // GRAY8 rows are padded to 4 bytes; 64 needs none, but take
                // exactly width × height either way.
                let stride = map.len() / ANALYSIS_HEIGHT as usize;
                let y: Vec<u8> = map
                    .as_slice()
                    .chunks(stride.max(1))
                    .take(ANALYSIS_HEIGHT as usize)
                    .flat_map(|r| &r[..row.min(r.len())])
                    .copied()
                    .collect();
                let slate = is_slate();
                m.detector().video(Instant::now(), &y, slate);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    // Thumbnail: one JPEG every N s.
    let every = i32::try_from(cfg.monitor.thumbnail_every_s.get()).unwrap_or(5);
    let (tw, th) = thumbnail_size(cfg.monitor.thumbnail_width.get(), cfg.video.width.get(), cfg.video.height.get());
    let rate = gst::Caps::builder("video/x-raw").field("framerate", gst::Fraction::new(1, every)).build();
    let size = gst::Caps::builder("video/x-raw")
        .field("width", i32::try_from(tw).unwrap_or(320))
        .field("height", i32::try_from(th).unwrap_or(180))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let jpeg = make("jpegenc", "monitor-jpeg")?;
    jpeg.set_property("quality", JPEG_QUALITY);
    let sink = branch_sink("monitor-thumbnail");
    let chain = [
        leaky_queue("monitor-thumbnail-queue", 2)?,
        sampler("monitor-thumbnail-rate")?,
        capsfilter("monitor-thumbnail-fps", rate)?,
        make("videoscale", "monitor-thumbnail-scale")?,
        make("videoconvert", "monitor-thumbnail-convert")?,
        capsfilter("monitor-thumbnail-caps", size)?,
        jpeg,
    ];
    let mut refs: Vec<&gst::Element> = chain.iter().collect();
    refs.push(sink.upcast_ref());
    add_branch(pipeline, &vtee, &refs)?;
    let m = monitor.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                    m.put_thumbnail(map.as_slice().to_vec(), Instant::now());
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );

    // Audio level of what the pump pushes.
    let atee = tee_after(pipeline, "audio-in", "monitor-audio-tee")?;
    let sink = branch_sink("monitor-audio");
    let queue = leaky_queue("monitor-audio-queue", 4)?;
    add_branch(pipeline, &atee, &[&queue, sink.upcast_ref()])?;
    let m = monitor.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                    let pcm: Vec<i16> = map.as_slice().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                    let slate = slate();
                    m.detector().audio(Instant::now(), &pcm, slate);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// `input.pattern {tone: false}`: the test pattern's tone (made by the
/// frame pump) is zeroed where it enters the encoding graph, so the
/// encoder and the level meter hear silence. A memset of one frame's
/// samples, only while muted.
pub fn mute_on_request(pipeline: &gst::Pipeline, controls: &Arc<super::capture::PatternControls>) {
    let Some(pad) = pipeline.by_name("audio-in").and_then(|src| src.static_pad("src")) else { return };
    let controls = controls.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if !controls.muted() {
            return gst::PadProbeReturn::Ok;
        }
        if let Some(gst::PadProbeData::Buffer(buf)) = &mut info.data {
            if let Ok(mut map) = buf.make_mut().map_writable() {
                map.as_mut_slice().fill(0);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th() -> Thresholds {
        Thresholds {
            black_luma_max: 32.0,
            black_after: Duration::from_secs(5),
            frozen_diff_max: FROZEN_DIFF_MAX,
            frozen_after: Duration::from_secs(10),
            silent_dbfs: -60.0,
            silent_after: Duration::from_secs(10),
            expect_audio: true,
        }
    }

    fn picture(level: u8, seed: u8) -> Vec<u8> {
        (0..64u32 * 36).map(|i| level.wrapping_add(((i.to_le_bytes()[0]) ^ seed) % 8)).collect()
    }

    #[test]
    #[allow(clippy::cast_possible_truncation)] // |sample| <= 3277
    fn measures() {
        assert_eq!(mean_luma(&[16; 100]), 16.0);
        assert_eq!(mean_luma(&[]), 0.0);
        assert_eq!(mean_abs_diff(&[10, 20], &[12, 16]), Some(3.0));
        assert_eq!(mean_abs_diff(&[10, 20], &[12]), None);
        let silence = audio_level(&[0; 960]);
        assert_eq!((silence.rms_dbfs, silence.peak_dbfs), (MIN_DBFS, MIN_DBFS));
        // A full-scale square wave: 0 dBFS RMS and peak.
        let square: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { i16::MAX } else { -i16::MAX }).collect();
        assert!(audio_level(&square).rms_dbfs.abs() < 0.01);
        // A 1 kHz sine at -20 dBFS peak: RMS 3 dB below.
        let sine: Vec<i16> = (0..4800)
            .map(|i| (3276.8 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 48_000.0).sin()).round() as i16)
            .collect();
        let l = audio_level(&sine);
        assert!((l.peak_dbfs + 20.0).abs() < 0.1 && (l.rms_dbfs + 23.0).abs() < 0.1, "{l:?}");
    }

    #[test]
    fn black_is_raised_after_its_duration_and_cleared_by_a_picture() {
        let t0 = Instant::now();
        let mut d = Detector::new(th());
        for i in 0..=30u8 {
            d.video(t0 + Duration::from_millis(200 * u64::from(i)), &picture(16, i), false);
        }
        assert!(!d.status(t0 + Duration::from_millis(4_900)).black());
        let s = d.status(t0 + Duration::from_secs(6));
        assert!(s.black() && !s.frozen(), "{s:?}");
        d.video(t0 + Duration::from_secs(7), &picture(120, 0), false);
        assert!(!d.status(t0 + Duration::from_secs(7)).black());
    }

    #[test]
    fn a_repeated_picture_is_frozen_and_motion_clears_it() {
        let t0 = Instant::now();
        let mut d = Detector::new(th());
        let still = picture(100, 3);
        for i in 0..60u64 {
            d.video(t0 + Duration::from_millis(200 * i), &still, false);
        }
        let s = d.status(t0 + Duration::from_millis(200 * 59));
        assert!(s.frozen() && !s.black(), "{s:?}");
        assert_eq!(s.motion, Some(0.0));
        // Frozen from the second picture (the first has nothing to compare).
        assert!(!d.status(t0 + Duration::from_millis(10_100)).frozen());
        d.video(t0 + Duration::from_secs(13), &picture(100, 5), false);
        assert!(!d.status(t0 + Duration::from_secs(13)).frozen());
    }

    #[test]
    fn silence_is_raised_only_when_sound_is_expected() {
        let t0 = Instant::now();
        let mut d = Detector::new(th());
        d.audio(t0, &[0; 1600], false);
        d.audio(t0 + Duration::from_secs(11), &[3; 1600], false);
        assert!(d.status(t0 + Duration::from_secs(11)).silent());
        d.audio(t0 + Duration::from_secs(12), &[8000; 1600], false);
        assert!(!d.status(t0 + Duration::from_secs(12)).silent());
        let mut quiet_by_plan = Detector::new(Thresholds { expect_audio: false, ..th() });
        quiet_by_plan.audio(t0, &[0; 1600], false);
        assert!(!quiet_by_plan.status(t0 + Duration::from_secs(60)).silent());
    }

    #[test]
    fn the_slate_holds_every_detector() {
        let t0 = Instant::now();
        let mut d = Detector::new(th());
        d.video(t0, &picture(16, 0), false);
        d.audio(t0, &[0; 1600], false);
        d.video(t0 + Duration::from_secs(1), &picture(16, 0), true);
        let s = d.status(t0 + Duration::from_secs(60));
        assert!(!s.black() && !s.frozen() && !s.silent() && s.held_by_slate, "{s:?}");
        // Live again: counting starts afresh.
        d.video(t0 + Duration::from_secs(61), &picture(16, 0), false);
        assert!(!d.status(t0 + Duration::from_secs(65)).black());
        assert!(d.status(t0 + Duration::from_secs(66)).black());
    }

    #[test]
    fn thumbnail_follows_the_aspect_ratio() {
        assert_eq!(thumbnail_size(320, 1280, 720), (320, 180));
        assert_eq!(thumbnail_size(320, 720, 576), (320, 256));
        assert_eq!(thumbnail_size(320, 1920, 1080), (320, 180));
        assert_eq!(thumbnail_size(64, 4000, 10), (64, 2));
    }

    #[test]
    fn default_thresholds_follow_the_documented_defaults() {
        let t = Thresholds::default();
        assert_eq!((t.black_luma_max, t.black_after, t.silent_dbfs), (32.0, Duration::from_secs(5), -60.0));
        assert_eq!((t.frozen_after, t.silent_after), (Duration::from_secs(10), Duration::from_secs(10)));
    }
}
