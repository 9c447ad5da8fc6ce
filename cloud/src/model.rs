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

/// `DescribeInput`: what the agent needs to send to a MediaLive input
/// (`docs/medialive-inputs.md`). Nothing here is a secret: an SRT
/// passphrase is named by its Secrets Manager ARN only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Input {
    pub id: String,
    pub name: Option<String>,
    /// `Type` as sent (`RTMP_PUSH`, `RTP_PUSH`, `SRT_CALLER`, `MEDIACONNECT`, …);
    /// see [`Input::input_type`].
    pub kind: Option<String>,
    /// `State` (`DETACHED`, `ATTACHED`, …).
    pub state: Option<String>,
    /// `MediaConnectFlows[].FlowArn`: one per pipeline (A first).
    pub flow_arns: Vec<String>,
    /// `Destinations`: one per pipeline (A first) for push inputs.
    pub destinations: Vec<InputDestination>,
    /// `SrtSettings.SrtCallerSources`: one per pipeline (A first).
    pub srt_caller_sources: Vec<SrtCallerSource>,
    /// `SecurityGroups`: input security group ids (push inputs).
    pub security_groups: Vec<String>,
}

impl Input {
    pub fn input_type(&self) -> InputType {
        InputType::from_wire(self.kind.as_deref().unwrap_or_default())
    }
}

/// One `Destinations` entry: MediaLive reports `Ip`, `Port` (a string) and
/// `Url` (`rtp://203.0.113.5:5000`, `rtmp://203.0.113.5:1935/app/instance`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputDestination {
    pub ip: Option<String>,
    pub port: Option<String>,
    pub url: Option<String>,
}

/// One `SrtCallerSources` entry: MediaLive calls the encoder at
/// `SrtListenerAddress:SrtListenerPort`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SrtCallerSource {
    pub listener_address: Option<String>,
    /// `SrtListenerPort` (a string in the API).
    pub listener_port: Option<String>,
    pub stream_id: Option<String>,
    pub minimum_latency_ms: Option<u32>,
    /// `Decryption.Algorithm` (`AES128`, `AES192`, `AES256`).
    pub decryption_algorithm: Option<String>,
    /// `Decryption.PassphraseSecretArn`: the ARN, never the passphrase.
    pub passphrase_secret_arn: Option<String>,
}

/// A MediaLive input type, as far as the agent can feed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum InputType {
    RtmpPush,
    RtpPush,
    SrtCaller,
    MediaConnect,
    /// Any other type (`URL_PULL`, `MP4_FILE`, `INPUT_DEVICE`, `UDP_PUSH`, …):
    /// nothing an output of the box can send to.
    Unsupported(String),
}

impl InputType {
    pub fn from_wire(s: &str) -> InputType {
        match s {
            "RTMP_PUSH" => InputType::RtmpPush,
            "RTP_PUSH" => InputType::RtpPush,
            "SRT_CALLER" => InputType::SrtCaller,
            "MEDIACONNECT" => InputType::MediaConnect,
            other => InputType::Unsupported(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            InputType::RtmpPush => "RTMP_PUSH",
            InputType::RtpPush => "RTP_PUSH",
            InputType::SrtCaller => "SRT_CALLER",
            InputType::MediaConnect => "MEDIACONNECT",
            InputType::Unsupported(s) => s,
        }
    }
}

impl From<InputType> for String {
    fn from(t: InputType) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A MediaLive input id: digits on AWS (`1234567`), a hex UUID on moto.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InputId(String);

impl InputId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InputId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(InputId(s))
        } else {
            Err(format!("`{s}` is not a MediaLive input id (letters and digits, e.g. \"1234567\")"))
        }
    }
}

impl From<InputId> for String {
    fn from(i: InputId) -> String {
        i.0
    }
}

impl fmt::Display for InputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A MediaLive pipeline: a standard-class input has one destination (or
/// flow, or SRT caller source) per pipeline, A first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pipeline {
    A,
    B,
}

impl Pipeline {
    /// The index of this pipeline's entry in the input's lists.
    pub fn index(self) -> usize {
        match self {
            Pipeline::A => 0,
            Pipeline::B => 1,
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pipeline::A => "A",
            Pipeline::B => "B",
        })
    }
}

/// `DescribeInputSecurityGroup`: the whitelist rules of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputSecurityGroup {
    pub id: String,
    pub cidrs: Vec<String>,
}
