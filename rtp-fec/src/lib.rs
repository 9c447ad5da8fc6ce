//! Sans-IO RTP for the contribution path: MPEG-TS → RTP packetiser,
//! SMPTE 2022-1 FEC encoder and decoder, and send pacing.
//!
//! # Background
//!
//! MediaConnect's `rtp-fec` source protocol is SMPTE ST 2022-1 (the
//! standardised Pro-MPEG Code of Practice #3): MPEG-TS in RTP (RFC 2250,
//! payload type 33, 7 × 188-byte TS packets = 1328-byte packets) on port P,
//! plus two streams of XOR parity packets (payload type 96, SSRC 0):
//! column FEC on **P+2** and row FEC on **P+4**. Media packets fill an L×D
//! matrix row by row (L columns, D rows, 4 ≤ L, D ≤ 20, L×D ≤ 100); one
//! column FEC packet protects the D packets of a column (Offset L, NA D),
//! one row FEC packet the L packets of a row (Offset 1, NA L). Column FEC
//! repairs a burst of up to L consecutive losses; rows repair isolated
//! losses, and each kind can unlock the other. The FEC header is RFC 2733's
//! with its extension (E=1) carrying Offset, NA and the D bit.
//!
//! The encoder's output was checked against GStreamer 1.22
//! (`rtpst2022-1-fecenc`, byte-identical) and ffmpeg 5.1 (`-fec prompeg`,
//! identical FEC headers and payloads), and the decoder recovers dropped
//! packets from both (see `fec::encoder`, *Compatibility*).
//!
//! # Design
//!
//! - **Sans-IO**: no sockets, threads or clocks. Callers feed bytes and get
//!   bytes back; where time matters ([`pacing`]) it is a parameter, so tests
//!   step a fake clock.
//! - **One XOR core** (`fec::parity`) builds FEC packets in the encoder and
//!   subtracts surviving media from them in the decoder.
//! - **Never panics on input**: every parser returns an error for short or
//!   inconsistent data; the decoder's memory is bounded by its
//!   [`fec::DecoderConfig`] whatever arrives (proptests feed it garbage).
//! - **Low allocation on the send path**: the encoder XORs in place into
//!   reused buffers, 32 bytes at a time; one `Vec` is allocated per FEC
//!   packet emitted. [`rtp::RtpPacket`] converts into `Arc<[u8]>` for fan-out
//!   to several outputs.
//!
//! ```
//! use rtp_fec::{FecDecoder, FecEncoder, FecKind, FecMatrix, FecMode, RtpPacketizer};
//!
//! let matrix = FecMatrix::new(5, 20)?;
//! let mut packetizer = RtpPacketizer::new(0x1234_5678, 0);
//! let mut encoder = FecEncoder::new(matrix, FecMode::ColumnAndRow);
//! let mut decoder = FecDecoder::new();
//! let mut ts = [0u8; 1316];
//! for chunk in ts.chunks_mut(188) {
//!     chunk[0] = 0x47;
//! }
//! for i in 0..300u32 {
//!     let media = packetizer.packetize(&ts, i * 3000)?;
//!     if i != 42 {
//!         decoder.push_media(media.as_bytes())?; // packet 42 is "lost"
//!     }
//!     for fec in encoder.push(media.as_bytes())? {
//!         // send to port + fec.kind().port_offset()
//!         decoder.push_fec(fec.as_bytes(), Some(fec.kind()))?;
//!     }
//! }
//! assert_eq!(decoder.poll_recovered().map(|p| p.seq), Some(42));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limitations
//!
//! - XOR (FEC type 0) only, 16-bit sequence numbers (SNBase ext bits 0).
//! - The encoder protects media with plain 12-byte headers (no CSRC,
//!   extension or padding), which is what [`RtpPacketizer`] makes.
//! - The decoder protects and restores everything after the 12-byte header,
//!   as RFC 2733 and ffmpeg do; GStreamer XORs only the payload, which is
//!   the same thing for such plain headers.
//! - Recovered packets come out in recovery order; reordering (and
//!   forwarding received media) is the caller's job. Packets after the last
//!   received media packet are not recovered.
//! - The decoder restores the SSRC of the most recent media packet; one
//!   decoder handles one media stream.

pub mod fec;
pub mod pacing;
pub mod rtp;

pub use fec::{
    DecodeError, DecoderConfig, DecoderStats, EncodeError, EncoderStats, FecDecoder, FecEncoder, FecError, FecKind, FecMatrix,
    FecMode, FecOutcome, FecOutput, FecPacket, LearnedMatrix, MediaOutcome, RecoveredPacket,
};
pub use pacing::{BurstMeter, BurstReport, Pacer, PacingError};
pub use rtp::{timestamp_90k, timestamp_90k_from_nanos, RtpError, RtpHeader, RtpPacket, RtpPacketizer};
