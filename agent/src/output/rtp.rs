//! RTP and RTP-FEC (SMPTE 2022-1) outputs over UDP.
//!
//! The packets arrive ready-made from the fan-out (packetised once for every
//! RTP output). This thread paces them, adds column/row FEC for `rtp-fec`
//! (media to port P, column FEC to P+2, row FEC to P+4 — SMPTE 2022-1 §8,
//! `docs/mediaconnect.md#flow-sources`) and sends.
//!
//! Pacing: the muxer emits a frame's worth of packets at once; sent as a
//! burst they overflow shallow switch buffers and MediaConnect's smoothing.
//! [`rtp_fec::Pacer`] spreads them at a rate a little above the nominal
//! multiplex rate, never letting a packet lag more than [`MAX_LAG`]. Where
//! the egress interface has the fq qdisc, the kernel does the spacing
//! (SO_MAX_PACING_RATE) and the thread hands over a batch every few ms;
//! elsewhere the thread sleeps between 1 ms batches (`docs/fec.md`,
//! *Batched, kernel-paced sending*). Either way a wake-up's packets leave
//! in one sendmmsg (`udp_batch`).

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtp_fec::{BurstMeter, FecEncoder, FecKind, FecMatrix, FecMode, Pacer};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};

use super::status::{OutputState, OutputStatus};
use super::udp_batch::{self, BatchSocket, PacingMode};
use crate::backoff::Backoff;
use crate::config::{PacingConfig, RtpOutputConfig};
use crate::dest::Dest;
use crate::fanout::{LiveEdge, TsChunk};
use crate::shutdown::Shutdown;

/// Pace at this much above the nominal rate, so pacing smooths bursts but
/// never falls behind a stream that runs a little hot.
const PACE_HEADROOM_PERCENT: u64 = 30;
/// A packet is never held back longer than this by pacing.
const MAX_LAG: Duration = Duration::from_millis(40);
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Userspace pacing granularity: the thread wakes at most once per tick and
/// sends what is due within half a tick, so the largest 1 ms burst stays
/// what it was with one send per packet (1–5 packets at 10–50 Mbit/s).
const PACING_TICK: Duration = Duration::from_millis(1);
/// Kernel (fq) pacing: packets are handed over up to this long before
/// their modelled departure (≈ 10 datagrams at 13 Mbit/s of pacing rate).
/// fq drops past its per-flow packet limit (tc-fq(8) `flow_limit`), so a
/// long I-frame burst waits here, not in a qdisc that would drop its tail;
/// at high rates, or with a small limit, the horizon shrinks to a third of
/// the limit. The rest of the limit is for fq falling behind the model: a
/// late timer costs fq up to half a packet interval each time (sch_fq.c),
/// and in a loaded QEMU guest, whose timers run late, a bound of 33 or 64
/// datagrams (instead of this horizon) let fq's backlog pass 100 and drop
/// 26-231 packets in every such run (docs/fec.md). The model queues all
/// three ports as one flow at the pacing rate; fq keeps an unconnected
/// socket's destinations apart (a flow per 5-tuple hash, each paced at the
/// socket's rate), so each of its flows holds at most what the model counts.
const KERNEL_HORIZON: Duration = Duration::from_millis(10);
/// Kernel (fq) pacing: a late wake-up of the output thread beyond this is
/// taken as fq's timer having been as late ([`FqBacklog::stalled`]); fq
/// itself absorbs up to half a packet interval per firing.
const STALL_NOTICED: Duration = Duration::from_millis(1);
/// Kernel (fq) pacing: the model of fq's queue assumes fq sends at this
/// share of the pacing rate, not all of it: fq paces under its rate when
/// its timer runs late, and a model that assumed the full rate let fq's
/// real backlog grow until it dropped, in a loaded guest even with the
/// stall accounting. The pacing rate has 30 % headroom over the stream, so
/// 85 % of it is still about 10 % above the stream with its FEC.
const FQ_MODEL_SHARE_PERCENT: u64 = 85;
/// fq's per-flow limit where `tc` does not say.
const FQ_DEFAULT_FLOW_LIMIT: u32 = 100;
/// The largest datagram an RTP output sends (12-byte RTP header, 16-byte
/// FEC header, 7 TS packets) plus what fq counts besides it.
const FQ_FULL_FRAME: u64 = 12 + 16 + 1316 + FQ_FRAME_OVERHEAD;
/// Kernel (fq) pacing: least time between wake-ups, and so the most that
/// batching adds to a packet's latency (fq does the spacing, so a longer
/// batch costs no burstiness). Shorter where the horizon is shorter than
/// two of these (above ≈ 90 Mbit/s with fq's default flow limit).
const KERNEL_BATCH_INTERVAL: Duration = Duration::from_millis(4);
/// Most chunks taken from the queue per wake-up (bounds a batch).
const MAX_DRAIN: usize = 256;
/// Bytes fq counts per datagram besides the payload: IPv4 (20), UDP (8)
/// and Ethernet (14) headers. fq spaces by the whole frame (tc-fq(8)), so
/// the model of its queue uses the same length.
const FQ_FRAME_OVERHEAD: u64 = 42;

/// What this thread has handed to fq and not yet left, modelled from the
/// pacing rate fq enforces (sans-IO, times since the lane's epoch).
///
/// The pacer's schedule alone is not enough: after a stall of this thread
/// (a loaded CPU) every queued packet is overdue, and handing them all over
/// at once would queue them behind fq's pacing, past its per-flow limit of
/// 100 packets, where fq drops them silently (an unconnected UDP socket
/// without IP_RECVERR does not see ENOBUFS). So a packet is handed over
/// only while fq's backlog stays within [`FqBacklog::horizon`]; the rest
/// waits here and catches up at the pacing rate, which has headroom above
/// the stream's.
#[derive(Debug, Clone, Copy)]
struct FqBacklog {
    /// When fq will have sent everything handed over so far.
    drained_at: Duration,
    bps: u64,
    /// The most full-size datagrams handed over and not yet sent.
    packets: u64,
    /// See [`FqBacklog::horizon`]; follows the rate.
    horizon: Duration,
}

impl FqBacklog {
    /// `pace_bps`: the socket's pacing rate; `flow_limit`: fq's per-flow
    /// packet limit on the egress.
    fn new(pace_bps: u64, flow_limit: u32) -> Self {
        let packets = u64::from(flow_limit / 3).max(2);
        let mut fq = FqBacklog { drained_at: Duration::ZERO, bps: 1, packets, horizon: KERNEL_HORIZON };
        fq.set_rate(pace_bps);
        fq
    }

    /// The model drains at [`FQ_MODEL_SHARE_PERCENT`] of the pacing rate.
    fn set_rate(&mut self, pace_bps: u64) {
        self.bps = (pace_bps.saturating_mul(FQ_MODEL_SHARE_PERCENT) / 100).max(1);
        let bits = self.packets * FQ_FULL_FRAME * 8;
        self.horizon = Duration::from_nanos(bits.saturating_mul(1_000_000_000) / self.bps).min(KERNEL_HORIZON);
    }

    /// How far ahead of fq's schedule packets are handed over:
    /// [`KERNEL_HORIZON`], or less where that would be more than the
    /// bound's worth of full-size datagrams at this rate.
    fn horizon(&self) -> Duration {
        self.horizon
    }

    /// Hands over a `len`-byte datagram at `now` if fq's backlog then stays
    /// within [`FqBacklog::horizon`]; false leaves the model unchanged.
    fn admit(&mut self, now: Duration, len: usize) -> bool {
        let start = self.drained_at.max(now);
        if start > now + self.horizon() {
            return false;
        }
        let bits = (len as u64 + FQ_FRAME_OVERHEAD) * 8;
        self.drained_at = start + Duration::from_nanos(bits.saturating_mul(1_000_000_000) / self.bps);
        true
    }

    /// This thread's sleep, due to end at `at`, ended `late` later. A
    /// machine that held this thread off the CPU will have held fq's timer
    /// off as long, and fq does not make up for a late timer (it recovers
    /// at most half a packet interval of each late firing, sch_fq.c): with
    /// a backlog, what it had to send is that much later. Without this, a
    /// guest starved of CPU let fq's real backlog outgrow the model until
    /// fq dropped (docs/fec.md).
    fn stalled(&mut self, at: Duration, late: Duration) {
        if late > STALL_NOTICED && self.drained_at > at {
            self.drained_at += late;
        }
    }

    /// When the backlog is back within the horizon, so more can be handed
    /// over.
    fn room_at(&self) -> Duration {
        self.drained_at.saturating_sub(self.horizon())
    }
}

/// Everything an RTP output needs besides its queue.
#[derive(Debug, Clone)]
pub struct RtpSettings {
    pub cfg: RtpOutputConfig,
    /// Where to send: fixed, or resolved from a flow.
    pub dest: Dest,
    /// FEC geometry and mode, for `rtp-fec`.
    pub fec: Option<(FecMatrix, FecMode)>,
    /// Nominal multiplex rate in bit/s (pacing derives from it); shared with
    /// the fan-out so a live bitrate change re-paces without a restart.
    pub nominal_bps: Arc<AtomicU64>,
    /// The stream's live edge; packets too far behind it are dropped.
    pub live_edge: Arc<LiveEdge>,
}

impl RtpSettings {
    /// The pacing rate: nominal + headroom, + FEC overhead (1/D columns,
    /// 1/L rows).
    pub fn pace_bps(&self) -> u64 {
        let base = self.nominal_bps.load(Ordering::Relaxed).max(100_000) * (100 + PACE_HEADROOM_PERCENT) / 100;
        match self.fec {
            None => base,
            Some((m, mode)) => {
                let rows = if mode == FecMode::ColumnAndRow { base / u64::from(m.l()) } else { 0 };
                base + base / u64::from(m.d()) + rows
            }
        }
    }
}

#[derive(Debug)]
pub struct RtpOutput {
    settings: RtpSettings,
    status: Arc<OutputStatus>,
    stop: Shutdown,
    agent_shutdown: Shutdown,
}

/// Counters kept by the sending loop.
#[derive(Debug, Default)]
struct Counters {
    media: u64,
    column: u64,
    row: u64,
    send_errors: u64,
    stale: u64,
    /// Send system calls and the datagrams they carried (cumulative).
    calls: u64,
    datagrams: u64,
}

impl RtpOutput {
    pub fn new(settings: RtpSettings, status: Arc<OutputStatus>, stop: Shutdown, agent_shutdown: Shutdown) -> Self {
        RtpOutput { settings, status, stop, agent_shutdown }
    }

    fn stopping(&self) -> bool {
        self.stop.is_triggered() || self.agent_shutdown.is_triggered()
    }

    /// Opens the socket (retrying with backoff: the bind address may belong
    /// to an uplink that is not up yet) and sends until stopped.
    pub fn run(self, rx: Receiver<TsChunk>) {
        let name = self.status.name.clone();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        while !self.stopping() {
            self.status.set_state(OutputState::Connecting);
            let dest = match &self.settings.dest {
                Dest::Fixed(a) => *a,
                // A name resolves at every (re)open: DNS down is this
                // output's error, retried with the same backoff.
                Dest::Name(host) => match host.resolve() {
                    Ok(a) => a,
                    Err(reason) => {
                        self.status.failed(reason);
                        self.status.set_state(OutputState::Backoff);
                        if self.stop.wait_timeout(backoff.next_delay()) {
                            break;
                        }
                        continue;
                    }
                },
                Dest::Flow(link) => match link.current().map(Ok).unwrap_or_else(|| link.resolve().map(|r| r.destination.address)) {
                    Ok(a) => a,
                    Err(reason) => {
                        self.status.failed(reason);
                        self.status.set_state(OutputState::Backoff);
                        if self.stop.wait_timeout(link.retry_delay(backoff.next_delay())) {
                            break;
                        }
                        continue;
                    }
                },
            };
            match open_socket(&self.settings.cfg, dest) {
                Ok(sock) => {
                    // fq on the egress interface paces for us; anything else
                    // (loopback's noqueue, pfifo_fast) needs the userspace pacer.
                    let egress = udp_batch::egress_pacing(dest.ip(), self.settings.cfg.bind.as_ref().map(|b| b.addr().ip()));
                    let mut sock = BatchSocket::new(sock);
                    let wanted = match self.settings.cfg.pacing {
                        PacingConfig::Auto => egress.pacing,
                        PacingConfig::Userspace => PacingMode::Userspace,
                        PacingConfig::Kernel => {
                            if egress.pacing != PacingMode::KernelFq {
                                warn!(output = %name, dev = ?egress.dev, qdisc = ?egress.qdisc,
                                      "pacing = \"kernel\" but the egress qdisc found is not fq: unless fq is further along, packets leave unpaced");
                            }
                            PacingMode::KernelFq
                        }
                    };
                    let pacing = match wanted {
                        PacingMode::KernelFq if sock.set_max_pacing_rate(self.settings.pace_bps()).is_ok() => PacingMode::KernelFq,
                        _ => PacingMode::Userspace,
                    };
                    self.status.connected();
                    info!(output = %name, %dest, fec = ?self.settings.fec.map(|(m, mode)| (m.l(), m.d(), mode)),
                          %pacing, dev = ?egress.dev, qdisc = ?egress.qdisc, "RTP sending");
                    // Returns when stopped or when the flow moved.
                    let flow_limit = egress.fq_flow_limit.unwrap_or(FQ_DEFAULT_FLOW_LIMIT);
                    if !self.send_loop(&mut sock, pacing, flow_limit, &rx, dest) {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    warn!(output = %name, %dest, error = %e, "cannot open RTP socket");
                    self.status.failed(format!("cannot open socket: {e}"));
                }
            }
            self.status.set_state(OutputState::Backoff);
            if self.stop.wait_timeout(backoff.next_delay()) {
                break;
            }
        }
        self.status.set_state(OutputState::Stopped);
    }

    /// Sends until stopped (`false`) or until the flow's destination moved
    /// (`true`: reopen towards the new one).
    ///
    /// One wake-up sends a batch: the thread blocks on the queue only while
    /// nothing is pending; after a batch it sleeps (at least one
    /// [`PACING_TICK`] with the userspace pacer, [`KERNEL_BATCH_INTERVAL`]
    /// with fq) and then takes everything that queued meanwhile, so a chunk
    /// no longer costs a wake-up of its own. What the wake-up sends goes to
    /// the kernel in one sendmmsg (or GSO sends, see [`udp_batch`]).
    /// `flow_limit`: fq's per-flow packet limit, when fq paces.
    fn send_loop(
        &self,
        sock: &mut BatchSocket,
        pacing: PacingMode,
        flow_limit: u32,
        rx: &Receiver<TsChunk>,
        dest: SocketAddr,
    ) -> bool {
        let mut moved = false;
        let mut lane = Lane {
            dest,
            column_dest: SocketAddr::new(dest.ip(), dest.port().wrapping_add(2)),
            row_dest: SocketAddr::new(dest.ip(), dest.port().wrapping_add(4)),
            fec: self.settings.fec.map(|(m, mode)| FecEncoder::new(m, mode)),
            pacer: Pacer::new(self.settings.pace_bps()).ok().map(|p| p.with_max_lag(MAX_LAG)),
            pacing,
            fq: FqBacklog::new(self.settings.pace_bps(), flow_limit),
            epoch: Instant::now(),
            meter: BurstMeter::new(),
            pending: VecDeque::new(),
            c: Counters::default(),
        };
        let mut pace_bps = self.settings.pace_bps();
        if pacing == PacingMode::KernelFq {
            let _ = sock.set_max_pacing_rate(pace_bps);
        }
        self.status.update_rtp(|r| r.pacing = pacing.as_str().to_owned());
        let mut last_stats = Instant::now();
        let mut disconnected = false;
        while !self.stopping() && !disconnected {
            let mut took = 0usize;
            if lane.pending.is_empty() {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(chunk) => {
                        took += 1;
                        lane.take(chunk, &self.settings.live_edge);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => disconnected = true,
                }
            }
            // Everything else that queued since the last wake-up.
            while took < MAX_DRAIN {
                match rx.try_recv() {
                    Ok(chunk) => {
                        took += 1;
                        lane.take(chunk, &self.settings.live_edge);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            let woke = lane.epoch.elapsed();
            lane.send_due(sock, woke);
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                if let Dest::Flow(link) = &self.settings.dest {
                    if let Some(now) = link.current().filter(|a| *a != dest) {
                        info!(output = %self.status.name, from = %dest, to = %now, "flow destination moved");
                        moved = true;
                        break;
                    }
                }
                let now_bps = self.settings.pace_bps();
                if now_bps != pace_bps {
                    pace_bps = now_bps;
                    if let Some(p) = lane.pacer.as_mut() {
                        let _ = p.set_rate(pace_bps);
                    }
                    if pacing == PacingMode::KernelFq {
                        let _ = sock.set_max_pacing_rate(pace_bps);
                        lane.fq.set_rate(pace_bps);
                    }
                }
                lane.report(&self.status, pace_bps);
            }
            // Sleep until the next pending packet is within reach, but no
            // sooner than one interval after this wake-up: chunks arriving
            // meanwhile wait in the queue and leave with the next batch. An
            // idle wake-up (nothing taken, nothing pending) goes straight
            // back to blocking on the queue.
            let next = match lane.pending.front() {
                Some(q) => lane.reach(q.due).max(woke + lane.interval()),
                None if took > 0 => woke + lane.interval(),
                None => continue,
            };
            let now = lane.epoch.elapsed();
            if next > now {
                std::thread::sleep(next - now);
                // Measured here, not at the next wake-up: that may come
                // after blocking on the queue, which has no deadline.
                let late = lane.epoch.elapsed().saturating_sub(next);
                lane.fq.stalled(next, late);
            }
        }
        // End of stream: the column FEC of the last complete matrix is still
        // queued (it leaves spread over the next matrix); without it that
        // matrix cannot repair two losses in one row. Pacing still applies;
        // the pacer's MAX_LAG bounds how long this takes.
        lane.flush_fec();
        while let Some(due) = lane.pending.front().map(|q| q.due) {
            let now = lane.epoch.elapsed();
            let reach = lane.reach(due);
            if reach > now {
                std::thread::sleep(reach - now);
            }
            lane.send_due(sock, lane.epoch.elapsed());
        }
        lane.report(&self.status, pace_bps);
        moved
    }
}

/// A packet waiting for its departure time.
#[derive(Debug)]
struct Queued {
    /// When the pacer schedules it (running time since the lane's epoch).
    due: Duration,
    to: SocketAddr,
    data: Bytes,
}

/// The sending state of one open socket: FEC, pacer, what is pending.
struct Lane {
    dest: SocketAddr,
    column_dest: SocketAddr,
    row_dest: SocketAddr,
    fec: Option<FecEncoder>,
    pacer: Option<Pacer>,
    pacing: PacingMode,
    /// Only with [`PacingMode::KernelFq`].
    fq: FqBacklog,
    epoch: Instant,
    meter: BurstMeter,
    pending: VecDeque<Queued>,
    c: Counters,
}

impl Lane {
    /// How far ahead of its departure time a packet is handed over.
    fn ahead(&self) -> Duration {
        match self.pacing {
            PacingMode::KernelFq => self.fq.horizon(),
            PacingMode::Userspace => PACING_TICK / 2,
        }
    }

    /// When a packet due at `due` can be handed over: within
    /// [`Lane::ahead`] of it, and with fq once its backlog has room.
    fn reach(&self, due: Duration) -> Duration {
        let by_schedule = due.saturating_sub(self.ahead());
        match self.pacing {
            PacingMode::KernelFq => by_schedule.max(self.fq.room_at()),
            PacingMode::Userspace => by_schedule,
        }
    }

    /// Least time between two wake-ups.
    fn interval(&self) -> Duration {
        match self.pacing {
            // Half the horizon at most, so the backlog never runs dry
            // between two wake-ups while packets wait here.
            PacingMode::KernelFq => KERNEL_BATCH_INTERVAL.min(self.fq.horizon() / 2),
            PacingMode::Userspace => PACING_TICK,
        }
    }

    fn schedule(&mut self, to: SocketAddr, data: Bytes) {
        let now = self.epoch.elapsed();
        let due = self.pacer.as_mut().map_or(now, |p| p.schedule(now, data.len()));
        self.pending.push_back(Queued { due, to, data });
    }

    /// Queues a media packet and the FEC packets it completes.
    fn take(&mut self, chunk: TsChunk, live_edge: &LiveEdge) {
        if live_edge.is_stale(&chunk) {
            self.c.stale += 1;
            return;
        }
        let fec_out = self.fec.as_mut().and_then(|enc| enc.push(&chunk.data).ok());
        self.schedule(self.dest, chunk.data);
        // A refused packet only loses its FEC protection.
        for pkt in fec_out.into_iter().flatten() {
            let to = match pkt.kind() {
                FecKind::Column => self.column_dest,
                FecKind::Row => self.row_dest,
            };
            self.schedule(to, Bytes::from(pkt.into_bytes()));
        }
    }

    fn flush_fec(&mut self) {
        let out: Vec<_> = self.fec.as_mut().map(|enc| enc.flush().into_iter().collect()).unwrap_or_default();
        for pkt in out {
            self.schedule(self.column_dest, Bytes::from(pkt.into_bytes()));
        }
    }

    /// Sends, in one batch, every pending packet due within [`Lane::ahead`]
    /// of `now` (with fq: as many of them as its backlog bound admits).
    fn send_due(&mut self, sock: &mut BatchSocket, now: Duration) {
        let limit = now + self.ahead();
        let at = self.epoch.elapsed();
        let userspace = self.pacing == PacingMode::Userspace;
        let fq = &mut self.fq;
        let n = self.pending.iter().take_while(|q| q.due <= limit && (userspace || fq.admit(at, q.data.len()))).count();
        if n == 0 {
            return;
        }
        let pkts: Vec<(&[u8], SocketAddr)> = self.pending.iter().take(n).map(|q| (&q.data[..], q.to)).collect();
        // GSO only for the userspace pacer: fq would pace a GSO super-packet
        // as one unit and release it as a burst (pairs under fq measured no
        // cheaper in the image's kernel: docs/fec.md#kernel-pacing-in-a-vm).
        let out = sock.send(&pkts, userspace);
        self.c.send_errors += out.errors;
        self.c.calls += out.calls;
        self.c.datagrams += out.sent + out.errors;
        for q in self.pending.drain(..n) {
            // Counted as they go to the kernel.
            match q.to {
                to if to == self.dest => self.c.media += 1,
                to if to == self.column_dest => self.c.column += 1,
                _ => self.c.row += 1,
            }
            // Userspace: the hand-off is the departure. fq: the packet
            // leaves at its pacing slot, which the pacer models at the same
            // rate (fq's per-flow quantum may pair packets; the netns test
            // measures the real schedule).
            let t = match self.pacing {
                PacingMode::Userspace => at,
                PacingMode::KernelFq => q.due.max(at),
            };
            self.meter.record(t, q.data.len());
        }
    }

    /// Moves the counters into the output's status.
    fn report(&mut self, status: &OutputStatus, pace_bps: u64) {
        let c = &mut self.c;
        let burst = self.meter.report();
        status.add_sent(c.media, c.stale);
        status.update_rtp(|r| {
            r.fec_column_sent += c.column;
            r.fec_row_sent += c.row;
            r.send_errors += c.send_errors;
            r.max_burst_packets_1ms = burst.max_packets_in_burst_window as u64;
            r.max_rate_10ms_mbps = burst.max_rate_bps as f64 / 1e6;
            r.pace_mbps = pace_bps as f64 / 1e6;
            if c.calls > 0 {
                r.send_batch_mean = c.datagrams as f64 / c.calls as f64;
            }
        });
        (c.media, c.stale, c.column, c.row, c.send_errors) = (0, 0, 0, 0, 0);
    }
}

/// A UDP socket bound to the configured local address (or any), with the
/// DSCP set in the IP header.
fn open_socket(cfg: &RtpOutputConfig, dest: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if dest.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // A 2 MB send buffer absorbs a frame's burst if pacing ever falls behind.
    let _ = sock.set_send_buffer_size(2 << 20);
    if let Some(dscp) = cfg.dscp {
        let tos = u32::from(dscp.get()) << 2;
        if dest.is_ipv4() {
            sock.set_tos_v4(tos)?;
        } else {
            sock.set_tclass_v6(tos)?;
        }
    }
    let local = match &cfg.bind {
        Some(b) => b.addr(),
        None if dest.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
        None => SocketAddr::from(([0u16; 8], 0)),
    };
    sock.bind(&local.into())?;
    Ok(sock.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(fec: Option<(u8, u8, FecMode)>) -> RtpSettings {
        let cfg: RtpOutputConfig = toml::from_str("name = \"r\"\naddress = \"127.0.0.1:5000\"\n").unwrap();
        RtpSettings {
            cfg,
            dest: Dest::Fixed("127.0.0.1:5000".parse().unwrap()),
            fec: fec.map(|(l, d, m)| (FecMatrix::new(l, d).unwrap(), m)),
            nominal_bps: Arc::new(AtomicU64::new(10_000_000)),
            live_edge: Arc::default(),
        }
    }

    #[test]
    fn fq_backlog_after_a_stall_stays_within_a_third_of_the_flow_limit() {
        let ms = Duration::from_millis;
        // 65 Mbit/s (50 Mbit/s + headroom), modelled at 85 %: a 1358-byte
        // datagram (1316 B + RTP header + what fq counts) takes ~0.2 ms.
        let mut fq = FqBacklog::new(65_000_000, 100);
        assert!((ms(6)..ms(7)).contains(&fq.horizon()), "{:?}", fq.horizon());
        // The thread wakes 150 ms late with ~900 packets overdue: only the
        // bound's worth is handed over, a third of fq's flow_limit.
        let now = ms(150);
        let admitted = (0..900).take_while(|_| fq.admit(now, 1316)).count();
        assert!((33..=36).contains(&admitted), "{admitted}");
        // Nothing more until fq has worked the backlog down...
        assert!(!fq.admit(now, 1316));
        let room = fq.room_at();
        assert!(room > now && room <= now + ms(1), "{room:?}");
        // ...and then one more per ~0.2 ms: the catch-up runs at the
        // modelled rate.
        let later = now + ms(5);
        let more = (0..900).take_while(|_| fq.admit(later, 1316)).count();
        assert!((24..=27).contains(&more), "{more}");
        // An idle gap empties the model: a frame's burst is admitted whole
        // up to the bound again.
        let idle = later + ms(500);
        assert_eq!(fq.room_at().max(idle), idle);
        assert!(fq.admit(idle, 1316));
    }

    #[test]
    fn a_late_wake_up_with_a_backlog_counts_as_fq_time_lost() {
        let ms = Duration::from_millis;
        let mut fq = FqBacklog::new(15_600_000, 100);
        let handed = (0..100).take_while(|_| fq.admit(ms(0), 1316)).count();
        let drained = fq.drained_at;
        // Woken 30 ms late while fq had a backlog: fq's timer is taken to
        // have been as late, so nothing more is handed over until then.
        fq.stalled(ms(4), ms(30));
        assert_eq!(fq.drained_at, drained + ms(30));
        assert!(fq.room_at() > ms(30), "{:?}", fq.room_at());
        // Jitter under the threshold, or lateness with fq idle, changes nothing.
        let mut idle = FqBacklog::new(15_600_000, 100);
        idle.stalled(ms(4), ms(30));
        assert_eq!(idle.drained_at, Duration::ZERO);
        let mut jitter = FqBacklog::new(15_600_000, 100);
        assert_eq!((0..100).take_while(|_| jitter.admit(ms(0), 1316)).count(), handed);
        jitter.stalled(ms(4), Duration::from_micros(500));
        assert_eq!(jitter.drained_at, drained);
    }

    #[test]
    fn fq_horizon_is_ten_ms_or_a_third_of_the_flow_limit() {
        let ms = Duration::from_millis;
        // 10 Mbit/s + headroom + FEC 10×10, fq's default limit: 10 ms,
        // 13 datagrams of ~0.8 ms at the modelled 85 %.
        let mut fq = FqBacklog::new(15_600_000, 100);
        assert_eq!(fq.horizon(), KERNEL_HORIZON);
        assert_eq!((0..100).take_while(|_| fq.admit(ms(0), 1316)).count(), 13);
        // A small limit shrinks it: 4 full-size datagrams, ≈ 3.3 ms.
        let small = FqBacklog::new(15_600_000, 12);
        assert!((ms(3)..ms(4)).contains(&small.horizon()), "{:?}", small.horizon());
        // Whatever the rate and the limit, the horizon holds at most a third
        // (at the modelled rate: fq, sending at least that fast, holds less).
        for limit in [10, 100, 1000] {
            for bps in [1_000_000, 15_600_000, 65_000_000, 300_000_000, 1_000_000_000] {
                let fq = FqBacklog::new(bps, limit);
                let packets = fq.horizon().as_nanos() * u128::from(fq.bps) / 1_000_000_000 / u128::from(FQ_FULL_FRAME * 8);
                assert!(packets <= u128::from(limit / 3), "{bps} bit/s, limit {limit}: {packets}");
            }
        }
    }

    #[test]
    fn pace_rate_includes_headroom_and_fec_overhead() {
        assert_eq!(settings(None).pace_bps(), 13_000_000);
        assert_eq!(settings(Some((10, 10, FecMode::ColumnOnly))).pace_bps(), 14_300_000);
        assert_eq!(settings(Some((10, 10, FecMode::ColumnAndRow))).pace_bps(), 15_600_000);
    }
}
