//! `[adapt]`: network-adaptive video bitrate (docs/adaptive-bitrate.md).
//! Absent = off: the encoder stays at `video.bitrate_kbps`.

use serde::{Deserialize, Serialize};

use super::types::VideoBitrateKbps;

/// How the SRT outputs that share the one encoder set its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AdaptMode {
    /// The slowest SRT path that can still carry the floor sets the rate;
    /// a path that cannot is declared congested and stops counting.
    #[default]
    FollowAll,
    /// The best SRT path sets the rate; the others carry what they can.
    FollowBest,
    /// Keep `video.bitrate_kbps` (the section stays for its overhead cap).
    Off,
}

/// Retransmission overhead libsrt may add over the input rate
/// (`SRTO_OHEADBW`): libsrt accepts 5..=100 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct OverheadPercent(u32);

impl OverheadPercent {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for OverheadPercent {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(v) if (5..=100).contains(&v) => Ok(OverheadPercent(v)),
            _ => Err(format!("{v} is out of range: must be 5..=100 %")),
        }
    }
}

impl From<OverheadPercent> for u32 {
    fn from(v: OverheadPercent) -> u32 {
        v.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptConfig {
    #[serde(default)]
    pub mode: AdaptMode,
    /// The lowest video bitrate adaptation may choose; the configured
    /// `video.bitrate_kbps` is the ceiling.
    pub min_bitrate_kbps: VideoBitrateKbps,
    /// Caps each SRT output's send rate, retransmissions included, at the
    /// measured input rate plus this share, so a narrowed link is not
    /// flooded with retransmissions (`SRTO_MAXBW` 0, `SRTO_OHEADBW`).
    #[serde(default = "default_overhead")]
    pub srt_overhead_percent: OverheadPercent,
}

fn default_overhead() -> OverheadPercent {
    OverheadPercent(25)
}

impl AdaptConfig {
    /// Cross-field rules: the floor must sit below the ceiling, and a
    /// software encoder in CBR cannot follow (its filler keeps the rate it
    /// started with, whatever the live bitrate says; `auto` may pick a
    /// hardware encoder, so that case is reported at run time instead).
    pub(super) fn validate(&self, video: &super::VideoConfig) -> Result<(), (String, String)> {
        use hal::encoder::{EncoderKind, EncoderRequest};
        let ceiling = video.bitrate_kbps;
        let software = matches!(video.encoder.0, EncoderRequest::Force(EncoderKind::X264 | EncoderKind::X265));
        if self.mode != AdaptMode::Off && software && video.rate_control == super::RateControl::Cbr {
            return Err((
                "adapt".into(),
                "x264/x265 in CBR pad with filler to their start rate and cannot follow a live target: \
                 set video.rate_control = \"vbr\" (or adapt mode = \"off\")"
                    .into(),
            ));
        }
        if self.min_bitrate_kbps > ceiling {
            return Err((
                "adapt.min_bitrate_kbps".into(),
                format!("{} is above video.bitrate_kbps ({ceiling})", self.min_bitrate_kbps),
            ));
        }
        Ok(())
    }
}
