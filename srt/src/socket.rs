//! Owned SRT sockets: caller ([`SrtSocket::connect`]) and listener ([`SrtListener`]).

use std::ffi::c_void;
use std::fmt;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use libc::{c_int, sockaddr, sockaddr_in, sockaddr_in6, sockaddr_storage};

use crate::error::{check, io_error, last_error, RejectReason, SrtError};
use crate::ffi::{self, SRTSOCKET, SRT_SOCKOPT};
use crate::stats::Stats;

/// Options applied before bind/connect. `None` keeps the libsrt default.
#[derive(Clone, Default)]
pub struct SocketOptions {
    /// `SRTO_LATENCY`: sets both receive and peer latency (ms). Larger side wins.
    pub latency_ms: Option<u32>,
    /// `SRTO_PASSPHRASE`: 10..=79 characters; enables AES.
    pub passphrase: Option<String>,
    /// `SRTO_PBKEYLEN`: 16, 24 or 32 (AES-128/192/256).
    pub pbkeylen: Option<u8>,
    /// `SRTO_STREAMID`: at most 512 bytes.
    pub stream_id: Option<String>,
    /// `SRTO_CONNTIMEO` (ms, libsrt default 3000).
    pub connect_timeout_ms: Option<u32>,
    /// `SRTO_PEERIDLETIMEO` (ms, default 5000): silence before the link is declared
    /// broken. libsrt 1.5.1 also waits for 16 expiry periods of >= 300 ms, so
    /// values below ~5000 make no difference (measured: 4.6 s with 1000).
    pub peer_idle_timeout_ms: Option<u32>,
    /// `SRTO_SNDTIMEO` (ms, default -1 = block forever).
    pub send_timeout_ms: Option<i32>,
    /// `SRTO_RCVTIMEO` (ms, default -1 = block forever).
    pub recv_timeout_ms: Option<i32>,
    /// `SRTO_INPUTBW` (bytes/s); also sets `SRTO_MAXBW` = 0 (relative to input), per libsrt advice.
    pub input_bw_bytes_per_s: Option<i64>,
    /// `SRTO_OHEADBW` (% over input rate for retransmissions, default 25).
    pub overhead_bw_percent: Option<u32>,
    /// `SRTO_SNDBUF` (bytes).
    pub send_buffer_bytes: Option<u32>,
    /// `SRTO_KMREFRESHRATE` (packets between key changes).
    pub km_refresh_rate: Option<u32>,
    /// `SRTO_KMPREANNOUNCE` (packets; must be below half the refresh rate).
    pub km_pre_announce: Option<u32>,
    /// `SRTO_RENDEZVOUS`: [`SrtSocket::connect`] meets a peer that connects
    /// to us at the same time; both sides bind their port. libsrt waits
    /// ten times `SRTO_CONNTIMEO` for a rendezvous peer. `false` keeps the default.
    pub rendezvous: bool,
}

impl fmt::Debug for SocketOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketOptions")
            .field("latency_ms", &self.latency_ms)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>"))
            .field("pbkeylen", &self.pbkeylen)
            .field("stream_id", &self.stream_id)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("peer_idle_timeout_ms", &self.peer_idle_timeout_ms)
            .field("send_timeout_ms", &self.send_timeout_ms)
            .field("recv_timeout_ms", &self.recv_timeout_ms)
            .field("input_bw_bytes_per_s", &self.input_bw_bytes_per_s)
            .field("overhead_bw_percent", &self.overhead_bw_percent)
            .field("send_buffer_bytes", &self.send_buffer_bytes)
            .field("km_refresh_rate", &self.km_refresh_rate)
            .field("km_pre_announce", &self.km_pre_announce)
            .field("rendezvous", &self.rendezvous)
            .finish()
    }
}

/// `SRT_SOCKSTATUS` from `srt_getsockstate()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketState {
    Init,
    Opened,
    Listening,
    Connecting,
    Connected,
    /// The connection failed (peer gone, idle timeout); only closing remains.
    Broken,
    Closing,
    Closed,
    /// The id does not name a socket (any more).
    NonExist,
}

impl SocketState {
    pub(crate) fn from_raw(raw: ffi::SRT_SOCKSTATUS) -> Self {
        match raw {
            ffi::SRTS_INIT => Self::Init,
            ffi::SRTS_OPENED => Self::Opened,
            ffi::SRTS_LISTENING => Self::Listening,
            ffi::SRTS_CONNECTING => Self::Connecting,
            ffi::SRTS_CONNECTED => Self::Connected,
            ffi::SRTS_BROKEN => Self::Broken,
            ffi::SRTS_CLOSING => Self::Closing,
            ffi::SRTS_CLOSED => Self::Closed,
            _ => Self::NonExist,
        }
    }

    pub fn is_connected(self) -> bool {
        self == Self::Connected
    }

    /// Broken, closing, closed or gone: this socket will not carry data again.
    pub fn is_dead(self) -> bool {
        matches!(self, Self::Broken | Self::Closing | Self::Closed | Self::NonExist)
    }
}

#[allow(clippy::cast_possible_truncation)] // only used on small C types, checked at compile time
const fn c_len<T>() -> c_int {
    assert!(size_of::<T>() <= 4096);
    size_of::<T>() as c_int
}

/// An owned `SRTSOCKET`, closed on drop.
#[derive(Debug)]
pub(crate) struct Handle(pub(crate) SRTSOCKET);

impl Handle {
    fn new() -> Result<Self, SrtError> {
        crate::startup()?;
        // SAFETY: the library is started; the call has no arguments.
        let s = unsafe { ffi::srt_create_socket() };
        check(s)?; // SRT_INVALID_SOCK == SRT_ERROR
        Ok(Handle(s))
    }

    fn check_opt(rc: c_int, option: &'static str) -> Result<(), SrtError> {
        if rc == ffi::SRT_ERROR {
            return Err(SrtError::InvalidOption { option, message: last_error().1 });
        }
        Ok(())
    }

    fn set_i32(&self, opt: SRT_SOCKOPT, name: &'static str, v: i32) -> Result<(), SrtError> {
        // SAFETY: `v` is a live, aligned int and we pass its exact size; libsrt copies it.
        let rc = unsafe { ffi::srt_setsockflag(self.0, opt, (&raw const v).cast::<c_void>(), c_len::<i32>()) };
        Self::check_opt(rc, name)
    }

    fn set_i64(&self, opt: SRT_SOCKOPT, name: &'static str, v: i64) -> Result<(), SrtError> {
        // SAFETY: `v` is a live, aligned int64_t and we pass its exact size; libsrt copies it.
        let rc = unsafe { ffi::srt_setsockflag(self.0, opt, (&raw const v).cast::<c_void>(), c_len::<i64>()) };
        Self::check_opt(rc, name)
    }

    fn set_str(&self, opt: SRT_SOCKOPT, name: &'static str, v: &str) -> Result<(), SrtError> {
        let len = c_int::try_from(v.len()).map_err(|_| SrtError::InvalidOption { option: name, message: "value too long".into() })?;
        // SAFETY: string options take (pointer, length) and need no NUL; `v` is
        // valid for `len` bytes and libsrt copies them before returning.
        let rc = unsafe { ffi::srt_setsockflag(self.0, opt, v.as_ptr().cast::<c_void>(), len) };
        Self::check_opt(rc, name)
    }

    fn state_raw(&self) -> ffi::SRT_SOCKSTATUS {
        // SAFETY: plain id lookup; unknown ids yield SRTS_NONEXIST.
        unsafe { ffi::srt_getsockstate(self.0) }
    }

    fn get_i32(&self, opt: SRT_SOCKOPT) -> Result<i32, SrtError> {
        let mut v: c_int = 0;
        let mut len = c_len::<c_int>();
        // SAFETY: `v` and `len` are live locals; libsrt writes at most `len` bytes into `v`.
        let rc = unsafe { ffi::srt_getsockflag(self.0, opt, (&raw mut v).cast::<c_void>(), &mut len) };
        check(rc)?;
        Ok(v)
    }

    fn apply(&self, o: &SocketOptions) -> Result<(), SrtError> {
        // TRANSTYPE first: it resets latency, payload size, etc. to the live defaults.
        self.set_i32(ffi::SRTO_TRANSTYPE, "SRTO_TRANSTYPE", ffi::SRTT_LIVE)?;
        if o.rendezvous {
            self.set_i32(ffi::SRTO_RENDEZVOUS, "SRTO_RENDEZVOUS", 1)?; // bool options take an int
        }
        if let Some(v) = &o.passphrase {
            self.set_str(ffi::SRTO_PASSPHRASE, "SRTO_PASSPHRASE", v)?;
        }
        if let Some(v) = &o.stream_id {
            self.set_str(ffi::SRTO_STREAMID, "SRTO_STREAMID", v)?;
        }
        if let Some(v) = o.input_bw_bytes_per_s {
            self.set_i64(ffi::SRTO_MAXBW, "SRTO_MAXBW", 0)?; // 0 = relative to INPUTBW
            self.set_i64(ffi::SRTO_INPUTBW, "SRTO_INPUTBW", v)?;
        }
        // All int options; KMREFRESHRATE before KMPREANNOUNCE, which libsrt checks against it.
        let ints = [
            (ffi::SRTO_SNDBUF, "SRTO_SNDBUF", o.send_buffer_bytes.map(i64::from)),
            (ffi::SRTO_LATENCY, "SRTO_LATENCY", o.latency_ms.map(i64::from)),
            (ffi::SRTO_PBKEYLEN, "SRTO_PBKEYLEN", o.pbkeylen.map(i64::from)),
            (ffi::SRTO_KMREFRESHRATE, "SRTO_KMREFRESHRATE", o.km_refresh_rate.map(i64::from)),
            (ffi::SRTO_KMPREANNOUNCE, "SRTO_KMPREANNOUNCE", o.km_pre_announce.map(i64::from)),
            (ffi::SRTO_CONNTIMEO, "SRTO_CONNTIMEO", o.connect_timeout_ms.map(i64::from)),
            (ffi::SRTO_PEERIDLETIMEO, "SRTO_PEERIDLETIMEO", o.peer_idle_timeout_ms.map(i64::from)),
            (ffi::SRTO_SNDTIMEO, "SRTO_SNDTIMEO", o.send_timeout_ms.map(i64::from)),
            (ffi::SRTO_RCVTIMEO, "SRTO_RCVTIMEO", o.recv_timeout_ms.map(i64::from)),
            (ffi::SRTO_OHEADBW, "SRTO_OHEADBW", o.overhead_bw_percent.map(i64::from)),
        ];
        for (opt, name, v) in ints {
            if let Some(v) = v {
                let v =
                    i32::try_from(v).map_err(|_| SrtError::InvalidOption { option: name, message: format!("{v} is out of range") })?;
                self.set_i32(opt, name, v)?;
            }
        }
        Ok(())
    }

    fn bind(&self, addr: SocketAddr) -> Result<(), SrtError> {
        let raw = RawAddr::from(addr);
        // SAFETY: `raw` holds a sockaddr_in/in6 of exactly the length passed.
        check(unsafe { ffi::srt_bind(self.0, raw.ptr(), raw.len()) })?;
        Ok(())
    }

    fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        let mut ss = zeroed_storage();
        let mut len = c_len::<sockaddr_storage>();
        // SAFETY: `ss` is a writable sockaddr_storage of `len` bytes.
        let rc = unsafe { ffi::srt_getsockname(self.0, (&raw mut ss).cast::<sockaddr>(), &mut len) };
        check(rc)?;
        from_storage(&ss, len)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: we own this id and nothing uses it after drop. libsrt may
        // already have reaped a broken socket (its GC does so within ~1 s); closing
        // the stale id then just fails with SRT_EINVSOCK; ids are handed out in
        // decreasing order over a 2^30 range, so it cannot name a newer socket. Errors are ignored:
        // there is nothing useful to do if closing fails.
        unsafe { ffi::srt_close(self.0) };
    }
}

#[allow(clippy::cast_possible_truncation)] // AF_INET = 2, AF_INET6 = 10
const AF_INET: libc::sa_family_t = libc::AF_INET as libc::sa_family_t;
#[allow(clippy::cast_possible_truncation)]
const AF_INET6: libc::sa_family_t = libc::AF_INET6 as libc::sa_family_t;

/// A sockaddr in the exact C layout libsrt expects for `addr` + `namelen`.
enum RawAddr {
    V4(sockaddr_in),
    V6(sockaddr_in6),
}

impl From<SocketAddr> for RawAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => RawAddr::V4(sockaddr_in {
                sin_family: AF_INET,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => RawAddr::V6(sockaddr_in6 {
                sin6_family: AF_INET6,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }
}

impl RawAddr {
    fn ptr(&self) -> *const sockaddr {
        match self {
            RawAddr::V4(a) => (a as *const sockaddr_in).cast(),
            RawAddr::V6(a) => (a as *const sockaddr_in6).cast(),
        }
    }

    fn len(&self) -> c_int {
        match self {
            RawAddr::V4(_) => c_len::<sockaddr_in>(),
            RawAddr::V6(_) => c_len::<sockaddr_in6>(),
        }
    }
}

fn zeroed_storage() -> sockaddr_storage {
    // SAFETY: sockaddr_storage is plain integers and arrays; all-zero is valid.
    unsafe { MaybeUninit::<sockaddr_storage>::zeroed().assume_init() }
}

fn from_storage(ss: &sockaddr_storage, len: c_int) -> Result<SocketAddr, SrtError> {
    let len = usize::try_from(len).unwrap_or(0);
    match c_int::from(ss.ss_family) {
        libc::AF_INET if len >= size_of::<sockaddr_in>() => {
            // SAFETY: the family says libsrt wrote a sockaddr_in, and sockaddr_storage
            // is sized and aligned for every sockaddr type.
            let a = unsafe { &*(ss as *const sockaddr_storage).cast::<sockaddr_in>() };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 if len >= size_of::<sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(ss as *const sockaddr_storage).cast::<sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), a.sin6_flowinfo, a.sin6_scope_id).into())
        }
        family => Err(SrtError::Other { code: -1, message: format!("unexpected address family {family}") }),
    }
}

/// How often a connect in progress checks whether it was cancelled.
pub const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// A failed handshake, with libsrt's reject reason. `message` is libsrt's
/// error text when the call itself failed; a handshake that failed in the
/// background gets the text a blocking `srt_connect` gives for it
/// (libsrt's `MJ_SETUP` messages), so logs and status read the same.
fn connect_failed(h: &Handle, message: Option<String>) -> SrtError {
    // SAFETY: the socket is open (closed only when `h` drops).
    let reject = RejectReason::from_code(unsafe { ffi::srt_getrejectreason(h.0) });
    let message = message.unwrap_or_else(|| match reject {
        RejectReason::Timeout => "Connection setup failure: connection timed out".into(),
        _ => "Connection setup failure: connection rejected".into(),
    });
    SrtError::Connect { message, reject: Some(reject) }
}

/// An epoll watching one socket, used as a timed wait for its state to
/// change. Released on drop, before the socket.
struct Epoll(c_int);

impl Epoll {
    fn watch(h: &Handle, events: c_int) -> Result<Epoll, SrtError> {
        // SAFETY: no arguments.
        let eid = unsafe { ffi::srt_epoll_create() };
        check(eid)?;
        let ep = Epoll(eid);
        // SAFETY: `events` is a live int that libsrt reads during the call.
        check(unsafe { ffi::srt_epoll_add_usock(eid, h.0, &events) })?;
        Ok(ep)
    }

    /// Returns when the socket is ready or failed, or after `timeout`;
    /// the caller reads the state itself.
    fn wait(&self, timeout: Duration) {
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let (mut r, mut w) = ([ffi::SRT_INVALID_SOCK; 1], [ffi::SRT_INVALID_SOCK; 1]);
        let (mut rnum, mut wnum): (c_int, c_int) = (1, 1);
        // SAFETY: `r` and `w` have room for `rnum` and `wnum` ids; the system
        // socket sets are NULL, which srt_epoll_wait treats as not wanted. A
        // failed socket is reported in both sets; a timeout is an error
        // return, which the caller's state check makes irrelevant.
        let _ = unsafe {
            ffi::srt_epoll_wait(
                self.0,
                r.as_mut_ptr(),
                &mut rnum,
                w.as_mut_ptr(),
                &mut wnum,
                ms,
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut(),
            )
        };
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own this epoll id.
        unsafe { ffi::srt_epoll_release(self.0) };
    }
}

/// A connected SRT socket (live mode). Closed on drop.
///
/// Once broken (peer closed, idle timeout) it stays dead: libsrt reaps it and
/// every call fails with [`SrtError::ConnectionLost`]; connect a new one.
#[derive(Debug)]
pub struct SrtSocket {
    pub(crate) h: Handle,
}

// SAFETY: SrtSocket only holds an integer id. libsrt looks the id up in its
// global socket table under a lock on every call and serialises per-socket
// state internally, so calling any method from several threads at once (e.g.
// send on one, stats on another) is supported by libsrt.
unsafe impl Send for SrtSocket {}
// SAFETY: see `Send`; all methods take `&self` and no Rust-side state is mutated.
unsafe impl Sync for SrtSocket {}

impl SrtSocket {
    /// Caller mode: applies `opts`, binds to `local` if given (fixed source
    /// address/port), then connects, waiting up to `SRTO_CONNTIMEO`.
    /// Rendezvous (`opts.rendezvous`, `local` required by libsrt): the same
    /// call, with the peer connecting to `local` from `remote` meanwhile.
    pub fn connect(remote: SocketAddr, local: Option<SocketAddr>, opts: &SocketOptions) -> Result<SrtSocket, SrtError> {
        Self::connect_unless(remote, local, opts, &|| false)
    }

    /// [`SrtSocket::connect`] that gives up within [`CANCEL_CHECK`] once
    /// `cancelled()` is true ([`SrtError::Cancelled`]).
    ///
    /// The handshake runs on libsrt's own threads (a non-blocking connect,
    /// `SRTO_RCVSYN` = 0, API-functions.md `srt_connect`), and this thread
    /// waits on an epoll for the socket to become writable or fail. A
    /// blocking `srt_connect` cannot be interrupted: a stopping output would
    /// wait for a silent peer's whole connect timeout (3 s, ten times that in
    /// rendezvous), past the agent's shutdown grace period, and the process
    /// would then exit while libsrt's threads still use the socket.
    pub fn connect_unless(
        remote: SocketAddr,
        local: Option<SocketAddr>,
        opts: &SocketOptions,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<SrtSocket, SrtError> {
        let h = Handle::new()?;
        h.apply(opts)?;
        h.set_i32(ffi::SRTO_RCVSYN, "SRTO_RCVSYN", 0)?;
        if let Some(local) = local {
            h.bind(local)?;
        }
        let raw = RawAddr::from(remote);
        // SAFETY: `raw` holds a sockaddr_in/in6 of exactly the length passed.
        if unsafe { ffi::srt_connect(h.0, raw.ptr(), raw.len()) } == ffi::SRT_ERROR {
            return Err(connect_failed(&h, Some(last_error().1)));
        }
        let ep = Epoll::watch(&h, ffi::SRT_EPOLL_OUT | ffi::SRT_EPOLL_ERR)?;
        loop {
            match SocketState::from_raw(h.state_raw()) {
                SocketState::Connected => break,
                SocketState::Init | SocketState::Opened | SocketState::Connecting => {}
                // Broken, closing, closed: the handshake failed; libsrt
                // keeps the reason (SRT_REJ_TIMEOUT for a silent peer).
                _ => return Err(connect_failed(&h, None)),
            }
            if cancelled() {
                return Err(SrtError::Cancelled);
            }
            ep.wait(CANCEL_CHECK);
        }
        // Sends block (SRTO_SNDSYN stays on); receives block again like an
        // accepted socket's.
        h.set_i32(ffi::SRTO_RCVSYN, "SRTO_RCVSYN", 1)?;
        Ok(SrtSocket { h })
    }

    /// Sends one message of at most [`crate::LIVE_PAYLOAD_SIZE`] bytes; returns the bytes accepted.
    pub fn send(&self, buf: &[u8]) -> Result<usize, SrtError> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: `buf` is readable for `len` <= buf.len() bytes; NULL msgctrl means defaults.
        let n = unsafe { ffi::srt_sendmsg2(self.h.0, buf.as_ptr().cast(), len, null_mut()) };
        usize::try_from(n).map_err(|_| io_error())
    }

    /// Receives one message into `buf` (which should hold 1316 bytes); returns its length.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, SrtError> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: `buf` is writable for `len` <= buf.len() bytes; NULL msgctrl is allowed.
        let n = unsafe { ffi::srt_recvmsg2(self.h.0, buf.as_mut_ptr().cast(), len, null_mut()) };
        usize::try_from(n).map_err(|_| io_error())
    }

    pub fn state(&self) -> SocketState {
        SocketState::from_raw(self.h.state_raw())
    }

    /// `srt_bistats` with instantaneous buffer figures; `clear` resets the interval counters.
    pub fn stats(&self, clear: bool) -> Result<Stats, SrtError> {
        let mut perf = ffi::CBytePerfMon::default();
        // SAFETY: `perf` is a writable CBytePerfMon whose layout the tests check against srt.h.
        let rc = unsafe { ffi::srt_bistats(self.h.0, &mut perf, c_int::from(clear), 1) };
        if rc == ffi::SRT_ERROR {
            return Err(io_error());
        }
        Ok(Stats::from(&perf))
    }

    /// Negotiated latency of the peer's receiver (`SRTO_PEERLATENCY`, ms): the
    /// larger of our `latency_ms` and the peer's.
    pub fn peer_latency_ms(&self) -> Result<u32, SrtError> {
        self.latency(ffi::SRTO_PEERLATENCY)
    }

    /// Negotiated latency of our receiver (`SRTO_RCVLATENCY`, ms).
    pub fn recv_latency_ms(&self) -> Result<u32, SrtError> {
        self.latency(ffi::SRTO_RCVLATENCY)
    }

    fn latency(&self, opt: SRT_SOCKOPT) -> Result<u32, SrtError> {
        let v = self.h.get_i32(opt)?;
        u32::try_from(v).map_err(|_| SrtError::Other { code: -1, message: format!("negative latency {v}") })
    }

    /// The stream ID the caller sent (on an accepted socket) or set (on a caller).
    pub fn stream_id(&self) -> Result<String, SrtError> {
        let mut buf = [0u8; 768];
        let mut len = c_len::<[u8; 768]>();
        // SAFETY: `buf` is writable for `len` bytes; libsrt writes at most that and sets `len`.
        let rc = unsafe { ffi::srt_getsockflag(self.h.0, ffi::SRTO_STREAMID, buf.as_mut_ptr().cast(), &mut len) };
        check(rc)?;
        let len = usize::try_from(len).unwrap_or(0).min(buf.len());
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    pub fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        self.h.local_addr()
    }
}

/// A listening SRT socket; accepted sockets inherit its options.
#[derive(Debug)]
pub struct SrtListener {
    h: Handle,
    /// SRT epoll watching `h` for incoming connections.
    eid: c_int,
}

// SAFETY: as for SrtSocket: two integer ids (socket, epoll), both used only
// through libsrt calls that lock its global tables.
unsafe impl Send for SrtListener {}
// SAFETY: see `Send`; accept is safe concurrently (non-blocking srt_accept, see `accept`).
unsafe impl Sync for SrtListener {}

impl SrtListener {
    /// Binds and listens on `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr, opts: &SocketOptions) -> Result<SrtListener, SrtError> {
        let h = Handle::new()?;
        h.apply(opts)?;
        // Non-blocking accept, so a connection taken by a concurrent accept
        // cannot leave us blocked past the timeout. Accepted sockets inherit
        // it; `accept` switches them back to blocking receive.
        h.set_i32(ffi::SRTO_RCVSYN, "SRTO_RCVSYN", 0)?;
        h.bind(addr)?;
        // SAFETY: plain call on a socket we own.
        check(unsafe { ffi::srt_listen(h.0, 8) })?;
        // SAFETY: no arguments.
        let eid = unsafe { ffi::srt_epoll_create() };
        check(eid)?;
        let listener = SrtListener { h, eid };
        let events = ffi::SRT_EPOLL_IN | ffi::SRT_EPOLL_ERR;
        // SAFETY: `events` is a live int that libsrt reads during the call.
        check(unsafe { ffi::srt_epoll_add_usock(eid, listener.h.0, &events) })?;
        Ok(listener)
    }

    pub fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        self.h.local_addr()
    }

    /// Waits up to `timeout` for a connection; `Err(Timeout)` if none came.
    pub fn accept(&self, timeout: Duration) -> Result<(SrtSocket, SocketAddr), SrtError> {
        let deadline = Instant::now() + timeout;
        loop {
            let ms = i64::try_from(deadline.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(i64::MAX);
            let mut ready = [ffi::SRT_INVALID_SOCK; 1];
            let mut rnum: c_int = 1;
            // SAFETY: `ready` has room for `rnum` ids; the other sets are NULL,
            // which srt_epoll_wait treats as "not wanted" (api.cpp, epoll_wait2).
            let rc = unsafe {
                ffi::srt_epoll_wait(
                    self.eid,
                    ready.as_mut_ptr(),
                    &mut rnum,
                    null_mut(),
                    null_mut(),
                    ms,
                    null_mut(),
                    null_mut(),
                    null_mut(),
                    null_mut(),
                )
            };
            if rc < 0 {
                return Err(io_error()); // SRT_ETIMEOUT -> Timeout
            }
            let mut ss = zeroed_storage();
            let mut len = c_len::<sockaddr_storage>();
            // SAFETY: `ss` is a writable sockaddr_storage of `len` bytes.
            let s = unsafe { ffi::srt_accept(self.h.0, (&raw mut ss).cast::<sockaddr>(), &mut len) };
            if s != ffi::SRT_INVALID_SOCK {
                let sock = SrtSocket { h: Handle(s) };
                sock.h.set_i32(ffi::SRTO_RCVSYN, "SRTO_RCVSYN", 1)?;
                return Ok((sock, from_storage(&ss, len)?));
            }
            match io_error() {
                // SRT_EASYNCRCV: a concurrent accept took it; wait again.
                SrtError::Timeout if Instant::now() < deadline => {}
                e => return Err(e),
            }
        }
    }
}

impl Drop for SrtListener {
    fn drop(&mut self) {
        // SAFETY: we own the epoll id; the socket itself is closed by `Handle`'s drop after this.
        unsafe { ffi::srt_epoll_release(self.eid) };
    }
}
