//! SMPTE 2022-1 FEC encoder: media RTP packets in, column/row FEC packets out.
//!
//! # Schedule
//!
//! Media fills the matrix row by row. A **row** FEC packet is emitted with
//! the media packet that completes its row. A **column** FEC packet is
//! complete only in the last row, so all L of them would otherwise leave in
//! one burst at the end of the matrix, exactly when a network burst would
//! also hit their media. Like GStreamer's `rtpst2022-1-fecenc` (its
//! `target_media_seq`) and ffmpeg's prompeg (`packet_idx % d == 0`), column
//! `c` of a matrix is emitted with media packet `D·c` of the following
//! matrix: one column packet every D media packets, delayed by
//! `L + (D-1)·c` packets (between L and L×D) after its last media packet.
//! Receivers must buffer about two matrices; the reference decoders do.
//!
//! # Compatibility
//!
//! Output is byte-identical to GStreamer 1.22 `rtpst2022-1-fecenc` fed the
//! same media (checked on captures for 5×4 and 20×4 across the 65535 wrap,
//! and pinned by a test): FEC sequence numbers from 0, the FEC RTP
//! timestamp is the one of the media packet it leaves with, rows leave with
//! the packet completing them. ffmpeg 5.1 prompeg writes the same FEC
//! headers and payloads but starts its FEC sequence numbers at random,
//! stamps each FEC packet with its SNBase packet's timestamp and sends a
//! row with the packet after it; receivers ignore all three.

use std::collections::VecDeque;

use super::header::{FecHeader, FEC_OVERHEAD, FEC_PAYLOAD_TYPE};
use super::matrix::{FecKind, FecMatrix, FecMode};
use super::parity::Parity;
use super::FecPacket;
use crate::rtp::{fixed_header, RtpError, RTP_HEADER_LEN};

/// Errors pushing media into the encoder. The encoder state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Not an RTP version 2 packet of at least 12 bytes.
    #[error("media is not RTP: {0}")]
    Rtp(#[from] RtpError),
    /// Media with CSRCs, a header extension or padding is refused: the FEC
    /// RTP header would have to carry those bits (RFC 2733 §6.1), which
    /// GStreamer's decoder would misparse. The packetiser never sets them.
    #[error("media RTP header has P/X/CC bits 0x{0:02x}; only plain 12-byte headers are protected")]
    UnsupportedHeader(u8),
    /// More than 65535 bytes after the header do not fit Length Recovery.
    #[error("media packet of {0} bytes is too long for SMPTE 2022-1 FEC")]
    TooLong(usize),
}

/// FEC packets that became due with one media packet: at most one row and
/// one column packet. Iterate it to get them in send order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FecOutput {
    /// Row FEC (send to port +4), if a row just completed.
    pub row: Option<FecPacket>,
    /// Column FEC (send to port +2), if one is scheduled here.
    pub column: Option<FecPacket>,
}

impl FecOutput {
    /// True when nothing is due.
    pub fn is_empty(&self) -> bool {
        self.row.is_none() && self.column.is_none()
    }
}

impl IntoIterator for FecOutput {
    type Item = FecPacket;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<FecPacket>, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        [self.row, self.column].into_iter().flatten()
    }
}

/// Encoder counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncoderStats {
    /// Media packets accepted.
    pub media_packets: u64,
    /// Column FEC packets emitted.
    pub column_packets: u64,
    /// Row FEC packets emitted.
    pub row_packets: u64,
    /// Sequence gaps that restarted the matrix.
    pub discontinuities: u64,
}

#[derive(Debug)]
struct QueuedColumn {
    /// Value of `pushed` (media packet counter) to emit with.
    due: u64,
    bytes: Vec<u8>,
}

/// Sans-IO SMPTE 2022-1 encoder. See the module docs for the schedule.
#[derive(Debug)]
pub struct FecEncoder {
    matrix: FecMatrix,
    mode: FecMode,
    row: Parity,
    columns: Vec<Parity>,
    /// Index of the next media packet inside the current matrix (0..L×D).
    position: usize,
    /// Index (counting from 0) of the next media packet overall.
    pushed: u64,
    /// Media-packet index at which the current matrix started.
    matrix_start: u64,
    queued_columns: VecDeque<QueuedColumn>,
    next_column_seq: u16,
    next_row_seq: u16,
    last_media_seq: Option<u16>,
    last_media_timestamp: u32,
    stats: EncoderStats,
}

impl FecEncoder {
    /// An encoder whose FEC streams start at sequence number 0 (as GStreamer).
    pub fn new(matrix: FecMatrix, mode: FecMode) -> Self {
        FecEncoder {
            matrix,
            mode,
            row: Parity::default(),
            columns: vec![Parity::default(); usize::from(matrix.l())],
            position: 0,
            pushed: 0,
            matrix_start: 0,
            queued_columns: VecDeque::with_capacity(2 * usize::from(matrix.l())),
            next_column_seq: 0,
            next_row_seq: 0,
            last_media_seq: None,
            last_media_timestamp: 0,
            stats: EncoderStats::default(),
        }
    }

    /// Sets the first sequence numbers of the column and row FEC streams
    /// (RFC 3550 suggests random ones; ffmpeg picks random 12-bit values).
    pub fn with_initial_fec_seqs(mut self, column: u16, row: u16) -> Self {
        self.next_column_seq = column;
        self.next_row_seq = row;
        self
    }

    /// The matrix.
    pub fn matrix(&self) -> FecMatrix {
        self.matrix
    }

    /// The FEC streams produced.
    pub fn mode(&self) -> FecMode {
        self.mode
    }

    /// Counters.
    pub fn stats(&self) -> EncoderStats {
        self.stats
    }

    /// Protects one media RTP packet (send it first) and returns the FEC
    /// packets to send with it.
    ///
    /// Media sequence numbers should be consecutive; a gap (or reordering)
    /// restarts the matrix at this packet, dropping the incomplete one.
    pub fn push(&mut self, media: &[u8]) -> Result<FecOutput, EncodeError> {
        let header = fixed_header(media)?;
        let version = header[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version).into());
        }
        if header[0] & 0x3f != 0 {
            return Err(EncodeError::UnsupportedHeader(header[0] & 0x3f));
        }
        if media.len() - RTP_HEADER_LEN > usize::from(u16::MAX) {
            return Err(EncodeError::TooLong(media.len()));
        }
        let seq = u16::from_be_bytes([header[2], header[3]]);
        self.last_media_timestamp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if self.last_media_seq.is_some_and(|last| last.wrapping_add(1) != seq) {
            self.restart_matrix();
            self.stats.discontinuities += 1;
        }
        self.last_media_seq = Some(seq);
        self.stats.media_packets += 1;

        let l = usize::from(self.matrix.l());
        let column_index = self.position % l;
        let mut output = FecOutput::default();

        if self.mode == FecMode::ColumnAndRow {
            self.row.absorb(media);
            if usize::from(self.row.count) == l {
                let seq = self.next_row_seq;
                // FEC streams have their own modulo-2^16 sequence numbers.
                self.next_row_seq = self.next_row_seq.wrapping_add(1);
                let mut bytes = build_packet(&self.row, FecKind::Row, 1, seq);
                set_timestamp(&mut bytes, self.last_media_timestamp);
                self.row.clear();
                self.stats.row_packets += 1;
                output.row = Some(FecPacket::new(FecKind::Row, bytes));
            }
        }

        if let Some(column) = self.columns.get_mut(column_index) {
            column.absorb(media);
            if column.count == self.matrix.d() {
                let seq = self.next_column_seq;
                self.next_column_seq = self.next_column_seq.wrapping_add(1);
                let bytes = build_packet(column, FecKind::Column, self.matrix.l(), seq);
                column.clear();
                // Column c leaves with packet D·c of the next matrix (module docs).
                let d = u64::from(self.matrix.d());
                let due = self.matrix_start + u64::from(self.matrix.l()) * d + d * column_index as u64;
                self.queued_columns.push_back(QueuedColumn { due, bytes });
            }
        }

        if self.queued_columns.front().is_some_and(|c| c.due <= self.pushed) {
            output.column = self.queued_columns.pop_front().map(|c| self.emit_column(c));
        }

        self.pushed += 1;
        self.position += 1;
        if self.position == self.matrix.packets() {
            self.position = 0;
            self.matrix_start = self.pushed;
        }
        Ok(output)
    }

    /// End of stream: returns the column FEC packets still waiting for their
    /// slot, and forgets the incomplete matrix (its FEC would not match the
    /// L×D the receiver learned). The next push starts a new matrix.
    pub fn flush(&mut self) -> Vec<FecPacket> {
        let queued: Vec<QueuedColumn> = self.queued_columns.drain(..).collect();
        let packets = queued.into_iter().map(|c| self.emit_column(c)).collect();
        self.restart_matrix();
        self.last_media_seq = None;
        packets
    }

    fn emit_column(&mut self, column: QueuedColumn) -> FecPacket {
        let mut bytes = column.bytes;
        // Stamped at send time with the media clock, as GStreamer does
        // (RFC 2733 §6.1: "the media RTP clock at the instant the FEC packet
        // is transmitted"); receivers ignore it.
        set_timestamp(&mut bytes, self.last_media_timestamp);
        self.stats.column_packets += 1;
        FecPacket::new(FecKind::Column, bytes)
    }

    fn restart_matrix(&mut self) {
        self.row.clear();
        for column in &mut self.columns {
            column.clear();
        }
        self.position = 0;
        self.matrix_start = self.pushed;
    }
}

/// Serialises one FEC packet (timestamp left 0, set when sent).
fn build_packet(parity: &Parity, kind: FecKind, offset: u8, seq: u16) -> Vec<u8> {
    let header = FecHeader {
        sn_base: parity.sn_base,
        length_recovery: parity.length,
        pt_recovery: parity.pt,
        mask: 0,
        ts_recovery: parity.ts,
        n_bit: false,
        kind,
        fec_type: 0,
        index: 0,
        offset,
        na: parity.count,
        sn_base_ext: 0,
    };
    let mut bytes = Vec::with_capacity(FEC_OVERHEAD + parity.payload.len());
    // V=2; P/X/CC carry the XOR of the media's (always 0: see UnsupportedHeader).
    bytes.push(0x80 | parity.pxcc);
    bytes.push(u8::from(parity.marker) << 7 | FEC_PAYLOAD_TYPE);
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&[0; 4]); // timestamp, see set_timestamp
    bytes.extend_from_slice(&[0; 4]); // SSRC 0 (SMPTE 2022-1, ffmpeg, GStreamer)
    bytes.extend_from_slice(&header.to_bytes());
    bytes.extend_from_slice(&parity.payload);
    bytes
}

fn set_timestamp(bytes: &mut [u8], timestamp: u32) {
    if let Some(field) = bytes.get_mut(4..8) {
        field.copy_from_slice(&timestamp.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacketizer;

    fn matrix(l: u8, d: u8) -> FecMatrix {
        FecMatrix::new(l, d).unwrap()
    }

    fn media(seq: u16, fill: u8, len: usize) -> Vec<u8> {
        let mut p = RtpPacketizer::new(0x1234_5678, seq);
        let mut ts = vec![fill; 188];
        ts[0] = 0x47;
        let mut pkt = p.packetize(&ts, u32::from(seq) * 10).unwrap().into_bytes();
        pkt.truncate(len);
        pkt
    }

    /// (media index, FEC) for `n` media packets starting at `first_seq`.
    fn run(enc: &mut FecEncoder, first_seq: u16, n: usize) -> Vec<(usize, FecPacket)> {
        let mut out = Vec::new();
        for i in 0..n {
            let seq = first_seq.wrapping_add(u16::try_from(i % 65536).unwrap_or(0));
            let fec = enc.push(&media(seq, u8::try_from(i % 251).unwrap_or(0), 200)).unwrap();
            out.extend(fec.into_iter().map(|f| (i, f)));
        }
        out
    }

    #[test]
    fn column_packets_are_spread_over_the_next_matrix() {
        let (l, d) = (5usize, 4usize);
        let mut enc = FecEncoder::new(matrix(5, 4), FecMode::ColumnOnly);
        let out = run(&mut enc, 1000, 3 * l * d);
        let columns: Vec<(usize, u16, u16)> =
            out.iter().filter_map(|(i, f)| f.view().ok().map(|v| (*i, v.header.sn_base, v.seq))).collect();
        // Column c of matrix m leaves with packet D*c of matrix m+1.
        let expected: Vec<(usize, u16, u16)> = (0..2 * l)
            .map(|k| {
                let (m, c) = (k / l, k % l);
                let sn_base = 1000 + u16::try_from(m * l * d + c).unwrap_or(0);
                ((m + 1) * l * d + d * c, sn_base, u16::try_from(k).unwrap_or(0))
            })
            .collect();
        assert_eq!(columns, expected);
        assert!(out.iter().all(|(_, f)| f.kind() == FecKind::Column));
        assert_eq!(enc.flush().len(), l, "last matrix's columns are flushed");
        assert_eq!(enc.stats().column_packets, 3 * l as u64);
    }

    #[test]
    fn rows_leave_with_their_last_packet() {
        let mut enc = FecEncoder::new(matrix(4, 5), FecMode::ColumnAndRow).with_initial_fec_seqs(7, 65535);
        let out = run(&mut enc, 65530, 20);
        let rows: Vec<(usize, u16, u16, u32)> = out
            .iter()
            .filter(|(_, f)| f.kind() == FecKind::Row)
            .filter_map(|(i, f)| f.view().ok().map(|v| (*i, v.seq, v.header.sn_base, v.timestamp)))
            .collect();
        let ts = |seq: u16| u32::from(seq) * 10;
        assert_eq!(
            rows,
            [(3, 65535, 65530, ts(65533)), (7, 0, 65534, ts(1)), (11, 1, 2, ts(5)), (15, 2, 6, ts(9)), (19, 3, 10, ts(13))]
        );
        assert_eq!(enc.stats().row_packets, 5);
    }

    #[test]
    fn header_fields_match_ffmpeg_and_gstreamer() {
        let mut enc = FecEncoder::new(matrix(4, 4), FecMode::ColumnAndRow);
        let packets: Vec<Vec<u8>> = (0..16u16).map(|s| media(s, 0, 100 + usize::from(s))).collect();
        let mut fec = Vec::new();
        for p in &packets {
            fec.extend(enc.push(p).unwrap());
        }
        fec.extend(enc.flush());
        assert_eq!(fec.len(), 8);
        for f in &fec {
            let bytes = f.as_bytes();
            assert_eq!(&bytes[0..2], &[0x80, 96], "V=2, M=0, PT 96");
            assert_eq!(&bytes[8..12], &[0; 4], "SSRC 0");
            let v = f.view().unwrap();
            let h = v.header;
            assert_eq!((h.mask, h.n_bit, h.fec_type, h.index, h.sn_base_ext), (0, false, 0, 0, 0));
            let members: Vec<usize> = match f.kind() {
                FecKind::Row => {
                    assert_eq!((h.kind, h.offset, h.na, bytes[24]), (FecKind::Row, 1, 4, 0x40));
                    (0..4).map(|k| usize::from(h.sn_base) + k).collect()
                }
                FecKind::Column => {
                    assert_eq!((h.kind, h.offset, h.na, bytes[24]), (FecKind::Column, 4, 4, 0x00));
                    (0..4).map(|k| usize::from(h.sn_base) + 4 * k).collect()
                }
            };
            assert_eq!(bytes[16], 0x80, "E=1, PT recovery 33^33^33^33 = 0");
            let len_xor = members.iter().fold(0u16, |a, &m| a ^ u16::try_from(packets[m].len() - 12).unwrap_or(0));
            let ts_xor = members.iter().fold(0u32, |a, &m| a ^ u32::try_from(m * 10).unwrap_or(0));
            assert_eq!((h.length_recovery, h.ts_recovery), (len_xor, ts_xor));
            let longest = members.iter().map(|&m| packets[m].len() - 12).max().unwrap_or(0);
            assert_eq!(v.payload.len(), longest);
            let mut expected = vec![0u8; longest];
            for &m in &members {
                for (e, b) in expected.iter_mut().zip(&packets[m][12..]) {
                    *e ^= b;
                }
            }
            assert_eq!(v.payload, &expected[..]);
        }
    }

    #[test]
    fn gap_restarts_the_matrix() {
        let mut enc = FecEncoder::new(matrix(4, 4), FecMode::ColumnAndRow);
        let mut rows = Vec::new();
        for seq in (0..6).chain(100..104) {
            rows.extend(enc.push(&media(seq, 1, 200)).unwrap().row);
        }
        let bases: Vec<u16> = rows.iter().filter_map(|r| r.view().ok()).map(|v| v.header.sn_base).collect();
        assert_eq!(bases, [0, 100]);
        assert_eq!(enc.stats().discontinuities, 1);
    }

    #[test]
    fn refuses_what_it_cannot_protect() {
        let mut enc = FecEncoder::new(matrix(4, 4), FecMode::ColumnOnly);
        assert_eq!(enc.push(&[0x80; 4]), Err(EncodeError::Rtp(RtpError::TooShort { len: 4, needed: 12 })));
        assert_eq!(enc.push(&[0x40; 20]), Err(EncodeError::Rtp(RtpError::BadVersion(1))));
        let mut csrc = media(0, 0, 200);
        csrc[0] = 0x81;
        assert_eq!(enc.push(&csrc), Err(EncodeError::UnsupportedHeader(1)));
        let huge = [&[0x80u8; 12][..], &vec![0u8; 65536]].concat();
        assert_eq!(enc.push(&huge), Err(EncodeError::TooLong(65548)));
        assert_eq!(enc.stats(), EncoderStats::default());
    }
}
