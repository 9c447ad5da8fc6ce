//! The SMPTE 2022-1 FEC packet on the wire.
//!
//! ```text
//!  RTP header (12 bytes, RFC 3550): V=2, PT 96, own sequence, SSRC 0;
//!  P/X/CC and M carry the XOR of the media's bits (RFC 2733 §6.1)
//!  FEC header (16 bytes, SMPTE 2022-1, derived from RFC 2733 §6.2):
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |      SNBase low bits         |        Length Recovery         |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |E| PT recovery |                     Mask                        |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |                          TS recovery                          |
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  |N|D|type |index|    Offset     |      NA       |SNBase ext bits|
//!  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  XOR of the protected media packets' bytes after their 12-byte header
//! ```
//!
//! Values written (same as ffmpeg `libavformat/prompeg.c` and GStreamer
//! `rtpst2022-1-fecenc`): E=1, Mask 0, N 0, type 0 (XOR), index 0, SNBase
//! ext 0; column FEC D=0, Offset L, NA D; row FEC D=1, Offset 1, NA L.

use super::matrix::FecKind;
use crate::rtp::{fixed_header, RtpError, RTP_HEADER_LEN};

/// Length of the FEC header that follows the 12-byte RTP header.
pub const FEC_HEADER_LEN: usize = 16;
/// RTP header + FEC header: a FEC packet is this much longer than the media
/// payload it protects (1344 bytes for 1328-byte media).
pub const FEC_OVERHEAD: usize = RTP_HEADER_LEN + FEC_HEADER_LEN;
/// RTP payload type of FEC packets (dynamic 96, as ffmpeg and GStreamer use).
pub const FEC_PAYLOAD_TYPE: u8 = 96;

/// Errors parsing a FEC packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FecHeaderError {
    /// Shorter than RTP + FEC header, or not RTP version 2.
    #[error("FEC packet RTP header: {0}")]
    Rtp(#[from] RtpError),
    /// Shorter than the 12-byte RTP header plus the 16-byte FEC header.
    #[error("FEC packet too short: {len} bytes, need at least 28")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The E bit is 0: not the SMPTE 2022-1 (RFC 2733 extended) header.
    #[error("FEC header E bit is 0; SMPTE 2022-1 requires E=1")]
    ExtensionBitClear,
    /// Only type 0 (XOR parity) is implemented.
    #[error("FEC type {0} is not supported (only 0, XOR)")]
    UnsupportedType(u8),
    /// Offset 0 would protect one packet over and over.
    #[error("FEC offset is 0")]
    ZeroOffset,
    /// NA 0 protects nothing.
    #[error("FEC NA (number of protected packets) is 0")]
    ZeroCount,
}

/// The 16-byte FEC header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecHeader {
    /// Sequence number of the first protected media packet.
    pub sn_base: u16,
    /// XOR of the protected packets' lengths after the 12-byte RTP header.
    pub length_recovery: u16,
    /// XOR of the protected packets' payload types (7 bits).
    pub pt_recovery: u8,
    /// RFC 2733 mask; SMPTE 2022-1 sets 0 and uses Offset/NA instead.
    pub mask: u32,
    /// XOR of the protected packets' timestamps.
    pub ts_recovery: u32,
    /// N bit (ffmpeg calls it X); 0.
    pub n_bit: bool,
    /// D bit: column (0) or row (1).
    pub kind: FecKind,
    /// 3-bit FEC type; 0 = XOR.
    pub fec_type: u8,
    /// 3-bit index; 0 for XOR.
    pub index: u8,
    /// Sequence distance between protected packets (L for columns, 1 for rows).
    pub offset: u8,
    /// Number of protected packets (D for columns, L for rows).
    pub na: u8,
    /// SNBase extension bits; 0 for 16-bit sequence numbers.
    pub sn_base_ext: u8,
}

impl FecHeader {
    /// Decodes the 16 header bytes, rejecting headers this crate cannot use
    /// (E=0, type other than XOR, Offset 0, NA 0).
    pub fn parse(b: &[u8; FEC_HEADER_LEN]) -> Result<FecHeader, FecHeaderError> {
        if b[4] & 0x80 == 0 {
            return Err(FecHeaderError::ExtensionBitClear);
        }
        let fec_type = (b[12] >> 3) & 0x07;
        if fec_type != 0 {
            return Err(FecHeaderError::UnsupportedType(fec_type));
        }
        if b[13] == 0 {
            return Err(FecHeaderError::ZeroOffset);
        }
        if b[14] == 0 {
            return Err(FecHeaderError::ZeroCount);
        }
        Ok(FecHeader {
            sn_base: u16::from_be_bytes([b[0], b[1]]),
            length_recovery: u16::from_be_bytes([b[2], b[3]]),
            pt_recovery: b[4] & 0x7f,
            mask: u32::from_be_bytes([0, b[5], b[6], b[7]]),
            ts_recovery: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            n_bit: b[12] & 0x80 != 0,
            kind: if b[12] & 0x40 != 0 { FecKind::Row } else { FecKind::Column },
            fec_type,
            index: b[12] & 0x07,
            offset: b[13],
            na: b[14],
            sn_base_ext: b[15],
        })
    }

    /// Encodes the header; E is always 1.
    pub fn to_bytes(&self) -> [u8; FEC_HEADER_LEN] {
        let mut b = [0u8; FEC_HEADER_LEN];
        b[0..2].copy_from_slice(&self.sn_base.to_be_bytes());
        b[2..4].copy_from_slice(&self.length_recovery.to_be_bytes());
        b[4] = 0x80 | (self.pt_recovery & 0x7f);
        b[5..8].copy_from_slice(&self.mask.to_be_bytes()[1..]);
        b[8..12].copy_from_slice(&self.ts_recovery.to_be_bytes());
        b[12] =
            u8::from(self.n_bit) << 7 | u8::from(self.kind == FecKind::Row) << 6 | (self.fec_type & 0x07) << 3 | (self.index & 0x07);
        b[13] = self.offset;
        b[14] = self.na;
        b[15] = self.sn_base_ext;
        b
    }
}

/// A borrowed, parsed FEC packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecPacketView<'a> {
    /// Sequence number of the FEC stream.
    pub seq: u16,
    /// RTP timestamp of the FEC packet (informational only).
    pub timestamp: u32,
    /// XOR of the media's P, X and CC bits, from the FEC RTP header's first
    /// byte (RFC 2733 §6.1; ffmpeg writes them, GStreamer P and X).
    pub pxcc_recovery: u8,
    /// XOR of the media's marker bits, from the FEC RTP header's M bit.
    pub marker_recovery: bool,
    /// The FEC header.
    pub header: FecHeader,
    /// XOR of the protected media packets after their 12-byte header.
    pub payload: &'a [u8],
}

impl<'a> FecPacketView<'a> {
    /// Parses a FEC packet. Like ffmpeg and GStreamer senders, the FEC header
    /// is taken to start right after the fixed 12-byte RTP header: P/X/CC of
    /// a FEC packet are recovery bits (RFC 2733 §6.1), not a CSRC list.
    pub fn parse(packet: &'a [u8]) -> Result<FecPacketView<'a>, FecHeaderError> {
        let rtp = fixed_header(packet)?;
        let version = rtp[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version).into());
        }
        let header_bytes = packet
            .get(RTP_HEADER_LEN..FEC_OVERHEAD)
            .and_then(|s| s.first_chunk::<FEC_HEADER_LEN>())
            .ok_or(FecHeaderError::TooShort { len: packet.len() })?;
        Ok(FecPacketView {
            seq: u16::from_be_bytes([rtp[2], rtp[3]]),
            timestamp: u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]),
            pxcc_recovery: rtp[0] & 0x3f,
            marker_recovery: rtp[1] & 0x80 != 0,
            header: FecHeader::parse(header_bytes)?,
            payload: packet.get(FEC_OVERHEAD..).unwrap_or(&[]),
        })
    }
}

/// A FEC packet produced by the encoder, tagged with the stream (and so the
/// port) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FecPacket {
    kind: FecKind,
    bytes: Vec<u8>,
}

impl FecPacket {
    pub(crate) fn new(kind: FecKind, bytes: Vec<u8>) -> Self {
        FecPacket { kind, bytes }
    }

    /// Column (port +2) or row (port +4).
    pub fn kind(&self) -> FecKind {
        self.kind
    }

    /// The packet as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives up the buffer.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Sequence number in its FEC stream.
    pub fn seq(&self) -> u16 {
        match self.bytes.get(2..4) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        }
    }

    /// The parsed packet (always succeeds for encoder output).
    pub fn view(&self) -> Result<FecPacketView<'_>, FecHeaderError> {
        FecPacketView::parse(&self.bytes)
    }
}

impl AsRef<[u8]> for FecPacket {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FecHeader {
        FecHeader {
            sn_base: 0xfffe,
            length_recovery: 1316,
            pt_recovery: 33,
            mask: 0,
            ts_recovery: 0x0102_0304,
            n_bit: false,
            kind: FecKind::Row,
            fec_type: 0,
            index: 0,
            offset: 1,
            na: 5,
            sn_base_ext: 0,
        }
    }

    #[test]
    fn encodes_the_documented_layout() {
        let b = sample().to_bytes();
        assert_eq!(b, [0xff, 0xfe, 0x05, 0x24, 0x80 | 33, 0, 0, 0, 1, 2, 3, 4, 0x40, 1, 5, 0]);
        assert_eq!(FecHeader::parse(&b), Ok(sample()));
        let column = FecHeader { kind: FecKind::Column, offset: 5, na: 20, ..sample() };
        assert_eq!(column.to_bytes()[12..], [0x00, 5, 20, 0]);
    }

    #[test]
    fn rejects_unusable_headers() {
        let good = sample().to_bytes();
        let mut b = good;
        b[4] &= 0x7f;
        assert_eq!(FecHeader::parse(&b), Err(FecHeaderError::ExtensionBitClear));
        b = good;
        b[12] |= 1 << 3;
        assert_eq!(FecHeader::parse(&b), Err(FecHeaderError::UnsupportedType(1)));
        b = good;
        b[13] = 0;
        assert_eq!(FecHeader::parse(&b), Err(FecHeaderError::ZeroOffset));
        b = good;
        b[14] = 0;
        assert_eq!(FecHeader::parse(&b), Err(FecHeaderError::ZeroCount));
    }

    #[test]
    fn view_rejects_short_and_non_rtp() {
        assert_eq!(FecPacketView::parse(&[0x80; 27]), Err(FecHeaderError::TooShort { len: 27 }));
        assert_eq!(FecPacketView::parse(&[0x80; 5]), Err(RtpError::TooShort { len: 5, needed: 12 }.into()));
        assert_eq!(FecPacketView::parse(&[0x00; 40]), Err(RtpError::BadVersion(0).into()));
        let mut pkt = vec![0x80 | 0x3f, 0x80 | 96, 0, 7, 0, 0, 0, 9, 0, 0, 0, 0];
        pkt.extend_from_slice(&sample().to_bytes());
        pkt.extend_from_slice(&[1, 2, 3]);
        let view = FecPacketView::parse(&pkt).unwrap();
        assert_eq!((view.seq, view.timestamp, view.pxcc_recovery, view.marker_recovery), (7, 9, 0x3f, true));
        assert_eq!(view.payload, &[1, 2, 3]);
    }

    proptest! {
        #[test]
        fn header_round_trips(
            sn_base in any::<u16>(), length_recovery in any::<u16>(), pt_recovery in 0u8..128,
            mask in 0u32..(1 << 24), ts_recovery in any::<u32>(), n_bit in any::<bool>(),
            row in any::<bool>(), index in 0u8..8, offset in 1u8.., na in 1u8.., sn_base_ext in any::<u8>(),
        ) {
            let h = FecHeader {
                sn_base, length_recovery, pt_recovery, mask, ts_recovery, n_bit,
                kind: if row { FecKind::Row } else { FecKind::Column },
                fec_type: 0, index, offset, na, sn_base_ext,
            };
            prop_assert_eq!(FecHeader::parse(&h.to_bytes()), Ok(h));
        }
    }
}
