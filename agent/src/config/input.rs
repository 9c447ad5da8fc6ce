//! `[input]`: where the picture and sound come from.
//!
//! The encoded format lives in `[video]` (width, height, frame rate) and
//! does not follow the input: a venue source that switches from 1080i50 to
//! 720p60 is deinterlaced, scaled and frame-synchronised to it, so the
//! outputs, the flow and the MediaLive input spec never see the change.

use serde::{Deserialize, Serialize};

use super::types::{NoSignalMs, ToneHz};

/// The capture input, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputConfig {
    /// SMPTE colour bars with a burnt-in running clock: no hardware needed.
    TestPattern {
        /// How long without a frame before the slate goes on air.
        #[serde(default = "default_no_signal_ms")]
        no_signal_ms: NoSignalMs,
    },
    /// A V4L2 capture node: a PCIe HDMI card, an HDMI-to-CSI bridge or a
    /// UVC dongle.
    V4l2 {
        /// `/dev/videoN`, or the stable id `edge-agent probe` prints
        /// (`pci-0000:03:00.0`, `usb-1-2`), which survives renumbering.
        device: String,
        #[serde(default = "default_no_signal_ms")]
        no_signal_ms: NoSignalMs,
    },
    /// A Blackmagic DeckLink input through `decklinkvideosrc`.
    Decklink {
        /// GStreamer's `device-number` (0 = first card/sub-device).
        #[serde(default)]
        device_number: u32,
        #[serde(default)]
        connection: DeckLinkConnection,
        #[serde(default = "default_no_signal_ms")]
        no_signal_ms: NoSignalMs,
    },
    /// The first input with a locked signal, in the order DeckLink, V4L2
    /// HDMI receivers, UVC dongles (`hal::capture::auto_order`); with
    /// nothing locked, the first present device; with no device, the slate.
    Auto {
        #[serde(default = "default_no_signal_ms")]
        no_signal_ms: NoSignalMs,
    },
}

impl InputConfig {
    /// The frame watchdog's timeout for this input.
    pub fn no_signal_ms(&self) -> NoSignalMs {
        match self {
            InputConfig::TestPattern { no_signal_ms }
            | InputConfig::V4l2 { no_signal_ms, .. }
            | InputConfig::Decklink { no_signal_ms, .. }
            | InputConfig::Auto { no_signal_ms } => *no_signal_ms,
        }
    }

    /// The name `kind` takes in the file.
    pub fn kind_name(&self) -> &'static str {
        match self {
            InputConfig::TestPattern { .. } => "test-pattern",
            InputConfig::V4l2 { .. } => "v4l2",
            InputConfig::Decklink { .. } => "decklink",
            InputConfig::Auto { .. } => "auto",
        }
    }
}

/// DeckLink `connection`: which physical connector the card listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeckLinkConnection {
    /// The card's default (usually SDI).
    #[default]
    Auto,
    Sdi,
    Hdmi,
}

impl DeckLinkConnection {
    /// The `decklinkvideosrc` `connection` enum nick.
    pub fn gst_nick(self) -> &'static str {
        match self {
            DeckLinkConnection::Auto => "auto",
            DeckLinkConnection::Sdi => "sdi",
            DeckLinkConnection::Hdmi => "hdmi",
        }
    }
}

/// `audio.source`: where the programme sound comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AudioSource {
    /// Embedded audio for DeckLink, the line-up tone for the test pattern,
    /// ALSA when `alsa_device` is set, else silence.
    #[default]
    Auto,
    /// SDI/HDMI embedded audio (DeckLink).
    Embedded,
    /// An ALSA capture device (`audio.alsa_device`), e.g. the HDMI card's
    /// audio function or a line input.
    Alsa,
    /// The 1 kHz line-up tone at -20 dBFS (`audio.tone_hz`).
    Tone,
    Silence,
}

fn default_no_signal_ms() -> NoSignalMs {
    NoSignalMs::try_from(1000).unwrap_or_else(|_| unreachable!())
}

pub(super) fn default_tone() -> ToneHz {
    ToneHz::try_from(1000).unwrap_or_else(|_| unreachable!())
}

/// A box without `[input]` finds its own: `auto`.
impl Default for InputConfig {
    fn default() -> Self {
        InputConfig::Auto { no_signal_ms: default_no_signal_ms() }
    }
}
