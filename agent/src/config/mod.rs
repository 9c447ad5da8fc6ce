//! The agent's configuration: one TOML file, typed with serde.
//!
//! # Design
//! Every section uses `deny_unknown_fields`, so a typo is an error and not a
//! silently ignored setting; every ranged value is a validated newtype from
//! [`types`]. [`load`] turns any failure into a [`ConfigError`] that names the
//! key path and the line:column in the file, because a field technician has
//! one minute to fix it.

mod adapt;
mod input;
mod load;
mod monitor;
mod rist;
mod rtmp;
pub mod types;

use serde::{Deserialize, Serialize};

pub use adapt::{AdaptConfig, AdaptMode, OverheadPercent};
pub use input::{AudioSource, DeckLinkConnection, InputConfig};
pub use load::{from_file, from_str, from_str_unvalidated, ConfigError};
pub use monitor::{LumaMax, MonitorConfig, MonitorSeconds, SilentDbfs, ThumbnailWidth};
pub use rist::{RistAddress, RistBufferMs, RistOutputConfig};
pub use rtmp::{RtmpOutputConfig, RtmpUrl};
use types::*;

/// The default configuration file location on a box.
pub const DEFAULT_PATH: &str = "/etc/edge-agent/agent.toml";

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Identifies the box (MQTT client id, certificate CN, burnt into the
    /// test pattern).
    pub device_id: DeviceId,
    #[serde(default)]
    pub input: InputConfig,
    #[serde(default)]
    pub video: VideoConfig,
    #[serde(default)]
    pub audio: AudioConfig,
    #[serde(default)]
    pub transport_stream: TsConfig,
    /// Where the stream goes; at least one.
    pub outputs: Vec<OutputConfig>,
    /// Settings shared by every RTP output (they all carry the same packets).
    #[serde(default)]
    pub rtp: RtpConfig,
    #[serde(default)]
    pub status: StatusConfig,
    /// Fleet management over MQTT; absent = a stand-alone box. Local to the
    /// box: a desired configuration from the fleet cannot change it.
    pub fleet: Option<fleet::FleetSettings>,
    /// The front-panel board; absent = a box without one.
    pub panel: Option<PanelConfig>,
    /// AWS access for outputs named by flow ARN and for MediaLive health.
    pub aws: Option<AwsConfig>,
    /// Network-adaptive video bitrate; absent = off.
    pub adapt: Option<AdaptConfig>,
    /// Content alarms and thumbnails; absent = on with the defaults.
    #[serde(default)]
    pub monitor: MonitorConfig,
}

/// `[panel]`: the front-panel microcontroller (`hal::panel` protocol).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PanelConfig {
    /// The serial port, preferably the stable udev name
    /// (`/dev/serial/by-id/usb-…`); it may come and go.
    pub port: std::path::PathBuf,
}

fn default_width() -> Width {
    Width::try_from(1280).unwrap_or_else(|_| unreachable!())
}
fn default_height() -> Height {
    Height::try_from(720).unwrap_or_else(|_| unreachable!())
}
fn default_framerate() -> FrameRate {
    FrameRate { num: 30, den: 1 }
}

/// Video codec. HEVC where the box has a hardware encoder for it (x265 is
/// the software fallback, CPU-hungry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    #[default]
    H264,
    H265,
}

impl VideoCodec {
    pub fn hal(self) -> hal::encoder::Codec {
        match self {
            VideoCodec::H264 => hal::encoder::Codec::H264,
            VideoCodec::H265 => hal::encoder::Codec::H265,
        }
    }
}

/// Rate control. Contribution links want CBR: MediaConnect smooths to a
/// `MaxBitrate` ceiling and SRT latency budgets assume a steady rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RateControl {
    #[default]
    Cbr,
    Vbr,
}

/// x264 speed preset (software fallback only): faster presets leave CPU
/// for the outputs on a 2-core box (`docs/gstreamer.md#x264-cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum X264Preset {
    Ultrafast,
    #[default]
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
}

impl X264Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            X264Preset::Ultrafast => "ultrafast",
            X264Preset::Superfast => "superfast",
            X264Preset::Veryfast => "veryfast",
            X264Preset::Faster => "faster",
            X264Preset::Fast => "fast",
            X264Preset::Medium => "medium",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    /// The encoded picture, whatever the input delivers (it is scaled and
    /// frame-synchronised to this).
    #[serde(default = "default_width")]
    pub width: Width,
    #[serde(default = "default_height")]
    pub height: Height,
    #[serde(default = "default_framerate")]
    pub framerate: FrameRate,
    #[serde(default)]
    pub codec: VideoCodec,
    #[serde(default = "default_video_bitrate")]
    pub bitrate_kbps: VideoBitrateKbps,
    /// Distance between IDR frames; 2 s at 30 fps suits MediaLive.
    #[serde(default = "default_keyframe_interval")]
    pub keyframe_interval: KeyframeInterval,
    #[serde(default)]
    pub rate_control: RateControl,
    /// `auto` (best working encoder) or one of `va`, `nvenc`, `qsv`,
    /// `v4l2m2m`, `x264`.
    #[serde(default = "default_encoder")]
    pub encoder: EncoderChoice,
    #[serde(default)]
    pub x264_preset: X264Preset,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            width: default_width(),
            height: default_height(),
            framerate: default_framerate(),
            codec: VideoCodec::H264,
            bitrate_kbps: default_video_bitrate(),
            keyframe_interval: default_keyframe_interval(),
            rate_control: RateControl::Cbr,
            encoder: default_encoder(),
            x264_preset: X264Preset::default(),
        }
    }
}

fn default_video_bitrate() -> VideoBitrateKbps {
    VideoBitrateKbps::try_from(2500).unwrap_or_else(|_| unreachable!())
}
fn default_keyframe_interval() -> KeyframeInterval {
    KeyframeInterval::try_from(60).unwrap_or_else(|_| unreachable!())
}
fn default_encoder() -> EncoderChoice {
    EncoderChoice(hal::encoder::EncoderRequest::Auto)
}

/// `video.encoder`: `auto` or a named encoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct EncoderChoice(pub hal::encoder::EncoderRequest);

impl TryFrom<String> for EncoderChoice {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        use hal::encoder::{EncoderKind, EncoderRequest};
        if s == "auto" {
            return Ok(EncoderChoice(EncoderRequest::Auto));
        }
        EncoderKind::from_name(&s)
            .map(|k| EncoderChoice(EncoderRequest::Force(k)))
            .ok_or_else(|| format!("unknown encoder `{s}`: use auto, va, nvenc, qsv, v4l2m2m, x264 or x265"))
    }
}

impl From<EncoderChoice> for String {
    fn from(c: EncoderChoice) -> String {
        match c.0 {
            hal::encoder::EncoderRequest::Auto => "auto".to_owned(),
            hal::encoder::EncoderRequest::Force(k) => k.name().to_owned(),
        }
    }
}

/// Audio: AAC-LC, 48 kHz stereo (what MediaLive expects from a contribution
/// feed).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    #[serde(default)]
    pub codec: AudioCodec,
    #[serde(default = "default_audio_bitrate")]
    pub bitrate_kbps: AudioBitrateKbps,
    #[serde(default = "default_sample_rate")]
    pub sample_rate: SampleRate,
    #[serde(default = "default_channels")]
    pub channels: Channels,
    #[serde(default)]
    pub source: AudioSource,
    /// ALSA capture device for `source = "alsa"` (`hw:1,0`, `plughw:CARD=HDMI`).
    #[serde(default)]
    pub alsa_device: Option<String>,
    /// Line-up tone frequency for `source = "tone"` and the test pattern.
    #[serde(default = "input::default_tone")]
    pub tone_hz: ToneHz,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            codec: AudioCodec::Aac,
            bitrate_kbps: default_audio_bitrate(),
            sample_rate: default_sample_rate(),
            channels: default_channels(),
            source: AudioSource::Auto,
            alsa_device: None,
            tone_hz: input::default_tone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    #[default]
    Aac,
}

/// Only 48 kHz: the broadcast rate, and the one MediaLive resamples least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct SampleRate(u32);

impl SampleRate {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for SampleRate {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v == 48_000 {
            Ok(SampleRate(48_000))
        } else {
            Err(format!("sample_rate {v} is not supported: use 48000"))
        }
    }
}

impl From<SampleRate> for u32 {
    fn from(s: SampleRate) -> u32 {
        s.0
    }
}

/// Stereo only for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Channels(u32);

impl Channels {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Channels {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if v == 2 {
            Ok(Channels(2))
        } else {
            Err(format!("channels {v} is not supported: use 2 (stereo)"))
        }
    }
}

impl From<Channels> for u32 {
    fn from(c: Channels) -> u32 {
        c.0
    }
}

fn default_audio_bitrate() -> AudioBitrateKbps {
    AudioBitrateKbps::try_from(128).unwrap_or_else(|_| unreachable!())
}
fn default_sample_rate() -> SampleRate {
    SampleRate(48_000)
}
fn default_channels() -> Channels {
    Channels(2)
}

/// Transport stream layout. The defaults follow MediaLive's conventions: PMT
/// 480 and video 481 as in its TS output defaults, audio 256 as MediaLive
/// channel configurations commonly select for contribution feeds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TsConfig {
    #[serde(default = "default_program")]
    pub program_number: ProgramNumber,
    #[serde(default = "default_pmt_pid")]
    pub pmt_pid: Pid,
    #[serde(default = "default_video_pid")]
    pub video_pid: Pid,
    #[serde(default = "default_audio_pid")]
    pub audio_pid: Pid,
}

impl Default for TsConfig {
    fn default() -> Self {
        TsConfig {
            program_number: default_program(),
            pmt_pid: default_pmt_pid(),
            video_pid: default_video_pid(),
            audio_pid: default_audio_pid(),
        }
    }
}

fn default_program() -> ProgramNumber {
    ProgramNumber::try_from(1).unwrap_or_else(|_| unreachable!())
}
fn default_pmt_pid() -> Pid {
    Pid::try_from(480).unwrap_or_else(|_| unreachable!())
}
fn default_video_pid() -> Pid {
    Pid::try_from(481).unwrap_or_else(|_| unreachable!())
}
fn default_audio_pid() -> Pid {
    Pid::try_from(256).unwrap_or_else(|_| unreachable!())
}

/// One named destination for the transport stream, selected by
/// `kind = "..."`. (Each variant carries `name` and `enabled` itself because
/// serde cannot combine `flatten` with `deny_unknown_fields`.)
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OutputConfig {
    /// SRT caller to an `srt-listener` MediaConnect source, or SRT
    /// listener for an `srt-caller` source or MediaLive `SRT_CALLER` input.
    Srt(SrtOutputConfig),
    /// Plain RTP (MP2T, RFC 2250) to an `rtp` source.
    Rtp(RtpOutputConfig),
    /// RTP with SMPTE 2022-1 FEC to an `rtp-fec` source (FEC on port+2/+4).
    RtpFec(RtpFecOutputConfig),
    /// RTMP(S) push of H.264 + AAC in FLV to a MediaLive `RTMP_PUSH` input.
    Rtmp(RtmpOutputConfig),
    /// RIST simple profile (RTP on port P, RTCP on P+1) to a `rist` source.
    Rist(RistOutputConfig),
}

impl OutputConfig {
    pub fn name(&self) -> &OutputName {
        match self {
            OutputConfig::Srt(s) => &s.name,
            OutputConfig::Rtp(r) => &r.name,
            OutputConfig::RtpFec(r) => &r.name,
            OutputConfig::Rtmp(r) => &r.name,
            OutputConfig::Rist(r) => &r.name,
        }
    }

    /// Where the output sends: a fixed address or a flow to resolve.
    pub fn target(&self) -> OutputTarget<'_> {
        // A fixed address only: no flow or input resolves to a RIST source yet.
        if let OutputConfig::Rist(o) = self {
            return OutputTarget {
                address: Some(o.address.host_port()),
                flow_arn: None,
                medialive_input_id: None,
                pipeline: None,
                region: None,
                flow_source: None,
                start_flow_if_standby: false,
                manage_whitelist: false,
            };
        }
        let (address, flow_arn, region, source, start, whitelist) = match self {
            OutputConfig::Srt(o) => (&o.address, &o.flow_arn, &o.region, &o.flow_source, o.start_flow_if_standby, o.manage_whitelist),
            OutputConfig::Rtp(o) => (&o.address, &o.flow_arn, &o.region, &o.flow_source, o.start_flow_if_standby, o.manage_whitelist),
            OutputConfig::RtpFec(o) => {
                (&o.address, &o.flow_arn, &o.region, &o.flow_source, o.start_flow_if_standby, o.manage_whitelist)
            }
            // Pushes to its `url` or an input's, never to an address or a flow.
            OutputConfig::Rtmp(o) => (&None, &None, &o.region, &None, false, o.manage_whitelist),
            OutputConfig::Rist(_) => (&None, &None, &None, &None, false, false),
        };
        let (medialive_input_id, pipeline) = match self {
            OutputConfig::Srt(o) => (o.medialive_input_id.as_ref(), o.pipeline),
            OutputConfig::Rtp(o) => (o.medialive_input_id.as_ref(), o.pipeline),
            OutputConfig::RtpFec(o) => (o.medialive_input_id.as_ref(), o.pipeline),
            OutputConfig::Rtmp(o) => (o.medialive_input_id.as_ref(), o.pipeline),
            OutputConfig::Rist(_) => (None, None),
        };
        OutputTarget {
            medialive_input_id,
            pipeline,
            address: address.as_ref(),
            flow_arn: flow_arn.as_ref(),
            region: region.as_ref(),
            flow_source: source.as_ref(),
            start_flow_if_standby: start,
            manage_whitelist: whitelist,
        }
    }

    /// The output kind as the cloud resolver knows it; `None` for kinds no
    /// flow can feed (RTMP pushes to its URL).
    pub fn cloud_kind(&self) -> Option<edge_cloud::OutputKind> {
        match self {
            OutputConfig::Srt(_) => Some(edge_cloud::OutputKind::Srt),
            OutputConfig::Rtp(_) => Some(edge_cloud::OutputKind::Rtp),
            OutputConfig::RtpFec(_) => Some(edge_cloud::OutputKind::RtpFec),
            OutputConfig::Rtmp(_) | OutputConfig::Rist(_) => None,
        }
    }

    /// A disabled output keeps its settings but sends nothing.
    pub fn enabled(&self) -> bool {
        match self {
            OutputConfig::Srt(s) => s.enabled,
            OutputConfig::Rtp(r) => r.enabled,
            OutputConfig::RtpFec(r) => r.enabled,
            OutputConfig::Rtmp(r) => r.enabled,
            OutputConfig::Rist(r) => r.enabled,
        }
    }
}

/// Most outputs one configuration may name (file or desired config). Each
/// is a live sender with its own thread, socket and share of a venue
/// uplink that carries a handful at most; without a cap a desired config
/// could make the box stream to any number of hosts.
pub const MAX_OUTPUTS: usize = 8;

/// The destination fields every output kind shares (see [`OutputConfig::target`]).
#[derive(Debug, Clone, Copy)]
pub struct OutputTarget<'a> {
    pub address: Option<&'a HostPort>,
    pub flow_arn: Option<&'a FlowArn>,
    /// A MediaLive input and its pipeline (`docs/medialive-inputs.md`).
    pub medialive_input_id: Option<&'a edge_cloud::InputId>,
    pub pipeline: Option<edge_cloud::Pipeline>,
    pub region: Option<&'a AwsRegion>,
    pub flow_source: Option<&'a FlowSourceName>,
    pub start_flow_if_standby: bool,
    pub manage_whitelist: bool,
}

/// `[aws]`: how to reach MediaConnect and MediaLive. Credentials come from
/// the SDK's default chain or the named shared-credentials file; the file's
/// content is never read into the configuration, logged or reported.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub region: Option<AwsRegion>,
    /// A shared-credentials file (INI, `[default]` or `profile`).
    pub credentials_file: Option<std::path::PathBuf>,
    pub profile: Option<String>,
    /// Endpoint override, e.g. a local emulator (`http://127.0.0.1:5055`).
    pub endpoint_url: Option<EndpointUrl>,
    /// The box's public address, for `manage_whitelist` (as `/32`).
    pub public_ip: Option<std::net::IpAddr>,
    /// MediaLive channel fed by this box's flows: state and active input in
    /// telemetry, `channel.start` / `channel.stop` commands.
    pub channel_id: Option<edge_cloud::ChannelId>,
    /// Seconds between health polls and destination refreshes (10..=3600).
    #[serde(default = "default_aws_poll")]
    pub poll_interval_s: AwsPollS,
}

fn default_aws_poll() -> AwsPollS {
    AwsPollS::try_from(30).unwrap_or_else(|_| unreachable!())
}

fn yes() -> bool {
    true
}

/// Which side of an SRT output dials (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SrtMode {
    /// The box calls `address` or a flow's `srt-listener` source.
    #[default]
    Caller,
    /// The box waits on `listen` for one caller: MediaLive's `SRT_CALLER`
    /// input, MediaConnect's `srt-caller` source (`docs/srt.md#listener-mode`).
    Listener,
    /// The box and a peer encoder/decoder both bind a known port and call
    /// each other (`bind` here, `address` there): for two ends behind
    /// firewalls that let outbound UDP out (`docs/srt.md#rendezvous-mode`).
    Rendezvous,
}

impl SrtMode {
    fn is_caller(&self) -> bool {
        *self == SrtMode::Caller
    }
}

/// SRT output settings (`docs/srt.md#caller-settings`,
/// `docs/srt.md#listener-mode`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SrtOutputConfig {
    pub name: OutputName,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `caller` (default), `listener` or `rendezvous`. Left out of a written
    /// configuration when `caller`, so existing documents stay as they are.
    #[serde(default, skip_serializing_if = "SrtMode::is_caller")]
    pub mode: SrtMode,
    /// Listener mode only: the address of this box and the port callers
    /// dial (`0.0.0.0:9001` for every interface).
    pub listen: Option<ListenAddr>,
    /// The listener to call: the flow source's ingest IP and port. Give
    /// either this or `flow_arn`.
    pub address: Option<HostPort>,
    /// A MediaConnect flow to resolve the destination from (DescribeFlow)
    /// instead of `address`; needs the `aws` build feature.
    pub flow_arn: Option<FlowArn>,
    /// A MediaLive input to send to, resolved through DescribeInput,
    /// instead of `address` or `flow_arn`; with `pipeline`
    /// (`docs/medialive-inputs.md`). Needs the `aws` build feature.
    pub medialive_input_id: Option<edge_cloud::InputId>,
    /// Which pipeline of the input this output feeds: `"A"` or `"B"`. Only
    /// with `medialive_input_id`.
    pub pipeline: Option<edge_cloud::Pipeline>,
    /// Region for the flow's API calls; default `[aws] region`, then the
    /// ARN's region. Only with `flow_arn`.
    pub region: Option<AwsRegion>,
    /// Which source of a two-source flow; default the one whose protocol
    /// fits. Only with `flow_arn`.
    pub flow_source: Option<FlowSourceName>,
    /// StartFlow when the flow waits in STANDBY. Only with `flow_arn`.
    #[serde(default)]
    pub start_flow_if_standby: bool,
    /// Keep the source's whitelist CIDR at the box's public address
    /// (`[aws] public_ip`, required). Only with `flow_arn`.
    #[serde(default)]
    pub manage_whitelist: bool,
    /// Receiver buffer latency; the larger of both sides wins in the handshake.
    #[serde(default = "default_latency")]
    pub latency_ms: LatencyMs,
    /// Enables AES encryption; MediaConnect keeps it in Secrets Manager.
    pub passphrase: Option<Passphrase>,
    /// Key length; requires `passphrase`. Default 16 (AES-128).
    pub pbkeylen: Option<PbKeyLen>,
    pub stream_id: Option<StreamId>,
    /// Local address (and optionally port) to send from, e.g. to pin an
    /// uplink. Rendezvous: required, with the port the peer calls.
    pub bind: Option<BindAddr>,
}

impl SrtOutputConfig {
    /// The address to listen on, for a listener.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        match self.mode {
            SrtMode::Listener => self.listen.map(|l| l.addr()),
            SrtMode::Caller | SrtMode::Rendezvous => None,
        }
    }

    /// The keys each mode takes: a listener has `listen` and no
    /// destination; a caller has no `listen`; a rendezvous output has an
    /// `address` and a `bind` with a port. Key path and reason of the
    /// first violation, for output `i`.
    fn validate_mode(&self, i: usize) -> Result<(), (String, String)> {
        match self.mode {
            SrtMode::Caller | SrtMode::Rendezvous if self.listen.is_some() => {
                Err((format!("outputs[{i}].listen"), "applies only to mode = \"listener\"".into()))
            }
            SrtMode::Caller => Ok(()),
            SrtMode::Rendezvous => {
                // MediaConnect and MediaLive offer no rendezvous: the peer is
                // an encoder or decoder given by address.
                let cloud = [("flow_arn", self.flow_arn.is_some()), ("medialive_input_id", self.medialive_input_id.is_some())];
                if let Some((key, _)) = cloud.iter().find(|(_, set)| *set) {
                    return Err((
                        format!("outputs[{i}].{key}"),
                        "applies only to mode = \"caller\": a rendezvous peer is given by address".into(),
                    ));
                }
                if self.address.is_none() {
                    return Err((
                        format!("outputs[{i}].address"),
                        "missing: mode = \"rendezvous\" needs address = \"host:port\" (the peer's bound port)".into(),
                    ));
                }
                match self.bind {
                    Some(b) if b.addr().port() != 0 => Ok(()),
                    Some(_) => Err((
                        format!("outputs[{i}].bind"),
                        "mode = \"rendezvous\" needs a fixed port: the peer calls it (port 0 is nowhere it can find)".into(),
                    )),
                    None => Err((
                        format!("outputs[{i}].bind"),
                        "missing: mode = \"rendezvous\" needs bind = \"ip:port\" (the port the peer calls)".into(),
                    )),
                }
            }
            SrtMode::Listener => {
                let caller_only = [
                    ("address", self.address.is_some()),
                    ("flow_arn", self.flow_arn.is_some()),
                    // A listener fed to a MediaLive SRT_CALLER input may
                    // name the region of its input.
                    ("region", self.region.is_some() && self.medialive_input_id.is_none()),
                    ("flow_source", self.flow_source.is_some()),
                    ("start_flow_if_standby", self.start_flow_if_standby),
                    ("manage_whitelist", self.manage_whitelist),
                    ("bind", self.bind.is_some()),
                ];
                if let Some((key, _)) = caller_only.iter().find(|(_, set)| *set) {
                    return Err((
                        format!("outputs[{i}].{key}"),
                        "applies only to mode = \"caller\": a listener waits on `listen` for its caller".into(),
                    ));
                }
                if self.listen.is_none() {
                    return Err((
                        format!("outputs[{i}].listen"),
                        "missing: mode = \"listener\" needs listen = \"ip:port\" (the port callers dial)".into(),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Plain RTP output settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RtpOutputConfig {
    pub name: OutputName,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The flow source's ingest IP and port (media port P). Give
    /// either this or `flow_arn`.
    pub address: Option<HostPort>,
    /// A MediaConnect flow to resolve the destination from (DescribeFlow)
    /// instead of `address`; needs the `aws` build feature.
    pub flow_arn: Option<FlowArn>,
    /// A MediaLive input to send to, resolved through DescribeInput,
    /// instead of `address` or `flow_arn`; with `pipeline`
    /// (`docs/medialive-inputs.md`). Needs the `aws` build feature.
    pub medialive_input_id: Option<edge_cloud::InputId>,
    /// Which pipeline of the input this output feeds: `"A"` or `"B"`. Only
    /// with `medialive_input_id`.
    pub pipeline: Option<edge_cloud::Pipeline>,
    /// Region for the flow's API calls; default `[aws] region`, then the
    /// ARN's region. Only with `flow_arn`.
    pub region: Option<AwsRegion>,
    /// Which source of a two-source flow; default the one whose protocol
    /// fits. Only with `flow_arn`.
    pub flow_source: Option<FlowSourceName>,
    /// StartFlow when the flow waits in STANDBY. Only with `flow_arn`.
    #[serde(default)]
    pub start_flow_if_standby: bool,
    /// Keep the source's whitelist CIDR at the box's public address
    /// (`[aws] public_ip`, required). Only with `flow_arn`.
    #[serde(default)]
    pub manage_whitelist: bool,
    /// Local address to send from (pins the uplink).
    pub bind: Option<BindAddr>,
    /// DiffServ code point for the IP header (e.g. 34 = AF41, 46 = EF), so
    /// networks that honour it prioritise the stream.
    pub dscp: Option<Dscp>,
    /// Who spaces the packets out (`docs/fec.md#batched-kernel-paced-sending`).
    #[serde(default)]
    pub pacing: PacingConfig,
}

/// RTP with SMPTE 2022-1 FEC. The FEC geometry is L columns × D rows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RtpFecOutputConfig {
    pub name: OutputName,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The listener to call: the flow source's ingest IP and port. Give
    /// either this or `flow_arn`.
    pub address: Option<HostPort>,
    /// A MediaConnect flow to resolve the destination from (DescribeFlow)
    /// instead of `address`; needs the `aws` build feature.
    pub flow_arn: Option<FlowArn>,
    /// A MediaLive input to send to, resolved through DescribeInput,
    /// instead of `address` or `flow_arn`; with `pipeline`
    /// (`docs/medialive-inputs.md`). Needs the `aws` build feature.
    pub medialive_input_id: Option<edge_cloud::InputId>,
    /// Which pipeline of the input this output feeds: `"A"` or `"B"`. Only
    /// with `medialive_input_id`.
    pub pipeline: Option<edge_cloud::Pipeline>,
    /// Region for the flow's API calls; default `[aws] region`, then the
    /// ARN's region. Only with `flow_arn`.
    pub region: Option<AwsRegion>,
    /// Which source of a two-source flow; default the one whose protocol
    /// fits. Only with `flow_arn`.
    pub flow_source: Option<FlowSourceName>,
    /// StartFlow when the flow waits in STANDBY. Only with `flow_arn`.
    #[serde(default)]
    pub start_flow_if_standby: bool,
    /// Keep the source's whitelist CIDR at the box's public address
    /// (`[aws] public_ip`, required). Only with `flow_arn`.
    #[serde(default)]
    pub manage_whitelist: bool,
    pub bind: Option<BindAddr>,
    pub dscp: Option<Dscp>,
    #[serde(default)]
    pub pacing: PacingConfig,
    /// L: columns, i.e. packets per row (4..=20).
    pub fec_columns: u8,
    /// D: rows, i.e. packets per column (4..=20); L×D ≤ 100.
    pub fec_rows: u8,
    /// `column` (protects bursts up to L) or `column-and-row` (also single
    /// losses per row; costs 1/L more bandwidth).
    #[serde(default)]
    pub fec_mode: FecModeConfig,
}

impl RtpFecOutputConfig {
    /// The plain RTP part of this output.
    pub fn rtp(&self) -> RtpOutputConfig {
        RtpOutputConfig {
            name: self.name.clone(),
            enabled: self.enabled,
            address: self.address.clone(),
            flow_arn: self.flow_arn.clone(),
            medialive_input_id: self.medialive_input_id.clone(),
            pipeline: self.pipeline,
            region: self.region.clone(),
            flow_source: self.flow_source.clone(),
            start_flow_if_standby: self.start_flow_if_standby,
            manage_whitelist: self.manage_whitelist,
            bind: self.bind,
            dscp: self.dscp,
            pacing: self.pacing,
        }
    }

    /// The validated matrix (checked once in [`AgentConfig::validate`]).
    pub fn matrix(&self) -> Result<rtp_fec::FecMatrix, rtp_fec::FecError> {
        rtp_fec::FecMatrix::new(self.fec_columns, self.fec_rows)
    }
}

/// Who paces an RTP output's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PacingConfig {
    /// The kernel (fq at `SO_MAX_PACING_RATE`) where the egress interface's
    /// root qdisc is fq, the output's own pacer elsewhere.
    #[default]
    Auto,
    /// Always the output's own pacer.
    Userspace,
    /// Always the kernel, even where the qdisc found is not fq (for an
    /// egress the detection cannot see through). Without fq the packets
    /// leave unpaced; the output says so in its log.
    Kernel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FecModeConfig {
    /// Column FEC only: the safest with every receiver.
    #[default]
    Column,
    ColumnAndRow,
}

impl From<FecModeConfig> for rtp_fec::FecMode {
    fn from(m: FecModeConfig) -> Self {
        match m {
            FecModeConfig::Column => rtp_fec::FecMode::ColumnOnly,
            FecModeConfig::ColumnAndRow => rtp_fec::FecMode::ColumnAndRow,
        }
    }
}

/// Shared RTP settings: every RTP output carries the very same packets
/// (sequence numbers, timestamps, SSRC), so two of them form a SMPTE 2022-7
/// pair that a MediaConnect flow in MERGE mode can combine.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RtpConfig {
    /// RTP SSRC; default derived from `device_id`, so it is stable across
    /// restarts and distinct between boxes.
    pub ssrc: Option<u32>,
}

impl AgentConfig {
    /// The SSRC all RTP outputs use.
    pub fn rtp_ssrc(&self) -> u32 {
        self.rtp.ssrc.unwrap_or_else(|| {
            // FNV-1a: tiny, stable across Rust versions (unlike DefaultHasher).
            let h = self.device_id.as_str().bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
            h.max(1)
        })
    }

    /// Expected multiplex rate in bit/s: video + audio + TS overhead (PES
    /// headers, PCR/PSI, 1316-byte alignment stuffing: measured ≈ 24 % at
    /// 2.7 Mbit/s with x264 nal-hrd=cbr),
    /// used to pace RTP outputs.
    pub fn nominal_ts_bps(&self) -> u64 {
        let es = u64::from(self.video.bitrate_kbps.get()) + u64::from(self.audio.bitrate_kbps.get());
        es * 1000 * 125 / 100
    }
}

fn default_latency() -> LatencyMs {
    LatencyMs::try_from(2000).unwrap_or_else(|_| unreachable!())
}

/// The periodic one-line status per output.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Seconds between status lines (1..=3600).
    #[serde(default = "default_status_interval")]
    pub interval_s: StatusIntervalS,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig { interval_s: default_status_interval() }
    }
}

fn default_status_interval() -> StatusIntervalS {
    StatusIntervalS::try_from(5).unwrap_or_else(|_| unreachable!())
}

impl AgentConfig {
    /// The input and audio source must fit together.
    fn validate_input(&self) -> Result<(), (String, String)> {
        if let InputConfig::V4l2 { device, .. } = &self.input {
            let path_like = device.starts_with("/dev/") && device.len() > 5;
            let id_like =
                !device.is_empty() && device.len() <= 128 && device.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
            if !(path_like || id_like) {
                return Err((
                    "input.device".into(),
                    format!("`{device}` is neither a /dev path nor a device id from `edge-agent probe`"),
                ));
            }
        }
        match self.audio.source {
            AudioSource::Embedded if !matches!(self.input, InputConfig::Decklink { .. } | InputConfig::Auto { .. }) => {
                Err(("audio.source".into(), format!("embedded audio needs a decklink or auto input, not {}", self.input.kind_name())))
            }
            AudioSource::Alsa if self.audio.alsa_device.as_deref().is_none_or(str::is_empty) => {
                Err(("audio.alsa_device".into(), "source = \"alsa\" needs alsa_device (e.g. \"hw:1,0\")".into()))
            }
            _ => Ok(()),
        }
    }

    /// Cross-field rules that no single type can express. Returns the key
    /// path and the reason of the first violation.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.outputs.is_empty() {
            return Err(("outputs".into(), "at least one output is required".into()));
        }
        if self.outputs.len() > MAX_OUTPUTS {
            return Err(("outputs".into(), format!("at most {MAX_OUTPUTS} outputs, got {}", self.outputs.len())));
        }
        if let Some(f) = &self.fleet {
            if f.device_id != self.device_id.as_str() {
                return Err(("fleet.device_id".into(), format!("must equal device_id `{}`", self.device_id)));
            }
            if f.tls.is_none() && !f.insecure_plaintext {
                return Err(("fleet.tls".into(), "mutual TLS is required (insecure_plaintext is for local development)".into()));
            }
        }
        if !self.video.width.get().is_multiple_of(2) || !self.video.height.get().is_multiple_of(2) {
            return Err(("video.width".into(), "width and height must be even (4:2:0 chroma)".into()));
        }
        self.validate_input()?;
        if let Some(a) = &self.adapt {
            a.validate(&self.video)?;
        }
        let ts = &self.transport_stream;
        let pids = [("pmt_pid", ts.pmt_pid), ("video_pid", ts.video_pid), ("audio_pid", ts.audio_pid)];
        for (i, (name, pid)) in pids.iter().enumerate() {
            if let Some((other, _)) = pids[..i].iter().find(|(_, p)| p == pid) {
                return Err((format!("transport_stream.{other}"), format!("PID {} is used by both {other} and {name}", pid.get())));
            }
        }
        for (i, out) in self.outputs.iter().enumerate() {
            if self.outputs[..i].iter().any(|o| o.name() == out.name()) {
                return Err((format!("outputs[{i}].name"), format!("duplicate output name `{}`", out.name())));
            }
            let listener = match out {
                OutputConfig::Srt(srt) => {
                    srt.validate_mode(i)?;
                    srt.mode == SrtMode::Listener
                }
                // Pushes to a URL instead (`validate_rtmp`).
                OutputConfig::Rtmp(_) => true,
                _ => false,
            };
            let t = out.target();
            if t.medialive_input_id.is_some() {
                let key = format!("outputs[{i}].medialive_input_id");
                if t.address.is_some() || t.flow_arn.is_some() {
                    return Err((key, "give one of address, flow_arn or medialive_input_id".into()));
                }
                if t.pipeline.is_none() {
                    return Err((key, "needs pipeline = \"A\" or \"B\" (which of the input's destinations)".into()));
                }
                if t.manage_whitelist && self.aws.as_ref().and_then(|a| a.public_ip).is_none() {
                    return Err((format!("outputs[{i}].manage_whitelist"), "needs [aws] public_ip (the box's public address)".into()));
                }
            } else if t.pipeline.is_some() {
                return Err((format!("outputs[{i}].pipeline"), "applies only to an output with medialive_input_id".into()));
            }
            match (t.address, t.flow_arn) {
                // Callers come to it: nowhere to send. An input-named
                // output is resolved through MediaLive (checked above).
                (None, None) if listener || t.medialive_input_id.is_some() => {}
                (Some(_), Some(_)) => {
                    return Err((format!("outputs[{i}].flow_arn"), "give either address or flow_arn, not both".into()))
                }
                (None, None) => return Err((format!("outputs[{i}].address"), "missing: give address (host:port) or flow_arn".into())),
                (Some(_), None) => {
                    let flow_only = [
                        ("region", t.region.is_some()),
                        ("flow_source", t.flow_source.is_some()),
                        ("start_flow_if_standby", t.start_flow_if_standby),
                        ("manage_whitelist", t.manage_whitelist),
                    ];
                    if let Some((key, _)) = flow_only.iter().find(|(_, set)| *set) {
                        return Err((format!("outputs[{i}].{key}"), "applies only to an output with flow_arn".into()));
                    }
                }
                (None, Some(_)) => {
                    if t.manage_whitelist && self.aws.as_ref().and_then(|a| a.public_ip).is_none() {
                        return Err((
                            format!("outputs[{i}].manage_whitelist"),
                            "needs [aws] public_ip (the box's public address)".into(),
                        ));
                    }
                }
            }
            match out {
                OutputConfig::Srt(srt) => {
                    if srt.pbkeylen.is_some() && srt.passphrase.is_none() {
                        return Err((format!("outputs[{i}].pbkeylen"), "pbkeylen needs a passphrase".into()));
                    }
                }
                // The port was checked when read (even, P+1 exists).
                OutputConfig::Rtp(_) | OutputConfig::Rist(_) => {}
                OutputConfig::Rtmp(r) => self.validate_rtmp(i, r)?,
                OutputConfig::RtpFec(fec) => {
                    if let Err(e) = fec.matrix() {
                        return Err((format!("outputs[{i}].fec_rows"), e.to_string()));
                    }
                    if fec.address.as_ref().is_some_and(|a| a.port() > 65535 - 4) {
                        return Err((format!("outputs[{i}].address"), "port+4 (row FEC) must be a valid port".into()));
                    }
                }
            }
        }
        Ok(())
    }
}
