//! Talking to systemd: readiness, status and the watchdog (sd_notify(3)).
//!
//! # Background
//! `edge-agent.service` is `Type=notify` with `WatchdogSec=30s`. systemd
//! waits for `READY=1` before it considers the agent started, shows the last
//! `STATUS=` in `systemctl status`, and kills and restarts the agent when
//! `WATCHDOG=1` pings stop for `WatchdogSec`. Messages are datagrams of
//! `KEY=value` lines sent to the socket named by `$NOTIFY_SOCKET`.
//!
//! # Design
//! - [`Notifier`] sends the messages. Without `$NOTIFY_SOCKET` (run by hand,
//!   in tests) every call does nothing. Field formatting comes from the
//!   `sd-notify` crate ([`NotifyState`]); the datagram is sent here because
//!   that crate only sends to `$NOTIFY_SOCKET`, and tests must name their own
//!   socket without touching process-global environment variables
//!   ([`Notifier::with_socket`]).
//! - [`WatchdogGuard`] decides when to ping. A separate thread pings only if
//!   the main loop called [`WatchdogGuard::tick`] since the last ping *and*
//!   the health closure says healthy. A hung main loop or a lasting unhealthy
//!   state therefore stops the pings, and systemd restarts the agent, which
//!   is the whole point of a watchdog. A ping is due every half
//!   `WATCHDOG_USEC` (as `sd_watchdog_enabled(3)` advises); once due, the
//!   conditions are re-checked often (every 1/8 interval, at most 1 s), so a
//!   brief unhealthy blip delays a ping instead of costing a restart. Only
//!   an unhealthy state that lasts about half of `WatchdogSec` does.
//!
//! # Limitations
//! Send errors are logged once per notifier and otherwise ignored: the agent
//! must run the same with or without systemd. The environment variables are
//! not unset, so a child process would inherit them (the agent starts none).
//! Messages carry no file descriptors (`FDSTORE=` is not needed).

use std::fmt::Write as _;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::{debug, error, info, warn};

/// Sends sd_notify messages to systemd. Cheap to clone; clones share the
/// socket address, the last status and the warn-once flag.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    target: Target,
    /// Full `WATCHDOG_USEC`; pings are due every half of it.
    watchdog_usec: Option<u64>,
    /// The last `STATUS=` systemd accepted, to skip identical repeats.
    last_status: Mutex<Option<String>>,
    /// Whether a send error has been logged at warn level already.
    warned: AtomicBool,
}

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug)]
enum Target {
    Path(PathBuf),
    /// `@name`: a Linux abstract socket (no file).
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`, as set by
    /// systemd. Without `$NOTIFY_SOCKET` every call is a no-op. The watchdog
    /// counts only if `$WATCHDOG_PID` is unset or is our pid (the
    /// `sd_watchdog_enabled(3)` rule, applied by the `sd-notify` crate).
    pub fn from_env() -> Notifier {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(socket) if !socket.is_empty() => {
                let usec = sd_notify::watchdog_enabled().and_then(|d| u64::try_from(d.as_micros()).ok());
                Notifier::with_socket(PathBuf::from(socket), usec)
            }
            _ => Notifier::disabled(),
        }
    }

    /// Sends to `socket` (a path, or `@name` for an abstract socket), with a
    /// watchdog of `watchdog_usec` microseconds (`None` or 0: no watchdog).
    pub fn with_socket(socket: PathBuf, watchdog_usec: Option<u64>) -> Notifier {
        use std::os::unix::ffi::OsStrExt;
        let bytes = socket.as_os_str().as_bytes();
        let target = match bytes.strip_prefix(b"@") {
            Some(name) => Target::Abstract(name.to_vec()),
            None => Target::Path(socket),
        };
        let inner = Inner {
            target,
            watchdog_usec: watchdog_usec.filter(|&u| u > 0),
            last_status: Mutex::new(None),
            warned: AtomicBool::new(false),
        };
        Notifier { inner: Some(Arc::new(inner)) }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { inner: None }
    }

    /// Whether messages go anywhere (the agent runs under systemd).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// `READY=1` with a first `STATUS=`: configuration loaded, pipeline built.
    pub fn ready(&self, status: &str) {
        let Some(inner) = &self.inner else { return };
        let status = one_line(status);
        let mut last = inner.last_status.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.send(&[NotifyState::Ready, NotifyState::Status(&status)]) {
            *last = Some(status);
        }
    }

    /// `STATUS=`, shown by `systemctl status`. Skipped when identical to the
    /// last status sent, so it can be called on every loop iteration.
    /// Newlines become spaces (a newline would end the field).
    pub fn status(&self, status: &str) {
        let Some(inner) = &self.inner else { return };
        let status = one_line(status);
        // Held while sending, so concurrent callers cannot leave a stale cache.
        let mut last = inner.last_status.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() == Some(status.as_str()) {
            return;
        }
        if inner.send(&[NotifyState::Status(&status)]) {
            *last = Some(status);
        }
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        if let Some(inner) = &self.inner {
            inner.send(&[NotifyState::Stopping]);
        }
    }

    /// How often to ping: half of `WATCHDOG_USEC`, or `None` if systemd set
    /// no watchdog for this process (or there is no systemd at all).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        let usec = self.inner.as_ref()?.watchdog_usec?;
        Some(Duration::from_micros(usec / 2))
    }

    /// `WATCHDOG=1`. Prefer [`WatchdogGuard`], which pings only while the
    /// agent is healthy.
    pub fn watchdog(&self) {
        if let Some(inner) = &self.inner {
            inner.send(&[NotifyState::Watchdog]);
        }
    }
}

impl Inner {
    /// Sends one datagram; returns whether it was sent. Logs the first error
    /// at warn level and later ones at debug level.
    fn send(&self, states: &[NotifyState<'_>]) -> bool {
        let mut msg = String::new();
        for s in states {
            // Writing to a String cannot fail.
            let _ = writeln!(msg, "{s}");
        }
        match self.send_datagram(msg.as_bytes()) {
            Ok(()) => true,
            Err(e) => {
                if self.warned.swap(true, Ordering::Relaxed) {
                    debug!(target_socket = ?self.target, error = %e, "sd_notify failed");
                } else {
                    warn!(target_socket = ?self.target, error = %e, "sd_notify failed; systemd will not see readiness, status or watchdog pings (logged once)");
                }
                false
            }
        }
    }

    /// A fresh unbound socket per message, as libsystemd does: nothing to
    /// reconnect after systemd re-executes, nothing shared between threads.
    fn send_datagram(&self, msg: &[u8]) -> io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let sent = match &self.target {
            Target::Path(path) => sock.send_to(msg, path)?,
            Target::Abstract(name) => sock.send_to_addr(msg, &SocketAddr::from_abstract_name(name)?)?,
        };
        if sent == msg.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "notify datagram truncated"))
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Pings the systemd watchdog from its own thread while the agent is alive
/// and healthy.
///
/// The main loop calls [`tick`](Self::tick) on every iteration. A ping is
/// sent at most every [`Notifier::watchdog_interval`], and only if the main
/// loop ticked since the previous ping and `healthy()` returns true, so a
/// hung main loop (or a lasting unhealthy state) lets systemd restart the
/// agent. `healthy` runs on the pinger thread; it should mean "a restart
/// could help" (pipeline stalled), not "the network is down", which a
/// restart does not fix. Dropping the guard stops the thread (waiting at
/// most 1 s).
///
/// Start it right after [`Notifier::ready`] (systemd arms the watchdog of a
/// `Type=notify` service at `READY=1`); the first ping goes out at the first
/// tick. Drop it only when shutting down: once the guard is gone, systemd
/// kills the agent within `WatchdogSec` unless `STOPPING=1` was sent or
/// SIGTERM received.
#[derive(Debug)]
pub struct WatchdogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Set by `tick`, cleared by each ping.
    ticked: AtomicBool,
    state: Mutex<PingerState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PingerState {
    stop: bool,
    exited: bool,
}

/// Why pings are currently withheld, to log transitions only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Withheld {
    No,
    NoTick,
    Unhealthy,
}

/// How long `Drop` waits for the pinger thread.
const STOP_WAIT: Duration = Duration::from_secs(1);

impl WatchdogGuard {
    /// Starts the pinger thread. `None` when systemd configured no watchdog
    /// (or the thread cannot be started: then pings never come and systemd
    /// restarts the agent, which is the safe outcome).
    pub fn start(notifier: Notifier, healthy: impl Fn() -> bool + Send + 'static) -> Option<WatchdogGuard> {
        let interval = notifier.watchdog_interval()?;
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let spawned =
            std::thread::Builder::new().name("watchdog".into()).spawn(move || pinger(&thread_shared, &notifier, interval, &healthy));
        match spawned {
            Ok(handle) => Some(WatchdogGuard { shared, thread: Some(handle) }),
            Err(e) => {
                error!(error = %e, "cannot start the watchdog thread; systemd will restart the agent");
                None
            }
        }
    }

    /// Tells the pinger that the main loop is alive. Cheap (one atomic store).
    pub fn tick(&self) {
        self.shared.ticked.store(true, Ordering::Release);
    }
}

impl Drop for WatchdogGuard {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.stop = true;
        self.shared.changed.notify_all();
        let (state, _) =
            self.shared.changed.wait_timeout_while(state, STOP_WAIT, |s| !s.exited).unwrap_or_else(PoisonError::into_inner);
        let exited = state.exited;
        drop(state);
        match self.thread.take() {
            Some(handle) if exited => {
                let _ = handle.join();
            }
            Some(_) => warn!("watchdog thread did not stop within {STOP_WAIT:?} (stuck in the health check?); leaving it"),
            None => {}
        }
    }
}

/// Marks the pinger as exited when dropped, also if `healthy` panicked.
struct ExitFlag<'a>(&'a Shared);

impl Drop for ExitFlag<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner).exited = true;
        self.0.changed.notify_all();
    }
}

fn pinger(shared: &Shared, notifier: &Notifier, interval: Duration, healthy: &dyn Fn() -> bool) {
    let _exit = ExitFlag(shared);
    let poll = (interval / 8).clamp(Duration::from_millis(1), Duration::from_secs(1));
    let mut last_ping: Option<Instant> = None;
    let mut withheld = Withheld::No;
    loop {
        {
            let state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            let (state, _) = shared.changed.wait_timeout_while(state, poll, |s| !s.stop).unwrap_or_else(PoisonError::into_inner);
            if state.stop {
                return;
            }
        }
        if last_ping.is_some_and(|t| t.elapsed() < interval) {
            continue;
        }
        let now = if !shared.ticked.load(Ordering::Acquire) {
            Withheld::NoTick
        } else if !healthy() {
            Withheld::Unhealthy
        } else {
            Withheld::No
        };
        if now != withheld {
            let since = last_ping.map(|t| t.elapsed());
            match now {
                Withheld::NoTick => {
                    warn!(?since, "watchdog: main loop has not ticked since the last ping; withholding pings")
                }
                Withheld::Unhealthy => warn!(?since, "watchdog: agent unhealthy; withholding pings"),
                Withheld::No => info!("watchdog: pings resumed"),
            }
            withheld = now;
        }
        if now == Withheld::No {
            shared.ticked.store(false, Ordering::Release);
            notifier.watchdog();
            last_ping = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Generous bound for "a message arrives"; absence is asserted over
    /// shorter windows in which the code under test cannot send at all.
    const ARRIVES: Duration = Duration::from_secs(3);
    /// WATCHDOG_USEC for guard tests: pings due every 100 ms.
    const USEC: u64 = 200_000;

    struct Listener {
        _dir: tempfile::TempDir,
        path: PathBuf,
        sock: UnixDatagram,
    }

    impl Listener {
        fn new() -> Listener {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify.sock");
            let sock = UnixDatagram::bind(&path).unwrap();
            Listener { _dir: dir, path, sock }
        }

        fn notifier(&self, watchdog_usec: Option<u64>) -> Notifier {
            Notifier::with_socket(self.path.clone(), watchdog_usec)
        }

        /// The next message, or None if none arrives within `within`.
        fn recv(&self, within: Duration) -> Option<String> {
            self.sock.set_read_timeout(Some(within)).unwrap();
            let mut buf = [0u8; 4096];
            match self.sock.recv(&mut buf) {
                Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).unwrap()),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => None,
                Err(e) => panic!("recv: {e}"),
            }
        }

        fn expect(&self, want: &str) {
            assert_eq!(self.recv(ARRIVES).as_deref(), Some(want));
        }

        fn expect_nothing(&self, within: Duration) {
            assert_eq!(self.recv(within), None);
        }

        /// Waits for the next WATCHDOG=1 while `tick` keeps the main loop alive.
        fn expect_ping_while(&self, tick: impl Fn()) {
            let deadline = Instant::now() + ARRIVES;
            while Instant::now() < deadline {
                tick();
                if let Some(m) = self.recv(Duration::from_millis(10)) {
                    assert_eq!(m, "WATCHDOG=1\n");
                    return;
                }
            }
            panic!("no watchdog ping within {ARRIVES:?}");
        }

        /// Asserts no message for `d` while `tick` keeps being called.
        fn expect_no_ping_while(&self, d: Duration, tick: impl Fn()) {
            let deadline = Instant::now() + d;
            while Instant::now() < deadline {
                tick();
                assert_eq!(self.recv(Duration::from_millis(10)), None, "unexpected message");
            }
        }
    }

    #[test]
    fn ready_sends_ready_and_status() {
        let l = Listener::new();
        l.notifier(None).ready("config loaded, pipeline built");
        l.expect("READY=1\nSTATUS=config loaded, pipeline built\n");
    }

    #[test]
    fn status_is_sent_only_when_it_changes() {
        let l = Listener::new();
        let n = l.notifier(None);
        n.ready("starting");
        l.expect("READY=1\nSTATUS=starting\n");
        n.status("starting");
        n.status("on air");
        l.expect("STATUS=on air\n");
        n.clone().status("on air");
        n.status("backup output down");
        l.expect("STATUS=backup output down\n");
        n.status("on air");
        l.expect("STATUS=on air\n");
        l.expect_nothing(Duration::from_millis(50));
    }

    #[test]
    fn status_newlines_cannot_inject_fields() {
        let l = Listener::new();
        l.notifier(None).status("bad\nREADY=1");
        l.expect("STATUS=bad READY=1\n");
    }

    #[test]
    fn stopping_and_watchdog_messages() {
        let l = Listener::new();
        let n = l.notifier(Some(USEC));
        n.watchdog();
        l.expect("WATCHDOG=1\n");
        n.stopping();
        l.expect("STOPPING=1\n");
    }

    #[test]
    fn abstract_socket_names_are_supported() {
        let name = format!("edge-agent-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(ARRIVES)).unwrap();
        Notifier::with_socket(PathBuf::from(format!("@{name}")), None).stopping();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");
    }

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let n = |usec| Notifier::with_socket(path.clone(), usec);
        assert_eq!(n(Some(30_000_000)).watchdog_interval(), Some(Duration::from_secs(15)));
        assert_eq!(n(Some(USEC)).watchdog_interval(), Some(Duration::from_millis(100)));
        assert_eq!(n(Some(0)).watchdog_interval(), None);
        assert_eq!(n(None).watchdog_interval(), None);
        assert_eq!(Notifier::disabled().watchdog_interval(), None);
    }

    #[test]
    fn disabled_notifier_does_nothing() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready("x");
        n.status("y");
        n.watchdog();
        n.stopping();
        assert!(WatchdogGuard::start(n, || true).is_none());
    }

    #[test]
    fn send_errors_are_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::with_socket(dir.path().join("nobody-listens"), Some(USEC));
        n.ready("a");
        n.status("b");
        n.status("b");
        n.watchdog();
        assert!(n.inner.as_ref().unwrap().warned.load(Ordering::Relaxed));
    }

    #[test]
    fn no_guard_without_watchdog() {
        let l = Listener::new();
        assert!(WatchdogGuard::start(l.notifier(None), || true).is_none());
    }

    #[test]
    fn guard_pings_while_ticking_but_not_faster_than_the_interval() {
        let l = Listener::new();
        let guard = WatchdogGuard::start(l.notifier(Some(USEC)), || true).unwrap();
        let started = Instant::now();
        for _ in 0..3 {
            l.expect_ping_while(|| guard.tick());
        }
        // The first ping is due at once, then one per 100 ms interval.
        assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
    }

    #[test]
    fn guard_stops_pinging_when_the_main_loop_hangs_and_resumes_after() {
        let l = Listener::new();
        let guard = WatchdogGuard::start(l.notifier(Some(USEC)), || true).unwrap();
        l.expect_ping_while(|| guard.tick());
        // Hang: no tick. Each ping needs a tick after the previous one, so
        // nothing can arrive, however long we wait (5 intervals here).
        l.expect_no_ping_while(Duration::from_millis(500), || {});
        // Ticks resume: so do pings.
        l.expect_ping_while(|| guard.tick());
    }

    #[test]
    fn guard_stops_pinging_while_unhealthy() {
        let l = Listener::new();
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        let guard = WatchdogGuard::start(l.notifier(Some(USEC)), move || h.load(Ordering::SeqCst)).unwrap();
        l.expect_ping_while(|| guard.tick());
        // Unhealthy before the next tick, so no later check can see healthy.
        healthy.store(false, Ordering::SeqCst);
        l.expect_no_ping_while(Duration::from_millis(500), || guard.tick());
        healthy.store(true, Ordering::SeqCst);
        l.expect_ping_while(|| guard.tick());
    }

    #[test]
    fn dropping_the_guard_stops_the_thread_promptly() {
        let l = Listener::new();
        let guard = WatchdogGuard::start(l.notifier(Some(USEC)), || true).unwrap();
        l.expect_ping_while(|| guard.tick());
        guard.tick();
        let t = Instant::now();
        drop(guard);
        // Well under STOP_WAIT: the thread was woken, not waited out.
        assert!(t.elapsed() < STOP_WAIT / 2, "drop took {:?}", t.elapsed());
        // The pending tick may still have produced one ping before the stop.
        let _ = l.recv(Duration::from_millis(50));
        l.expect_nothing(Duration::from_millis(300));
    }

    #[test]
    fn a_panicking_health_check_stops_pings_and_drop_still_returns() {
        let l = Listener::new();
        let guard = WatchdogGuard::start(l.notifier(Some(USEC)), || panic!("health check bug")).unwrap();
        l.expect_no_ping_while(Duration::from_millis(300), || guard.tick());
        // Bounded, not prompt: the panic hook may still be printing a
        // backtrace, and Drop gives up waiting after STOP_WAIT.
        let t = Instant::now();
        drop(guard);
        assert!(t.elapsed() < STOP_WAIT + Duration::from_millis(500), "drop took {:?}", t.elapsed());
    }
}
