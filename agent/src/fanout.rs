//! One transport-stream producer, N outputs, each behind its own bounded queue.
//!
//! The producer is the GStreamer streaming thread. It must never wait for a
//! network: a stalled, slow or disconnected output only overflows its own
//! queue, and what does not fit is dropped and counted for that output alone.
//! Chunks are reference-counted (`Bytes`), so N outputs cost N pointer copies,
//! not N buffer copies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtp_fec::RtpPacketizer;

/// Seven 188-byte TS packets: one SRT or RTP payload (`mpegtsmux alignment=7`).
pub const TS_CHUNK_BYTES: usize = 7 * 188;

/// One unit on an output queue: a 1316-byte piece of the multiplex for TS
/// outputs (SRT), or the RTP packet that carries it for RTP outputs.
#[derive(Debug, Clone)]
pub struct TsChunk {
    pub data: Bytes,
    /// When the muxer produced it; outputs drop chunks that fell too far
    /// behind the [`LiveEdge`].
    pub produced: Instant,
}

/// A chunk further than this behind the newest one is not worth sending to
/// a live receiver.
pub const MAX_BEHIND_LIVE: Duration = Duration::from_millis(1000);

/// When the newest chunk was produced: the live edge of the stream.
///
/// Outputs measure a chunk's staleness against it rather than against the
/// wall clock. An output whose sends block falls behind a producer that goes
/// on, and drops what it can no longer deliver in time; but after a host
/// stall, in which the producer stopped too, the queued chunks are as close
/// to the live edge as before and are sent, not dropped (dropping them broke
/// the TS on a healthy path for nothing).
#[derive(Debug)]
pub struct LiveEdge {
    epoch: Instant,
    newest_ns: AtomicU64,
}

impl Default for LiveEdge {
    fn default() -> Self {
        LiveEdge { epoch: Instant::now(), newest_ns: AtomicU64::new(0) }
    }
}

impl LiveEdge {
    fn mark(&self, produced: Instant) {
        self.newest_ns.fetch_max(self.ns(produced), Ordering::Relaxed);
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// How far a chunk produced at `produced` is behind the newest chunk.
    pub fn behind(&self, produced: Instant) -> Duration {
        Duration::from_nanos(self.newest_ns.load(Ordering::Relaxed).saturating_sub(self.ns(produced)))
    }

    /// More than [`MAX_BEHIND_LIVE`] behind the newest chunk.
    pub fn is_stale(&self, chunk: &TsChunk) -> bool {
        self.behind(chunk.produced) > MAX_BEHIND_LIVE
    }
}

/// Counters the producer side keeps per output.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// Chunks handed to the output's queue.
    pub enqueued: AtomicU64,
    /// Chunks dropped because the output's queue was full.
    pub dropped_full: AtomicU64,
}

/// The producer's end of one output queue.
#[derive(Debug, Clone)]
pub struct QueueSender {
    tx: SyncSender<TsChunk>,
    pub counters: Arc<QueueCounters>,
}

/// Creates an output queue holding at most `capacity` chunks.
pub fn queue(capacity: usize) -> (QueueSender, Receiver<TsChunk>, Arc<QueueCounters>) {
    let (tx, rx) = sync_channel(capacity);
    let counters = Arc::new(QueueCounters::default());
    (QueueSender { tx, counters: counters.clone() }, rx, counters)
}

/// What an output takes from the fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// 1316-byte TS chunks (SRT).
    Ts,
    /// RTP packets, made once for all RTP outputs.
    Rtp,
}

/// The set of output queues the producer writes to. Outputs can be added and
/// removed while the producer runs (a config change touches only its output).
///
/// RTP packets are made here, once, not per output: every RTP output sends
/// the same sequence numbers, timestamps and bytes, which is what SMPTE
/// 2022-7 seamless protection (MediaConnect MERGE) needs from two paths.
#[derive(Debug)]
pub struct FanOut {
    outputs: RwLock<Vec<(String, Payload, QueueSender)>>,
    rtp: Mutex<RtpPacketizer>,
    epoch: Instant,
    live_edge: Arc<LiveEdge>,
    /// Expected multiplex rate (bit/s); RTP outputs pace from it and follow
    /// live changes (a bitrate change needs no output restart).
    nominal_bps: Arc<AtomicU64>,
    /// TS chunks the RTP packetiser refused (never expected: the muxer
    /// emits whole 188-byte packets).
    pub rtp_errors: std::sync::atomic::AtomicU64,
}

impl Default for FanOut {
    fn default() -> Self {
        Self::new(1)
    }
}

impl FanOut {
    /// `ssrc` is the RTP SSRC shared by all RTP outputs.
    pub fn new(ssrc: u32) -> Self {
        FanOut {
            outputs: RwLock::new(Vec::new()),
            // A random first sequence number (RFC 3550 §5.1).
            rtp: Mutex::new(RtpPacketizer::new(ssrc, fastrand::u16(..))),
            epoch: Instant::now(),
            live_edge: Arc::new(LiveEdge::default()),
            nominal_bps: Arc::new(AtomicU64::new(0)),
            rtp_errors: AtomicU64::new(0),
        }
    }

    pub fn set_nominal_bps(&self, bps: u64) {
        self.nominal_bps.store(bps, Ordering::Relaxed);
    }

    /// The shared nominal rate, for outputs that pace.
    pub fn nominal_bps(&self) -> Arc<AtomicU64> {
        self.nominal_bps.clone()
    }

    /// The stream's live edge, for outputs to judge staleness by.
    pub fn live_edge(&self) -> Arc<LiveEdge> {
        self.live_edge.clone()
    }

    /// Changes the RTP SSRC; sequence numbers continue.
    pub fn set_ssrc(&self, ssrc: u32) {
        let mut rtp = self.rtp.lock().unwrap_or_else(|p| p.into_inner());
        let next = rtp.next_seq();
        *rtp = RtpPacketizer::new(ssrc, next);
    }

    pub fn add(&self, name: &str, payload: Payload, sender: QueueSender) {
        let mut outs = self.outputs.write().unwrap_or_else(|p| p.into_inner());
        outs.retain(|(n, _, _)| n != name);
        outs.push((name.to_owned(), payload, sender));
    }

    pub fn remove(&self, name: &str) {
        self.outputs.write().unwrap_or_else(|p| p.into_inner()).retain(|(n, _, _)| n != name);
    }

    /// Offers the chunk to every output without ever blocking.
    pub fn publish(&self, chunk: &TsChunk) {
        self.live_edge.mark(chunk.produced);
        let outs = self.outputs.read().unwrap_or_else(|p| p.into_inner());
        let mut rtp: Option<TsChunk> = None;
        for (_, payload, out) in outs.iter() {
            let item = match payload {
                Payload::Ts => chunk.clone(),
                Payload::Rtp => match &rtp {
                    Some(r) => r.clone(),
                    None => match self.packetize(chunk) {
                        Some(r) => rtp.insert(r).clone(),
                        None => continue,
                    },
                },
            };
            offer(out, item);
        }
    }

    fn packetize(&self, chunk: &TsChunk) -> Option<TsChunk> {
        // RFC 2250 §2: a 90 kHz timestamp of when the chunk left the muxer.
        let ts = rtp_fec::timestamp_90k(chunk.produced.saturating_duration_since(self.epoch));
        let packet = self.rtp.lock().unwrap_or_else(|p| p.into_inner()).packetize(&chunk.data, ts);
        match packet {
            Ok(p) => Some(TsChunk { data: Bytes::from(p.into_bytes()), produced: chunk.produced }),
            Err(_) => {
                self.rtp_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

fn offer(out: &QueueSender, item: TsChunk) {
    match out.tx.try_send(item) {
        Ok(()) => out.counters.enqueued.fetch_add(1, Ordering::Relaxed),
        Err(TrySendError::Full(_)) => out.counters.dropped_full.fetch_add(1, Ordering::Relaxed),
        // The output has stopped; removing it is the owner's job.
        Err(TrySendError::Disconnected(_)) => 0,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> TsChunk {
        TsChunk { data: Bytes::from_static(&[0x47; TS_CHUNK_BYTES]), produced: Instant::now() }
    }

    #[test]
    fn staleness_is_measured_against_the_newest_chunk_not_the_clock() {
        let fan = FanOut::new(1);
        let edge = fan.live_edge();
        let t0 = Instant::now();
        let old = TsChunk { data: Bytes::from_static(&[0x47; TS_CHUNK_BYTES]), produced: t0 };
        fan.publish(&old);
        // However long the wall clock ran (a host stall), nothing newer was
        // produced: the chunk is still the live edge.
        assert!(!edge.is_stale(&old));
        fan.publish(&TsChunk { produced: t0 + MAX_BEHIND_LIVE, ..old.clone() });
        assert!(!edge.is_stale(&old), "exactly the limit behind is still sent");
        fan.publish(&TsChunk { produced: t0 + MAX_BEHIND_LIVE + Duration::from_millis(1), ..old.clone() });
        assert!(edge.is_stale(&old));
        // An older chunk published late does not move the edge back.
        fan.publish(&old);
        assert!(edge.is_stale(&old));
    }

    #[test]
    fn a_full_queue_drops_only_its_own_chunks() {
        let fan = FanOut::new(1);
        let (stalled, _stalled_rx, stalled_c) = queue(2);
        let (live, live_rx, live_c) = queue(100);
        fan.add("stalled", Payload::Ts, stalled);
        fan.add("live", Payload::Ts, live);
        for _ in 0..10 {
            fan.publish(&chunk());
        }
        assert_eq!(stalled_c.enqueued.load(Ordering::Relaxed), 2);
        assert_eq!(stalled_c.dropped_full.load(Ordering::Relaxed), 8);
        assert_eq!(live_c.dropped_full.load(Ordering::Relaxed), 0);
        assert_eq!(live_rx.try_iter().count(), 10);
    }

    #[test]
    fn a_dead_output_does_not_disturb_others() {
        let fan = FanOut::new(1);
        let (dead, dead_rx, _) = queue(2);
        drop(dead_rx);
        let (live, live_rx, _) = queue(10);
        fan.add("dead", Payload::Ts, dead);
        fan.add("live", Payload::Ts, live);
        fan.publish(&chunk());
        assert_eq!(live_rx.try_iter().count(), 1);
        fan.remove("dead");
    }

    #[test]
    fn rtp_outputs_get_the_very_same_packets() {
        let fan = FanOut::new(0xABCD);
        let (a, a_rx, _) = queue(10);
        let (b, b_rx, _) = queue(10);
        let (t, t_rx, _) = queue(10);
        fan.add("a", Payload::Rtp, a);
        fan.add("ts", Payload::Ts, t);
        fan.add("b", Payload::Rtp, b);
        for _ in 0..3 {
            fan.publish(&chunk());
        }
        let a: Vec<_> = a_rx.try_iter().map(|c| c.data).collect();
        let b: Vec<_> = b_rx.try_iter().map(|c| c.data).collect();
        assert_eq!(a.len(), 3);
        assert_eq!(a, b);
        assert_eq!(a[0].len(), 12 + TS_CHUNK_BYTES);
        let seqs: Vec<u16> = a.iter().map(|p| u16::from_be_bytes([p[2], p[3]])).collect();
        assert_eq!(seqs[1], seqs[0].wrapping_add(1));
        assert!(t_rx.try_iter().all(|c| c.data.len() == TS_CHUNK_BYTES));
    }
}
