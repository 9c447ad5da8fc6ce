//! The picture that goes on air while the input has no signal.
//!
//! 75 % colour bars across the whole frame (so a receiver can tell it from
//! the SMPTE test pattern at a glance and by measurement), "NO SIGNAL" and
//! the box's id on a black box in the centre. Rendered once per pipeline
//! build, then repeated by the frame pump: no CPU while it is on air.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::PipelineError;

/// Renders one raw I420 frame of `width`×`height`.
pub fn render(width: u32, height: u32, device_id: &str) -> Result<gst::Buffer, PipelineError> {
    let w = i32::try_from(width).map_err(|_| PipelineError::Link("slate width".into()))?;
    let h = i32::try_from(height).map_err(|_| PipelineError::Link("slate height".into()))?;
    let bars = super::graph::make("videotestsrc", "slate-bars")?;
    bars.set_property_from_str("pattern", "smpte75");
    bars.set_property("num-buffers", 1i32);
    let text = super::graph::make("textoverlay", "slate-text")?;
    text.set_property("text", format!("NO SIGNAL\n{device_id}"));
    text.set_property("font-desc", format!("Sans Bold {}", (height / 14).max(8)));
    text.set_property_from_str("halignment", "center");
    text.set_property_from_str("valignment", "center");
    text.set_property_from_str("line-alignment", "center");
    text.set_property("shaded-background", true);
    // Fully black behind the letters: the centre stays readable on any
    // monitor and measurable in tests.
    text.set_property("shading-value", 255u32);
    let convert = super::graph::make("videoconvert", "slate-convert")?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", w)
        .field("height", h)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let sink = gst_app::AppSink::builder().caps(&caps).sync(false).build();
    let pipeline = gst::Pipeline::with_name("slate");
    let elements = [&bars, &text, &convert, sink.upcast_ref()];
    pipeline.add_many(elements).map_err(|e| PipelineError::Link(e.to_string()))?;
    gst::Element::link_many(elements).map_err(|e| PipelineError::Link(e.to_string()))?;
    pipeline.set_state(gst::State::Playing).map_err(|_| PipelineError::Start("slate renderer refused to start".into()))?;
    let sample = sink.try_pull_sample(gst::ClockTime::from_nseconds(u64::try_from(RENDER_TIMEOUT.as_nanos()).unwrap_or(u64::MAX)));
    let _ = pipeline.set_state(gst::State::Null);
    let sample = sample.ok_or_else(|| PipelineError::Start("slate renderer produced no frame in 10 s".into()))?;
    sample.buffer_owned().ok_or_else(|| PipelineError::Start("slate sample without buffer".into()))
}

/// How long rendering may take before the pipeline build gives up.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slate_is_bars_with_a_black_centre_and_white_text() {
        gst::init().unwrap();
        let (w, h) = (640usize, 360usize);
        let buf = render(640, 360, "box-7").unwrap();
        let map = buf.map_readable().unwrap();
        let y = &map.as_slice()[..w * h];
        assert_eq!(map.len(), w * h * 3 / 2, "one I420 frame");
        // Bottom-left: the 75 % white bar reaches the bottom edge (the SMPTE
        // pattern has its dark -I/PLUGE row there instead).
        let corner = y[(h - 4) * w + 8];
        assert!(corner > 150, "bottom-left luma {corner}");
        // Centre third: a black box and white letters. No 75 % bar is that
        // dark (the darkest there, magenta, is luma ~63) or that bright.
        let centre: Vec<u8> = (h / 3..2 * h / 3).flat_map(|r| y[r * w + w / 3..r * w + 2 * w / 3].to_vec()).collect();
        assert!(centre.iter().filter(|&&v| v < 40).count() > 1000, "black behind the text");
        assert!(centre.iter().filter(|&&v| v > 200).count() > 200, "white letters");
    }
}
