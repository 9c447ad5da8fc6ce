//! `edge-cloud`: outputs named by AWS Elemental MediaConnect flow ARN, and
//! flow and MediaLive channel health, for the edge agent.
//!
//! # Background
//! An operator should not copy IP addresses and ports from the AWS console
//! onto a box. A flow's source already says where to send (`IngestIp`,
//! `IngestPort`) and how (`Transport.Protocol`, `MinLatency`): the agent asks
//! `DescribeFlow` and sends there (`docs/mediaconnect.md#flow-sources`, `#flow-state`;
//! MediaConnect API Reference, `DescribeFlow`, `UpdateFlowSource`,
//! `DescribeFlowSourceMetadata`; MediaLive API Reference, `DescribeChannel`).
//!
//! # Design
//! - [`model`]: plain Rust types; no SDK type crosses this crate's API.
//! - [`api`]: the narrow blocking traits [`FlowApi`] and [`ChannelApi`].
//! - [`resolve`]: flow → destination for an output kind, with the protocol
//!   check (SRT needs `srt-listener`, RTP-FEC `rtp-fec` with FEC on P+2/P+4),
//!   start-if-STANDBY, and the whitelist read-modify-write that sends every
//!   field (an update blanks the fields it is not given).
//! - [`input`]: MediaLive input id + pipeline → destination: the input
//!   type must fit the output's kind (`RTP_PUSH` → RTP/RTP-FEC,
//!   `RTMP_PUSH` → RTMP, `SRT_CALLER` → SRT listener, `MEDIACONNECT` → its
//!   flows, resolved as above); security groups checked, not rewritten.
//! - [`health`]: flow status and source metadata, channel state and the
//!   active input per pipeline → telemetry and alarms.
//! - [`fake`]: a hand-written fake of both services for tests (moto lacks
//!   `Transport`, metadata, `PipelineDetails`, input destination addresses,
//!   `SrtSettings` and `DescribeInputSecurityGroup`).
//! - `aws` (feature `aws`): the SDK-backed implementation. The SDK crates
//!   take minutes to compile on two cores, so builds without the feature
//!   keep everything else and only lose the real client.
//!
//! # Limitations
//! - The box's public address for the whitelist is configured; it is not
//!   discovered (a behind-NAT address needs an outside service).
//! - Source metadata is polled (there is no push API); CloudWatch metrics
//!   (`SourceBitRate`, TR 101 290 counters) are not read.
//! - SRT passphrases live in Secrets Manager on the AWS side; the box keeps
//!   its own copy in its configuration (the agent does not read secrets).

pub mod api;
#[cfg(feature = "aws")]
pub mod aws;
pub mod fake;
pub mod health;
pub mod input;
pub mod model;
pub mod resolve;

pub use api::{ApiError, ChannelApi, FlowApi};
pub use health::{channel_health, flow_health, ChannelHealth, CloudAlarm, FlowHealth, Severity};
pub use input::{resolve_input, InputEndpoint, InputError, InputOutputKind, InputResolved, InputTarget};
pub use model::{ChannelId, FlowArn, InputId, InputType, Pipeline, Protocol};
pub use resolve::{plan, resolve, Destination, FlowTarget, OutputKind, ResolveError, Resolved};
