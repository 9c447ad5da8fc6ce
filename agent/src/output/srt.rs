//! SRT output through libsrt (the `srt` binding crate), as caller, listener
//! or rendezvous peer.
//!
//! MediaConnect's `srt-listener` sources run libsrt, so the agent calls them
//! with libsrt too (`docs/srt.md#why-libsrt`: the pure-Rust stack loses the
//! negotiated latency against a long-running listener). One thread per output:
//! find a peer, send chunks from the output's own queue, read libsrt
//! statistics, and on any failure find a peer again, forever.
//!
//! How the peer is found is the only difference between the modes
//! ([`Role`]): a caller connects (and on failure backs off with jitter); a
//! listener (`docs/srt.md#listener-mode`) waits for a caller, and while one
//! is connected a newer admitted caller replaces it. A rendezvous output
//! (`docs/srt.md#rendezvous-mode`) is a caller that binds its `bind` port
//! and sets `SRTO_RENDEZVOUS`, so it runs the caller's loop and backoff
//! while its peer calls it back. Sending and statistics
//! ([`SrtOutput::stream`]) are shared.

use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use srt::{SocketOptions, SrtError, SrtListener, SrtSocket};
use tracing::{info, warn};

use super::status::{OutputState, OutputStatus, SrtSnapshot};
use crate::backoff::Backoff;
use crate::config::{SrtMode, SrtOutputConfig};
use crate::dest::{Dest, RESOLVE_AFTER_FAILURES};
use crate::fanout::{LiveEdge, TsChunk};
use crate::shutdown::Shutdown;

/// A connect attempt gives up after this long; libsrt repeats its handshake
/// every 250 ms inside it, so a listener that comes back is found quickly.
const CONNECT_TIMEOUT_MS: u32 = 1500;
/// No packet from the peer for this long means the path is dead. libsrt's
/// default is 5 s; 3 s gets a box back on a restarted flow sooner.
const PEER_IDLE_TIMEOUT_MS: u32 = 3000;
/// A blocked send (full SRT buffer) gives up after this long.
const SEND_TIMEOUT_MS: i32 = 500;
/// Reconnect backoff: 200 ms doubling, capped so a returning listener is
/// found within about a second.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_millis(1000);
/// How often libsrt statistics and socket state are read: four times a
/// second, so the rate controller (which looks every 200 ms) sees a queue
/// building within a quarter second; one `srt_bistats` call is cheap.
const STATS_EVERY: Duration = Duration::from_millis(250);
/// Send batching: the thread wakes at most once per interval and hands
/// libsrt everything queued since (`docs/srt.md#batched-sends`). This is
/// the bound on the latency batching adds to a chunk: 8 ms, against an SRT
/// latency of 120 ms or more. An even 20 Mbit/s feed (one chunk every
/// 0.53 ms) then costs one wake-up per ~15 chunks instead of one per chunk,
/// and libsrt's sender thread wakes about once per two packets instead of
/// once per packet (`edge-bench srt`: 2 ms cost 1.44× srt-live-transmit's
/// CPU for the outputs, 5 ms 1.03×, 8 ms 0.85×). A muxer's frame bursts
/// (one every 33 ms at 30 fps) are one batch each whatever the interval.
const BATCH_INTERVAL: Duration = Duration::from_millis(8);
/// At most this many chunks per wake-up (0.27 s at 20 Mbit/s, under the
/// 1024-chunk queue); a full batch is followed at once by the next.
const MAX_BATCH: usize = 512;
/// A listener without a caller looks at its stop flags and empties its
/// queue this often.
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// Longest part of a caller's stream id that goes into a log line or the
/// status (it is the peer's text, up to 512 bytes).
const SHOWN_STREAM_ID: usize = 64;

/// How an SRT output finds its peer.
#[derive(Debug, Clone)]
pub enum Role {
    /// Calls the destination (`mode = "caller"`; also `"rendezvous"`,
    /// whose socket options say so, see [`SrtOutput::socket_options`]).
    Caller(Dest),
    /// Waits on this address for one caller at a time (`mode = "listener"`).
    Listener(SocketAddr),
}

impl Role {
    /// The role `cfg` asks for; `None` for a caller without a destination.
    pub fn of(cfg: &SrtOutputConfig, dest: Option<Dest>) -> Option<Role> {
        match cfg.listen_addr() {
            Some(addr) => Some(Role::Listener(addr)),
            None => dest.map(Role::Caller),
        }
    }
}

/// Why [`SrtOutput::stream`] returned.
enum Ended {
    /// The output or the agent is stopping.
    Stopped,
    /// The connection failed or was given up; the reason for the operator.
    Lost(String),
    /// Listener: a newer admitted caller takes over.
    Replaced(SrtSocket, SocketAddr),
}

/// The worker of one SRT output.
#[derive(Debug)]
pub struct SrtOutput {
    cfg: SrtOutputConfig,
    role: Role,
    status: Arc<OutputStatus>,
    live_edge: Arc<LiveEdge>,
    stop: Shutdown,
    agent_shutdown: Shutdown,
    /// `[adapt] srt_overhead_percent`: caps the send rate at libsrt's
    /// measured input rate plus this share (`None`: libsrt's default,
    /// unlimited).
    overhead_percent: Option<u32>,
}

impl SrtOutput {
    pub fn new(
        cfg: SrtOutputConfig,
        role: Role,
        status: Arc<OutputStatus>,
        live_edge: Arc<LiveEdge>,
        stop: Shutdown,
        agent_shutdown: Shutdown,
    ) -> Self {
        SrtOutput { cfg, role, status, live_edge, stop, agent_shutdown, overhead_percent: None }
    }

    /// Caps retransmissions: `SRTO_MAXBW` 0 (relative), `SRTO_INPUTBW` 0
    /// (libsrt measures the input rate, so the cap follows the encoder's
    /// target as it moves) and `SRTO_OHEADBW` = `percent`. Without it libsrt
    /// retransmits without limit and, on a narrowed link, the retransmissions
    /// themselves fill the bottleneck (measured: 8.9 Mbit/s sent into a
    /// 1.8 Mbit/s link).
    pub fn with_overhead_cap(mut self, percent: Option<u32>) -> Self {
        self.overhead_percent = percent;
        self
    }

    fn stopping(&self) -> bool {
        self.stop.is_triggered() || self.agent_shutdown.is_triggered()
    }

    /// libsrt options for this output. The passphrase goes to libsrt only.
    pub fn socket_options(cfg: &SrtOutputConfig) -> SocketOptions {
        let rendezvous = cfg.mode == SrtMode::Rendezvous;
        SocketOptions {
            latency_ms: Some(cfg.latency_ms.get()),
            passphrase: cfg.passphrase.as_ref().map(|p| p.expose().to_owned()),
            pbkeylen: cfg.passphrase.as_ref().map(|_| cfg.pbkeylen.map_or(16, |k| k.get())),
            stream_id: cfg.stream_id.as_ref().map(|s| s.as_str().to_owned()),
            // libsrt waits ten times SRTO_CONNTIMEO for a rendezvous peer:
            // a tenth keeps an attempt as long as a caller's.
            connect_timeout_ms: Some(if rendezvous { CONNECT_TIMEOUT_MS / 10 } else { CONNECT_TIMEOUT_MS }),
            rendezvous,
            peer_idle_timeout_ms: Some(PEER_IDLE_TIMEOUT_MS),
            send_timeout_ms: Some(SEND_TIMEOUT_MS),
            ..SocketOptions::default()
        }
    }

    /// Runs until the output or the agent is stopped.
    pub fn run(self, rx: Receiver<TsChunk>) {
        let mut opts = Self::socket_options(&self.cfg);
        if let Some(pct) = self.overhead_percent {
            opts.input_bw_bytes_per_s = Some(0);
            opts.overhead_bw_percent = Some(pct);
        }
        match &self.role {
            Role::Caller(dest) => self.run_caller(&rx, dest, &opts),
            Role::Listener(addr) => {
                // The stream id is the caller's to send and ours to check
                // (`admit`): set on the listening socket, libsrt would hand
                // it to an accepted caller that sent none.
                opts.stream_id = None;
                self.run_listener(&rx, *addr, &opts);
            }
        }
        self.status.set_state(OutputState::Stopped);
    }

    /// Caller (and rendezvous): connect, stream, and on failure back off and
    /// connect again.
    fn run_caller(&self, rx: &Receiver<TsChunk>, dest: &Dest, opts: &SocketOptions) {
        let name = self.status.name.clone();
        let local = self.cfg.bind.as_ref().map(|b| b.addr());
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
        let mut remote: Option<SocketAddr> = None;
        // Failed connects since the destination was last resolved.
        let mut failures = 0u32;
        while !self.stopping() {
            self.status.set_state(OutputState::Connecting);
            let remote = match (dest, remote) {
                (Dest::Fixed(a), _) => *a,
                // A name resolves at every attempt: DNS down is this
                // output's error, retried with the same backoff.
                (Dest::Name(host), _) => match host.resolve() {
                    Ok(a) => a,
                    Err(reason) => {
                        self.status.failed(reason);
                        self.status.set_state(OutputState::Backoff);
                        if self.stop.wait_timeout(backoff.next_delay()) || self.agent_shutdown.is_triggered() {
                            break;
                        }
                        continue;
                    }
                },
                // The monitor found a new destination: take it.
                (Dest::Flow(link), Some(r)) if failures < RESOLVE_AFTER_FAILURES && link.current().is_none_or(|c| c == r) => r,
                (Dest::Flow(link), _) => match link.resolve() {
                    Ok(r) => {
                        failures = 0;
                        remote = Some(r.destination.address);
                        r.destination.address
                    }
                    Err(reason) => {
                        self.status.failed(reason);
                        self.status.set_state(OutputState::Backoff);
                        if self.stop.wait_timeout(link.retry_delay(backoff.next_delay())) || self.agent_shutdown.is_triggered() {
                            break;
                        }
                        continue;
                    }
                },
            };
            // Cancelled when the output or the agent stops: a silent peer
            // must not hold the shutdown for the connect timeout.
            match SrtSocket::connect_unless(remote, local, opts, &|| self.stopping()) {
                Ok(sock) => {
                    backoff.reset();
                    failures = 0;
                    let latency = sock.peer_latency_ms().unwrap_or_default();
                    self.status.connected();
                    info!(output = %name, %remote, negotiated_latency_ms = latency, "SRT connected");
                    // The monitor found a new destination for the flow:
                    // give this connection up and call there.
                    let moved = || match dest {
                        Dest::Flow(link) => {
                            link.current().filter(|a| *a != remote).map(|now| Ended::Lost(format!("flow destination moved to {now}")))
                        }
                        Dest::Fixed(_) | Dest::Name(_) => None,
                    };
                    let ended = self.stream(&sock, rx, latency, moved);
                    drop(sock);
                    match ended {
                        Ended::Lost(reason) => {
                            warn!(output = %name, %remote, %reason, "SRT connection lost; reconnecting");
                            self.status.failed(reason);
                        }
                        // A caller's check never replaces its connection.
                        Ended::Stopped | Ended::Replaced(..) => break,
                    }
                }
                Err(SrtError::Cancelled) => break,
                Err(e) => {
                    failures += 1;
                    let reason = describe(&e);
                    // Log the first failure and then every tenth, so a
                    // listener that stays down does not flood the journal.
                    let attempts = self.status.snapshot().failed_attempts;
                    if attempts.is_multiple_of(10) {
                        warn!(output = %name, %remote, %reason, attempts, "SRT connect failed");
                    }
                    self.status.failed(reason);
                }
            }
            self.status.set_state(OutputState::Backoff);
            if self.stop.wait_timeout(backoff.next_delay()) || self.agent_shutdown.is_triggered() {
                break;
            }
        }
    }

    /// Listener: bind (retrying while the address cannot be had), then
    /// serve one caller at a time, forever. A newer admitted caller
    /// replaces the current one (`docs/srt.md#listener-mode`); when the
    /// caller leaves, the output waits for the next. Should accepting fail
    /// on the listening socket itself, it is bound again after a backoff.
    fn run_listener(&self, rx: &Receiver<TsChunk>, addr: SocketAddr, opts: &SocketOptions) {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
        while let Some(listener) = self.bind_listener(rx, addr, opts, &mut backoff) {
            info!(output = %self.status.name, listen = %addr, "SRT listening for a caller");
            let Err(reason) = self.serve(&listener, rx, &mut backoff) else { return };
            drop(listener);
            self.log_failure(&reason, "SRT accept failed; listening again");
            self.status.failed(reason);
            self.status.set_state(OutputState::Backoff);
            if self.stop.wait_timeout(backoff.next_delay()) || self.agent_shutdown.is_triggered() {
                return;
            }
        }
    }

    /// Serves callers on `listener` until stopping (`Ok`) or accepting
    /// fails (`Err(reason)`).
    fn serve(&self, listener: &SrtListener, rx: &Receiver<TsChunk>, backoff: &mut Backoff) -> Result<(), String> {
        let name = &self.status.name;
        let mut next: Option<(SrtSocket, SocketAddr)> = None;
        while !self.stopping() {
            let (sock, peer) = match next.take() {
                Some(caller) => caller,
                None => {
                    self.status.set_state(OutputState::Listening);
                    match self.wait_for_caller(listener, rx)? {
                        Some(caller) => caller,
                        None => continue,
                    }
                }
            };
            backoff.reset();
            let latency = sock.peer_latency_ms().unwrap_or_default();
            self.status.connected();
            info!(output = %name, caller = %peer, negotiated_latency_ms = latency, "SRT caller connected");
            // Between batches: a newer caller replaces this one.
            let newer = || match listener.accept(Duration::ZERO) {
                Ok((new, new_peer)) if self.admit(&new, new_peer) => Some(Ended::Replaced(new, new_peer)),
                _ => None,
            };
            let ended = self.stream(&sock, rx, latency, newer);
            drop(sock);
            match ended {
                Ended::Stopped => break,
                Ended::Lost(reason) => {
                    warn!(output = %name, caller = %peer, %reason, "SRT caller left; waiting for a caller");
                    self.status.failed(format!("caller {peer} left: {reason}"));
                }
                Ended::Replaced(new, new_peer) => {
                    warn!(output = %name, caller = %peer, by = %new_peer, "SRT caller replaced by a newer one");
                    next = Some((new, new_peer));
                }
            }
        }
        Ok(())
    }

    /// Binds the listening socket, retrying with backoff (the port may be
    /// taken, the address not up yet); `None` once stopping.
    fn bind_listener(
        &self,
        rx: &Receiver<TsChunk>,
        addr: SocketAddr,
        opts: &SocketOptions,
        backoff: &mut Backoff,
    ) -> Option<SrtListener> {
        loop {
            if self.stopping() {
                return None;
            }
            match SrtListener::bind(addr, opts) {
                Ok(l) => return Some(l),
                Err(e) => {
                    let reason = format!("cannot listen on {addr}: {}", describe(&e));
                    self.log_failure(&reason, "SRT listen failed");
                    self.status.failed(reason);
                    self.status.set_state(OutputState::Backoff);
                }
            }
            self.drop_queued(rx);
            if self.stop.wait_timeout(backoff.next_delay()) || self.agent_shutdown.is_triggered() {
                return None;
            }
        }
    }

    /// Logs the first failure since the last success and then every tenth,
    /// so an address that stays unusable does not flood the journal.
    fn log_failure(&self, reason: &str, what: &str) {
        let attempts = self.status.snapshot().failed_attempts;
        if attempts.is_multiple_of(10) {
            warn!(output = %self.status.name, %reason, attempts, "{what}");
        }
    }

    /// Waits up to [`ACCEPT_POLL`] for an admitted caller (`Ok(None)`: none
    /// came, or it was refused). Meanwhile the queue is emptied: with
    /// nobody to send to, its chunks are stale. `Err`: accepting failed.
    fn wait_for_caller(&self, listener: &SrtListener, rx: &Receiver<TsChunk>) -> Result<Option<(SrtSocket, SocketAddr)>, String> {
        self.drop_queued(rx);
        match listener.accept(ACCEPT_POLL) {
            Ok((sock, peer)) => Ok(self.admit(&sock, peer).then_some((sock, peer))),
            Err(SrtError::Timeout) => Ok(None),
            Err(e) => Err(format!("accepting on the listening socket failed: {}", describe(&e))),
        }
    }

    /// Counts whatever is queued as stale and drops it.
    fn drop_queued(&self, rx: &Receiver<TsChunk>) {
        let stale = rx.try_iter().count() as u64;
        if stale > 0 {
            self.status.add_sent(0, stale);
        }
    }

    /// Whether an accepted caller may have the stream: with `stream_id`
    /// configured, only a caller that sent exactly that one. A refused
    /// caller is closed (when `sock` drops) and logged with the reason.
    fn admit(&self, sock: &SrtSocket, peer: SocketAddr) -> bool {
        let Some(want) = &self.cfg.stream_id else { return true };
        let reason = match sock.stream_id() {
            Ok(got) if got == want.as_str() => return true,
            Ok(got) => {
                let shown: String = got.chars().take(SHOWN_STREAM_ID).collect();
                format!("caller {peer} refused: stream id {shown:?} is not the configured one")
            }
            Err(e) => format!("caller {peer} refused: cannot read its stream id: {}", describe(&e)),
        };
        warn!(output = %self.status.name, %reason, "SRT caller refused");
        self.status.failed(reason);
        false
    }

    /// Sends until the connection breaks ([`Ended::Lost`]), the output is
    /// stopped ([`Ended::Stopped`]) or `check`, asked at every statistics
    /// read, ends it (a flow that moved, a newer caller).
    fn stream(&self, sock: &SrtSocket, rx: &Receiver<TsChunk>, latency_ms: u32, mut check: impl FnMut() -> Option<Ended>) -> Ended {
        // Whatever queued up while disconnected is stale: the receiver wants
        // the live edge, not seconds-old video.
        self.drop_queued(rx);
        let mut last_check = Instant::now();
        let (mut sent, mut dropped) = (0u64, 0u64);
        loop {
            if self.stopping() {
                self.status.add_sent(sent, dropped);
                return Ended::Stopped;
            }
            // One wake-up per batch, not per chunk: block for the first
            // chunk, take everything else that queued (at most MAX_BATCH),
            // hand it all to libsrt, then sleep out the rest of
            // BATCH_INTERVAL so that chunks arriving meanwhile wait in the
            // queue instead of waking this thread one by one.
            let woke = Instant::now();
            let mut batch = Vec::new();
            let mut ended = false;
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(chunk) => {
                    batch.push(chunk);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(chunk) => batch.push(chunk),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                ended = true;
                                break;
                            }
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => ended = true,
            }
            let full = batch.len() >= MAX_BATCH;
            let took = !batch.is_empty();
            for chunk in batch {
                if self.live_edge.is_stale(&chunk) {
                    dropped += 1;
                    continue;
                }
                match sock.send(&chunk.data) {
                    Ok(_) => sent += 1,
                    Err(SrtError::Timeout) => dropped += 1,
                    Err(e) => {
                        self.status.add_sent(sent, dropped);
                        return Ended::Lost(describe(&e));
                    }
                }
            }
            if ended {
                self.status.add_sent(sent, dropped);
                return Ended::Stopped;
            }
            // A full batch means more is queued: no sleep. An idle wake-up
            // goes straight back to blocking on the queue.
            if took && !full {
                let rest = BATCH_INTERVAL.saturating_sub(woke.elapsed());
                if !rest.is_zero() {
                    std::thread::sleep(rest);
                }
            }
            if last_check.elapsed() >= STATS_EVERY {
                last_check = Instant::now();
                self.status.add_sent(sent, dropped);
                (sent, dropped) = (0, 0);
                if !sock.state().is_connected() {
                    return Ended::Lost(format!("connection {:?}", sock.state()).to_lowercase());
                }
                if let Some(end) = check() {
                    return end;
                }
                if let Ok(s) = sock.stats(false) {
                    self.status.set_srt(SrtSnapshot {
                        rtt_ms: s.ms_rtt,
                        send_rate_mbps: s.mbps_send_rate,
                        bandwidth_mbps: s.mbps_bandwidth,
                        packets_sent: s.pkt_sent_total,
                        packets_retransmitted: i64::from(s.pkt_retrans_total),
                        packets_lost: i64::from(s.pkt_snd_loss_total),
                        packets_dropped: i64::from(s.pkt_snd_drop_total),
                        send_buffer_ms: i64::from(s.ms_snd_buf),
                        negotiated_latency_ms: latency_ms,
                    });
                }
            }
        }
    }
}

/// An operator-facing description of an SRT error (never contains secrets:
/// libsrt error texts do not include option values).
fn describe(e: &SrtError) -> String {
    e.to_string()
}
