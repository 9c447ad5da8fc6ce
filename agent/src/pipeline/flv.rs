//! The FLV branch for RTMP outputs, packaged from the one encode.
//!
//! When the configuration has an RTMP output, the parsed H.264 and AAC
//! streams are teed off before the TS muxer into one FLV muxer:
//!
//! ```text
//! video-parse ─ tee ─ (queue ─ mpegtsmux: the TS path, unchanged)
//!                 └─ queue (leaky, ≤ 2 s) ─ h264parse (avc) ─┐
//!                                                          flvmux streamable ─ appsink ─ FlvHub
//! audio-parse ─ tee ─ (queue ─ mpegtsmux)                    │
//!                 └─ queue (leaky, ≤ 2 s) ─ aacparse (raw) ──┘
//! ```
//!
//! The branch ends in an appsink, not in `rtmp2sink`: each RTMP output runs
//! its own small `appsrc ! rtmp2sink` pipeline (the `rtmp` output module)
//! that it rebuilds on its own when its server goes away, with no effect on
//! this graph (an error posted inside this graph rebuilds the encoder and
//! breaks every TS output). One muxer serves every RTMP output, so the
//! pipeline A and B destinations of a MediaLive input get the very same tags
//! and timestamps. The leaky queues and the never-blocking hand-over to the
//! outputs' bounded queues mean nothing on this side waits for a network.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::info;

use super::graph::make;
use super::PipelineError;
use crate::config::{AgentConfig, OutputConfig};
use crate::fanout::{FanOut, TsChunk};

/// Whether `cfg` needs the FLV branch (any RTMP output). The branch is part
/// of the graph: a configuration that adds the first RTMP output or removes
/// the last one rebuilds the pipeline (`controller::apply`).
pub fn wanted(cfg: &AgentConfig) -> bool {
    cfg.outputs.iter().any(|o| matches!(o, OutputConfig::Rtmp(_)))
}

/// How much the branch may hold before the FLV muxer, in time; older
/// buffers are dropped (`leaky=downstream`), never the encoder blocked.
const BRANCH_QUEUE_NS: u64 = 2_000_000_000;

/// Where the FLV branch delivers: one tag per item to every RTMP output's
/// bounded queue, and the stream headers (FLV header, metadata, AVC and
/// AAC sequence headers) as the muxer's caps.
///
/// One per process, like the encode it carries: the pipeline and the
/// outputs are started apart (by the controller) and meet here.
#[derive(Debug)]
pub struct FlvHub {
    /// The outputs' queues; [`TsChunk::data`] is one whole FLV tag.
    pub fan: FanOut,
    caps: Mutex<Option<gst::Caps>>,
    /// Bumped for each new FLV stream (a rebuilt pipeline restarts the
    /// timestamps): outputs start a new RTMP session for it.
    generation: AtomicU64,
}

/// The process's FLV hub.
pub fn hub() -> &'static FlvHub {
    static HUB: OnceLock<FlvHub> = OnceLock::new();
    HUB.get_or_init(|| FlvHub { fan: FanOut::new(1), caps: Mutex::new(None), generation: AtomicU64::new(0) })
}

impl FlvHub {
    /// The current stream: its generation and caps (with `streamheader`).
    pub fn stream(&self) -> Option<(u64, gst::Caps)> {
        let caps = self.caps.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some((self.generation(), caps))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn set_caps(&self, caps: Option<gst::Caps>) {
        *self.caps.lock().unwrap_or_else(|p| p.into_inner()) = caps;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Whether an FLV tag is a video keyframe (not a sequence header): where
/// a new RTMP session, or one that fell behind, may start.
pub fn is_keyframe_tag(tag: &[u8]) -> bool {
    // Tag header: type (9 = video), 3 bytes size, 4 timestamp, 3 stream id;
    // then the video data: frame type (1 = key) << 4 | codec, AVC packet
    // type (1 = NAL units) — FLV spec v10.1, E.4.1 and E.4.3.
    tag.len() > 12 && tag[0] == 9 && tag[11] >> 4 == 1 && tag[12] == 1
}

/// Adds the FLV branch to a graph built by [`super::graph::build`] when
/// `cfg` has an RTMP output; otherwise ends the previous graph's FLV
/// stream, so no output keeps sending its stale headers.
pub fn attach(pipeline: &gst::Pipeline, cfg: &AgentConfig) -> Result<(), PipelineError> {
    if !wanted(cfg) {
        if hub().stream().is_some() {
            hub().set_caps(None);
        }
        return Ok(());
    }
    let mux = make("flvmux", "flv-mux")?;
    mux.set_property("streamable", true);
    let sink = gst_app::AppSink::builder().name("flv-sink").sync(false).build();
    pipeline.add_many([&mux, sink.upcast_ref()]).map_err(|e| PipelineError::Link(e.to_string()))?;
    mux.link(&sink).map_err(|e| PipelineError::Link(format!("flvmux: {e}")))?;
    tap(pipeline, "video-parse", "flv-video", "h264parse", &mux)?;
    tap(pipeline, "audio-parse", "flv-audio", "aacparse", &mux)?;
    install_sink(&sink);
    Ok(())
}

/// Inserts a tee after the element `from`, keeping its current link, and
/// runs the new branch through a leaky queue and a parser (which converts
/// to what FLV carries: AVC, raw AAC) into `mux`.
fn tap(pipeline: &gst::Pipeline, from: &str, prefix: &str, parser: &str, mux: &gst::Element) -> Result<(), PipelineError> {
    let link_err = |e: &dyn std::fmt::Display| PipelineError::Link(format!("{prefix}: {e}"));
    let up = pipeline.by_name(from).ok_or_else(|| link_err(&format!("no element {from}")))?;
    let src = up.static_pad("src").ok_or_else(|| link_err(&"no src pad"))?;
    let tee = make("tee", &format!("{prefix}-tee"))?;
    let queue = make("queue", &format!("{prefix}-queue"))?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-time", BRANCH_QUEUE_NS);
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    let parse = make(parser, &format!("{prefix}-parse"))?;
    pipeline.add_many([&tee, &queue, &parse]).map_err(|e| link_err(&e))?;
    if let Some(peer) = src.peer() {
        src.unlink(&peer).map_err(|e| link_err(&e))?;
        let tee_src = tee.request_pad_simple("src_%u").ok_or_else(|| link_err(&"tee refused a pad"))?;
        tee_src.link(&peer).map_err(|e| link_err(&e))?;
    }
    gst::Element::link_many([&up, &tee, &queue, &parse, mux]).map_err(|e| link_err(&e))
}

/// On the streaming thread: publishes each tag without ever blocking, and
/// the caps (stream headers) whenever they change.
fn install_sink(sink: &gst_app::AppSink) {
    let last_caps: Mutex<Option<gst::Caps>> = Mutex::new(None);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(caps) = sample.caps() {
                    let mut last = last_caps.lock().unwrap_or_else(|p| p.into_inner());
                    if last.as_ref().is_none_or(|l| l.as_ref() != caps) {
                        info!("FLV stream headers ready");
                        hub().set_caps(Some(caps.to_owned()));
                        *last = Some(caps.to_owned());
                    }
                }
                let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                // The headers travel in the caps' `streamheader`.
                if buffer.flags().contains(gst::BufferFlags::HEADER) {
                    return Ok(gst::FlowSuccess::Ok);
                }
                let Ok(map) = buffer.map_readable() else { return Ok(gst::FlowSuccess::Ok) };
                hub().fan.publish(&TsChunk { data: Bytes::copy_from_slice(map.as_slice()), produced: Instant::now() });
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_told_from_the_tag() {
        let mut tag = vec![9u8, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x17, 1, 0, 0, 0];
        assert!(is_keyframe_tag(&tag));
        tag[12] = 0; // AVC sequence header
        assert!(!is_keyframe_tag(&tag));
        tag[12] = 1;
        tag[11] = 0x27; // inter frame
        assert!(!is_keyframe_tag(&tag));
        tag[0] = 8; // audio
        tag[11] = 0x17;
        assert!(!is_keyframe_tag(&tag));
        assert!(!is_keyframe_tag(&tag[..5]));
    }
}
