//! Hardware abstraction layer for edge-agent.
//!
//! # Background
//! A venue encoder box has capture inputs (SDI, HDMI, or nothing but a test
//! pattern) and one or more H.264 encoders (VA-API, NVENC, Quick Sync, a
//! V4L2 memory-to-memory block, or software x264). Which ones work is only
//! known at run time: a GStreamer factory being installed proves nothing
//! until a frame has actually been encoded (see
//! `docs/gstreamer.md#encoders`).
//!
//! # Design
//! Each piece of hardware sits behind a narrow trait with a real
//! implementation and a hand-written fake:
//! - [`encoder::EncoderBackend`]: "is this factory installed?" and "does a
//!   one-frame trial encode succeed?"; [`encoder::probe`] walks the
//!   preference order and records why each candidate was or was not chosen.
//! - [`capture`]: V4L2 and DeckLink discovery, signal state (DV timings or
//!   a frame watchdog), hot-plug by rescans, `auto` selection order.
//! - [`input`]: the inventory of inputs (devices, then the test pattern).
//! - [`panel`]: the front-panel board's line protocol and serial link.
//! - [`sensors`]: temperatures, load, memory, disk, clock sync, overheat.
//!
//! # Limitations
//! No capture card or hardware encoder is attached to the build machines:
//! discovery runs over fake sysfs trees and encoder property mapping is
//! written from the GStreamer documentation.

pub mod capture;
pub mod encoder;
pub mod error;
pub mod gpu;
pub mod identity;
pub mod input;
pub mod panel;
pub mod sensors;

pub use error::HalError;
