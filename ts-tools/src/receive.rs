//! The core of `edge-agent receive`, the field technician's receive tool:
//! what a MediaConnect `rtp`/`rtp-fec` source would see — loss, FEC recovery
//! and MPEG-TS continuity.
//!
//! # Design
//!
//! [`RtpReceiver`] is sans-IO: RTP media and SMPTE 2022-1 FEC packets in
//! (with the current time as a parameter), the ordered, FEC-repaired TS
//! payloads out (to an optional sink), counters ([`ReceiveStats`]) always.
//! It wraps [`rtp_fec::FecDecoder`] and a reorder buffer keyed by extended
//! (unwrapped) sequence number. The sockets, the once-a-second report and
//! the command line are the agent binary's (`edge-agent receive`).
//!
//! # Reorder buffer
//!
//! Received and recovered packets wait in the buffer and leave it in
//! sequence order. A gap (a sequence number neither received nor recovered)
//! holds back everything after it until one of:
//! - the decoder reports the number lost ([`rtp_fec::FecDecoder::take_lost`]),
//! - the packet after the gap is older than the hold time (default 500 ms)
//!   **and**, with FEC, at least `2·L·D + 2·L` newer packets have arrived
//!   (the largest matrix until the FEC stream has announced L and D) —
//!   column FEC for a matrix arrives during the next matrix
//!   (`rtp_fec::fec::encoder`, *Schedule*), so at low bit rates two
//!   matrices can take longer than the hold time,
//! - the buffer holds more than `max_buffered` packets,
//! - [`RtpReceiver::finish`] (end of the run).
//!
//! The skipped numbers count as `unrecovered`; a packet that shows up after
//! its turn is counted as `late` and dropped (the output is never reordered).
//!
//! # Limitations
//!
//! One media stream per port (the decoder follows one SSRC). A sequence
//! jump the FEC decoder takes for a sender restart (RFC 3550 A.1: beyond
//! `MAX_DROPOUT`, confirmed by the next packet) restarts the stream here
//! too (counted in `resyncs`); that gap is not counted as loss.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use rtp_fec::{DecoderConfig, FecDecoder, FecKind, MediaOutcome, RtpHeader};

use crate::ts::TsAnalyzer;

/// Extended numbers start here, so "before the first packet" never underflows.
const EXT_START: u64 = 1 << 32;
/// SMPTE 2022-1 limits: L, D ≤ 20 and L×D ≤ 100.
const MAX_DIMENSION: u64 = 20;
const MAX_MATRIX_PACKETS: u64 = 100;

/// Settings of the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// How long a gap may hold back later packets (see the module docs).
    pub hold: Duration,
    /// Packets buffered at most; beyond this the oldest gap is given up.
    pub max_buffered: usize,
    /// FEC is expected: before L and D are known, gaps wait as long as the
    /// largest matrix needs. Without FEC only the hold time counts.
    pub fec: bool,
    /// Limits of the FEC decoder.
    pub decoder: DecoderConfig,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig { hold: Duration::from_millis(500), max_buffered: 8192, fec: true, decoder: DecoderConfig::default() }
    }
}

/// Counters of a [`RtpReceiver`]; serialised as the `--json` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReceiveStats {
    /// Valid media RTP packets received, duplicates included.
    pub media_packets: u64,
    /// UDP payload bytes of those packets.
    pub media_bytes: u64,
    /// Datagrams on the media port that are not RTP.
    pub media_invalid: u64,
    /// Media packets received twice (or after their recovery).
    pub duplicates: u64,
    /// Media packets that arrived with a lower number than one already received.
    pub reordered: u64,
    /// Received or recovered after their turn in the output had passed
    /// (or media too far from the stream to place).
    pub late: u64,
    /// Sequence numbers that did not arrive as media (before FEC):
    /// `recovered + unrecovered` once everything has been released.
    pub missing: u64,
    /// Missing packets rebuilt from FEC and written in order.
    pub recovered: u64,
    /// Missing packets that FEC could not rebuild: holes in the output.
    pub unrecovered: u64,
    /// Column FEC packets received (port P+2).
    pub fec_column: u64,
    /// Row FEC packets received (port P+4).
    pub fec_row: u64,
    /// FEC packets the decoder could not use (malformed, not this stream's).
    pub fec_unusable: u64,
    /// FEC UDP payload bytes.
    pub fec_bytes: u64,
    /// Packets written to the output, in order.
    pub released: u64,
    /// Packets waiting in the reorder buffer now.
    pub buffered: u64,
    /// Stream restarts (large sequence jumps).
    pub resyncs: u64,
    /// TS packets analysed.
    pub ts_packets: u64,
    /// TS continuity-counter errors (ISO/IEC 13818-1 §2.4.3.3).
    pub cc_errors: u64,
    /// TS sync-byte errors.
    pub sync_errors: u64,
    /// L (columns) announced by the FEC stream, if any.
    pub fec_l: Option<u8>,
    /// D (rows) announced by the column FEC stream, if any.
    pub fec_d: Option<u8>,
    /// SSRC of the media stream.
    pub ssrc: Option<u32>,
}

#[derive(Debug)]
struct Held {
    bytes: Vec<u8>,
    /// When it arrived (or was recovered).
    at: Duration,
    recovered: bool,
}

/// Where the ordered TS payloads go.
pub type Sink = Box<dyn Write + Send>;

/// Sans-IO receive core. See the module docs.
pub struct RtpReceiver {
    config: ReceiverConfig,
    decoder: FecDecoder,
    buffer: BTreeMap<u64, Held>,
    /// Numbers the decoder gave up on, not yet passed by `next`.
    lost: BTreeSet<u64>,
    /// Extended number of the next packet to release; `None` before the first.
    next: Option<u64>,
    /// Extended number of the stream's first packet (since a restart).
    start: u64,
    /// Highest extended number received.
    highest: Option<u64>,
    ts: TsAnalyzer,
    stats: ReceiveStats,
    sink: Option<Sink>,
    sink_error: Option<std::io::Error>,
}

impl std::fmt::Debug for RtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpReceiver")
            .field("config", &self.config)
            .field("next", &self.next)
            .field("highest", &self.highest)
            .field("buffered", &self.buffer.len())
            .field("stats", &self.stats)
            .field("sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for RtpReceiver {
    fn default() -> Self {
        RtpReceiver::new(ReceiverConfig::default())
    }
}

impl RtpReceiver {
    pub fn new(config: ReceiverConfig) -> Self {
        RtpReceiver {
            decoder: FecDecoder::with_config(config.decoder),
            config,
            buffer: BTreeMap::new(),
            lost: BTreeSet::new(),
            next: None,
            start: 0,
            highest: None,
            ts: TsAnalyzer::new(),
            stats: ReceiveStats::default(),
            sink: None,
            sink_error: None,
        }
    }

    /// Writes the ordered, repaired TS payloads (RTP headers stripped) to `sink`.
    pub fn with_sink(mut self, sink: Sink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The first error writing to the sink (writing stops after it).
    pub fn sink_error(&self) -> Option<&std::io::Error> {
        self.sink_error.as_ref()
    }

    /// Counters now.
    pub fn stats(&self) -> ReceiveStats {
        let mut s = self.stats;
        s.buffered = self.buffer.len() as u64;
        s.ts_packets = self.ts.packets;
        s.cc_errors = self.ts.cc_errors();
        s.sync_errors = self.ts.sync_errors;
        let learned = self.decoder.learned_matrix();
        (s.fec_l, s.fec_d) = (learned.l, learned.d);
        s
    }

    /// The TS checker over the released payloads (per-PID counts).
    pub fn ts(&self) -> &TsAnalyzer {
        &self.ts
    }

    /// The FEC decoder's own counters.
    pub fn decoder_stats(&self) -> rtp_fec::DecoderStats {
        self.decoder.stats()
    }

    /// One datagram from the media port, received at `now` (any monotonic
    /// clock, e.g. time since start). Releases what is due.
    pub fn push_media(&mut self, packet: &[u8], now: Duration) {
        let Ok(header) = RtpHeader::parse(packet) else {
            self.stats.media_invalid += 1;
            return;
        };
        self.stats.media_packets += 1;
        self.stats.media_bytes += packet.len() as u64;
        self.stats.ssrc = Some(header.ssrc);
        // The decoder sees everything first: its restart detection (RFC 3550
        // A.1, confirmed by a second packet) is the one that counts. An
        // error (longer than its limit) only loses FEC protection.
        let resyncs = self.decoder.stats().resyncs;
        let outcome = self.decoder.push_media(packet);
        if self.decoder.stats().resyncs != resyncs {
            self.restart();
        }
        match outcome {
            Ok(MediaOutcome::Duplicate) => self.stats.duplicates += 1,
            // Far from the stream: a stray packet, or the first of a restart.
            Ok(MediaOutcome::OutOfWindow) => self.stats.late += 1,
            Ok(MediaOutcome::Accepted) | Err(_) => self.accept(header.sequence, packet, now),
        }
        self.drain_decoder(now);
        self.release(now, false);
    }

    /// One datagram from a FEC port (`kind` as implied by the port: +2
    /// column, +4 row), received at `now`.
    pub fn push_fec(&mut self, packet: &[u8], kind: FecKind, now: Duration) {
        match kind {
            FecKind::Column => self.stats.fec_column += 1,
            FecKind::Row => self.stats.fec_row += 1,
        }
        self.stats.fec_bytes += packet.len() as u64;
        if self.decoder.push_fec(packet, Some(kind)).is_err() {
            self.stats.fec_unusable += 1;
        }
        self.drain_decoder(now);
        self.release(now, false);
    }

    /// Releases what is due at `now` without new input (call it regularly:
    /// a gap at the end of a burst is given up only here).
    pub fn tick(&mut self, now: Duration) {
        self.release(now, false);
    }

    /// End of the run: gives up every gap and releases all buffered packets.
    /// Numbers after the newest packet are unknown and not counted.
    pub fn finish(&mut self, now: Duration) {
        self.release(now, true);
        if let Some(sink) = self.sink.as_mut() {
            if let Err(e) = sink.flush() {
                self.sink_error = Some(e);
                self.sink = None;
            }
        }
    }

    /// Buffers a new media packet, unless its turn has passed.
    fn accept(&mut self, seq: u16, packet: &[u8], now: Duration) {
        let (Some(highest), Some(next)) = (self.highest, self.next) else {
            let ext = EXT_START + u64::from(seq);
            (self.highest, self.next, self.start) = (Some(ext), Some(ext), ext);
            self.buffer.insert(ext, Held { bytes: packet.to_vec(), at: now, recovered: false });
            return;
        };
        let ext = unwrap_seq(seq, highest);
        if ext < next {
            // Not a duplicate (the decoder would have said so): its turn
            // passed while it was missing.
            self.stats.late += 1;
            return;
        }
        if ext < highest {
            self.stats.reordered += 1;
        }
        self.highest = Some(highest.max(ext));
        match self.buffer.entry(ext) {
            std::collections::btree_map::Entry::Occupied(_) => self.stats.duplicates += 1,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Held { bytes: packet.to_vec(), at: now, recovered: false });
            }
        }
    }

    /// The sender restarted its numbering: the old stream's packets leave in
    /// order, its gaps are not counted (the numbering changed, not
    /// necessarily the network), and the next packet starts afresh.
    fn restart(&mut self) {
        self.stats.resyncs += 1;
        while let Some((_, held)) = self.buffer.pop_first() {
            self.emit(&held);
        }
        self.lost.clear();
        // The decoder's reports about the old stream.
        let _ = self.decoder.take_lost();
        while self.decoder.poll_recovered().is_some() {}
        (self.highest, self.next) = (None, None);
    }

    /// Moves recovered packets into the buffer and notes lost numbers.
    fn drain_decoder(&mut self, now: Duration) {
        let (Some(highest), Some(next)) = (self.highest, self.next) else {
            return;
        };
        while let Some(rec) = self.decoder.poll_recovered() {
            let ext = unwrap_seq(rec.seq, highest);
            if ext < self.start {
                // Before the first packet received (joined mid-stream):
                // never part of the output, so neither late nor recovered.
            } else if ext < next {
                self.stats.late += 1;
            } else {
                self.buffer.entry(ext).or_insert(Held { bytes: rec.bytes, at: now, recovered: true });
            }
        }
        for seq in self.decoder.take_lost() {
            let ext = unwrap_seq(seq, highest);
            if ext >= next {
                self.lost.insert(ext);
            }
        }
    }

    /// Packets that must have arrived after a gap before it is given up:
    /// column FEC for a matrix arrives during the next one. Until the FEC
    /// stream has announced L and D, the largest matrix is assumed (a row
    /// FEC packet announces L; column FEC of the first matrix arrives only
    /// after L×D packets).
    fn fec_span(&self) -> u64 {
        let learned = self.decoder.learned_matrix();
        let span = |l: u64, d: u64| 2 * l * d + 2 * l;
        match (learned.l, learned.d) {
            (Some(l), Some(d)) => span(u64::from(l), u64::from(d)),
            (Some(l), None) => {
                let l = u64::from(l.max(1));
                span(l, (MAX_MATRIX_PACKETS / l).min(MAX_DIMENSION))
            }
            _ if self.config.fec => span(MAX_DIMENSION, MAX_MATRIX_PACKETS / MAX_DIMENSION),
            _ => 0,
        }
    }

    /// Releases buffered packets in order; gives up gaps as the module docs say.
    fn release(&mut self, now: Duration, all: bool) {
        let Some(mut next) = self.next else {
            return;
        };
        let span = self.fec_span();
        loop {
            if let Some(held) = self.buffer.remove(&next) {
                if held.recovered {
                    self.stats.missing += 1;
                    self.stats.recovered += 1;
                }
                self.emit(&held);
                next += 1;
                continue;
            }
            // A gap at `next`: give it up, or wait for FEC.
            let Some((&after, held)) = self.buffer.first_key_value() else {
                break;
            };
            if self.lost.contains(&next) {
                (self.stats.missing, self.stats.unrecovered) = (self.stats.missing + 1, self.stats.unrecovered + 1);
                next += 1;
                continue;
            }
            let newest = self.highest.unwrap_or(after);
            let waited = now.saturating_sub(held.at) >= self.config.hold && newest.saturating_sub(next) >= span;
            if !(all || waited || self.buffer.len() > self.config.max_buffered) {
                break;
            }
            let gap = after - next;
            self.stats.missing += gap;
            self.stats.unrecovered += gap;
            next = after;
        }
        self.lost = self.lost.split_off(&next);
        self.next = Some(next);
    }

    fn emit(&mut self, held: &Held) {
        self.stats.released += 1;
        let payload = match RtpHeader::parse(&held.bytes) {
            Ok(h) => h.payload(&held.bytes),
            Err(_) => return,
        };
        self.ts.push(payload);
        if let Some(sink) = self.sink.as_mut() {
            if let Err(e) = sink.write_all(payload) {
                self.sink_error = Some(e);
                self.sink = None;
            }
        }
    }
}

/// Unwraps `seq` to the extended number nearest `reference` (RFC 3550 A.1).
pub fn unwrap_seq(seq: u16, reference: u64) -> u64 {
    let low = u16::try_from(reference & 0xffff).unwrap_or_default();
    let delta = i64::from(i16::from_ne_bytes(seq.wrapping_sub(low).to_ne_bytes()));
    reference.saturating_add_signed(delta)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rtp_fec::{FecEncoder, FecMatrix, FecMode, RtpPacket, RtpPacketizer};

    use super::*;

    /// A sink the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Seven TS packets on PID 0x100 with running continuity counters and
    /// contents unique to `index`.
    fn ts_payload(index: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(7 * 188);
        for k in 0..7u64 {
            let n = index * 7 + k;
            let cc = u8::try_from(n % 16).unwrap();
            out.extend_from_slice(&[0x47, 0x01, 0x00, 0x10 | cc]);
            out.extend((0..184u64).map(|i| u8::try_from((n * 31 + i) % 251).unwrap()));
        }
        out
    }

    /// `count` media packets from `first_seq`, and the FEC of a 10×10
    /// column-and-row encoder (queued columns flushed at the end), each FEC
    /// packet listed after the media packet it leaves with.
    enum Item {
        Media(RtpPacket),
        Fec(Vec<u8>, FecKind),
    }

    fn stream(first_seq: u16, count: u64) -> Vec<Item> {
        let mut packetizer = RtpPacketizer::new(0x5eed, first_seq);
        let mut encoder = FecEncoder::new(FecMatrix::new(10, 10).unwrap(), FecMode::ColumnAndRow);
        let mut items = Vec::new();
        for i in 0..count {
            let media = packetizer.packetize(&ts_payload(i), u32::try_from(i * 3000).unwrap()).unwrap();
            let fec = encoder.push(media.as_bytes()).unwrap();
            items.push(Item::Media(media));
            items.extend(fec.into_iter().map(|f| Item::Fec(f.as_bytes().to_vec(), f.kind())));
        }
        items.extend(encoder.flush().into_iter().map(|f| Item::Fec(f.as_bytes().to_vec(), f.kind())));
        items
    }

    fn expected(range: std::ops::Range<u64>, skip: &[u64]) -> Vec<u8> {
        range.filter(|i| !skip.contains(i)).flat_map(ts_payload).collect()
    }

    #[test]
    fn recovers_every_dropped_packet_in_order_across_the_wrap() {
        let sink = Shared::default();
        let mut rx = RtpReceiver::default().with_sink(Box::new(sink.clone()));
        // Isolated losses (rows), two in one row and a burst of 4 (columns).
        let dropped = [5u64, 37, 120, 121, 250, 251, 252, 253, 444, 777, 901];
        let mut now = Duration::ZERO;
        let mut index = 0;
        for item in stream(65_000, 1000) {
            match item {
                Item::Media(m) => {
                    // 100 packets/s: slower than the hold time covers two
                    // matrices, so gaps must wait for the column FEC.
                    now += Duration::from_millis(10);
                    if !dropped.contains(&index) {
                        rx.push_media(m.as_bytes(), now);
                    }
                    index += 1;
                }
                Item::Fec(bytes, kind) => rx.push_fec(&bytes, kind, now),
            }
            rx.tick(now);
        }
        rx.finish(now + Duration::from_secs(1));
        let s = rx.stats();
        assert_eq!(s.media_packets, 1000 - dropped.len() as u64);
        assert_eq!((s.missing, s.recovered, s.unrecovered), (11, 11, 0), "{s:?}");
        assert_eq!((s.duplicates, s.late, s.reordered), (0, 0, 0), "{s:?}");
        assert_eq!((s.fec_column, s.fec_row, s.fec_unusable), (100, 100, 0), "{s:?}");
        assert_eq!((s.fec_l, s.fec_d), (Some(10), Some(10)));
        assert_eq!((s.released, s.buffered), (1000, 0));
        assert_eq!((s.ts_packets, s.cc_errors, s.sync_errors), (7000, 0, 0), "{s:?}");
        assert_eq!(s.ssrc, Some(0x5eed));
        assert!(*sink.0.lock().unwrap() == expected(0..1000, &[]), "output differs from the sent TS");
    }

    #[test]
    fn gaps_wait_for_column_fec_even_after_the_hold_time() {
        let mut rx = RtpReceiver::default();
        let dropped = [12u64, 13]; // one row: only the columns can repair them
        let mut now = Duration::ZERO;
        let mut index = 0;
        let mut released_at_hold = None;
        for item in stream(0, 300) {
            match item {
                Item::Media(m) => {
                    now += Duration::from_millis(10);
                    if !dropped.contains(&index) {
                        rx.push_media(m.as_bytes(), now);
                    }
                    index += 1;
                }
                Item::Fec(bytes, kind) => rx.push_fec(&bytes, kind, now),
            }
            rx.tick(now);
            if index == 70 {
                // 570 ms after the gap: past the hold time, columns not yet sent.
                released_at_hold.get_or_insert(rx.stats().released);
            }
        }
        assert_eq!(released_at_hold, Some(12), "released past a gap FEC could still repair");
        rx.finish(now);
        let s = rx.stats();
        assert_eq!((s.recovered, s.unrecovered, s.cc_errors), (2, 0, 0), "{s:?}");
    }

    #[test]
    fn joining_mid_stream_ignores_recoveries_before_the_first_packet() {
        let sink = Shared::default();
        let mut rx = RtpReceiver::default().with_sink(Box::new(sink.clone()));
        let mut index = 0;
        for item in stream(1000, 400) {
            match item {
                Item::Media(m) => {
                    // Packet 10 is rebuilt by its row's FEC, 0..10 by columns.
                    if index >= 11 {
                        rx.push_media(m.as_bytes(), Duration::ZERO);
                    }
                    index += 1;
                }
                Item::Fec(bytes, kind) if index > 11 => rx.push_fec(&bytes, kind, Duration::ZERO),
                Item::Fec(..) => {}
            }
        }
        rx.finish(Duration::ZERO);
        let s = rx.stats();
        assert_eq!((s.late, s.missing, s.recovered, s.unrecovered, s.cc_errors), (0, 0, 0, 0, 0), "{s:?}");
        assert_eq!(s.released, 389);
        assert!(*sink.0.lock().unwrap() == expected(11..400, &[]));
    }

    #[test]
    fn unrecoverable_gap_is_skipped_after_the_hold_time() {
        let sink = Shared::default();
        let plain = ReceiverConfig { fec: false, ..ReceiverConfig::default() };
        let mut rx = RtpReceiver::new(plain).with_sink(Box::new(sink.clone()));
        let mut packetizer = RtpPacketizer::new(7, 100);
        let packets: Vec<RtpPacket> = (0..20).map(|i| packetizer.packetize(&ts_payload(i), 0).unwrap()).collect();
        for (i, p) in packets.iter().enumerate() {
            if i != 5 {
                rx.push_media(p.as_bytes(), Duration::from_millis(10));
            }
        }
        assert_eq!(rx.stats().released, 5, "held behind the gap");
        rx.tick(Duration::from_millis(400));
        assert_eq!(rx.stats().released, 5, "still within the hold time");
        rx.tick(Duration::from_millis(600));
        let s = rx.stats();
        assert_eq!((s.released, s.missing, s.recovered, s.unrecovered), (19, 1, 0, 1), "{s:?}");
        assert_eq!(s.cc_errors, 1, "the hole breaks TS continuity");
        // The missing packet turns up after its turn: dropped, counted late.
        rx.push_media(packets[5].as_bytes(), Duration::from_millis(700));
        assert_eq!((rx.stats().late, rx.stats().released), (1, 19));
        assert!(*sink.0.lock().unwrap() == expected(0..20, &[5]));
    }

    #[test]
    fn reordering_and_duplicates_are_counted_and_undone() {
        let sink = Shared::default();
        let mut rx = RtpReceiver::default().with_sink(Box::new(sink.clone()));
        let mut packetizer = RtpPacketizer::new(7, 65_530);
        let packets: Vec<RtpPacket> = (0..12).map(|i| packetizer.packetize(&ts_payload(i), 0).unwrap()).collect();
        let order = [0usize, 2, 1, 3, 3, 5, 4, 6, 7, 7, 8, 11, 9, 10];
        for &i in &order {
            rx.push_media(packets[i].as_bytes(), Duration::ZERO);
        }
        rx.push_media(b"not rtp", Duration::ZERO);
        rx.finish(Duration::ZERO);
        let s = rx.stats();
        assert_eq!((s.media_packets, s.media_invalid), (14, 1));
        assert_eq!((s.duplicates, s.reordered, s.late), (2, 4, 0), "{s:?}");
        assert_eq!((s.released, s.missing, s.cc_errors), (12, 0, 0), "{s:?}");
        assert!(*sink.0.lock().unwrap() == expected(0..12, &[]));
    }

    #[test]
    fn a_sender_restart_starts_a_new_stream() {
        let mut rx = RtpReceiver::default();
        let mut old = RtpPacketizer::new(1, 100);
        for i in 0..50 {
            rx.push_media(old.packetize(&ts_payload(i), 0).unwrap().as_bytes(), Duration::ZERO);
        }
        let mut new = RtpPacketizer::new(1, 40_000);
        for i in 50..100 {
            rx.push_media(new.packetize(&ts_payload(i), 0).unwrap().as_bytes(), Duration::ZERO);
        }
        rx.finish(Duration::ZERO);
        let s = rx.stats();
        // The first packet after the jump is only confirmed by the second.
        assert_eq!((s.resyncs, s.released, s.late, s.unrecovered), (1, 99, 1, 0), "{s:?}");
    }

    #[test]
    fn unwraps_sequence_numbers_both_ways() {
        let r = EXT_START + 65_535;
        assert_eq!(unwrap_seq(2, r), r + 3);
        assert_eq!(unwrap_seq(65_530, r), r - 5);
        assert_eq!(unwrap_seq(65_535, r), r);
    }
}
