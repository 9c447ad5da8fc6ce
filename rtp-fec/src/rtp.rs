//! RTP header parsing and the MPEG-TS (MP2T) RTP packetiser.
//!
//! The packetiser follows RFC 2250 §2 (an RTP payload of MP2T carries an
//! integral number of 188-byte transport packets, the timestamp is a 90 kHz
//! clock) with the static payload type 33 from RFC 3551 table 5. The parser
//! follows the fixed header layout of RFC 3550 §5.1 and the header extension
//! of RFC 3550 §5.3.1.

use std::sync::Arc;
use std::time::Duration;

/// Length of the fixed RTP header without CSRCs (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Static RTP payload type of MPEG-2 transport streams (RFC 3551 table 5).
pub const PAYLOAD_TYPE_MP2T: u8 = 33;
/// Length of one MPEG-TS packet.
pub const TS_PACKET_LEN: usize = 188;
/// Sync byte that starts every MPEG-TS packet.
pub const TS_SYNC_BYTE: u8 = 0x47;
/// Most TS packets per RTP packet: 7 × 188 = 1316 bytes is the largest
/// payload that fits a 1500-byte Ethernet MTU with IP/UDP/RTP headers and is
/// what every MP2T sender (and MediaConnect) uses.
pub const MAX_TS_PACKETS_PER_RTP: usize = 7;
/// RTP media clock of MP2T (RFC 2250 §2: 90 kHz).
pub const CLOCK_RATE_90K: u64 = 90_000;

/// Errors from RTP parsing and packetising.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The packet is shorter than its header says it must be.
    #[error("RTP packet too short: {len} bytes, need at least {needed}")]
    TooShort {
        /// Bytes available.
        len: usize,
        /// Bytes the header requires.
        needed: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    /// The padding count is zero or larger than the payload.
    #[error("RTP padding of {padding} bytes does not fit {available} payload bytes")]
    BadPadding {
        /// Padding count from the last byte.
        padding: u8,
        /// Bytes after the header.
        available: usize,
    },
    /// The payload is not a whole number (1..=7) of 188-byte TS packets.
    #[error("MP2T payload must be 1..=7 whole 188-byte TS packets (RFC 2250 §2), got {len} bytes")]
    NotWholeTsPackets {
        /// Payload length offered.
        len: usize,
    },
    /// A TS packet does not start with the sync byte 0x47.
    #[error("TS packet {index} starts with 0x{byte:02x}, not the sync byte 0x47")]
    MissingSyncByte {
        /// Index of the TS packet inside the payload.
        index: usize,
        /// The byte found instead.
        byte: u8,
    },
}

/// A parsed RTP header (RFC 3550 §5.1). Parsing never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// P bit: the packet ends with padding (excluded from the payload).
    pub padding: bool,
    /// M bit.
    pub marker: bool,
    /// 7-bit payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    csrc_count: u8,
    csrcs: [u32; 15],
    /// Header extension profile ("defined by profile" field), if X is set.
    pub extension_profile: Option<u16>,
    /// Bytes of header-extension data after its 4-byte preamble.
    pub extension_len: usize,
    /// Offset of the payload from the start of the packet.
    pub payload_offset: usize,
    /// Length of the payload (padding excluded).
    pub payload_len: usize,
    /// Number of padding bytes at the end (0 without P).
    pub padding_len: u8,
}

impl RtpHeader {
    /// Parses and validates the header of `packet`.
    ///
    /// Checks version 2, that the CSRC list and header extension fit, and that
    /// the padding count (last byte when P is set) is between 1 and the bytes
    /// left after the header. Never panics.
    pub fn parse(packet: &[u8]) -> Result<RtpHeader, RtpError> {
        let fixed = fixed_header(packet)?;
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = fixed[0] & 0x0f;
        let mut offset = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        let needed = offset;
        let csrc_bytes = packet.get(RTP_HEADER_LEN..offset).ok_or(RtpError::TooShort { len: packet.len(), needed })?;
        let mut csrcs = [0u32; 15];
        for (slot, chunk) in csrcs.iter_mut().zip(csrc_bytes.as_chunks::<4>().0) {
            *slot = u32::from_be_bytes(*chunk);
        }

        let (extension_profile, extension_len) = if has_extension {
            let needed = offset + 4;
            let preamble = packet.get(offset..needed).ok_or(RtpError::TooShort { len: packet.len(), needed })?;
            let profile = u16::from_be_bytes([preamble[0], preamble[1]]);
            // The length counts 32-bit words after the preamble (RFC 3550 §5.3.1).
            let words = u16::from_be_bytes([preamble[2], preamble[3]]);
            let len = 4 * usize::from(words);
            offset = needed + len;
            if packet.len() < offset {
                return Err(RtpError::TooShort { len: packet.len(), needed: offset });
            }
            (Some(profile), len)
        } else {
            (None, 0)
        };

        let available = packet.len() - offset;
        let padding_len = if padding {
            // The last byte counts the padding including itself, so 0 is invalid.
            let count = packet.last().copied().unwrap_or(0);
            if count == 0 || usize::from(count) > available {
                return Err(RtpError::BadPadding { padding: count, available });
            }
            count
        } else {
            0
        };

        Ok(RtpHeader {
            padding,
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7f,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            csrc_count,
            csrcs,
            extension_profile,
            extension_len,
            payload_offset: offset,
            payload_len: available - usize::from(padding_len),
            padding_len,
        })
    }

    /// The contributing sources (0 to 15).
    pub fn csrcs(&self) -> &[u32] {
        self.csrcs.get(..usize::from(self.csrc_count)).unwrap_or(&[])
    }

    /// The payload of `packet`, the same bytes this header was parsed from
    /// (empty if `packet` is a different, shorter buffer).
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet.get(self.payload_offset..self.payload_offset + self.payload_len).unwrap_or(&[])
    }
}

/// The fixed 12-byte header, or `TooShort`.
pub(crate) fn fixed_header(packet: &[u8]) -> Result<&[u8; RTP_HEADER_LEN], RtpError> {
    packet.first_chunk::<RTP_HEADER_LEN>().ok_or(RtpError::TooShort { len: packet.len(), needed: RTP_HEADER_LEN })
}

/// An RTP packet built by [`RtpPacketizer`]: a 12-byte header (no CSRC,
/// extension or padding) followed by 1..=7 TS packets.
///
/// Convert it with `Arc::<[u8]>::from(packet)` to hand the same bytes to
/// several outputs without copying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    bytes: Vec<u8>,
}

impl RtpPacket {
    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        // The packetiser always writes the full 12-byte header, so `at + N <= 12`
        // is in bounds; the fallback only keeps this panic-free by construction.
        self.bytes.get(at..at + N).and_then(|s| s.first_chunk::<N>()).copied().unwrap_or([0; N])
    }

    /// Sequence number.
    pub fn seq(&self) -> u16 {
        u16::from_be_bytes(self.field(2))
    }

    /// 90 kHz timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes(self.field(4))
    }

    /// Synchronisation source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes(self.field(8))
    }

    /// The TS packets.
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(RTP_HEADER_LEN..).unwrap_or(&[])
    }

    /// The whole packet as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives up the buffer.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl AsRef<[u8]> for RtpPacket {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl From<RtpPacket> for Arc<[u8]> {
    fn from(packet: RtpPacket) -> Self {
        packet.bytes.into()
    }
}

/// Builds RTP/MP2T packets with consecutive sequence numbers.
#[derive(Debug, Clone)]
pub struct RtpPacketizer {
    ssrc: u32,
    next_seq: u16,
}

impl RtpPacketizer {
    /// A packetiser whose first packet carries `initial_seq`. RFC 3550 §5.1
    /// asks for a random initial sequence number and SSRC; the caller picks
    /// them (GStreamer's FEC encoder needs SSRC 0, ffmpeg refuses 0).
    pub fn new(ssrc: u32, initial_seq: u16) -> Self {
        RtpPacketizer { ssrc, next_seq: initial_seq }
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Wraps `ts` (1..=7 whole TS packets, each starting with 0x47) in an RTP
    /// header with payload type 33, marker 0 and `timestamp_90k`.
    pub fn packetize(&mut self, ts: &[u8], timestamp_90k: u32) -> Result<RtpPacket, RtpError> {
        let count = ts.len() / TS_PACKET_LEN;
        if !ts.len().is_multiple_of(TS_PACKET_LEN) || !(1..=MAX_TS_PACKETS_PER_RTP).contains(&count) {
            return Err(RtpError::NotWholeTsPackets { len: ts.len() });
        }
        for (index, packet) in ts.chunks_exact(TS_PACKET_LEN).enumerate() {
            if packet[0] != TS_SYNC_BYTE {
                return Err(RtpError::MissingSyncByte { index, byte: packet[0] });
            }
        }

        let mut bytes = Vec::with_capacity(RTP_HEADER_LEN + ts.len());
        bytes.push(0x80); // V=2, P=0, X=0, CC=0
        bytes.push(PAYLOAD_TYPE_MP2T); // M=0
        bytes.extend_from_slice(&self.next_seq.to_be_bytes());
        bytes.extend_from_slice(&timestamp_90k.to_be_bytes());
        bytes.extend_from_slice(&self.ssrc.to_be_bytes());
        bytes.extend_from_slice(ts);
        // RTP sequence numbers are modulo 2^16 (RFC 3550 §5.1).
        self.next_seq = self.next_seq.wrapping_add(1);
        Ok(RtpPacket { bytes })
    }
}

/// Converts a running time to a 90 kHz RTP timestamp, wrapping modulo 2^32
/// (RFC 3550 §5.1 timestamps wrap; at 90 kHz that is every 13.25 hours).
pub fn timestamp_90k(running_time: Duration) -> u32 {
    let ticks = running_time.as_nanos() * u128::from(CLOCK_RATE_90K) / 1_000_000_000;
    // Keeping the low 32 bits is the intended modulo-2^32 wrap.
    u32::try_from(ticks & u128::from(u32::MAX)).unwrap_or_default()
}

/// [`timestamp_90k`] for a running time in nanoseconds (GStreamer's unit).
pub fn timestamp_90k_from_nanos(running_time_ns: u64) -> u32 {
    timestamp_90k(Duration::from_nanos(running_time_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts_packets(n: usize) -> Vec<u8> {
        let mut ts = vec![0u8; n * TS_PACKET_LEN];
        for (i, chunk) in ts.chunks_mut(TS_PACKET_LEN).enumerate() {
            chunk[0] = TS_SYNC_BYTE;
            chunk[1] = u8::try_from(i).unwrap_or(0);
        }
        ts
    }

    #[test]
    fn packetizes_seven_ts_packets_into_1328_bytes() {
        let mut p = RtpPacketizer::new(0xdead_beef, 100);
        let ts = ts_packets(7);
        let pkt = p.packetize(&ts, 1234).unwrap();
        assert_eq!(pkt.as_bytes().len(), 1328);
        assert_eq!(&pkt.as_bytes()[..2], &[0x80, 33]);
        assert_eq!((pkt.seq(), pkt.timestamp(), pkt.ssrc()), (100, 1234, 0xdead_beef));
        assert_eq!(pkt.payload(), &ts[..]);
        let h = RtpHeader::parse(pkt.as_bytes()).unwrap();
        assert_eq!((h.payload_type, h.sequence, h.marker, h.padding), (33, 100, false, false));
        assert_eq!((h.payload_offset, h.payload_len), (12, 1316));
        let shared: Arc<[u8]> = pkt.clone().into();
        assert_eq!(&shared[..], pkt.as_bytes());
    }

    #[test]
    fn sequence_wraps_at_65535() {
        let mut p = RtpPacketizer::new(1, 65534);
        let ts = ts_packets(1);
        let seqs: Vec<u16> = (0..4).filter_map(|_| p.packetize(&ts, 0).ok()).map(|pkt| pkt.seq()).collect();
        assert_eq!(seqs, [65534, 65535, 0, 1]);
    }

    #[test]
    fn rejects_payloads_that_are_not_whole_ts_packets() {
        let mut p = RtpPacketizer::new(1, 0);
        for len in [0, 1, 187, 189, 8 * 188] {
            assert_eq!(p.packetize(&vec![TS_SYNC_BYTE; len], 0), Err(RtpError::NotWholeTsPackets { len }));
        }
        let mut ts = ts_packets(3);
        ts[2 * 188] = 0x48;
        assert_eq!(p.packetize(&ts, 0), Err(RtpError::MissingSyncByte { index: 2, byte: 0x48 }));
        assert_eq!(p.next_seq(), 0, "a rejected payload must not consume a sequence number");
    }

    #[test]
    fn timestamp_is_90khz_and_wraps() {
        assert_eq!(timestamp_90k(Duration::from_secs(1)), 90_000);
        assert_eq!(timestamp_90k(Duration::from_millis(40)), 3600);
        assert_eq!(timestamp_90k_from_nanos(11_111), 0); // 0.99 tick rounds down
        assert_eq!(timestamp_90k_from_nanos(11_112), 1);
        // 2^32 ticks = 47721.858844444 s wraps to 0.
        let wrap = Duration::from_nanos(47_721_858_844_445);
        assert_eq!(timestamp_90k(wrap), 0);
        assert_eq!(timestamp_90k(wrap + Duration::from_secs(1)), 90_000);
    }

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut pkt = vec![0xb2, 0x80 | 96, 0x12, 0x34, 0, 0, 0, 7, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // 2 CSRCs
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // 1-word extension
        pkt.extend_from_slice(b"payload");
        pkt.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let h = RtpHeader::parse(&pkt).unwrap();
        assert!(h.marker && h.padding);
        assert_eq!((h.payload_type, h.sequence, h.timestamp, h.ssrc), (96, 0x1234, 7, 9));
        assert_eq!(h.csrcs(), &[1, 2]);
        assert_eq!((h.extension_profile, h.extension_len), (Some(0xbede), 4));
        assert_eq!(h.padding_len, 3);
        assert_eq!(h.payload(&pkt), b"payload");
    }

    #[test]
    fn rejects_malformed_headers() {
        assert_eq!(RtpHeader::parse(&[0x80; 11]), Err(RtpError::TooShort { len: 11, needed: 12 }));
        assert_eq!(RtpHeader::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        // CC = 1 but no CSRC.
        assert_eq!(RtpHeader::parse(&[0x81; 12]), Err(RtpError::TooShort { len: 12, needed: 16 }));
        // X set, extension claims 2 words, only 1 present.
        let mut ext = vec![0x90, 33, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4];
        assert_eq!(RtpHeader::parse(&ext), Err(RtpError::TooShort { len: 20, needed: 24 }));
        ext.extend_from_slice(&[5, 6, 7, 8]);
        assert!(RtpHeader::parse(&ext).is_ok());
        // P set with a zero count, and with a count larger than the payload.
        let mut pad = vec![0xa0, 33, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(RtpHeader::parse(&pad), Err(RtpError::BadPadding { padding: 0, available: 2 }));
        pad[13] = 3;
        assert_eq!(RtpHeader::parse(&pad), Err(RtpError::BadPadding { padding: 3, available: 2 }));
        pad[13] = 2;
        assert_eq!(RtpHeader::parse(&pad).map(|h| h.payload_len), Ok(0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics_and_stays_in_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(h) = RtpHeader::parse(&bytes) {
                prop_assert!(h.payload_offset + h.payload_len + usize::from(h.padding_len) == bytes.len());
                prop_assert_eq!(h.payload(&bytes).len(), h.payload_len);
                prop_assert!(h.csrcs().len() <= 15);
            }
        }

        #[test]
        fn parse_reads_back_packetized_fields(
            ssrc in any::<u32>(), seq in any::<u16>(), ts in any::<u32>(), n in 1usize..=7,
        ) {
            let mut p = RtpPacketizer::new(ssrc, seq);
            let payload = ts_packets(n);
            let pkt = p.packetize(&payload, ts).unwrap();
            let h = RtpHeader::parse(pkt.as_bytes()).unwrap();
            prop_assert_eq!((h.sequence, h.timestamp, h.ssrc, h.payload_type), (seq, ts, ssrc, 33));
            prop_assert_eq!(h.payload(pkt.as_bytes()), &payload[..]);
        }
    }
}
