//! The XOR core shared by the encoder and the decoder.
//!
//! SMPTE 2022-1 type 0 FEC (like RFC 2733 §7) is plain parity: every field
//! of the FEC packet is the XOR of the same field of the protected media
//! packets, shorter payloads padded with zeros. XOR-ing all but one media
//! packet into a FEC packet's parity leaves the missing packet (RFC 2733 §8).

use crate::rtp::RTP_HEADER_LEN;

/// XORs `src` into the first `src.len()` bytes of `dst` (`dst` must be at
/// least as long; extra bytes of `src` are ignored rather than panicking).
///
/// Works on 32-byte blocks of four `u64`s so the compiler emits wide SIMD
/// loads; the tail is done byte-wise.
pub fn xor_into(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let (dst_blocks, dst_tail) = dst.as_chunks_mut::<32>();
    let (src_blocks, src_tail) = src.as_chunks::<32>();
    for (d, s) in dst_blocks.iter_mut().zip(src_blocks) {
        let (d_words, _) = d.as_chunks_mut::<8>();
        let (s_words, _) = s.as_chunks::<8>();
        for (dw, sw) in d_words.iter_mut().zip(s_words) {
            *dw = (u64::from_ne_bytes(*dw) ^ u64::from_ne_bytes(*sw)).to_ne_bytes();
        }
    }
    for (d, s) in dst_tail.iter_mut().zip(src_tail) {
        *d ^= *s;
    }
}

/// Running XOR of a set of RTP packets: the content of one FEC packet.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parity {
    /// Packets absorbed so far.
    pub count: u8,
    /// Sequence number of the first packet absorbed (SNBase).
    pub sn_base: u16,
    /// XOR of P, X and CC (low 6 bits of byte 0).
    pub pxcc: u8,
    /// XOR of the marker bits.
    pub marker: bool,
    /// XOR of the 7-bit payload types.
    pub pt: u8,
    /// XOR of the timestamps.
    pub ts: u32,
    /// XOR of the lengths after the 12-byte header.
    pub length: u16,
    /// XOR of the bytes after the 12-byte header; as long as the longest.
    pub payload: Vec<u8>,
}

impl Parity {
    /// Empties the accumulator, keeping its allocation.
    pub fn clear(&mut self) {
        self.count = 0;
        self.sn_base = 0;
        self.pxcc = 0;
        self.marker = false;
        self.pt = 0;
        self.ts = 0;
        self.length = 0;
        self.payload.clear();
    }

    /// XORs one RTP packet in. The caller guarantees `packet` has the
    /// 12-byte header and at most `u16::MAX` bytes after it (the encoder and
    /// decoder check this before); otherwise the packet is ignored.
    pub fn absorb(&mut self, packet: &[u8]) {
        let (Some(header), Some(body)) = (packet.first_chunk::<RTP_HEADER_LEN>(), packet.get(RTP_HEADER_LEN..)) else {
            return;
        };
        let Ok(length) = u16::try_from(body.len()) else {
            return;
        };
        if self.count == 0 {
            self.sn_base = u16::from_be_bytes([header[2], header[3]]);
        }
        self.count = self.count.saturating_add(1);
        self.pxcc ^= header[0] & 0x3f;
        self.marker ^= header[1] & 0x80 != 0;
        self.pt ^= header[1] & 0x7f;
        self.ts ^= u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        self.length ^= length;
        if self.payload.len() < body.len() {
            // Shorter packets count as zero-padded (SMPTE 2022-1, RFC 2733 §7).
            self.payload.resize(body.len(), 0);
        }
        xor_into(&mut self.payload, body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn xor_into_matches_bytewise(a in proptest::collection::vec(any::<u8>(), 0..300),
                                     b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut fast = a.clone();
            xor_into(&mut fast, &b);
            let slow: Vec<u8> = a.iter().enumerate()
                .map(|(i, x)| x ^ b.get(i).copied().unwrap_or(0)).collect();
            prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn parity_pads_and_xors_every_field() {
        let p1 = [0x80, 0x80 | 33, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0x0f];
        let p2 = [0x80, 33, 0, 11, 0, 0, 0, 3, 0, 0, 0, 0, 0x0f];
        let mut parity = Parity::default();
        parity.absorb(&p1);
        parity.absorb(&p2);
        parity.absorb(&[0x80; 5]); // too short: ignored
        assert_eq!(parity.count, 2);
        assert_eq!(parity.sn_base, 10);
        assert!(parity.marker);
        assert_eq!((parity.pt, parity.ts, parity.length), (0, 2, 2 ^ 1));
        assert_eq!(parity.payload, [0xf0, 0x0f]);
        parity.clear();
        assert_eq!((parity.count, parity.payload.len()), (0, 0));
    }
}
