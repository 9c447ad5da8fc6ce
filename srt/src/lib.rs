//! Thin safe wrapper over the system libsrt, for pushing MPEG-TS in SRT live mode.
//!
//! # Background
//!
//! The agent sends MPEG-TS to AWS MediaConnect and similar receivers over SRT.
//! Those run libsrt, the reference implementation; the pure-Rust `srt-tokio`
//! was measured to collapse the receiver's latency, stall, and panic on
//! peer-controlled input (see the project's SRT reference notes). So this crate
//! calls the distro libsrt 1.5.x directly.
//!
//! # Design
//!
//! - Hand-written `extern "C"` declarations (no bindgen/libclang) in `src/ffi.rs`.
//!   `build.rs` generates and compiles a C file from them that includes
//!   `<srt/srt.h>`; the tests check every constant and every
//!   `SRT_TRACEBSTATS` field offset, size and type against the header.
//! - Blocking calls, one socket per owner: [`SrtSocket`] and [`SrtListener`]
//!   close their `SRTSOCKET` on drop. Timeouts are libsrt options
//!   (`SRTO_SNDTIMEO`, `SRTO_RCVTIMEO`, `SRTO_CONNTIMEO`); accept waits on an
//!   SRT epoll. Run them on dedicated threads (or `spawn_blocking`).
//! - Always live mode (`SRTT_LIVE`): one message of at most
//!   [`LIVE_PAYLOAD_SIZE`] bytes (7 × 188 TS packets) per send.
//! - Every option is set before bind/connect; a listener's options are
//!   inherited by the sockets it accepts (libsrt `API-socket-options.md`).
//!
//! # Limitations
//!
//! - Caller and listener only: no rendezvous, groups/bonding, packet filter
//!   (FEC), listener callback, or non-blocking API.
//! - `srt_cleanup()` is never called; libsrt's threads live until process exit.
//! - libsrt logs to stderr at its default level; the wrapper does not redirect it.
//! - libsrt 1.5.1 (Debian 12) races when it refreshes the encryption key
//!   (`SRTO_KMREFRESHRATE`, default every 2^24 packets): it swaps keys on the
//!   ACK thread while the send thread encrypts. A tight refresh rate crashed
//!   test processes; 1.5.2 fixed it. See [`libsrt_version`].

mod error;
mod ffi;
mod socket;
mod stats;
#[cfg(test)]
mod tests;
pub mod version;

use std::sync::OnceLock;

pub use error::{RejectReason, SrtError};
pub use socket::{SocketOptions, SocketState, SrtListener, SrtSocket, CANCEL_CHECK};
pub use stats::Stats;

/// Largest message per [`SrtSocket::send`]: the live-mode default payload
/// size `SRT_LIVE_DEF_PLSIZE` (1316 = 7 × 188 bytes of MPEG-TS).
pub const LIVE_PAYLOAD_SIZE: usize = 1316;

/// Version of the libsrt loaded at run time, e.g. `(1, 5, 1)` (`srt_getversion`).
pub fn libsrt_version() -> (u8, u8, u8) {
    let [_, major, minor, patch] = libsrt_version_packed().to_be_bytes();
    (major, minor, patch)
}

/// `srt_getversion()`: `0x00MMmmpp`. Its signature has not changed since
/// 1.3, so calling it is safe whatever else differs ([`version`]).
pub(crate) fn libsrt_version_packed() -> u32 {
    // SAFETY: no arguments; returns a constant packed as 0x00MMmmpp.
    unsafe { ffi::srt_getversion() }
}

static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

/// Process-wide libsrt initialisation (`srt_startup`), done once; every
/// constructor calls it, so calling it yourself is optional.
pub fn startup() -> Result<(), SrtError> {
    STARTED
        .get_or_init(|| {
            // A libsrt whose layouts differ from ffi.rs's would corrupt
            // memory silently: no socket is made with it (version.rs).
            if let (_, version::Verdict::Refused(why)) = version::runtime_verdict() {
                return Err(why);
            }
            // SAFETY: srt_startup takes no arguments; it is idempotent and
            // thread-safe, and OnceLock calls it only once anyway.
            let rc = unsafe { ffi::srt_startup() };
            if rc < 0 {
                Err(error::last_error().1)
            } else {
                Ok(())
            }
        })
        .clone()
        .map_err(SrtError::Startup)
}
