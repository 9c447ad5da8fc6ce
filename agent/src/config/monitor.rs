//! `[monitor]`: content alarms and thumbnails (docs/monitoring.md).
//! Absent = on, with the defaults below: a box nobody watches must say when
//! it sends black, a frozen frame or silence.

use serde::{Deserialize, Serialize};

/// A duration in whole seconds, 1..=3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct MonitorSeconds(u32);

impl MonitorSeconds {
    pub fn get(self) -> u32 {
        self.0
    }
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.0))
    }
}

impl TryFrom<i64> for MonitorSeconds {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(v) if (1..=3600).contains(&v) => Ok(MonitorSeconds(v)),
            _ => Err(format!("{v} is out of range: must be 1..=3600 s")),
        }
    }
}

impl From<MonitorSeconds> for u32 {
    fn from(v: MonitorSeconds) -> u32 {
        v.0
    }
}

/// The mean 8-bit luma at or below which a picture counts as black,
/// 17..=128 (video-range black is 16: a threshold at 16 could never hold
/// with a burnt-in caption, one above 128 would call grey black).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct LumaMax(u8);

impl LumaMax {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for LumaMax {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u8::try_from(v) {
            Ok(v) if (17..=128).contains(&v) => Ok(LumaMax(v)),
            _ => Err(format!("{v} is out of range: must be 17..=128 (8-bit luma; black is 16)")),
        }
    }
}

impl From<LumaMax> for u32 {
    fn from(v: LumaMax) -> u32 {
        u32::from(v.0)
    }
}

/// An audio level in dBFS below which sound counts as silence, -100..=-20.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "i32")]
pub struct SilentDbfs(i32);

impl SilentDbfs {
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for SilentDbfs {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match i32::try_from(v) {
            Ok(v) if (-100..=-20).contains(&v) => Ok(SilentDbfs(v)),
            _ => Err(format!("{v} is out of range: must be -100..=-20 dBFS")),
        }
    }
}

impl From<SilentDbfs> for i32 {
    fn from(v: SilentDbfs) -> i32 {
        v.0
    }
}

/// The thumbnail's width in pixels, even, 64..=1280 (its height follows the
/// video's aspect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct ThumbnailWidth(u32);

impl ThumbnailWidth {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for ThumbnailWidth {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(v) if (64..=1280).contains(&v) && v % 2 == 0 => Ok(ThumbnailWidth(v)),
            _ => Err(format!("{v} is out of range: must be an even width in 64..=1280")),
        }
    }
}

impl From<ThumbnailWidth> for u32 {
    fn from(v: ThumbnailWidth) -> u32 {
        v.0
    }
}

/// `[monitor]`: what the picture and sound leaving the box look like.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Mean luma (8-bit) at or below which the picture is black.
    #[serde(default = "default_luma_max")]
    pub black_luma_max: LumaMax,
    /// How long the picture must stay black before `BLACK_PICTURE`.
    #[serde(default = "default_black_after")]
    pub black_after_s: MonitorSeconds,
    /// How long the picture must stay unchanged before `FROZEN_PICTURE`.
    #[serde(default = "default_frozen_after")]
    pub frozen_after_s: MonitorSeconds,
    /// RMS level (dBFS) below which the sound is silent.
    #[serde(default = "default_silent_dbfs")]
    pub silent_dbfs: SilentDbfs,
    /// How long the sound must stay silent before `SILENT_AUDIO`.
    #[serde(default = "default_silent_after")]
    pub silent_after_s: MonitorSeconds,
    /// Thumbnail width; its height follows the video's aspect ratio.
    #[serde(default = "default_thumbnail_width")]
    pub thumbnail_width: ThumbnailWidth,
    /// A new thumbnail (JPEG beside the status file) this often.
    #[serde(default = "default_thumbnail_every")]
    pub thumbnail_every_s: MonitorSeconds,
    /// The newest thumbnail goes to the fleet this often (MQTT, QoS 0).
    #[serde(default = "default_thumbnail_publish")]
    pub thumbnail_publish_s: MonitorSeconds,
}

fn default_luma_max() -> LumaMax {
    LumaMax(32)
}
fn default_black_after() -> MonitorSeconds {
    MonitorSeconds(5)
}
fn default_frozen_after() -> MonitorSeconds {
    MonitorSeconds(10)
}
fn default_silent_dbfs() -> SilentDbfs {
    SilentDbfs(-60)
}
fn default_silent_after() -> MonitorSeconds {
    MonitorSeconds(10)
}
fn default_thumbnail_width() -> ThumbnailWidth {
    ThumbnailWidth(320)
}
fn default_thumbnail_every() -> MonitorSeconds {
    MonitorSeconds(5)
}
fn default_thumbnail_publish() -> MonitorSeconds {
    MonitorSeconds(10)
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            black_luma_max: default_luma_max(),
            black_after_s: default_black_after(),
            frozen_after_s: default_frozen_after(),
            silent_dbfs: default_silent_dbfs(),
            silent_after_s: default_silent_after(),
            thumbnail_width: default_thumbnail_width(),
            thumbnail_every_s: default_thumbnail_every(),
            thumbnail_publish_s: default_thumbnail_publish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_is_the_default() {
        let parsed: MonitorConfig = toml::from_str("").unwrap();
        assert_eq!(parsed, MonitorConfig::default());
        assert_eq!(parsed.black_luma_max.get(), 32);
        assert_eq!(parsed.silent_dbfs.get(), -60);
    }

    #[test]
    fn newtypes_check_their_ranges() {
        assert!(LumaMax::try_from(16).is_err());
        assert!(SilentDbfs::try_from(0).is_err());
        assert!(ThumbnailWidth::try_from(321).is_err());
        assert!(MonitorSeconds::try_from(0).is_err());
        assert_eq!(MonitorSeconds::try_from(3600).unwrap().get(), 3600);
    }
}
