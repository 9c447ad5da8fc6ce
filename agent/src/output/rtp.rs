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
//! multiplex rate, never letting a packet lag more than [`MAX_LAG`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_fec::{BurstMeter, FecEncoder, FecKind, FecMatrix, FecMode, Pacer};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};

use super::backoff::Backoff;
use super::status::{OutputState, OutputStatus};
use crate::dest::Dest;
use crate::config::RtpOutputConfig;
use crate::fanout::{LiveEdge, TsChunk};
use crate::shutdown::Shutdown;

/// Pace at this much above the nominal rate, so pacing smooths bursts but
/// never falls behind a stream that runs a little hot.
const PACE_HEADROOM_PERCENT: u64 = 30;
/// A packet is never held back longer than this by pacing.
const MAX_LAG: Duration = Duration::from_millis(40);
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Pacing granularity: packets due within this are sent without sleeping.
const PACING_TICK: Duration = Duration::from_millis(1);

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
                    self.status.connected();
                    info!(output = %name, %dest, fec = ?self.settings.fec.map(|(m, mode)| (m.l(), m.d(), mode)), "RTP sending");
                    // Returns when stopped or when the flow moved.
                    if !self.send_loop(&sock, &rx, dest) {
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
    fn send_loop(&self, sock: &UdpSocket, rx: &Receiver<TsChunk>, dest: SocketAddr) -> bool {
        let mut moved = false;
        let column_dest = SocketAddr::new(dest.ip(), dest.port().wrapping_add(2));
        let row_dest = SocketAddr::new(dest.ip(), dest.port().wrapping_add(4));
        let mut fec = self.settings.fec.map(|(m, mode)| FecEncoder::new(m, mode));
        let mut pace_bps = self.settings.pace_bps();
        let pacer = Pacer::new(pace_bps).ok().map(|p| p.with_max_lag(MAX_LAG));
        let mut meter = BurstMeter::new();
        let epoch = Instant::now();
        let mut c = Counters::default();
        let mut last_stats = Instant::now();
        let mut paced = Paced { sock, epoch, pacer, meter: &mut meter };
        while !self.stopping() {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(chunk) if self.settings.live_edge.is_stale(&chunk) => c.stale += 1,
                Ok(chunk) => {
                    paced.send(&chunk.data, dest, &mut c);
                    c.media += 1;
                    if let Some(enc) = fec.as_mut() {
                        // A refused packet only loses its FEC protection.
                        if let Ok(out) = enc.push(&chunk.data) {
                            for pkt in out {
                                let (to, n) = match pkt.kind() {
                                    FecKind::Column => (column_dest, &mut c.column),
                                    FecKind::Row => (row_dest, &mut c.row),
                                };
                                *n += 1;
                                paced.send(pkt.as_bytes(), to, &mut c);
                            }
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                if let Dest::Flow(link) = &self.settings.dest {
                    if let Some(now) = link.current().filter(|a| *a != dest) {
                        info!(output = %self.status.name, from = %dest, to = %now, "flow destination moved");
                        moved = true;
                        break;
                    }
                }
                let burst = paced.meter.report();
                let now_bps = self.settings.pace_bps();
                if now_bps != pace_bps {
                    pace_bps = now_bps;
                    if let Some(p) = paced.pacer.as_mut() {
                        let _ = p.set_rate(pace_bps);
                    }
                }
                self.status.add_sent(c.media, c.stale);
                (c.media, c.stale) = (0, 0);
                self.status.update_rtp(|r| {
                    r.fec_column_sent += c.column;
                    r.fec_row_sent += c.row;
                    r.send_errors += c.send_errors;
                    r.max_burst_packets_1ms = burst.max_packets_in_burst_window as u64;
                    r.max_rate_10ms_mbps = burst.max_rate_bps as f64 / 1e6;
                    r.pace_mbps = pace_bps as f64 / 1e6;
                });
                (c.column, c.row, c.send_errors) = (0, 0, 0);
            }
        }
        // End of stream: the column FEC of the last complete matrix is still
        // queued (it leaves spread over the next matrix); without it that
        // matrix cannot repair two losses in one row.
        if let Some(enc) = fec.as_mut() {
            for pkt in enc.flush() {
                c.column += 1;
                paced.send(pkt.as_bytes(), column_dest, &mut c);
            }
        }
        self.status.update_rtp(|r| {
            r.fec_column_sent += c.column;
            r.fec_row_sent += c.row;
            r.send_errors += c.send_errors;
        });
        self.status.add_sent(c.media, c.stale);
        moved
    }
}

/// The socket with its pacer and burst meter.
struct Paced<'a> {
    sock: &'a UdpSocket,
    epoch: Instant,
    pacer: Option<Pacer>,
    meter: &'a mut BurstMeter,
}

impl Paced<'_> {
    /// Waits for the packet's slot in the pacing schedule, then sends.
    fn send(&mut self, bytes: &[u8], to: SocketAddr, c: &mut Counters) {
        let now = self.epoch.elapsed();
        if let Some(p) = self.pacer.as_mut() {
            let at = p.schedule(now, bytes.len());
            // Sleep only when the slot is more than a tick away: packets due
            // within the next millisecond go now. Sleeping per packet cost a
            // thread wake-up per packet (3× ffmpeg's CPU in edge-bench fec)
            // for no gain: a 1 ms burst at 10–50 Mbit/s is 1–5 packets.
            if at > now + PACING_TICK {
                std::thread::sleep(at - now - PACING_TICK / 2);
            }
        }
        self.meter.record(self.epoch.elapsed(), bytes.len());
        if self.sock.send_to(bytes, to).is_err() {
            c.send_errors += 1;
        }
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
    fn pace_rate_includes_headroom_and_fec_overhead() {
        assert_eq!(settings(None).pace_bps(), 13_000_000);
        assert_eq!(settings(Some((10, 10, FecMode::ColumnOnly))).pace_bps(), 14_300_000);
        assert_eq!(settings(Some((10, 10, FecMode::ColumnAndRow))).pace_bps(), 15_600_000);
    }
}
