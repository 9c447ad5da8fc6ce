//! Encoder element settings per family, from one [`VideoConfig`].
//!
//! Each GStreamer encoder spells bitrate, GOP and rate control differently;
//! this is the one place that knows how. Only x264 is exercised here (no
//! hardware on the build machines); the others follow the elements'
//! documented properties and are marked unverified in the crate docs.

use gstreamer as gst;
use gstreamer::glib::value::ToValue;
use gstreamer::prelude::*;
use hal::encoder::EncoderKind;

use crate::config::{AgentConfig, RateControl, VideoConfig};

/// Picks the encoder: the configured one, or the best that works here
/// (each candidate confirmed by a one-frame trial encode; takes seconds).
pub fn choose_encoder(cfg: &AgentConfig) -> Result<hal::encoder::ProbeReport, hal::HalError> {
    let backend = hal::encoder::GstEncoderBackend::new()?;
    hal::encoder::choose_codec(&backend, cfg.video.encoder.0, cfg.video.codec.hal())
}

/// Creates and configures the encoder element for `factory` of `kind`.
pub fn make_encoder(kind: EncoderKind, factory: &str, video: &VideoConfig) -> Result<gst::Element, String> {
    let kbps = video.bitrate_kbps.get();
    let gop = video.keyframe_interval.get();
    let cbr = video.rate_control == RateControl::Cbr;
    let enc = gst::ElementFactory::make(factory).name("encoder").build().map_err(|e| e.to_string())?;
    match kind {
        EncoderKind::X264 => {
            set_str(&enc, "tune", "zerolatency")?;
            set_str(&enc, "speed-preset", video.x264_preset.as_str())?;
            set(&enc, "bitrate", kbps)?;
            set(&enc, "key-int-max", gop)?;
            // One second of VBV: tight enough for a low-latency contribution
            // link, loose enough to keep quality on scene cuts.
            set(&enc, "vbv-buf-capacity", 1000u32)?;
            if cbr {
                // nal-hrd=cbr makes x264 pad with filler so the rate really is
                // constant; without it a static picture (bars) drops to a few
                // hundred kbit/s and downstream rate estimates swing.
                set(&enc, "option-string", "nal-hrd=cbr:force-cfr=1")?;
            }
        }
        EncoderKind::X265 => {
            set_str(&enc, "tune", "zerolatency")?;
            set_str(&enc, "speed-preset", video.x264_preset.as_str())?;
            set(&enc, "bitrate", kbps)?;
            set(&enc, "key-int-max", i32::try_from(gop).unwrap_or(60))?;
            if cbr {
                // x265's CBR: a VBV as large as one second of the rate,
                // filled strictly (x265 docs, "Rate control").
                set(&enc, "option-string", format!("vbv-maxrate={kbps}:vbv-bufsize={kbps}:strict-cbr=1").as_str())?;
            }
        }
        EncoderKind::Va => {
            set(&enc, "bitrate", kbps)?;
            set(&enc, "key-int-max", gop)?;
            set_str(&enc, "rate-control", if cbr { "cbr" } else { "vbr" })?;
        }
        EncoderKind::Nvenc => {
            set(&enc, "bitrate", kbps)?;
            set(&enc, "gop-size", i32::try_from(gop).unwrap_or(60))?;
            set_str(&enc, "rc-mode", if cbr { "cbr" } else { "vbr" })?;
            set_str(&enc, "preset", "low-latency-hq")?;
        }
        EncoderKind::Qsv => {
            set(&enc, "bitrate", kbps)?;
            set(&enc, "gop-size", gop)?;
            set_str(&enc, "rate-control", if cbr { "cbr" } else { "vbr" })?;
        }
        EncoderKind::V4l2M2m => {
            let controls = gst::Structure::builder("controls")
                .field("video_bitrate", i32::try_from(kbps.saturating_mul(1000)).unwrap_or(i32::MAX))
                .field("h264_i_frame_period", i32::try_from(gop).unwrap_or(60))
                .build();
            set(&enc, "extra-controls", &controls)?;
        }
    }
    Ok(enc)
}

/// Sets a property after checking it exists and has the value's type:
/// gstreamer-rs panics on a mismatch, and hardware encoders differ between
/// GStreamer versions.
fn set<V: ToValue>(el: &gst::Element, name: &str, v: V) -> Result<(), String> {
    let pspec = el.find_property(name).ok_or_else(|| format!("encoder has no `{name}` property"))?;
    let value = v.to_value();
    let value = if value.type_().is_a(pspec.value_type()) {
        value
    } else {
        value
            .transform_with_type(pspec.value_type())
            .map_err(|_| format!("encoder property `{name}` has type {}", pspec.value_type()))?
    };
    el.set_property_from_value(name, &value);
    Ok(())
}

/// Sets an enum or string property from its textual form, checked.
fn set_str(el: &gst::Element, name: &str, text: &str) -> Result<(), String> {
    let pspec = el.find_property(name).ok_or_else(|| format!("encoder has no `{name}` property"))?;
    let value = gst::glib::Value::deserialize_with_pspec(text, &pspec)
        .map_err(|_| format!("encoder property `{name}` does not accept `{text}`"))?;
    el.set_property_from_value(name, &value);
    Ok(())
}

/// The raw video format each family takes without an extra conversion.
pub fn input_format(kind: EncoderKind) -> &'static str {
    kind.raw_format()
}

/// Changes the bitrate of a running encoder, where the element allows it.
/// Whether `factory`'s `bitrate` can change while playing (its ParamSpec
/// carries GStreamer's MUTABLE_PLAYING flag): what network-adaptive bitrate
/// needs. `None` when the element is not installed or has no `bitrate`.
pub fn live_bitrate(factory: &str) -> Option<bool> {
    let enc = gst::ElementFactory::make(factory).build().ok()?;
    let spec = enc.find_property("bitrate")?;
    Some(spec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING))
}

pub fn set_bitrate(enc: &gst::Element, kbps: u32) -> Result<(), String> {
    set(enc, "bitrate", kbps)
}
