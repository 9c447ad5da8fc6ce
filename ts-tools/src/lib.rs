//! Sans-IO measuring tools for the agent's transport streams: the core of
//! the `edge-agent receive` tool ([`receive`]) and an MPEG-TS checker
//! ([`ts`]). The agent binary's receive command, the integration tests and
//! the benchmark use them.
//!
//! # Why a crate of its own
//!
//! These are measuring tools, not part of the agent's media path: as
//! modules of the agent they made every test that only checks a recorded
//! stream link GStreamer. They are not in `rtp-fec` either: that crate is
//! what the agent's send path links (packetiser, FEC encoder, pacing), and
//! the TS checker has nothing to do with RTP; keeping the receiver's reorder
//! buffer and its serialisable counters here keeps `rtp-fec` small and
//! dependency-free. Like `rtp-fec`, nothing here does I/O: time is a
//! parameter and output goes to a caller-supplied writer.

pub mod receive;
pub mod ts;

pub use receive::{ReceiveStats, ReceiverConfig, RtpReceiver};
pub use ts::{PidStats, TsAnalyzer};
