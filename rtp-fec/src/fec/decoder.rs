//! SMPTE 2022-1 FEC decoder: media and FEC packets in, recovered media out.
//!
//! # How it works
//!
//! Sequence numbers are unwrapped to 64 bits relative to the highest media
//! packet seen, so matrices straddling 65535 → 0 need no special case.
//! Media packets are kept in a ring of `window` slots indexed by that
//! extended number (`window.rs`, with RFC 3550 A.1 restart detection);
//! a FEC packet names its protected set itself (SNBase,
//! Offset, NA), so L and D are learned, never configured. A FEC packet with
//! exactly one protected packet missing recovers it (RFC 2733 §8); every
//! recovered packet re-examines the FEC packets that cover it, so row and
//! column recoveries feed each other until nothing changes.
//!
//! A missing packet is recovered only once a later media packet has
//! arrived: FEC arriving a little ahead of its media (separate sockets)
//! would otherwise "recover" packets that are merely in flight.
//!
//! Memory is bounded whatever the input: `window` slots of at most
//! `max_packet_len` bytes, at most `max_pending_fec` stored FEC packets and
//! bounded output queues. Sequence numbers that leave the window without
//! having been received or recovered are reported by [`FecDecoder::take_lost`].

use std::collections::VecDeque;

use super::header::{FecHeaderError, FecPacketView, FEC_OVERHEAD};
use super::matrix::FecKind;
use super::parity::Parity;
use super::window::{low16, MediaWindow, Placement};
use crate::rtp::{RtpError, RtpHeader, RTP_HEADER_LEN};

/// At most this many lost sequence numbers wait for [`FecDecoder::take_lost`].
const MAX_LOST_QUEUE: usize = 8192;

/// Errors from the decoder: the packet was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The media packet is not valid RTP.
    #[error("media packet: {0}")]
    Media(#[from] RtpError),
    /// The FEC packet is malformed or uses an unsupported FEC scheme.
    #[error("FEC packet: {0}")]
    Fec(#[from] FecHeaderError),
    /// Larger than the configured `max_packet_len` (plus 16 for FEC).
    #[error("packet of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Bytes offered.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// No media packet has arrived yet to place the FEC sequence numbers.
    #[error("FEC packet before any media packet")]
    NoMedia,
    /// XOR-ing the other protected packets out does not leave a valid
    /// packet (lengths disagree): the FEC does not belong to this media.
    #[error("FEC packet with SNBase {sn_base} does not match the media it protects")]
    Inconsistent {
        /// SNBase of the FEC packet.
        sn_base: u16,
    },
    /// The protected packets lie (partly) outside the decoder's window.
    #[error("FEC packet with SNBase {sn_base} and span {span} lies outside the window")]
    OutsideWindow {
        /// SNBase of the FEC packet.
        sn_base: u16,
        /// Offset × (NA − 1).
        span: u32,
    },
}

/// Limits of a [`FecDecoder`]; all have safe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Media packets kept for recovery (clamped to 256..=32768). Must exceed
    /// two matrices plus reordering between the media and FEC ports: column
    /// FEC leaves up to 2·L·D packets after its first media packet.
    pub window: u16,
    /// Largest media packet accepted (clamped to 28..=65547).
    pub max_packet_len: usize,
    /// FEC packets waiting for media at most (clamped to 1..=4096); the one
    /// protecting the oldest packets is dropped first.
    pub max_pending_fec: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig { window: 1024, max_packet_len: 1500, max_pending_fec: 256 }
    }
}

/// Decoder counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecoderStats {
    /// Valid media packets pushed, duplicates included.
    pub media_received: u64,
    /// Media packets already held (received twice, or received after being recovered).
    pub media_duplicates: u64,
    /// Media packets too far from the stream to place (see [`MediaOutcome::OutOfWindow`]).
    pub media_out_of_window: u64,
    /// Packets rebuilt from FEC.
    pub recovered: u64,
    /// Recovered packets dropped because nobody called `poll_recovered`.
    pub recovered_dropped: u64,
    /// FEC packets pushed.
    pub fec_received: u64,
    /// FEC packets rejected: malformed, outside the window, or inconsistent
    /// with the media they protect.
    pub fec_unusable: u64,
    /// FEC packets whose D bit disagreed with the caller's port hint.
    pub fec_kind_mismatch: u64,
    /// Sequence numbers that left the window neither received nor recovered.
    pub lost: u64,
    /// Stream restarts (sequence jumps confirmed by two packets).
    pub resyncs: u64,
}

/// What happened to a media packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaOutcome {
    /// New packet, stored; forward it.
    Accepted,
    /// Already received or recovered; drop it.
    Duplicate,
    /// Older than the window or a jump beyond RFC 3550's `MAX_DROPOUT`; a
    /// second consecutive packet from the new position restarts the stream.
    OutOfWindow,
}

/// What happened to a FEC packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FecOutcome {
    /// Recovered this many packets (itself and through cascades).
    Recovered(usize),
    /// Stored until enough of its media arrives or is recovered.
    Stored,
    /// All its media are present: not needed.
    Redundant,
    /// The same FEC packet is already stored.
    Duplicate,
}

/// L and D as announced by the FEC packets seen last.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LearnedMatrix {
    /// Row length: column FEC Offset or row FEC NA.
    pub l: Option<u8>,
    /// Column depth: column FEC NA.
    pub d: Option<u8>,
}

/// A media packet rebuilt from FEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredPacket {
    /// Its sequence number.
    pub seq: u16,
    /// The full RTP packet, SSRC restored from the media stream.
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
struct PendingFec {
    first: u64,
    offset: u64,
    count: u64,
    parity: Parity,
    /// Its only missing packet is newer than the newest media: wait for more.
    waits_for_newer: bool,
    /// Something it covers changed since it was last examined.
    dirty: bool,
}

impl PendingFec {
    fn last(&self) -> u64 {
        self.first + self.offset * (self.count - 1)
    }

    fn covers(&self, ext: u64) -> bool {
        ext >= self.first && ext <= self.last() && (ext - self.first).is_multiple_of(self.offset)
    }

    fn members(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).map(move |k| self.first + k * self.offset)
    }
}

enum Verdict {
    Complete,
    Recover(u64),
    WaitNewer,
    Wait,
}

/// Sans-IO SMPTE 2022-1 decoder. See the module docs.
#[derive(Debug)]
pub struct FecDecoder {
    config: DecoderConfig,
    window: MediaWindow,
    pending: Vec<PendingFec>,
    /// RFC 3550 A.1 `bad_seq`: a far packet's successor, which confirms a restart.
    probation: Option<u16>,
    media_ssrc: u32,
    recovered: VecDeque<RecoveredPacket>,
    lost: Vec<u16>,
    learned: LearnedMatrix,
    stats: DecoderStats,
}

impl Default for FecDecoder {
    fn default() -> Self {
        FecDecoder::new()
    }
}

impl FecDecoder {
    /// A decoder with [`DecoderConfig::default`].
    pub fn new() -> Self {
        FecDecoder::with_config(DecoderConfig::default())
    }

    /// A decoder with the given limits (clamped to their documented ranges).
    pub fn with_config(config: DecoderConfig) -> Self {
        let config = DecoderConfig {
            window: config.window.clamp(256, 32768),
            max_packet_len: config.max_packet_len.clamp(28, usize::from(u16::MAX) + RTP_HEADER_LEN),
            max_pending_fec: config.max_pending_fec.clamp(1, 4096),
        };
        FecDecoder {
            window: MediaWindow::new(config.window),
            pending: Vec::new(),
            probation: None,
            media_ssrc: 0,
            recovered: VecDeque::new(),
            lost: Vec::new(),
            learned: LearnedMatrix::default(),
            stats: DecoderStats::default(),
            config,
        }
    }

    /// The effective (clamped) configuration.
    pub fn config(&self) -> DecoderConfig {
        self.config
    }

    /// Counters.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// L and D announced by the FEC stream.
    pub fn learned_matrix(&self) -> LearnedMatrix {
        self.learned
    }

    /// FEC packets stored waiting for media (for tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Next recovered packet, in recovery order (not sequence order).
    pub fn poll_recovered(&mut self) -> Option<RecoveredPacket> {
        self.recovered.pop_front()
    }

    /// Sequence numbers that left the window neither received nor recovered
    /// since the last call, oldest first.
    pub fn take_lost(&mut self) -> Vec<u16> {
        std::mem::take(&mut self.lost)
    }

    /// Takes one media RTP packet (from the media port).
    pub fn push_media(&mut self, packet: &[u8]) -> Result<MediaOutcome, DecodeError> {
        let header = RtpHeader::parse(packet)?;
        if packet.len() > self.config.max_packet_len {
            return Err(DecodeError::TooLong { len: packet.len(), max: self.config.max_packet_len });
        }
        self.stats.media_received += 1;
        let seq = header.sequence;
        self.media_ssrc = header.ssrc;

        let ext = match self.window.place(seq) {
            None => self.window.restart(seq),
            Some(Placement::Ahead(ext)) => {
                let (stats, lost) = (&mut self.stats, &mut self.lost);
                self.window.advance(ext, |missing| report_lost(stats, lost, missing));
                // FEC whose first packet left the window can never be used.
                let low = self.window.low();
                self.pending.retain(|fec| fec.first >= low);
                for fec in &mut self.pending {
                    fec.dirty |= fec.waits_for_newer;
                }
                ext
            }
            Some(Placement::Inside(ext)) => {
                if self.window.contains(ext) {
                    self.stats.media_duplicates += 1;
                    return Ok(MediaOutcome::Duplicate);
                }
                ext
            }
            Some(Placement::Far) if self.probation == Some(seq) => {
                // Two consecutive packets far from the old stream: it restarted.
                self.stats.resyncs += 1;
                self.report_window_lost();
                self.pending.clear();
                self.window.restart(seq)
            }
            Some(Placement::Far) => {
                self.probation = Some(seq.wrapping_add(1));
                self.stats.media_out_of_window += 1;
                return Ok(MediaOutcome::OutOfWindow);
            }
        };
        self.probation = None;
        self.window.store(ext, packet);
        self.mark_covering(ext);
        self.run_recovery();
        Ok(MediaOutcome::Accepted)
    }

    /// Takes one FEC packet (from port +2 or +4). `kind_hint` is the stream
    /// the port implies; the packet's own D bit decides, a disagreement is
    /// only counted in [`DecoderStats::fec_kind_mismatch`].
    pub fn push_fec(&mut self, packet: &[u8], kind_hint: Option<FecKind>) -> Result<FecOutcome, DecodeError> {
        self.stats.fec_received += 1;
        let result = self.accept_fec(packet, kind_hint);
        if result.is_err() {
            self.stats.fec_unusable += 1;
        }
        result
    }

    /// End of stream: reports every missing packet up to the newest one as
    /// lost and forgets the stream (FEC still waiting is dropped). Packets
    /// after the newest received one cannot be known and are not reported.
    pub fn finish(&mut self) {
        self.report_window_lost();
        self.pending.clear();
        self.probation = None;
        self.window.clear();
    }

    fn accept_fec(&mut self, packet: &[u8], kind_hint: Option<FecKind>) -> Result<FecOutcome, DecodeError> {
        let view = FecPacketView::parse(packet)?;
        let max_payload = self.config.max_packet_len - RTP_HEADER_LEN;
        if view.payload.len() > max_payload {
            return Err(DecodeError::TooLong { len: packet.len(), max: max_payload + FEC_OVERHEAD });
        }
        let header = view.header;
        if kind_hint.is_some_and(|hint| hint != header.kind) {
            self.stats.fec_kind_mismatch += 1;
        }
        let (Some(highest), Some(first)) = (self.window.highest(), self.window.extend(header.sn_base)) else {
            return Err(DecodeError::NoMedia);
        };
        let (offset, count) = (u64::from(header.offset), u64::from(header.na));
        let span = offset * (count - 1);
        // Members must be inside the window, or at most half a window ahead
        // (FEC overtaking its media); anything else is not this stream's.
        let ahead = u64::from(self.config.window) / 2;
        if first < self.window.low() || first + span > highest + ahead {
            let span = u32::try_from(span).unwrap_or(u32::MAX); // span <= 255 * 254
            return Err(DecodeError::OutsideWindow { sn_base: header.sn_base, span });
        }
        match header.kind {
            FecKind::Column => {
                self.learned.l = Some(header.offset);
                self.learned.d = Some(header.na);
            }
            FecKind::Row => self.learned.l = Some(header.na),
        }
        if self.pending.iter().any(|p| p.first == first && p.offset == offset && p.count == count) {
            return Ok(FecOutcome::Duplicate);
        }
        let parity = Parity {
            count: header.na,
            sn_base: header.sn_base,
            pxcc: view.pxcc_recovery,
            marker: view.marker_recovery,
            pt: header.pt_recovery,
            ts: header.ts_recovery,
            length: header.length_recovery,
            payload: view.payload.to_vec(),
        };
        let mut fec = PendingFec { first, offset, count, parity, waits_for_newer: false, dirty: false };
        match self.verdict(&fec) {
            Verdict::Complete => Ok(FecOutcome::Redundant),
            Verdict::Recover(ext) => {
                let recovered_before = self.stats.recovered;
                if !self.recover(fec, ext) {
                    return Err(DecodeError::Inconsistent { sn_base: header.sn_base });
                }
                self.mark_covering(ext);
                self.run_recovery();
                let recovered = self.stats.recovered - recovered_before;
                Ok(FecOutcome::Recovered(usize::try_from(recovered).unwrap_or(usize::MAX)))
            }
            verdict @ (Verdict::WaitNewer | Verdict::Wait) => {
                fec.waits_for_newer = matches!(verdict, Verdict::WaitNewer);
                if self.pending.len() >= self.config.max_pending_fec {
                    let oldest = (0..self.pending.len()).min_by_key(|&i| self.pending[i].first);
                    if let Some(oldest) = oldest {
                        self.pending.swap_remove(oldest);
                    }
                }
                self.pending.push(fec);
                Ok(FecOutcome::Stored)
            }
        }
    }

    fn report_window_lost(&mut self) {
        for missing in self.window.missing() {
            report_lost(&mut self.stats, &mut self.lost, missing);
        }
    }

    fn mark_covering(&mut self, ext: u64) {
        for fec in &mut self.pending {
            fec.dirty |= fec.covers(ext);
        }
    }

    fn verdict(&self, fec: &PendingFec) -> Verdict {
        let mut missing = fec.members().filter(|&ext| !self.window.contains(ext));
        match (missing.next(), missing.next()) {
            (None, _) => Verdict::Complete,
            (Some(ext), None) if self.window.highest().is_some_and(|h| ext < h) => Verdict::Recover(ext),
            (Some(_), None) => Verdict::WaitNewer,
            (Some(_), Some(_)) => Verdict::Wait,
        }
    }

    /// Examines dirty FEC packets until no recovery happens any more.
    fn run_recovery(&mut self) {
        let mut index = 0;
        while index < self.pending.len() {
            if !self.pending[index].dirty {
                index += 1;
                continue;
            }
            self.pending[index].dirty = false;
            match self.verdict(&self.pending[index]) {
                Verdict::Complete => {
                    self.pending.swap_remove(index);
                }
                Verdict::Recover(ext) => {
                    let fec = self.pending.swap_remove(index);
                    if self.recover(fec, ext) {
                        self.mark_covering(ext);
                        // Earlier entries may have become dirty: rescan.
                        index = 0;
                    } else {
                        self.stats.fec_unusable += 1;
                    }
                }
                Verdict::WaitNewer => {
                    self.pending[index].waits_for_newer = true;
                    index += 1;
                }
                Verdict::Wait => {
                    self.pending[index].waits_for_newer = false;
                    index += 1;
                }
            }
        }
    }

    /// Rebuilds packet `missing` from `fec` and the other protected packets.
    /// Returns false if the FEC packet does not fit the media it protects.
    fn recover(&mut self, fec: PendingFec, missing: u64) -> bool {
        let members: Vec<u64> = fec.members().filter(|&ext| ext != missing).collect();
        let mut parity = fec.parity;
        let fec_payload_len = parity.payload.len();
        for ext in members {
            let Some(data) = self.window.get(ext) else {
                return false;
            };
            if data.len().saturating_sub(RTP_HEADER_LEN) > fec_payload_len {
                return false; // the parity must be as long as the longest member
            }
            parity.absorb(data);
        }
        let len = usize::from(parity.length);
        if len > fec_payload_len || RTP_HEADER_LEN + len > self.config.max_packet_len {
            return false;
        }
        let seq = low16(missing);
        let mut bytes = Vec::with_capacity(RTP_HEADER_LEN + len);
        bytes.push(0x80 | (parity.pxcc & 0x3f));
        bytes.push(u8::from(parity.marker) << 7 | (parity.pt & 0x7f));
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(&parity.ts.to_be_bytes());
        // The FEC stream has SSRC 0; the media's is learned from received media.
        bytes.extend_from_slice(&self.media_ssrc.to_be_bytes());
        bytes.extend_from_slice(parity.payload.get(..len).unwrap_or(&[]));
        if RtpHeader::parse(&bytes).is_err() {
            return false;
        }
        self.window.store(missing, &bytes);
        self.stats.recovered += 1;
        if self.recovered.len() >= usize::from(self.config.window) {
            self.recovered.pop_front();
            self.stats.recovered_dropped += 1;
        }
        self.recovered.push_back(RecoveredPacket { seq, bytes });
        true
    }
}

/// Counts a lost packet and queues its number for `take_lost` (bounded).
fn report_lost(stats: &mut DecoderStats, lost: &mut Vec<u16>, ext: u64) {
    stats.lost += 1;
    if lost.len() < MAX_LOST_QUEUE {
        lost.push(low16(ext));
    }
}
