//! The front-panel board: status LEDs, a tally lamp, buttons and a few
//! board sensors on a microcontroller behind a USB serial port.
//!
//! # Background
//! The box has no screen. Its front panel is a small microcontroller (a USB
//! CDC-ACM device, `/dev/serial/by-id/...`) that drives LEDs and reports
//! button presses. It can be unplugged, reset by its watchdog, or be absent
//! on a bench unit; the agent must keep streaming regardless.
//!
//! # Protocol
//! 115200 baud 8N1, no flow control. Lines of printable ASCII (0x20–0x7e),
//! fields separated by one space, terminated by `\n` (a `\r` before it is
//! tolerated); at most [`MAX_LINE`] = 64 bytes including the `\n`. Longer
//! lines are discarded up to the next `\n`. `<seq>` is decimal 0–65535,
//! chosen by the host, wrapping; the board echoes it without interpreting
//! it. Every host command is answered with `OK <seq>` or `ERR <seq> <reason>`.
//!
//! | Direction | Line | Meaning |
//! |---|---|---|
//! | host → board | `HELLO <seq>` | Sent after every open. The board turns all outputs off and answers `HELLO <fw-version>`, then `OK <seq>`. |
//! | host → board | `LED <seq> <led> <mode> [<colour>]` | `<led>`: `power`, `network`, `primary`, `backup`; `<mode>`: `off`, `on`, `blink` (1 Hz), `fast` (4 Hz); `<colour>`: `red`, `green`, `amber`, `blue`, board default if omitted. |
//! | host → board | `TALLY <seq> <off\|red\|green>` | On-air tally lamp. |
//! | host → board | `PING <seq>` | Keepalive when nothing else was received for a while. |
//! | board → host | `OK <seq>` | Command `<seq>` applied. |
//! | board → host | `ERR <seq> <reason>` | Command `<seq>` refused; `<reason>` is free text to the end of the line (`no blue on power`). |
//! | board → host | `BTN <name> <short\|long>` | A button was released after a short or a long press (the board times it); `<name>` is `[a-z0-9_-]{1,16}`, e.g. `front`. |
//! | board → host | `TEMP <millideg>` | Board temperature in m°C, may be negative. |
//! | board → host | `FAN <rpm>` | Fan speed. |
//! | board → host | `PSU <millivolts> <milliamps>` | Supply rail. |
//! | board → host | `HELLO <fw-version>` | After reset and in answer to `HELLO`: all outputs are off now. `<fw-version>` is 1–32 non-space characters. |
//!
//! The host ignores lines it does not understand (newer firmware may add
//! messages); the board answers unknown or malformed commands that carry a
//! `<seq>` with `ERR <seq> <reason>`.
//!
//! # Design
//! - [`codec`]: sans-IO encoding and parsing, never panics on garbage
//!   (property-tested), plus [`LineBuffer`] for framing.
//! - [`PanelState`]: sans-IO reconciler between the desired LED/tally state
//!   and what the board acknowledged; it yields the commands still to send,
//!   re-sends after an acknowledgement timeout, and after a board reset
//!   (`HELLO`) or reopen sends everything again.
//! - [`PanelLink`]: the tokio I/O shell around a serial port. Setting LEDs
//!   writes to a watch channel and returns at once; a background task opens
//!   the port, reconnects with exponential backoff and reports
//!   [`PanelEvent`]s (buttons, board sensors, connection changes).
//! - [`SimBoard`]: a board simulated on a pseudo-terminal, for tests and the
//!   demo, reachable through a symlink like udev's `/dev/serial/by-id`.
//!
//! # Limitations
//! - There is no checksum: USB CDC-ACM is already checked by USB's CRC;
//!   over a raw UART a corrupted line is usually unparseable and then
//!   repaired by the acknowledgement timeout.
//! - A board that stays silent is reopened (which toggles DTR and resets
//!   most CDC-ACM boards) but not power-cycled.

pub mod codec;
mod link;
mod sim;
mod state;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

pub use codec::{encode, parse_board_line, BoardMessage, HostCommand, LineBuffer, MAX_LINE};
pub use link::{PanelEvent, PanelLink, PanelLinkConfig, PanelStatus};
pub use sim::{SimBoard, SimState};
pub use state::{PanelDesired, PanelState};

/// Errors from the front-panel codec and link.
#[derive(Debug, Error)]
pub enum PanelError {
    /// A line exceeded [`MAX_LINE`] bytes.
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// A line contained a byte outside printable ASCII.
    #[error("line contains bytes outside printable ASCII")]
    NotPrintable,
    #[error("empty line")]
    Empty,
    /// The first word is not a known message.
    #[error("unknown message {0:?}")]
    UnknownVerb(String),
    /// A required field is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field has an invalid value.
    #[error("bad {field}: {value:?}")]
    Bad { field: &'static str, value: String },
    /// Extra fields after a complete message.
    #[error("unexpected trailing {0:?}")]
    Trailing(String),
    /// The serial port or pseudo-terminal could not be opened or created.
    #[error("cannot open {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// Serial I/O failed.
    #[error("serial I/O: {0}")]
    Io(#[from] std::io::Error),
    /// No line from the board for this long.
    #[error("board silent for {0:?}")]
    Silent(Duration),
    /// Called outside a tokio runtime.
    #[error("no tokio runtime: {0}")]
    NoRuntime(String),
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the word on the wire (exact, lower case).
            pub fn from_wire(word: &str) -> Option<$name> {
                match word { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// The front-panel LEDs.
    Led {
        /// Agent running.
        Power = "power",
        /// Uplink and management connection.
        Network = "network",
        /// Primary output state.
        Primary = "primary",
        /// Backup output state.
        Backup = "backup",
    }
);

wire_enum!(
    /// How an LED shows.
    LedMode { Off = "off", On = "on", Blink = "blink", Fast = "fast" }
);

wire_enum!(
    /// LED colours (bi/tri-colour LEDs; the board refuses what it lacks).
    LedColor { Red = "red", Green = "green", Amber = "amber", Blue = "blue" }
);

wire_enum!(
    /// The on-air tally lamp.
    #[derive(Default)]
    Tally {
        #[default]
        Off = "off",
        Red = "red",
        Green = "green",
    }
);

wire_enum!(
    /// How long a button was held, as timed by the board.
    Press { Short = "short", Long = "long" }
);

impl Led {
    /// Position in [`Led::ALL`] and in [`PanelDesired::leds`].
    pub fn index(self) -> usize {
        match self {
            Led::Power => 0,
            Led::Network => 1,
            Led::Primary => 2,
            Led::Backup => 3,
        }
    }
}

/// What one LED should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LedState {
    pub mode: LedMode,
    /// `None`: the board's default colour for this LED.
    pub color: Option<LedColor>,
}

impl LedState {
    pub const OFF: LedState = LedState { mode: LedMode::Off, color: None };

    pub fn new(mode: LedMode, color: Option<LedColor>) -> Self {
        LedState { mode, color }
    }
}

impl Default for LedState {
    fn default() -> Self {
        LedState::OFF
    }
}
