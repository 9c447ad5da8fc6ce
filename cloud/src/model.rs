//! Plain domain types for what the agent needs from MediaConnect and
//! MediaLive: no SDK types leak past [`crate::aws`], so the core logic and
//! its tests build without the SDK.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A MediaConnect flow ARN, checked once:
/// `arn:<partition>:mediaconnect:<region>:<account>:flow:<id>:<name>`
/// (MediaConnect User Guide, "ARNs").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FlowArn(String);

impl FlowArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region named in the ARN (the default region for calls about it).
    pub fn region(&self) -> &str {
        self.0.split(':').nth(3).unwrap_or_default()
    }
}

impl TryFrom<String> for FlowArn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let ok = s.len() <= 2048
            && !s.chars().any(char::is_whitespace)
            && parts.len() >= 7
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "mediaconnect"
            && !parts[3].is_empty()
            && parts[5] == "flow"
            && !parts[6].is_empty();
        if ok {
            Ok(FlowArn(s))
        } else {
            Err(format!("`{s}` is not a MediaConnect flow ARN (arn:aws:mediaconnect:<region>:<account>:flow:<id>:<name>)"))
        }
    }
}

impl From<FlowArn> for String {
    fn from(a: FlowArn) -> String {
        a.0
    }
}

impl fmt::Display for FlowArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A flow source protocol (`Transport.Protocol`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Protocol {
    Rtp,
    RtpFec,
    SrtListener,
    SrtCaller,
    Rist,
    ZixiPush,
    /// Anything else the service may add (`st2110-jpegxs`, `ndi-speed-hq`, …).
    Other(String),
}

impl Protocol {
    pub fn from_wire(s: &str) -> Protocol {
        match s {
            "rtp" => Protocol::Rtp,
            "rtp-fec" => Protocol::RtpFec,
            "srt-listener" => Protocol::SrtListener,
            "srt-caller" => Protocol::SrtCaller,
            "rist" => Protocol::Rist,
            "zixi-push" => Protocol::ZixiPush,
            other => Protocol::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Protocol::Rtp => "rtp",
            Protocol::RtpFec => "rtp-fec",
            Protocol::SrtListener => "srt-listener",
            Protocol::SrtCaller => "srt-caller",
            Protocol::Rist => "rist",
            Protocol::ZixiPush => "zixi-push",
            Protocol::Other(s) => s,
        }
    }
}

impl From<Protocol> for String {
    fn from(p: Protocol) -> String {
        p.as_str().to_owned()
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Flow `Status` (MediaConnect API Reference, `Flow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum FlowStatus {
    Standby,
    Starting,
    Active,
    Updating,
    Stopping,
    Deleting,
    Error,
    Other(String),
}

impl FlowStatus {
    pub fn from_wire(s: &str) -> FlowStatus {
        match s {
            "STANDBY" => FlowStatus::Standby,
            "STARTING" => FlowStatus::Starting,
            "ACTIVE" => FlowStatus::Active,
            "UPDATING" => FlowStatus::Updating,
            "STOPPING" => FlowStatus::Stopping,
            "DELETING" => FlowStatus::Deleting,
            "ERROR" => FlowStatus::Error,
            other => FlowStatus::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            FlowStatus::Standby => "STANDBY",
            FlowStatus::Starting => "STARTING",
            FlowStatus::Active => "ACTIVE",
            FlowStatus::Updating => "UPDATING",
            FlowStatus::Stopping => "STOPPING",
            FlowStatus::Deleting => "DELETING",
            FlowStatus::Error => "ERROR",
            FlowStatus::Other(s) => s,
        }
    }
}

impl From<FlowStatus> for String {
    fn from(s: FlowStatus) -> String {
        s.as_str().to_owned()
    }
}

impl fmt::Display for FlowStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source's transport settings. The API nests them under `Transport` in
/// responses but takes them flat in requests (`docs/mediaconnect.md#flow-sources`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Transport {
    pub protocol: Option<Protocol>,
    pub min_latency_ms: Option<u32>,
    pub max_latency_ms: Option<u32>,
    pub max_bitrate_bps: Option<u64>,
    /// Applies only to Zixi and SRT caller-based sources; an `srt-listener`
    /// source ignores it (`docs/mediaconnect.md#flow-sources`).
    pub stream_id: Option<String>,
    /// Reported only: `UpdateFlowSource` has no such field.
    pub smoothing_latency_ms: Option<u32>,
}

/// The source's decryption: ARNs only; the passphrase itself stays in
/// Secrets Manager and never reaches the agent through this API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceDecryption {
    pub algorithm: Option<String>,
    pub key_type: Option<String>,
    pub role_arn: Option<String>,
    pub secret_arn: Option<String>,
}

/// One flow source as `DescribeFlow` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowSource {
    pub name: String,
    pub arn: Option<String>,
    pub description: Option<String>,
    pub ingest_ip: Option<String>,
    pub ingest_port: Option<u16>,
    pub whitelist_cidr: Option<String>,
    /// The address the flow currently receives from.
    pub peer_ip: Option<String>,
    pub transport: Transport,
    pub decryption: Option<SourceDecryption>,
}

/// A flow as `DescribeFlow` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub arn: FlowArn,
    pub name: String,
    pub status: FlowStatus,
    pub sources: Vec<FlowSource>,
    pub egress_ip: Option<String>,
}

/// `DescribeFlowSourceMetadata`: what the flow sees in the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceMetadata {
    pub timestamp: Option<String>,
    pub messages: Vec<MetadataMessage>,
    pub ts_id: Option<i64>,
    pub programs: Vec<Program>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetadataMessage {
    pub code: String,
    pub message: String,
    pub resource_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Program {
    pub number: i64,
    pub name: Option<String>,
    pub pid: i64,
    pub pcr_pid: i64,
    pub streams: Vec<ElementaryStream>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ElementaryStream {
    pub pid: i64,
    pub stream_type: String,
    pub codec: Option<String>,
    pub frame_rate: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub channels: Option<i64>,
    pub sample_rate: Option<i64>,
}

/// Every field of a source that `UpdateFlowSource` takes. It is sent whole,
/// because an update may blank the fields it is not given (measured on moto
/// 5.2.5, `docs/mediaconnect.md#moto`), so a partial update could erase the ingest port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceUpdate {
    pub flow_arn: String,
    pub source_arn: String,
    pub description: Option<String>,
    pub ingest_port: Option<u16>,
    pub whitelist_cidr: Option<String>,
    pub transport: Transport,
    pub decryption: Option<SourceDecryption>,
}

/// A MediaLive channel id (digits in practice).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelId(String);

impl ChannelId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChannelId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            Ok(ChannelId(s))
        } else {
            Err(format!("`{s}` is not a MediaLive channel id"))
        }
    }
}

impl From<ChannelId> for String {
    fn from(c: ChannelId) -> String {
        c.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `DescribeChannel`, reduced to what health needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub id: String,
    pub name: Option<String>,
    /// `IDLE`, `STARTING`, `RUNNING`, `RECOVERING`, `STOPPING`, …
    pub state: String,
    pub pipelines_running: Option<i64>,
    /// `PipelineDetails`: empty on moto (`docs/mediaconnect.md#moto`).
    pub pipelines: Vec<PipelineDetail>,
    pub input_attachments: Vec<InputAttachment>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineDetail {
    pub pipeline_id: String,
    pub active_input_attachment_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputAttachment {
    pub name: Option<String>,
    pub input_id: Option<String>,
}

/// `DescribeInput`, reduced to the flows behind a `MEDIACONNECT` input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Input {
    pub id: String,
    pub kind: Option<String>,
    pub flow_arns: Vec<String>,
}
