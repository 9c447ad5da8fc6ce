//! SMPTE 2022-1 (Pro-MPEG COP3) row/column XOR FEC for RTP.
//!
//! - [`matrix`]: the validated L×D matrix and which streams are sent,
//! - [`header`]: the FEC packet on the wire,
//! - [`encoder`]: media in, FEC packets out (with the column schedule),
//! - [`decoder`]: media and FEC in, recovered media and loss reports out.
//!
//! Encoder and decoder share one XOR core (`parity`): the decoder recovers
//! a packet by XOR-ing the surviving media into the FEC packet's parity.

pub mod decoder;
pub mod encoder;
pub mod header;
pub mod matrix;
mod parity;
#[cfg(test)]
mod tests;
mod window;

pub use decoder::{DecodeError, DecoderConfig, DecoderStats, FecDecoder, FecOutcome, LearnedMatrix, MediaOutcome, RecoveredPacket};
pub use encoder::{EncodeError, EncoderStats, FecEncoder, FecOutput};
pub use header::{FecHeader, FecHeaderError, FecPacket, FecPacketView, FEC_HEADER_LEN, FEC_OVERHEAD, FEC_PAYLOAD_TYPE};
pub use matrix::{FecError, FecKind, FecMatrix, FecMode};
pub use parity::xor_into;
