//! Loopback UDP impairment relay for tests: loss (random or bursty), delay,
//! jitter, reordering, duplication and outages between a sender and a
//! receiver.
//!
//! # Background
//! Venue uplinks lose packets in bursts, jitter, occasionally reorder or
//! duplicate, and drop out completely for a few hundred milliseconds. The
//! agent's outputs (SRT via libsrt, RTP/UDP with SMPTE 2022-1 FEC) exist to
//! survive exactly that, so the integration tests put this relay between
//! the agent and a real receiver (`srt-live-transmit`, GStreamer's FEC
//! decoder) and turn the faults on. Both protocols ride on UDP, so one
//! datagram relay serves both.
//!
//! # Design
//! * **Sans-IO core** ([`Impairer`], in `relay/impair.rs`): per packet,
//!   given its arrival time, return "drop" or "deliver at T" (+ duplicate /
//!   reordered flags). Time is a parameter and randomness comes from a
//!   seeded PRNG, so the model is unit-tested with a fake clock and a run
//!   is reproducible from its seed. Without reordering, release times are
//!   clamped to be non-decreasing, so delay + jitter never reorders.
//! * **I/O shell** ([`Relay`]): a *front* socket the sender talks to and
//!   *one* upstream-facing socket, both on loopback. SRT needs the single
//!   upstream socket: the receiver sees one peer 5-tuple, and its ACKs,
//!   NAKs and handshake replies come back to that socket, from where they
//!   are relayed to the sender's last-seen address. Each direction has its
//!   own [`ImpairmentConfig`]; forward = sender → receiver, reverse =
//!   receiver → sender. RTP only uses forward.
//! * Threads: one blocking receiver per direction (short read timeout so
//!   stop is prompt) and one scheduler that releases delayed packets from a
//!   `BinaryHeap` ordered by (release time, arrival sequence), sleeping on
//!   a condvar until the next due time (never spinning). A packet due
//!   immediately whose in-order predecessors have all left is sent straight
//!   from the receive thread, so a transparent relay adds ~one thread hop.
//! * The outage switch is shared by both directions and checked on arrival
//!   *and* on release, so packets already "in the air" when it trips are
//!   lost too, like a cut link.
//! * Drop stops and joins every thread within a bounded time; all sockets
//!   are owned by an `Arc` the threads share, so a successful re-bind of
//!   the front port after drop proves nothing leaked.
//!
//! # Limitations
//! * Loopback only: [`Relay::start`] refuses non-loopback addresses (tests
//!   must never send traffic off the machine).
//! * The relay asks for [`SOCKET_BUFFER`] of kernel receive buffer (the
//!   kernel caps it at `net.core.rmem_max`); a sender bursting far above the
//!   relay's drain rate for longer than that can still see kernel drops,
//!   which are not counted in [`RelayStats`].
//! * The delay queue is unbounded: delay × rate worth of packets is held in
//!   memory (2.5 MB per second of delay at 20 Mbit/s).
//! * Reordering is time based ([`REORDER_HOLD`]): with very sparse traffic
//!   a "reordered" packet may have no neighbour to overtake it.
//! * Reverse traffic goes to the *last* address seen on the front socket;
//!   with several senders on one relay replies go to whichever spoke last.
//! * Timing accuracy is that of the OS scheduler (sub-millisecond on an
//!   idle machine, worse under load).

mod bottleneck;
mod impair;

pub use bottleneck::{Bottleneck, Fifo, RateStep};
pub use impair::{Decision, Delivery, DropReason, Impairer, ImpairmentConfig, Loss, MAX_DELAY, REORDER_HOLD};

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Receive timeout: bounds how long a receive thread takes to notice stop.
const READ_TIMEOUT: Duration = Duration::from_millis(20);
/// Longest scheduler sleep without a due packet (stop is also notified).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Total time Drop waits for the threads before detaching them.
const JOIN_BUDGET: Duration = Duration::from_secs(1);
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// Kernel receive buffer the relay asks for: about 0.8 s at 42 Mbit/s, so a
/// thread that a busy 2-core machine deschedules for a moment loses nothing
/// (the default 208 KiB holds some 20 ms of such a stream).
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Attempts when hunting for free port triples.
const TRIPLE_ATTEMPTS: usize = 64;

/// Which way a packet travels through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sender → upstream receiver.
    Forward,
    /// Upstream receiver → sender (SRT ACK/NAK/handshake).
    Reverse,
}

/// Counters for one direction.
///
/// Once nothing is in flight, `received + duplicated == forwarded +
/// dropped()` (duplicates are extra copies; every copy is either forwarded
/// or dropped).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams accepted from the socket.
    pub received: u64,
    /// Datagrams sent on (duplicate copies included).
    pub forwarded: u64,
    /// Dropped by the loss model.
    pub dropped_loss: u64,
    /// Dropped because an outage was on (on arrival or at release).
    pub dropped_outage: u64,
    /// Tail-dropped by the bandwidth bottleneck (queue full).
    pub dropped_bottleneck: u64,
    /// Reverse only: dropped because no sender has spoken yet.
    pub dropped_no_peer: u64,
    /// `send_to` failed.
    pub send_errors: u64,
    /// Packets the impairer chose to duplicate.
    pub duplicated: u64,
    /// Packets the impairer chose to reorder.
    pub reordered: u64,
    /// Reverse only: datagrams on the upstream socket from an address other
    /// than the upstream target (ignored, not counted in `received`).
    pub ignored_foreign: u64,
}

impl DirectionStats {
    /// All drops.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_outage + self.dropped_bottleneck + self.dropped_no_peer + self.send_errors
    }

    /// Copies still waiting in the delay queue.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        (self.received + self.duplicated).saturating_sub(self.forwarded + self.dropped())
    }
}

/// Counters for both directions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Sender → receiver.
    pub forward: DirectionStats,
    /// Receiver → sender.
    pub reverse: DirectionStats,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    dropped_loss: AtomicU64,
    dropped_outage: AtomicU64,
    dropped_bottleneck: AtomicU64,
    dropped_no_peer: AtomicU64,
    send_errors: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    ignored_foreign: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            received: g(&self.received),
            forwarded: g(&self.forwarded),
            dropped_loss: g(&self.dropped_loss),
            dropped_outage: g(&self.dropped_outage),
            dropped_bottleneck: g(&self.dropped_bottleneck),
            dropped_no_peer: g(&self.dropped_no_peer),
            send_errors: g(&self.send_errors),
            duplicated: g(&self.duplicated),
            reordered: g(&self.reordered),
            ignored_foreign: g(&self.ignored_foreign),
        }
    }
}

/// State of one direction.
struct Path {
    impairer: Mutex<Impairer>,
    /// The bandwidth bottleneck, ahead of the impairer's delay line.
    fifo: Mutex<Fifo>,
    counters: Counters,
    /// In-order copies of this direction sitting in the delay queue (or
    /// being sent by the scheduler). While non-zero, new in-order packets
    /// must queue behind them instead of taking the direct path.
    in_order_pending: AtomicUsize,
}

impl Path {
    fn new(cfg: ImpairmentConfig) -> Self {
        Path {
            impairer: Mutex::new(Impairer::new(cfg)),
            fifo: Mutex::new(Fifo::default()),
            counters: Counters::default(),
            in_order_pending: AtomicUsize::new(0),
        }
    }
}

/// A delayed copy waiting for its release time.
struct Pending {
    at: Instant,
    /// Arrival order: FIFO among equal release times (duplicates, zero
    /// jitter).
    seq: u64,
    dir: Direction,
    in_order: bool,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Pending>>,
    next_seq: u64,
}

struct Shared {
    front: UdpSocket,
    upstream_sock: UdpSocket,
    upstream: SocketAddr,
    /// Last address seen on the front socket: where reverse traffic goes.
    sender: Mutex<Option<SocketAddr>>,
    forward: Path,
    reverse: Path,
    /// Reference point for `outage_until_ns`.
    epoch: Instant,
    outage_manual: AtomicBool,
    /// Timed outage end, in ns since `epoch` (0 = none). An atomic rather
    /// than a timer thread: the outage "ends by itself" simply because the
    /// comparison stops being true.
    outage_until_ns: AtomicU64,
    stop: AtomicBool,
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Lock, ignoring poison: a panicked relay thread must not turn every later
/// stats call into a second panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn path(&self, dir: Direction) -> &Path {
        match dir {
            Direction::Forward => &self.forward,
            Direction::Reverse => &self.reverse,
        }
    }

    fn outage_active(&self, now: Instant) -> bool {
        self.outage_manual.load(Ordering::Relaxed)
            || impair::nanos(now.saturating_duration_since(self.epoch)) < self.outage_until_ns.load(Ordering::Relaxed)
    }

    /// Run a freshly received datagram through the impairer and either send
    /// it now or queue it.
    fn admit(&self, dir: Direction, data: &[u8], now: Instant) {
        let path = self.path(dir);
        // The bottleneck first: a packet leaves it at its departure time
        // and only then meets the delay, loss and the rest.
        let Some(departs) = lock(&path.fifo).admit(now, data.len()) else {
            return inc(&path.counters.dropped_bottleneck);
        };
        let decision = {
            let mut imp = lock(&path.impairer);
            imp.set_outage(self.outage_active(now));
            imp.decide(departs)
        };
        let d = match decision {
            Decision::Drop(DropReason::Loss) => return inc(&path.counters.dropped_loss),
            Decision::Drop(DropReason::Outage) => return inc(&path.counters.dropped_outage),
            Decision::Deliver(d) => d,
        };
        if d.reordered {
            inc(&path.counters.reordered);
        }
        if d.duplicate {
            inc(&path.counters.duplicated);
        }
        let copies = 1 + usize::from(d.duplicate);
        let in_order = !d.reordered;
        // Direct path: due now and nothing of ours still queued ahead (this
        // thread is the only producer for `dir`, so the check cannot race
        // with a newer packet; the scheduler decrements only after sending).
        if in_order && d.at <= now && path.in_order_pending.load(Ordering::SeqCst) == 0 {
            for _ in 0..copies {
                self.send(dir, data);
            }
            return;
        }
        if in_order {
            path.in_order_pending.fetch_add(copies, Ordering::SeqCst);
        }
        {
            let mut q = lock(&self.queue);
            for _ in 0..copies {
                let seq = q.next_seq;
                q.next_seq += 1;
                q.heap.push(Reverse(Pending { at: d.at, seq, dir, in_order, data: data.to_vec() }));
            }
        }
        self.wake.notify_one();
    }

    fn send(&self, dir: Direction, data: &[u8]) {
        let path = self.path(dir);
        let (sock, dest) = match dir {
            Direction::Forward => (&self.upstream_sock, Some(self.upstream)),
            // Resolved at send time: "last-seen" includes packets that
            // arrived while this one was delayed.
            Direction::Reverse => (&self.front, *lock(&self.sender)),
        };
        let Some(dest) = dest else {
            return inc(&path.counters.dropped_no_peer);
        };
        match sock.send_to(data, dest) {
            Ok(_) => inc(&path.counters.forwarded),
            Err(_) => inc(&path.counters.send_errors),
        }
    }
}

fn recv_loop(shared: &Shared, dir: Direction) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let sock = match dir {
        Direction::Forward => &shared.front,
        Direction::Reverse => &shared.upstream_sock,
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => continue,
            Err(_) => {
                // E.g. ECONNREFUSED from an ICMP port-unreachable. Not
                // fatal (the receiver may start later), but never spin.
                thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let path = shared.path(dir);
        match dir {
            Direction::Forward => *lock(&shared.sender) = Some(src),
            Direction::Reverse if src != shared.upstream => {
                inc(&path.counters.ignored_foreign);
                continue;
            }
            Direction::Reverse => {}
        }
        inc(&path.counters.received);
        shared.admit(dir, &buf[..n], Instant::now());
    }
}

fn scheduler_loop(shared: &Shared) {
    let mut due: Vec<Pending> = Vec::new();
    loop {
        {
            let mut q = lock(&shared.queue);
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let now = Instant::now();
                let wait = match q.heap.peek() {
                    Some(Reverse(p)) if p.at <= now => break,
                    Some(Reverse(p)) => (p.at - now).min(IDLE_WAIT),
                    None => IDLE_WAIT,
                };
                q = match shared.wake.wait_timeout(q, wait) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
            }
            let now = Instant::now();
            while q.heap.peek().is_some_and(|Reverse(p)| p.at <= now) {
                if let Some(Reverse(p)) = q.heap.pop() {
                    due.push(p);
                }
            }
        }
        // Send without holding the queue lock so receive threads can keep
        // queueing.
        let outage = shared.outage_active(Instant::now());
        for p in due.drain(..) {
            let path = shared.path(p.dir);
            if outage {
                inc(&path.counters.dropped_outage);
            } else {
                shared.send(p.dir, &p.data);
            }
            if p.in_order {
                path.in_order_pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// A running impairment relay. See the module docs.
pub struct Relay {
    shared: Arc<Shared>,
    local: SocketAddr,
    upstream_local: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("local", &self.local)
            .field("upstream_local", &self.upstream_local)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Asks for [`SOCKET_BUFFER`] of receive buffer. Best effort: the kernel
/// caps the size at `net.core.rmem_max`, and a refusal only leaves the
/// default, which the relay also works with.
pub fn grow_receive_buffer(sock: &UdpSocket) {
    let _ = socket2::SockRef::from(sock).set_recv_buffer_size(SOCKET_BUFFER);
}

fn loopback_any_port(like: SocketAddr) -> SocketAddr {
    let ip: IpAddr = if like.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() };
    SocketAddr::new(ip, 0)
}

impl Relay {
    /// Start a relay whose front socket is on an ephemeral loopback port.
    ///
    /// # Errors
    /// `InvalidInput` if `upstream` is not loopback or a config fails
    /// [`ImpairmentConfig::validate`]; socket/thread errors otherwise.
    pub fn start(upstream: SocketAddr, forward: ImpairmentConfig, reverse: ImpairmentConfig) -> io::Result<Relay> {
        Self::start_on(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0), upstream, forward, reverse)
    }

    /// Forward impairments only (reverse transparent) — the RTP case.
    ///
    /// # Errors
    /// As [`Relay::start`].
    pub fn forward_only(upstream: SocketAddr, forward: ImpairmentConfig) -> io::Result<Relay> {
        Self::start(upstream, forward, ImpairmentConfig::NONE)
    }

    /// Start a relay with its front socket bound to `front` (e.g. a fixed
    /// port the sender is configured with).
    ///
    /// # Errors
    /// As [`Relay::start`], plus `InvalidInput` if `front` is not loopback.
    pub fn start_on(
        front: SocketAddr,
        upstream: SocketAddr,
        forward: ImpairmentConfig,
        reverse: ImpairmentConfig,
    ) -> io::Result<Relay> {
        // Project rule: tests only ever send to 127.0.0.0/8 (or ::1).
        for (what, addr) in [("upstream", upstream), ("front", front)] {
            if !addr.ip().is_loopback() {
                return Err(invalid(format!("relay {what} {addr} is not a loopback address")));
            }
        }
        for (what, cfg) in [("forward", &forward), ("reverse", &reverse)] {
            cfg.validate().map_err(|e| invalid(format!("relay {what} config: {e}")))?;
        }
        let front = UdpSocket::bind(front)?;
        let upstream_sock = UdpSocket::bind(loopback_any_port(upstream))?;
        front.set_read_timeout(Some(READ_TIMEOUT))?;
        upstream_sock.set_read_timeout(Some(READ_TIMEOUT))?;
        grow_receive_buffer(&front);
        grow_receive_buffer(&upstream_sock);
        let local = front.local_addr()?;
        let upstream_local = upstream_sock.local_addr()?;
        let shared = Arc::new(Shared {
            front,
            upstream_sock,
            upstream,
            sender: Mutex::new(None),
            forward: Path::new(forward),
            reverse: Path::new(reverse),
            epoch: Instant::now(),
            outage_manual: AtomicBool::new(false),
            outage_until_ns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        // Built before spawning: if a spawn fails, dropping `relay` stops
        // the threads already running.
        let mut relay = Relay { shared, local, upstream_local, threads: Vec::with_capacity(3) };
        let port = local.port();
        for (name, dir) in [("fwd", Some(Direction::Forward)), ("rev", Some(Direction::Reverse)), ("sched", None)] {
            let shared = Arc::clone(&relay.shared);
            let handle = thread::Builder::new().name(format!("relay-{port}-{name}")).spawn(move || match dir {
                Some(dir) => recv_loop(&shared, dir),
                None => scheduler_loop(&shared),
            })?;
            relay.threads.push(handle);
        }
        Ok(relay)
    }

    /// Three forward-only relays whose front ports are `P, P+2, P+4` (RTP
    /// media + SMPTE 2022-1 column and row FEC), relaying to
    /// `upstream_base`, `+2`, `+4`. Each relay gets the same `forward`
    /// config but its own seed derived from `forward.seed`, so the three
    /// streams lose independently. `P` is even (RTP convention).
    ///
    /// # Errors
    /// `InvalidInput` for bad addresses/config or if `upstream_base + 4`
    /// overflows; `AddrInUse` if no free triple was found after bounded
    /// retries.
    pub fn start_fec_triple(upstream_base: SocketAddr, forward: ImpairmentConfig) -> io::Result<[Relay; 3]> {
        let up = |off: u16| -> io::Result<SocketAddr> {
            let port = upstream_base.port().checked_add(off).ok_or_else(|| invalid(format!("{upstream_base} + {off} overflows")))?;
            Ok(SocketAddr::new(upstream_base.ip(), port))
        };
        let start = |base: u16, i: u16| -> io::Result<Relay> {
            Relay::start_on(
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), base + 2 * i),
                up(2 * i)?,
                forward.with_seed(impair::derive_seed(forward.seed, u64::from(i))),
                ImpairmentConfig::NONE,
            )
        };
        let mut last_err = None;
        for _ in 0..TRIPLE_ATTEMPTS {
            let base = test_support::ports::try_free_udp_port_triple()?;
            // Binding for real here (not find-then-drop) closes most of the
            // race with other tests grabbing the ports.
            match (|| Ok::<_, io::Error>([start(base, 0)?, start(base, 1)?, start(base, 2)?]))() {
                Ok(relays) => return Ok(relays),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
    }

    /// Where the sender should send.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The relay's upstream-facing socket: the source address the receiver
    /// sees (and where its replies must go).
    #[must_use]
    pub fn upstream_local_addr(&self) -> SocketAddr {
        self.upstream_local
    }

    /// The receiver this relay forwards to.
    #[must_use]
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Full outage in both directions while on (including packets already
    /// delayed in the relay). `false` also cancels a pending
    /// [`Relay::outage_for`].
    pub fn set_outage(&self, on: bool) {
        self.shared.outage_manual.store(on, Ordering::SeqCst);
        if !on {
            self.shared.outage_until_ns.store(0, Ordering::SeqCst);
        }
    }

    /// Outage starting now and ending by itself after `d` (replaces any
    /// earlier timed outage).
    pub fn outage_for(&self, d: Duration) {
        let end = Instant::now().saturating_duration_since(self.shared.epoch) + d;
        self.shared.outage_until_ns.store(impair::nanos(end), Ordering::SeqCst);
    }

    /// Replace the forward impairments at run time (see
    /// [`Impairer::reconfigure`]: ordering with in-flight packets is kept).
    ///
    /// # Panics
    /// If `cfg` fails [`ImpairmentConfig::validate`] (a test bug).
    pub fn set_forward(&self, cfg: ImpairmentConfig) {
        Self::reconfigure(&self.shared.forward, cfg);
    }

    /// Limits the forward direction to a bandwidth with a bounded queue
    /// (`None`: no limit), from now on.
    pub fn set_forward_bottleneck(&self, limit: Option<Bottleneck>) {
        lock(&self.shared.forward.fifo).set_limit(limit);
    }

    /// Makes the forward bottleneck follow `steps`, measured from now.
    pub fn set_forward_schedule(&self, steps: Vec<RateStep>) {
        lock(&self.shared.forward.fifo).set_schedule(Instant::now(), steps);
    }

    /// Replace the reverse impairments at run time.
    ///
    /// # Panics
    /// If `cfg` fails [`ImpairmentConfig::validate`] (a test bug).
    pub fn set_reverse(&self, cfg: ImpairmentConfig) {
        Self::reconfigure(&self.shared.reverse, cfg);
    }

    fn reconfigure(path: &Path, cfg: ImpairmentConfig) {
        if let Err(e) = cfg.validate() {
            panic!("invalid relay config: {e}");
        }
        lock(&path.impairer).reconfigure(cfg);
    }

    /// Snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> RelayStats {
        RelayStats { forward: self.shared.forward.counters.snapshot(), reverse: self.shared.reverse.counters.snapshot() }
    }

    /// Stop and join the threads (same as dropping).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            // Notify under the lock so the scheduler cannot miss it between
            // its stop check and its wait.
            let _q = lock(&self.shared.queue);
            self.shared.wake.notify_all();
        }
        // std has no join-with-timeout: poll is_finished against one shared
        // deadline, then join (instant) or detach with a complaint.
        let deadline = Instant::now() + JOIN_BUDGET;
        for handle in self.threads.drain(..) {
            while !handle.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            let name = handle.thread().name().unwrap_or("relay").to_owned();
            if !handle.is_finished() {
                eprintln!("relay: thread {name} did not stop within {JOIN_BUDGET:?}; detached");
            } else if handle.join().is_err() {
                eprintln!("relay: thread {name} panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use test_support::ports::{free_udp_port, free_udp_port_triple};

    const LOCAL0: (Ipv4Addr, u16) = (Ipv4Addr::LOCALHOST, 0);

    fn socket(timeout: Duration) -> UdpSocket {
        let s = UdpSocket::bind(LOCAL0).unwrap();
        grow_receive_buffer(&s);
        s.set_read_timeout(Some(timeout)).unwrap();
        s
    }

    /// Deterministic MPEG-TS-sized payload (1316..=1344 bytes) carrying its
    /// sequence number in the first 8 bytes.
    fn payload(i: u64) -> Vec<u8> {
        let len = 1316 + usize::try_from(i % 29).unwrap();
        let mut v: Vec<u8> = (0..len as u64).map(|k| (k.wrapping_mul(31) ^ i.wrapping_mul(7)).to_le_bytes()[0]).collect();
        v[..8].copy_from_slice(&i.to_be_bytes());
        v
    }

    fn seq_of(b: &[u8]) -> u64 {
        u64::from_be_bytes(b[..8].try_into().unwrap())
    }

    /// Echo server on its own socket; stops and joins on drop.
    struct Echo {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        seen: Arc<Mutex<Vec<Vec<u8>>>>,
        handle: Option<JoinHandle<()>>,
    }

    impl Echo {
        fn start() -> Echo {
            let sock = socket(Duration::from_millis(20));
            let addr = sock.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
            let handle = thread::spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !stop2.load(Ordering::Relaxed) {
                    if let Ok((n, src)) = sock.recv_from(&mut buf) {
                        lock(&seen2).push(buf[..n].to_vec());
                        let _ = sock.send_to(&buf[..n], src);
                    }
                }
            });
            Echo { addr, stop, seen, handle: Some(handle) }
        }
    }

    impl Drop for Echo {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(h) = self.handle.take() {
                h.join().unwrap();
            }
        }
    }

    /// How long a collector waits after the last datagram: long enough for
    /// a relay thread that a busy CI machine deschedules mid-stream.
    const QUIET: Duration = Duration::from_secs(1);

    /// Collects `(arrival time, payload)` on a thread until `quiet` passes
    /// with nothing received (or `max` elapses).
    fn collect(sock: UdpSocket, quiet: Duration, max: Duration) -> JoinHandle<Vec<(Instant, Vec<u8>)>> {
        thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
            let start = Instant::now();
            let mut last = Instant::now();
            let mut out = Vec::new();
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while last.elapsed() < quiet && start.elapsed() < max {
                if let Ok(n) = sock.recv(&mut buf) {
                    last = Instant::now();
                    out.push((last, buf[..n].to_vec()));
                }
            }
            out
        })
    }

    /// Wait (bounded) until `f` holds.
    fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn echo_through_transparent_relay_is_in_order_and_byte_exact() {
        const N: u64 = 1000;
        const WINDOW: u64 = 32;
        let echo = Echo::start();
        let relay = Relay::start(echo.addr, ImpairmentConfig::NONE, ImpairmentConfig::NONE).unwrap();
        let client = socket(Duration::from_secs(2));
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let (mut sent, mut got) = (0, 0);
        while got < N {
            // Windowed so default socket buffers never overflow.
            while sent < N && sent - got < WINDOW {
                client.send_to(&payload(sent), relay.local_addr()).unwrap();
                sent += 1;
            }
            let (n, src) = client.recv_from(&mut buf).unwrap();
            assert_eq!(src, relay.local_addr(), "reply must come from the relay");
            assert_eq!(buf[..n], payload(got)[..], "echo {got} differs");
            got += 1;
        }
        let seen = lock(&echo.seen).clone();
        assert_eq!(seen.len(), 1000);
        for (i, p) in seen.iter().enumerate() {
            assert_eq!(*p, payload(i as u64), "forward datagram {i} differs");
        }
        let st = relay.stats();
        for d in [st.forward, st.reverse] {
            assert_eq!((d.received, d.forwarded, d.dropped()), (N, N, 0), "{st:?}");
        }
    }

    #[test]
    fn random_loss_5_percent_forward_and_stats_add_up() {
        const N: u64 = 4000;
        let sink = socket(Duration::from_millis(10));
        let cfg = ImpairmentConfig::NONE.with_loss(Loss::Random { probability: 0.05 }).with_seed(1234);
        let relay = Relay::forward_only(sink.local_addr().unwrap(), cfg).unwrap();
        let rx = collect(sink, QUIET, Duration::from_secs(5));
        let client = socket(Duration::from_millis(10));
        for i in 0..N {
            // Small datagrams: many more fit in the default socket buffers,
            // so a descheduled sink thread (loaded CI) does not overflow.
            client.send_to(&i.to_be_bytes(), relay.local_addr()).unwrap();
            if i % 10 == 9 {
                thread::sleep(Duration::from_millis(1)); // ≈ 9k pkt/s
            }
        }
        let got = rx.join().unwrap();
        let f = relay.stats().forward;
        assert_eq!(f.in_flight(), 0);
        // The relay's own accounting is exact and must balance.
        assert!(f.received >= N * 99 / 100, "{f:?}");
        assert_eq!(f.received, f.forwarded + f.dropped_loss, "{f:?}");
        assert_eq!((f.dropped_outage, f.send_errors, f.duplicated), (0, 0, 0));
        let loss = f.dropped_loss as f64 / f.received as f64;
        // σ ≈ 0.0034 at n = 4000.
        assert!((loss - 0.05).abs() < 0.015, "relay loss {loss}");
        // What the receiver saw: the same, give or take rare kernel drops.
        let seen = got.len() as u64;
        assert!(seen <= f.forwarded && seen >= f.forwarded * 99 / 100, "sink {seen}, {f:?}");
        let seen_loss = 1.0 - seen as f64 / N as f64;
        assert!((seen_loss - 0.05).abs() < 0.02, "end-to-end loss {seen_loss}");
        let seqs: Vec<u64> = got.iter().map(|(_, p)| seq_of(p)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "loss must not reorder");
    }

    fn stamped(epoch: Instant, i: u64) -> Vec<u8> {
        let mut p = payload(i);
        p[8..16].copy_from_slice(&impair::nanos(epoch.elapsed()).to_be_bytes());
        p
    }

    fn latency(epoch: Instant, arrival: Instant, p: &[u8]) -> Duration {
        let sent = epoch + Duration::from_nanos(u64::from_be_bytes(p[8..16].try_into().unwrap()));
        arrival - sent
    }

    #[test]
    fn delay_50ms_latency_bounds() {
        const N: u64 = 40;
        let sink = socket(Duration::from_millis(10));
        let cfg = ImpairmentConfig::NONE.with_delay(Duration::from_millis(50));
        let relay = Relay::forward_only(sink.local_addr().unwrap(), cfg).unwrap();
        let rx = collect(sink, QUIET, Duration::from_secs(3));
        let client = socket(Duration::from_millis(10));
        let epoch = Instant::now();
        for i in 0..N {
            client.send_to(&stamped(epoch, i), relay.local_addr()).unwrap();
            thread::sleep(Duration::from_millis(2));
        }
        let got = rx.join().unwrap();
        assert_eq!(got.len() as u64, N);
        for (arrival, p) in &got {
            let l = latency(epoch, *arrival, p);
            assert!(l >= Duration::from_millis(50) && l < Duration::from_millis(150), "latency {l:?}");
        }
    }

    #[test]
    fn jitter_without_reorder_keeps_order_through_the_shell() {
        const N: u64 = 300;
        let sink = socket(Duration::from_millis(10));
        let cfg = ImpairmentConfig::NONE.with_delay(Duration::from_millis(20)).with_jitter(Duration::from_millis(15)).with_seed(77);
        let relay = Relay::forward_only(sink.local_addr().unwrap(), cfg).unwrap();
        let rx = collect(sink, QUIET, Duration::from_secs(3));
        let client = socket(Duration::from_millis(10));
        let epoch = Instant::now();
        for i in 0..N {
            client.send_to(&stamped(epoch, i), relay.local_addr()).unwrap();
            if i % 4 == 3 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let got = rx.join().unwrap();
        let seqs: Vec<u64> = got.iter().map(|(_, p)| seq_of(p)).collect();
        assert_eq!(seqs, (0..N).collect::<Vec<_>>());
        let lats: Vec<Duration> = got.iter().map(|(a, p)| latency(epoch, *a, p)).collect();
        assert!(lats.iter().all(|l| *l >= Duration::from_millis(5)));
        assert!(lats.iter().max() > lats.iter().min().map(|m| *m + Duration::from_millis(5)).as_ref());
    }

    #[test]
    fn reorder_and_duplicate_through_the_shell() {
        const N: u64 = 1000;
        let sink = socket(Duration::from_millis(10));
        let cfg = ImpairmentConfig::NONE.with_reorder(0.05).with_duplicate(0.05).with_seed(99);
        let relay = Relay::forward_only(sink.local_addr().unwrap(), cfg).unwrap();
        let rx = collect(sink, QUIET, Duration::from_secs(3));
        let client = socket(Duration::from_millis(10));
        for i in 0..N {
            client.send_to(&payload(i), relay.local_addr()).unwrap();
            if i % 4 == 3 {
                thread::sleep(Duration::from_millis(1)); // ≈ 3000 pkt/s
            }
        }
        let got = rx.join().unwrap();
        let f = relay.stats().forward;
        assert_eq!(f.received + f.duplicated, f.forwarded, "{f:?}");
        assert_eq!(got.len() as u64, f.forwarded);
        assert!(f.reordered > 20 && f.duplicated > 20, "{f:?}");
        let seqs: Vec<u64> = got.iter().map(|(_, p)| seq_of(p)).collect();
        let inversions = seqs.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        assert!(inversions >= f.reordered / 2, "{inversions} inversions for {f:?}");
        let mut uniq = seqs.clone();
        uniq.sort_unstable();
        uniq.dedup();
        // Every packet the relay took in leaves it at least once. The
        // kernel may drop a few before the relay reads them when the machine
        // is starved (seen at load 8 on 2 cores); that is not the relay's loss.
        assert_eq!(uniq.len() as u64, f.received, "every received packet arrives at least once");
        assert!(uniq.iter().all(|&s| s < N));
        assert!(f.received >= N - N / 50, "{} of {N} reached the relay", f.received);
    }

    #[test]
    fn outage_for_blocks_then_resumes_without_restart() {
        let echo = Echo::start();
        let relay = Relay::start(echo.addr, ImpairmentConfig::NONE, ImpairmentConfig::NONE).unwrap();
        let client = socket(Duration::from_millis(10));
        // Quiet period longer than the outage, or the collector gives up.
        let rx = collect(client.try_clone().unwrap(), Duration::from_millis(600), Duration::from_secs(5));
        let epoch = Instant::now();
        let outage = Duration::from_millis(300);
        let margin = Duration::from_millis(50); // scheduling slop (loaded CI)
                                                // Time-based schedule (sleep overshoot under load only thins it):
                                                // 200 ms clean, 300 ms outage, 700 ms clean, one packet per 2 ms.
        let (mut t_on, mut t_on_done) = (None, None);
        let mut sent_at = Vec::new();
        let mut i = 0u64;
        while epoch.elapsed() < Duration::from_millis(1200) {
            if t_on.is_none() && epoch.elapsed() >= Duration::from_millis(200) {
                t_on = Some(epoch.elapsed());
                relay.outage_for(outage);
                t_on_done = Some(epoch.elapsed());
            }
            let p = stamped(epoch, i);
            sent_at.push(Duration::from_nanos(u64::from_be_bytes(p[8..16].try_into().unwrap())));
            client.send_to(&p, relay.local_addr()).unwrap();
            i += 1;
            thread::sleep(Duration::from_millis(2));
        }
        let (t_on, t_on_done) = (t_on.unwrap(), t_on_done.unwrap());
        let inside = |t: Duration| t >= t_on_done && t < t_on + outage - margin;
        let after = |t: Duration| t > t_on + outage + margin;
        let sent = |s: u64| sent_at[usize::try_from(s).unwrap()];
        let got = rx.join().unwrap();
        let seqs: Vec<u64> = got.iter().map(|(_, p)| seq_of(p)).collect();
        let leaked: Vec<u64> = seqs.iter().copied().filter(|&s| inside(sent(s))).collect();
        assert!(leaked.is_empty(), "passed during outage: {leaked:?}");
        // Traffic resumed without a restart: everything sent after the end
        // made the round trip.
        let expected_after: Vec<u64> = (0..i).filter(|&s| after(sent(s))).collect();
        let got_after: Vec<u64> = seqs.iter().copied().filter(|&s| after(sent(s))).collect();
        assert!(expected_after.len() >= 20, "test sent too little after the outage");
        assert_eq!(got_after, expected_after);
        let st = relay.stats();
        let blocked = sent_at.iter().filter(|&&t| inside(t)).count() as u64;
        assert!(st.forward.dropped_outage >= blocked && blocked > 0, "{blocked} {st:?}");
        assert_eq!(st.forward.dropped_loss + st.reverse.dropped_loss, 0);
    }

    #[test]
    fn set_outage_blocks_both_directions() {
        let upstream = socket(Duration::from_millis(100));
        let relay = Relay::start(upstream.local_addr().unwrap(), ImpairmentConfig::NONE, ImpairmentConfig::NONE).unwrap();
        let client = socket(Duration::from_millis(100));
        let round_trip = |expect: bool| {
            client.send_to(b"ping", relay.local_addr()).unwrap();
            match upstream.recv_from(&mut [0u8; 64]) {
                Ok((_, src)) => {
                    assert!(expect, "forward passed during outage");
                    assert_eq!(src, relay.upstream_local_addr());
                }
                Err(_) => assert!(!expect, "forward blocked without outage"),
            }
            upstream.send_to(b"pong", relay.upstream_local_addr()).unwrap();
            client.recv(&mut [0u8; 64]).is_ok()
        };
        assert!(round_trip(true));
        relay.set_outage(true);
        assert!(!round_trip(false), "reverse passed during outage");
        relay.set_outage(false);
        assert!(round_trip(true));
        let st = relay.stats();
        assert_eq!((st.forward.dropped_outage, st.reverse.dropped_outage), (1, 1), "{st:?}");
    }

    #[test]
    fn reverse_before_any_sender_is_dropped_and_foreign_ignored() {
        let upstream = socket(Duration::from_millis(100));
        let relay = Relay::forward_only(upstream.local_addr().unwrap(), ImpairmentConfig::NONE).unwrap();
        upstream.send_to(b"early", relay.upstream_local_addr()).unwrap();
        socket(Duration::from_millis(10)).send_to(b"stranger", relay.upstream_local_addr()).unwrap();
        eventually("reverse counters", Duration::from_secs(1), || {
            let r = relay.stats().reverse;
            r.dropped_no_peer == 1 && r.ignored_foreign == 1
        });
        assert_eq!(relay.stats().reverse.received, 1);
    }

    #[test]
    fn drop_and_stop_join_threads_quickly_and_release_sockets() {
        let sink = socket(Duration::from_millis(10));
        for use_stop in [false, true] {
            // Packets parked in the delay queue must not hold up shutdown.
            let cfg = ImpairmentConfig::NONE.with_delay(Duration::from_millis(500));
            let relay = Relay::forward_only(sink.local_addr().unwrap(), cfg).unwrap();
            let front = relay.local_addr();
            let client = socket(Duration::from_millis(10));
            for i in 0..10 {
                client.send_to(&payload(i), front).unwrap();
            }
            eventually("packets queued", Duration::from_secs(1), || relay.stats().forward.in_flight() == 10);
            let t = Instant::now();
            if use_stop {
                relay.stop();
            } else {
                drop(relay);
            }
            let took = t.elapsed();
            assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
            // Threads hold the only other references to the sockets: a
            // re-bind succeeding proves they are gone.
            UdpSocket::bind(front).expect("front port still bound after drop");
        }
    }

    #[test]
    fn rejects_non_loopback_and_invalid_config() {
        let off_box: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let e = Relay::forward_only(off_box, ImpairmentConfig::NONE).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = Relay::start_on(
            "0.0.0.0:0".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
            ImpairmentConfig::NONE,
            ImpairmentConfig::NONE,
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let bad = ImpairmentConfig::NONE.with_duplicate(2.0);
        let e = Relay::forward_only("127.0.0.1:5000".parse().unwrap(), bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn free_ports_are_bindable() {
        let p = free_udp_port();
        assert_ne!(p, 0);
        UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
        let base = free_udp_port_triple();
        assert_eq!(base % 2, 0);
        let _held: Vec<UdpSocket> =
            [base, base + 2, base + 4].iter().map(|&p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).unwrap()).collect();
    }

    #[test]
    fn fec_triple_maps_ports_one_to_one() {
        // Bind the three receivers at Q, Q+2, Q+4 (bounded retry on races).
        let sinks = (0..TRIPLE_ATTEMPTS)
            .find_map(|_| {
                let q = free_udp_port_triple();
                [q, q + 2, q + 4].iter().map(|&p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p))).collect::<io::Result<Vec<_>>>().ok()
            })
            .unwrap();
        let q = sinks[0].local_addr().unwrap();
        let relays = Relay::start_fec_triple(q, ImpairmentConfig::NONE).unwrap();
        let p = relays[0].local_addr().port();
        assert_eq!(p % 2, 0);
        let client = socket(Duration::from_millis(10));
        for (i, (relay, sink)) in relays.iter().zip(&sinks).enumerate() {
            assert_eq!(relay.local_addr().port(), p + 2 * u16::try_from(i).unwrap());
            sink.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            client.send_to(&[u8::try_from(i).unwrap(); 12], relay.local_addr()).unwrap();
            let mut buf = [0u8; 64];
            let (n, src) = sink.recv_from(&mut buf).unwrap();
            assert_eq!(buf[..n], [u8::try_from(i).unwrap(); 12]);
            assert_eq!(src, relay.upstream_local_addr());
        }
    }

    /// ~2× the 20 Mbit/s target through the delay-queue path (the slower
    /// one): 4000 packets of 1316 bytes at 4000 packets/s (≈ 42 Mbit/s).
    #[test]
    fn sustains_twice_target_rate_through_delay_queue() {
        const N: u64 = 4000;
        const RATE: u64 = 4000;
        let sink = socket(Duration::from_millis(10));
        let cfg = ImpairmentConfig::NONE.with_delay(Duration::from_millis(10)).with_jitter(Duration::from_millis(2)).with_seed(3);
        let relay = Relay::forward_only(sink.local_addr().unwrap(), cfg).unwrap();
        // A long quiet limit: on a saturated CI machine the relay's thread
        // can be descheduled for hundreds of milliseconds mid-stream.
        let rx = collect(sink, Duration::from_secs(3), Duration::from_secs(20));
        let client = socket(Duration::from_millis(10));
        let data = vec![0x47u8; 1316];
        let start = Instant::now();
        for i in 0..N {
            // Pace in 1 ms slots of RATE/1000 packets.
            if i % (RATE / 1000) == 0 {
                let due = start + Duration::from_millis(i * 1000 / RATE);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
            client.send_to(&data, relay.local_addr()).unwrap();
        }
        let send_time = start.elapsed();
        // The relay has drained its delay queue once everything it read has
        // left it and nothing more arrives.
        let mut last = relay.stats().forward;
        eventually("the relay to drain its delay queue", Duration::from_secs(10), || {
            thread::sleep(Duration::from_millis(100));
            let now = relay.stats().forward;
            let settled = now.forwarded == now.received && now.received == last.received;
            last = now;
            settled
        });
        let (tx, done) = mpsc::channel();
        thread::spawn(move || tx.send(rx.join().unwrap().len()).unwrap());
        let got = done.recv_timeout(Duration::from_secs(25)).unwrap() as u64;
        let mbit = (N * 1316 * 8) as f64 / send_time.as_secs_f64() / 1e6;
        eprintln!("relay throughput: {got}/{N} packets in {send_time:?} ({mbit:.1} Mbit/s offered)");
        // What the relay itself decides: everything it read was forwarded,
        // nothing was dropped by its own queue, and it really carried the
        // stream. How many datagrams the kernel dropped at the relay's or the
        // sink's default-sized buffer depends on how long a saturated 2-core
        // CI box deschedules those threads (2.4 % seen in CI); that is a
        // figure, not a property of the relay, so the bound is loose.
        let f = relay.stats().forward;
        assert_eq!(f.forwarded, f.received, "{f:?}");
        assert_eq!((f.dropped_loss, f.dropped_outage, f.dropped_no_peer, f.send_errors), (0, 0, 0, 0), "{f:?}");
        assert!(f.received >= N * 80 / 100, "{f:?}");
        assert!(got >= N * 75 / 100, "{got}/{N} delivered; {f:?}");
    }
}
