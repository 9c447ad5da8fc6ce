//! Hand-written declarations mirroring `/usr/include/srt/srt.h` (libsrt 1.5.1).
//!
//! Nothing here is trusted on faith: `build.rs` reads the two marked blocks
//! below and generates a C file that includes `<srt/srt.h>` and reports, for
//! every constant, its value and, for every `CBytePerfMon` field, its offset,
//! size and C type. The tests in `tests.rs` compare those with this file.
//! A field or constant name that does not exist in the header fails the build.
#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

use libc::{c_char, c_int, sockaddr};

pub type SRTSOCKET = i32;
/// `SYSSOCKET` on non-Windows.
pub type SYSSOCKET = c_int;
/// `SRT_SOCKOPT` and `SRT_SOCKSTATUS` are C enums; their size is checked in the tests.
pub type SRT_SOCKOPT = c_int;
pub type SRT_SOCKSTATUS = c_int;

/// C type of a struct field as reported by the generated C file (`_Generic`).
#[cfg(test)]
pub trait CKind {
    const KIND: i32;
}
#[cfg(test)]
impl CKind for i32 {
    const KIND: i32 = 1;
}
#[cfg(test)]
impl CKind for i64 {
    const KIND: i32 = 2;
}
#[cfg(test)]
impl CKind for u64 {
    const KIND: i32 = 3;
}
#[cfg(test)]
impl CKind for f64 {
    const KIND: i32 = 4;
}

macro_rules! c_consts {
    ($($name:ident: $t:ty = $v:expr;)*) => {
        // Some exist only to be checked against srt.h (e.g. the payload size).
        $(#[allow(dead_code)] pub const $name: $t = $v;)*
        /// (name, value) of every constant above, for the header check.
        #[cfg(test)]
        pub const C_CONSTS: &[(&str, i64)] = &[$((stringify!($name), $name as i64)),*];
    };
}

macro_rules! c_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        pub struct $name { $(pub $f: $t,)* }
        impl $name {
            /// (name, offset, size, C kind) of every field, for the header check.
            #[cfg(test)]
            pub const FIELDS: &[(&str, usize, usize, i32)] = &[$((
                stringify!($f),
                core::mem::offset_of!($name, $f),
                core::mem::size_of::<$t>(),
                <$t as CKind>::KIND,
            )),*];
        }
    };
}

// @c-consts-begin (build.rs: one `NAME: type = value;` per line)
c_consts! {
    SRT_ERROR: c_int = -1;
    SRT_INVALID_SOCK: SRTSOCKET = -1;
    SRT_LIVE_DEF_PLSIZE: c_int = 1316;
    SRTT_LIVE: c_int = 0;
    SRTO_RCVSYN: SRT_SOCKOPT = 2;
    SRTO_SNDBUF: SRT_SOCKOPT = 5;
    SRTO_RENDEZVOUS: SRT_SOCKOPT = 12;
    SRTO_SNDTIMEO: SRT_SOCKOPT = 13;
    SRTO_RCVTIMEO: SRT_SOCKOPT = 14;
    SRTO_MAXBW: SRT_SOCKOPT = 16;
    SRTO_LATENCY: SRT_SOCKOPT = 23;
    SRTO_INPUTBW: SRT_SOCKOPT = 24;
    SRTO_OHEADBW: SRT_SOCKOPT = 25;
    SRTO_PASSPHRASE: SRT_SOCKOPT = 26;
    SRTO_PBKEYLEN: SRT_SOCKOPT = 27;
    SRTO_CONNTIMEO: SRT_SOCKOPT = 36;
    SRTO_RCVLATENCY: SRT_SOCKOPT = 43;
    SRTO_PEERLATENCY: SRT_SOCKOPT = 44;
    SRTO_STREAMID: SRT_SOCKOPT = 46;
    SRTO_TRANSTYPE: SRT_SOCKOPT = 50;
    SRTO_KMREFRESHRATE: SRT_SOCKOPT = 51;
    SRTO_KMPREANNOUNCE: SRT_SOCKOPT = 52;
    SRTO_PEERIDLETIMEO: SRT_SOCKOPT = 55;
    SRTS_INIT: SRT_SOCKSTATUS = 1;
    SRTS_OPENED: SRT_SOCKSTATUS = 2;
    SRTS_LISTENING: SRT_SOCKSTATUS = 3;
    SRTS_CONNECTING: SRT_SOCKSTATUS = 4;
    SRTS_CONNECTED: SRT_SOCKSTATUS = 5;
    SRTS_BROKEN: SRT_SOCKSTATUS = 6;
    SRTS_CLOSING: SRT_SOCKSTATUS = 7;
    SRTS_CLOSED: SRT_SOCKSTATUS = 8;
    SRTS_NONEXIST: SRT_SOCKSTATUS = 9;
    SRT_REJ_UNKNOWN: c_int = 0;
    SRT_REJ_SYSTEM: c_int = 1;
    SRT_REJ_PEER: c_int = 2;
    SRT_REJ_RESOURCE: c_int = 3;
    SRT_REJ_ROGUE: c_int = 4;
    SRT_REJ_BACKLOG: c_int = 5;
    SRT_REJ_IPE: c_int = 6;
    SRT_REJ_CLOSE: c_int = 7;
    SRT_REJ_VERSION: c_int = 8;
    SRT_REJ_RDVCOOKIE: c_int = 9;
    SRT_REJ_BADSECRET: c_int = 10;
    SRT_REJ_UNSECURE: c_int = 11;
    SRT_REJ_MESSAGEAPI: c_int = 12;
    SRT_REJ_CONGESTION: c_int = 13;
    SRT_REJ_FILTER: c_int = 14;
    SRT_REJ_GROUP: c_int = 15;
    SRT_REJ_TIMEOUT: c_int = 16;
    SRT_REJ_E_SIZE: c_int = 17;
    SRT_REJC_PREDEFINED: c_int = 1000;
    SRT_ECONNFAIL: c_int = 2000;
    SRT_ECONNLOST: c_int = 2001;
    SRT_ENOCONN: c_int = 2002;
    SRT_EINVSOCK: c_int = 5004;
    SRT_EASYNCSND: c_int = 6001;
    SRT_EASYNCRCV: c_int = 6002;
    SRT_ETIMEOUT: c_int = 6003;
    SRT_EPOLL_IN: c_int = 0x1;
    SRT_EPOLL_OUT: c_int = 0x4;
    SRT_EPOLL_ERR: c_int = 0x8;
}
// @c-consts-end

// @c-struct-begin (build.rs: one `name: type,` per line, in header order)
c_struct! {
    /// `struct CBytePerfMon` (`SRT_TRACEBSTATS`), field for field.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct CBytePerfMon {
        msTimeStamp: i64,
        pktSentTotal: i64,
        pktRecvTotal: i64,
        pktSndLossTotal: i32,
        pktRcvLossTotal: i32,
        pktRetransTotal: i32,
        pktSentACKTotal: i32,
        pktRecvACKTotal: i32,
        pktSentNAKTotal: i32,
        pktRecvNAKTotal: i32,
        usSndDurationTotal: i64,
        pktSndDropTotal: i32,
        pktRcvDropTotal: i32,
        pktRcvUndecryptTotal: i32,
        byteSentTotal: u64,
        byteRecvTotal: u64,
        byteRcvLossTotal: u64,
        byteRetransTotal: u64,
        byteSndDropTotal: u64,
        byteRcvDropTotal: u64,
        byteRcvUndecryptTotal: u64,
        pktSent: i64,
        pktRecv: i64,
        pktSndLoss: i32,
        pktRcvLoss: i32,
        pktRetrans: i32,
        pktRcvRetrans: i32,
        pktSentACK: i32,
        pktRecvACK: i32,
        pktSentNAK: i32,
        pktRecvNAK: i32,
        mbpsSendRate: f64,
        mbpsRecvRate: f64,
        usSndDuration: i64,
        pktReorderDistance: i32,
        pktRcvAvgBelatedTime: f64,
        pktRcvBelated: i64,
        pktSndDrop: i32,
        pktRcvDrop: i32,
        pktRcvUndecrypt: i32,
        byteSent: u64,
        byteRecv: u64,
        byteRcvLoss: u64,
        byteRetrans: u64,
        byteSndDrop: u64,
        byteRcvDrop: u64,
        byteRcvUndecrypt: u64,
        usPktSndPeriod: f64,
        pktFlowWindow: i32,
        pktCongestionWindow: i32,
        pktFlightSize: i32,
        msRTT: f64,
        mbpsBandwidth: f64,
        byteAvailSndBuf: i32,
        byteAvailRcvBuf: i32,
        mbpsMaxBW: f64,
        byteMSS: i32,
        pktSndBuf: i32,
        byteSndBuf: i32,
        msSndBuf: i32,
        msSndTsbPdDelay: i32,
        pktRcvBuf: i32,
        byteRcvBuf: i32,
        msRcvBuf: i32,
        msRcvTsbPdDelay: i32,
        pktSndFilterExtraTotal: i32,
        pktRcvFilterExtraTotal: i32,
        pktRcvFilterSupplyTotal: i32,
        pktRcvFilterLossTotal: i32,
        pktSndFilterExtra: i32,
        pktRcvFilterExtra: i32,
        pktRcvFilterSupply: i32,
        pktRcvFilterLoss: i32,
        pktReorderTolerance: i32,
        pktSentUniqueTotal: i64,
        pktRecvUniqueTotal: i64,
        byteSentUniqueTotal: u64,
        byteRecvUniqueTotal: u64,
        pktSentUnique: i64,
        pktRecvUnique: i64,
        byteSentUnique: u64,
        byteRecvUnique: u64,
    }
}
// @c-struct-end

/// `SRT_MSGCTRL` is only ever passed as NULL, so it stays opaque.
#[repr(C)]
pub struct SRT_MSGCTRL {
    _private: [u8; 0],
}

// Linked by build.rs (pkg-config `srt`).
extern "C" {
    pub fn srt_startup() -> c_int;
    pub fn srt_create_socket() -> SRTSOCKET;
    pub fn srt_bind(u: SRTSOCKET, name: *const sockaddr, namelen: c_int) -> c_int;
    pub fn srt_listen(u: SRTSOCKET, backlog: c_int) -> c_int;
    pub fn srt_accept(u: SRTSOCKET, addr: *mut sockaddr, addrlen: *mut c_int) -> SRTSOCKET;
    pub fn srt_connect(u: SRTSOCKET, name: *const sockaddr, namelen: c_int) -> c_int;
    pub fn srt_close(u: SRTSOCKET) -> c_int;
    pub fn srt_getsockname(u: SRTSOCKET, name: *mut sockaddr, namelen: *mut c_int) -> c_int;
    pub fn srt_getsockflag(u: SRTSOCKET, opt: SRT_SOCKOPT, optval: *mut libc::c_void, optlen: *mut c_int) -> c_int;
    pub fn srt_setsockflag(u: SRTSOCKET, opt: SRT_SOCKOPT, optval: *const libc::c_void, optlen: c_int) -> c_int;
    pub fn srt_sendmsg2(u: SRTSOCKET, buf: *const c_char, len: c_int, mctrl: *mut SRT_MSGCTRL) -> c_int;
    pub fn srt_recvmsg2(u: SRTSOCKET, buf: *mut c_char, len: c_int, mctrl: *mut SRT_MSGCTRL) -> c_int;
    pub fn srt_getlasterror_str() -> *const c_char;
    pub fn srt_getlasterror(errno_loc: *mut c_int) -> c_int;
    pub fn srt_bistats(u: SRTSOCKET, perf: *mut CBytePerfMon, clear: c_int, instantaneous: c_int) -> c_int;
    pub fn srt_getsockstate(u: SRTSOCKET) -> SRT_SOCKSTATUS;
    pub fn srt_epoll_create() -> c_int;
    pub fn srt_epoll_add_usock(eid: c_int, u: SRTSOCKET, events: *const c_int) -> c_int;
    #[allow(clippy::too_many_arguments)]
    pub fn srt_epoll_wait(
        eid: c_int,
        readfds: *mut SRTSOCKET,
        rnum: *mut c_int,
        writefds: *mut SRTSOCKET,
        wnum: *mut c_int,
        msTimeOut: i64,
        lrfds: *mut SYSSOCKET,
        lrnum: *mut c_int,
        lwfds: *mut SYSSOCKET,
        lwnum: *mut c_int,
    ) -> c_int;
    pub fn srt_epoll_release(eid: c_int) -> c_int;
    pub fn srt_getrejectreason(sock: SRTSOCKET) -> c_int;
    pub fn srt_getversion() -> u32;
}

// Exported by the C file that `build.rs` generates (see the module doc).
#[cfg(test)]
extern "C" {
    pub fn edge_srt_const(name: *const c_char, out: *mut i64) -> c_int;
    pub fn edge_srt_field(name: *const c_char, off: *mut usize, size: *mut usize, kind: *mut c_int) -> c_int;
    pub fn edge_srt_sizeof(which: c_int) -> usize;
}
