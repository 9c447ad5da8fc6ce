//! The media graph, built element by element (not a parsed launch string, so
//! every element and property is checked by the compiler and a missing plugin
//! is a named error):
//!
//! ```text
//! videotestsrc ─ caps ─ timeoverlay ─ videoconvert ─ caps ─ encoder ─ h264parse ─┐
//!                                                                               mpegtsmux ─ appsink
//! audiotestsrc ─ audioconvert ─ audioresample ─ caps ─ AAC encoder ─ aacparse ──┘
//! ```

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use hal::encoder::EncoderKind;

use super::encoder::{input_format, make_encoder};
use super::PipelineError;
use crate::config::{AgentConfig, InputConfig};

/// The built pipeline and the elements the supervisor needs to reach.
#[derive(Debug)]
pub struct Graph {
    pub pipeline: gst::Pipeline,
    pub encoder: gst::Element,
    pub sink: gst_app::AppSink,
}

fn make(factory: &str, name: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| PipelineError::MissingElement(factory.to_owned()))
}

fn capsfilter(name: &str, caps: gst::Caps) -> Result<gst::Element, PipelineError> {
    let f = make("capsfilter", name)?;
    f.set_property("caps", &caps);
    Ok(f)
}

fn link(elements: &[&gst::Element]) -> Result<(), PipelineError> {
    gst::Element::link_many(elements.iter().copied()).map_err(|e| PipelineError::Link(e.to_string()))
}

/// Builds the whole graph for `cfg` with the chosen encoder factory.
pub fn build(cfg: &AgentConfig, kind: EncoderKind, factory: &str) -> Result<Graph, PipelineError> {
    let pipeline = gst::Pipeline::with_name("edge-agent");
    let ts = &cfg.transport_stream;
    let mux = make("mpegtsmux", "mux")?;
    // alignment=7: every output buffer is 7×188 = 1316 bytes, exactly one SRT
    // or RTP payload (fec-and-gstreamer.md §3).
    mux.set_property("alignment", 7i32);
    let video_pad_name = format!("sink_{}", ts.video_pid.get());
    let audio_pad_name = format!("sink_{}", ts.audio_pid.get());
    let program = i32::from(ts.program_number.get());
    // prog-map: pad → program, PMT_<n> → PMT PID, PCR_<n> → the pad that
    // carries the PCR (video, as MediaLive expects) — gstbasetsmux.c.
    let prog_map = gst::Structure::builder("prog-map")
        .field(video_pad_name.as_str(), program)
        .field(audio_pad_name.as_str(), program)
        // PMT_<n> must be a uint: an int is silently ignored (PMT lands on 32).
        .field(format!("PMT_{program}").as_str(), u32::from(ts.pmt_pid.get()))
        .field(format!("PCR_{program}").as_str(), video_pad_name.as_str())
        .build();
    mux.set_property("prog-map", &prog_map);

    let sink = gst_app::AppSink::builder().name("ts-sink").sync(false).build();
    pipeline
        .add_many([&mux, sink.upcast_ref()])
        .map_err(|e| PipelineError::Link(e.to_string()))?;
    link(&[&mux, sink.upcast_ref()])?;

    let encoder = add_video(&pipeline, cfg, kind, factory, &mux, &video_pad_name)?;
    add_audio(&pipeline, cfg, &mux, &audio_pad_name)?;
    Ok(Graph { pipeline, encoder, sink })
}

fn add_video(
    pipeline: &gst::Pipeline,
    cfg: &AgentConfig,
    kind: EncoderKind,
    factory: &str,
    mux: &gst::Element,
    pad_name: &str,
) -> Result<gst::Element, PipelineError> {
    let InputConfig::TestPattern { width, height, framerate, .. } = &cfg.input;
    let src = make("videotestsrc", "video-src")?;
    src.set_property("is-live", true);
    src.set_property_from_str("pattern", "smpte");
    let raw_caps = gst::Caps::builder("video/x-raw")
        .field("width", i32::try_from(width.get()).unwrap_or(1280))
        .field("height", i32::try_from(height.get()).unwrap_or(720))
        .field("framerate", gst::Fraction::new(
            i32::try_from(framerate.num).unwrap_or(30),
            i32::try_from(framerate.den).unwrap_or(1),
        ))
        .build();
    let src_caps = capsfilter("video-caps", raw_caps)?;
    // The running clock makes a frozen picture obvious at the receiver, and
    // the device id says which box a feed comes from.
    let clock = make("timeoverlay", "clock")?;
    clock.set_property("text", cfg.device_id.as_str());
    clock.set_property_from_str("halignment", "center");
    clock.set_property_from_str("valignment", "bottom");
    clock.set_property("shaded-background", true);
    clock.set_property("font-desc", "Monospace 32");
    let convert = make("videoconvert", "video-convert")?;
    let enc_caps = capsfilter(
        "encoder-caps",
        gst::Caps::builder("video/x-raw").field("format", input_format(kind)).build(),
    )?;
    let encoder = make_encoder(kind, factory, &cfg.video).map_err(PipelineError::Encoder)?;
    let parse = make("h264parse", "video-parse")?;
    // SPS/PPS before every IDR, so a receiver that joins late (or an output
    // that reconnects) can start decoding at the next keyframe.
    parse.set_property("config-interval", -1i32);
    let queue = make("queue", "video-queue")?;
    let chain = [&src, &src_caps, &clock, &convert, &enc_caps, &encoder, &parse, &queue];
    pipeline
        .add_many(chain)
        .map_err(|e| PipelineError::Link(e.to_string()))?;
    link(&chain)?;
    link_to_mux(&queue, mux, pad_name)?;
    Ok(encoder)
}

fn add_audio(
    pipeline: &gst::Pipeline,
    cfg: &AgentConfig,
    mux: &gst::Element,
    pad_name: &str,
) -> Result<(), PipelineError> {
    let InputConfig::TestPattern { tone_hz, .. } = &cfg.input;
    let src = make("audiotestsrc", "audio-src")?;
    src.set_property("is-live", true);
    src.set_property("freq", f64::from(tone_hz.get()));
    // 0.1 = -20 dBFS, the EBU R68-style line-up level.
    src.set_property("volume", 0.1f64);
    let convert = make("audioconvert", "audio-convert")?;
    let resample = make("audioresample", "audio-resample")?;
    let caps = capsfilter(
        "audio-caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", i32::try_from(cfg.audio.sample_rate.get()).unwrap_or(48_000))
            .field("channels", i32::try_from(cfg.audio.channels.get()).unwrap_or(2))
            .build(),
    )?;
    // libav's native AAC first; voaacenc (gst-plugins-bad) as the fallback.
    let aac = make("avenc_aac", "audio-encoder").or_else(|_| make("voaacenc", "audio-encoder"))?;
    let bps = i32::try_from(cfg.audio.bitrate_kbps.get() * 1000).unwrap_or(128_000);
    if aac.find_property("bitrate").is_some_and(|p| p.value_type() == i64::static_type()) {
        aac.set_property("bitrate", i64::from(bps));
    } else {
        aac.set_property("bitrate", bps);
    }
    let parse = make("aacparse", "audio-parse")?;
    let queue = make("queue", "audio-queue")?;
    let chain = [&src, &convert, &resample, &caps, &aac, &parse, &queue];
    pipeline
        .add_many(chain)
        .map_err(|e| PipelineError::Link(e.to_string()))?;
    link(&chain)?;
    link_to_mux(&queue, mux, pad_name)
}

/// mpegtsmux takes the PID from the requested pad's name (`sink_<pid>`).
fn link_to_mux(from: &gst::Element, mux: &gst::Element, pad_name: &str) -> Result<(), PipelineError> {
    let sink_pad = mux
        .request_pad_simple(pad_name)
        .ok_or_else(|| PipelineError::Link(format!("mpegtsmux refused pad {pad_name}")))?;
    let src_pad = from
        .static_pad("src")
        .ok_or_else(|| PipelineError::Link("queue without src pad".to_owned()))?;
    src_pad
        .link(&sink_pad)
        .map(|_| ())
        .map_err(|e| PipelineError::Link(format!("{pad_name}: {e}")))
}
