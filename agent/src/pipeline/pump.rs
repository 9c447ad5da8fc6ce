//! The frame pump: the encoder's clock.
//!
//! Once per output frame period the pump pushes one picture and its sound
//! into the encoding pipeline: the newest captured frame while the input
//! has a signal, the slate (and silence) while it has none. Timestamps
//! advance by exactly one frame and ⌊n·rate/fps⌋ samples whatever the input
//! does, so the muxer's PCR and continuity counters never break and the
//! receivers never resynchronise. This is a frame synchroniser: a source
//! running slightly fast or slow costs an occasional dropped or repeated
//! frame, never a glitch in the transport stream.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_app as gst_app;
use hal::capture::{FrameWatchdog, Signal};
use serde::Serialize;
use tracing::{info, warn};

use super::frames::FrameStore;
use super::tone::{SampleCadence, ToneGenerator};
use super::PipelineEvent;
use crate::config::{AgentConfig, AudioSource, InputConfig};
use crate::shutdown::Shutdown;

/// The input as status and telemetry report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputStatus {
    /// `kind` from the configuration (`auto`, `v4l2`, …).
    pub kind: &'static str,
    /// What capture reads now (`/dev/video0`, `decklink:0`), if anything.
    pub source: Option<String>,
    pub signal: Signal,
    /// The input's own format in broadcast notation (`1920x1080i50`).
    pub format: Option<String>,
    /// Whether the slate is on air.
    pub slate: bool,
    /// Times the signal was lost since the pipeline started.
    pub losses: u64,
    /// Times the input format changed while locked.
    pub format_changes: u64,
}

impl InputStatus {
    pub fn new(kind: &'static str) -> Self {
        InputStatus { kind, source: None, signal: Signal::Unknown, format: None, slate: true, losses: 0, format_changes: 0 }
    }
}

/// What the pump makes of the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioPlan {
    Tone(u32),
    Captured,
    Silence,
}

fn audio_plan(cfg: &AgentConfig) -> AudioPlan {
    let tone = AudioPlan::Tone(cfg.audio.tone_hz.get());
    match (cfg.audio.source, &cfg.input) {
        (AudioSource::Tone, _) | (AudioSource::Auto, InputConfig::TestPattern { .. }) => tone,
        (AudioSource::Silence, _) => AudioPlan::Silence,
        (AudioSource::Auto, InputConfig::V4l2 { .. }) if cfg.audio.alsa_device.is_none() => AudioPlan::Silence,
        _ => AudioPlan::Captured,
    }
}

/// Everything one pump run needs.
#[derive(Debug)]
pub struct Pump {
    pub video: gst_app::AppSrc,
    pub audio: gst_app::AppSrc,
    pub slate: gst::Buffer,
    pub store: Arc<FrameStore>,
    pub status: Arc<Mutex<InputStatus>>,
    pub events: Sender<PipelineEvent>,
}

impl Pump {
    /// Pushes frames until `stop` or until the encoding pipeline refuses a
    /// buffer (it is being torn down).
    pub fn run(self, cfg: &AgentConfig, stop: &Shutdown) {
        let fr = cfg.video.framerate;
        let frame_ns = 1_000_000_000u64 * u64::from(fr.den) / u64::from(fr.num.max(1));
        let rate = cfg.audio.sample_rate.get();
        let channels = usize::try_from(cfg.audio.channels.get()).unwrap_or(2);
        let plan = audio_plan(cfg);
        let mut tone = ToneGenerator::new(if let AudioPlan::Tone(hz) = plan { hz } else { 1000 }, rate);
        let mut cadence = SampleCadence::new(rate, fr.num, fr.den);
        let mut watchdog = FrameWatchdog::new(Duration::from_millis(u64::from(cfg.input.no_signal_ms().get())));
        let mut last_arrival: Option<Instant> = None;
        let mut shown = Signal::Unknown;
        let mut start = Instant::now();
        watchdog.start(start);
        let mut pcm = Vec::new();
        let mut frame = 0u64;
        loop {
            let due = start + Duration::from_nanos(frame * frame_ns);
            let now = Instant::now();
            if due > now && stop.wait_timeout(due - now) {
                break;
            }
            // Checked after the wait too: a host stall usually hits while
            // this thread sleeps in it.
            let now = Instant::now();
            if now.saturating_duration_since(due) > Duration::from_secs(1) {
                // Far behind (the machine stalled): re-anchor the schedule
                // rather than burst a second of frames. Timestamps go on.
                warn!(behind_ms = (now - due).as_millis(), "frame pump fell behind; re-anchoring");
                start = now - Duration::from_nanos(frame * frame_ns);
                // Capture was as frozen as this loop: not a lost signal.
                watchdog.host_stalled(now - due);
            }
            if stop.is_triggered() {
                break;
            }
            let now = Instant::now();
            let latest = self.store.latest();
            if let Some((_, at)) = &latest {
                if last_arrival != Some(*at) {
                    last_arrival = Some(*at);
                    watchdog.frame(*at);
                }
            }
            if let Some(f) = self.store.format() {
                watchdog.set_format(f);
            }
            // No frames, and the receiver said why: report its reason.
            let signal = match (watchdog.poll(now), self.store.probed_signal()) {
                (Signal::NoSignal, Some(probed)) if !probed.is_locked() => probed,
                (signal, _) => signal,
            };
            let live = match (&latest, signal) {
                (Some((buf, _)), Signal::Locked(_)) => Some(buf),
                _ => None,
            };
            self.note(&mut shown, signal, live.is_none());
            let pts = gst::ClockTime::from_nseconds(frame * frame_ns);
            let mut video = live.unwrap_or(&self.slate).copy();
            {
                let b = video.make_mut();
                b.set_pts(pts);
                b.set_dts(gst::ClockTime::NONE);
                b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
            }
            let audio_pts = gst::ClockTime::from_nseconds(cadence.samples() * 1_000_000_000 / u64::from(rate.max(1)));
            let n = cadence.next_frame();
            pcm.clear();
            pcm.resize(n * channels, 0i16);
            match plan {
                AudioPlan::Tone(_) if live.is_some() => tone.fill(&mut pcm, channels),
                AudioPlan::Captured if live.is_some() => {
                    // Missing samples stay silent: better a click than drift.
                    let _ = self.store.take_audio(&mut pcm);
                }
                _ => {}
            }
            let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut audio = gst::Buffer::from_mut_slice(bytes);
            {
                let b = audio.make_mut();
                b.set_pts(audio_pts);
                b.set_duration(gst::ClockTime::from_nseconds(n as u64 * 1_000_000_000 / u64::from(rate.max(1))));
            }
            if self.video.push_buffer(video).is_err() || self.audio.push_buffer(audio).is_err() {
                break;
            }
            frame += 1;
        }
    }

    /// Updates the shared status and reports transitions.
    fn note(&self, shown: &mut Signal, signal: Signal, slate: bool) {
        let source = self.store.source();
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.source = source;
        st.slate = slate;
        if signal == *shown {
            st.signal = signal;
            return;
        }
        match (*shown, signal) {
            (Signal::Locked(a), Signal::Locked(b)) => {
                info!(from = %a, to = %b, "input format changed; following it");
                st.format_changes += 1;
            }
            (Signal::Locked(_), _) => {
                warn!("input signal lost; slate on air");
                st.losses += 1;
            }
            (_, Signal::Locked(f)) => info!(format = %f, "input signal locked; live picture on air"),
            _ => {}
        }
        st.signal = signal;
        st.format = match signal {
            Signal::Locked(f) => Some(f.to_string()),
            _ => st.format.clone(),
        };
        *shown = signal;
        let _ = self.events.send(PipelineEvent::InputSignal(signal));
    }
}
