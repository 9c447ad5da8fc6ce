//! The encoding graph, built element by element (not a parsed launch
//! string, so every element and property is checked by the compiler and a
//! missing plugin is a named error). Its inputs are two app sources fed by
//! the frame pump ([`super::pump`]), so nothing upstream of the encoder can
//! stall or renegotiate it:
//!
//! ```text
//! appsrc (I420 W×H) ─ videoconvert ─ caps ─ encoder ─ h264parse ─ queue ─┐
//!                                                                       mpegtsmux ─ appsink
//! appsrc (S16 48k) ─ audioconvert ─ caps ─ AAC encoder ─ aacparse ─ queue ┘
//! ```

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use hal::encoder::EncoderKind;

use super::encoder::{input_format, make_encoder};
use super::PipelineError;
use crate::config::{AgentConfig, VideoConfig};

/// The built pipeline and the elements the supervisor needs to reach.
#[derive(Debug)]
pub struct Graph {
    pub pipeline: gst::Pipeline,
    pub encoder: gst::Element,
    pub sink: gst_app::AppSink,
    /// Raw video and interleaved S16 audio in, fed by the frame pump
    /// (`None` in graphs that bring their own sources, as tests do).
    pub inputs: Option<(gst_app::AppSrc, gst_app::AppSrc)>,
}

/// Raw video caps of the output format (`format` = None: any format).
pub fn raw_video_caps(video: &VideoConfig, format: Option<&str>) -> gst::Caps {
    let mut b = gst::Caps::builder("video/x-raw");
    if let Some(f) = format {
        b = b.field("format", f);
    }
    b.field("width", i32::try_from(video.width.get()).unwrap_or(1280))
        .field("height", i32::try_from(video.height.get()).unwrap_or(720))
        .field(
            "framerate",
            gst::Fraction::new(i32::try_from(video.framerate.num).unwrap_or(30), i32::try_from(video.framerate.den).unwrap_or(1)),
        )
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

/// Interleaved S16 at the configured rate and channels: what capture
/// delivers and the frame pump pushes.
pub fn raw_audio_caps(cfg: &AgentConfig) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", i32::try_from(cfg.audio.sample_rate.get()).unwrap_or(48_000))
        .field("channels", i32::try_from(cfg.audio.channels.get()).unwrap_or(2))
        .build()
}

/// Creates a named element, or says which plugin is missing.
pub fn make(factory: &str, name: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory).name(name).build().map_err(|_| PipelineError::MissingElement(factory.to_owned()))
}

pub fn capsfilter(name: &str, caps: gst::Caps) -> Result<gst::Element, PipelineError> {
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
    // or RTP payload (`docs/gstreamer.md#mux-alignment`).
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
    pipeline.add_many([&mux, sink.upcast_ref()]).map_err(|e| PipelineError::Link(e.to_string()))?;
    link(&[&mux, sink.upcast_ref()])?;

    let (video_src, encoder) = add_video(&pipeline, cfg, kind, factory, &mux, &video_pad_name)?;
    let audio_src = add_audio(&pipeline, cfg, &mux, &audio_pad_name)?;
    // RTMP outputs: H.264 + AAC teed off before the TS muxer (`flv.rs`).
    super::flv::attach(&pipeline, cfg)?;
    Ok(Graph { pipeline, encoder, sink, inputs: Some((video_src, audio_src)) })
}

/// A live app source in time format that never blocks the pump: a full
/// queue (the pipeline is stuck) drops instead, and the supervisor's stall
/// detection rebuilds the graph.
fn app_source(name: &str, caps: &gst::Caps) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .caps(caps)
        .is_live(true)
        .format(gst::Format::Time)
        .max_bytes(64 * 1024 * 1024)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build()
}

fn add_video(
    pipeline: &gst::Pipeline,
    cfg: &AgentConfig,
    kind: EncoderKind,
    factory: &str,
    mux: &gst::Element,
    pad_name: &str,
) -> Result<(gst_app::AppSrc, gst::Element), PipelineError> {
    let src = app_source("video-in", &raw_video_caps(&cfg.video, Some("I420")));
    let convert = make("videoconvert", "video-convert")?;
    let enc_caps = capsfilter("encoder-caps", gst::Caps::builder("video/x-raw").field("format", input_format(kind)).build())?;
    let encoder = make_encoder(kind, factory, &cfg.video).map_err(PipelineError::Encoder)?;
    let parse = make(parser(cfg), "video-parse")?;
    // SPS/PPS (and VPS) before every IDR, so a receiver that joins late (or
    // an output that reconnects) can start decoding at the next keyframe.
    parse.set_property("config-interval", -1i32);
    let queue = make("queue", "video-queue")?;
    let chain = [src.upcast_ref(), &convert, &enc_caps, &encoder, &parse, &queue];
    pipeline.add_many(chain).map_err(|e| PipelineError::Link(e.to_string()))?;
    link(&chain)?;
    link_to_mux(&queue, mux, pad_name)?;
    Ok((src, encoder))
}

/// The bitstream parser for the configured codec.
fn parser(cfg: &AgentConfig) -> &'static str {
    match cfg.video.codec {
        crate::config::VideoCodec::H264 => "h264parse",
        crate::config::VideoCodec::H265 => "h265parse",
    }
}

fn add_audio(
    pipeline: &gst::Pipeline,
    cfg: &AgentConfig,
    mux: &gst::Element,
    pad_name: &str,
) -> Result<gst_app::AppSrc, PipelineError> {
    let src = app_source("audio-in", &raw_audio_caps(cfg));
    let convert = make("audioconvert", "audio-convert")?;
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
    let chain = [src.upcast_ref(), &convert, &aac, &parse, &queue];
    pipeline.add_many(chain).map_err(|e| PipelineError::Link(e.to_string()))?;
    link(&chain)?;
    link_to_mux(&queue, mux, pad_name)?;
    Ok(src)
}

/// mpegtsmux takes the PID from the requested pad's name (`sink_<pid>`).
fn link_to_mux(from: &gst::Element, mux: &gst::Element, pad_name: &str) -> Result<(), PipelineError> {
    let sink_pad = mux.request_pad_simple(pad_name).ok_or_else(|| PipelineError::Link(format!("mpegtsmux refused pad {pad_name}")))?;
    let src_pad = from.static_pad("src").ok_or_else(|| PipelineError::Link("queue without src pad".to_owned()))?;
    src_pad.link(&sink_pad).map(|_| ()).map_err(|e| PipelineError::Link(format!("{pad_name}: {e}")))
}
