//! Errors and connection reject reasons.

use std::ffi::CStr;
use std::fmt;

use crate::ffi;

/// An SRT failure. `Display` never contains the passphrase: messages come
/// from libsrt's error table, which does not echo option values.
#[derive(Debug, thiserror::Error)]
pub enum SrtError {
    /// `srt_startup()` failed; no SRT socket can be created in this process.
    #[error("SRT library startup failed: {0}")]
    Startup(String),
    /// libsrt refused an option value (e.g. a stream ID over 512 bytes).
    #[error("SRT option {option} refused: {message}")]
    InvalidOption {
        /// The `SRTO_*` name.
        option: &'static str,
        /// libsrt's error text.
        message: String,
    },
    /// The caller could not connect; `reject` says why the handshake failed.
    #[error("SRT connect failed: {message}{}", fmt_reject(.reject))]
    Connect {
        /// libsrt's error text.
        message: String,
        /// `srt_getrejectreason()`, if the handshake got that far.
        reject: Option<RejectReason>,
    },
    /// A connect was given up because its caller asked (stopping).
    #[error("SRT connect cancelled")]
    Cancelled,
    /// A send, receive or accept did not complete within its timeout.
    #[error("SRT operation timed out")]
    Timeout,
    /// The connection is broken or closed (peer gone, idle timeout, closed socket).
    #[error("SRT connection lost: {0}")]
    ConnectionLost(String),
    /// Any other libsrt error (`SRT_ERRNO` code and text).
    #[error("SRT error {code}: {message}")]
    Other {
        /// `SRT_ERRNO` value from `srt_getlasterror()`.
        code: i32,
        /// libsrt's error text.
        message: String,
    },
}

fn fmt_reject(reject: &Option<RejectReason>) -> String {
    reject.map(|r| format!(" ({r})")).unwrap_or_default()
}

/// The calling thread's last libsrt error: `(code, text)`.
///
/// `srt_getlasterror_str()` points into thread-local storage that the next
/// libsrt call on this thread may overwrite, so it is copied at once.
pub(crate) fn last_error() -> (i32, String) {
    // SAFETY: NULL is documented as allowed for `errno_loc` (srt.h, API-functions.md).
    let code = unsafe { ffi::srt_getlasterror(std::ptr::null_mut()) };
    // SAFETY: no arguments; returns a pointer to a thread-local C string or NULL.
    let ptr = unsafe { ffi::srt_getlasterror_str() };
    let message = if ptr.is_null() {
        String::from("unknown error")
    } else {
        // SAFETY: non-NULL, NUL-terminated, valid until the next libsrt call on
        // this thread; we copy it before making one.
        unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
    };
    (code, message)
}

/// The last error as [`SrtError::Other`] if `rc` is `SRT_ERROR` (= `SRT_INVALID_SOCK`).
pub(crate) fn check(rc: i32) -> Result<(), SrtError> {
    if rc == ffi::SRT_ERROR {
        let (code, message) = last_error();
        return Err(SrtError::Other { code, message });
    }
    Ok(())
}

/// Maps the last error of a send/recv/accept to a variant the caller can act on.
pub(crate) fn io_error() -> SrtError {
    let (code, message) = last_error();
    match code {
        ffi::SRT_EASYNCSND | ffi::SRT_EASYNCRCV | ffi::SRT_ETIMEOUT => SrtError::Timeout,
        ffi::SRT_ECONNFAIL | ffi::SRT_ECONNLOST | ffi::SRT_ENOCONN | ffi::SRT_EINVSOCK => SrtError::ConnectionLost(message),
        code => SrtError::Other { code, message },
    }
}

/// Why a connection attempt was rejected: `enum SRT_REJECT_REASON` (srt.h),
/// one variant per `SRT_REJ_*` in header order; `Display` says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Unknown,
    System,
    Peer,
    Resource,
    Rogue,
    Backlog,
    Ipe,
    Close,
    Version,
    RdvCookie,
    BadSecret,
    Unsecure,
    MessageApi,
    Congestion,
    Filter,
    Group,
    Timeout,
    /// Any other code: `SRT_REJC_PREDEFINED` (1000+, HTTP-like) or user (2000+) codes.
    Other(i32),
}

/// `SRT_REJ_*` value (checked against srt.h in the tests) and text of each reason.
const REASONS: [(i32, RejectReason, &str); 17] = {
    use RejectReason::*;
    [
        (ffi::SRT_REJ_UNKNOWN, Unknown, "unknown reason"),
        (ffi::SRT_REJ_SYSTEM, System, "system error on the local host"),
        (ffi::SRT_REJ_PEER, Peer, "rejected by the peer"),
        (ffi::SRT_REJ_RESOURCE, Resource, "out of resources"),
        (ffi::SRT_REJ_ROGUE, Rogue, "malformed handshake"),
        (ffi::SRT_REJ_BACKLOG, Backlog, "listener backlog full"),
        (ffi::SRT_REJ_IPE, Ipe, "internal error in libsrt"),
        (ffi::SRT_REJ_CLOSE, Close, "socket closed during the handshake"),
        (ffi::SRT_REJ_VERSION, Version, "peer SRT version too old"),
        (ffi::SRT_REJ_RDVCOOKIE, RdvCookie, "rendezvous cookie collision"),
        (ffi::SRT_REJ_BADSECRET, BadSecret, "wrong or missing passphrase"),
        (ffi::SRT_REJ_UNSECURE, Unsecure, "encryption configured on one side only"),
        (ffi::SRT_REJ_MESSAGEAPI, MessageApi, "stream/message API mismatch"),
        (ffi::SRT_REJ_CONGESTION, Congestion, "incompatible congestion control"),
        (ffi::SRT_REJ_FILTER, Filter, "incompatible packet filter"),
        (ffi::SRT_REJ_GROUP, Group, "incompatible socket group"),
        (ffi::SRT_REJ_TIMEOUT, Timeout, "peer did not answer in time"),
    ]
};

impl RejectReason {
    /// Maps an `srt_getrejectreason()` value.
    pub fn from_code(code: i32) -> Self {
        REASONS.iter().find(|e| e.0 == code).map_or(RejectReason::Other(code), |e| e.1)
    }

    /// The numeric `SRT_REJ_*` (or predefined/user) code.
    pub fn code(self) -> i32 {
        match self {
            RejectReason::Other(code) => code,
            known => REASONS.iter().find(|e| e.1 == known).map_or(-1, |e| e.0),
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Other(code) if *code >= 2000 => {
                write!(f, "rejected by the application, code {code}")
            }
            RejectReason::Other(code) => write!(f, "rejected with code {code}"),
            known => f.write_str(REASONS.iter().find(|e| e.1 == *known).map_or("?", |e| e.2)),
        }
    }
}
