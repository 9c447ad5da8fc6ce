//! Validated newtypes: a value of one of these types is known to be in range,
//! so the rest of the agent never re-checks ("parse, don't validate").

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Serialize};

macro_rules! ranged_u32 {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $unit:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "u32")]
        pub struct $name(u32);

        impl $name {
            pub const MIN: u32 = $min;
            pub const MAX: u32 = $max;
            /// The value, known to be within `MIN..=MAX`.
            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(v: i64) -> Result<Self, String> {
                match u32::try_from(v) {
                    Ok(v) if ($min..=$max).contains(&v) => Ok($name(v)),
                    _ => Err(format!("{v} is out of range: must be {}..={} {}", $min, $max, $unit)),
                }
            }
        }

        impl From<$name> for u32 {
            fn from(v: $name) -> u32 {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0, $unit)
            }
        }
    };
}

ranged_u32!(
    /// Video bitrate. 100 kbit/s to 100 Mbit/s: below that H.264 falls apart,
    /// above it exceeds a MediaConnect source (≤ 120 Mbit/s incl. overhead).
    VideoBitrateKbps, 100, 100_000, "kbit/s"
);
ranged_u32!(
    /// AAC bitrate for a stereo pair: 32–512 kbit/s.
    AudioBitrateKbps, 32, 512, "kbit/s"
);
ranged_u32!(
    /// SRT latency. MediaConnect accepts 100–15000 ms for `MinLatency`
    /// (`docs/mediaconnect.md#flow-sources`); 20 ms allows LAN tests.
    LatencyMs, 20, 15_000, "ms"
);
ranged_u32!(
    /// Keyframe interval in frames (1 = all-intra, 600 = 10 s at 60 fps).
    KeyframeInterval, 1, 600, "frames"
);
ranged_u32!(
    /// Picture width in pixels (even, checked separately).
    Width, 64, 7680, "px"
);
ranged_u32!(
    /// Picture height in pixels (even, checked separately).
    Height, 64, 4320, "px"
);
ranged_u32!(
    /// Seconds between status lines.
    StatusIntervalS, 1, 3600, "s"
);
ranged_u32!(
    /// Frame watchdog: how long without a frame counts as no signal.
    NoSignalMs, 100, 10_000, "ms"
);
ranged_u32!(
    /// Test tone frequency.
    ToneHz, 20, 20_000, "Hz"
);

/// DiffServ code point, 0..=63 (RFC 2474); written into the IP TOS byte
/// shifted left by two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Dscp(u8);

impl Dscp {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Dscp {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u8::try_from(v) {
            Ok(d) if d <= 63 => Ok(Dscp(d)),
            _ => Err(format!("dscp {v} is out of range: must be 0..=63")),
        }
    }
}

impl From<Dscp> for u8 {
    fn from(d: Dscp) -> u8 {
        d.0
    }
}

/// An MPEG-TS PID that may carry a PMT or an elementary stream:
/// 0x0010..=0x1FFE (ISO/IEC 13818-1 Table 2-3 reserves the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct Pid(u16);

impl Pid {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for Pid {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u16::try_from(v) {
            Ok(p) if (0x0010..=0x1FFE).contains(&p) => Ok(Pid(p)),
            _ => Err(format!("PID {v} is out of range: must be 16..=8190 (0x0010..=0x1FFE)")),
        }
    }
}

impl From<Pid> for u16 {
    fn from(p: Pid) -> u16 {
        p.0
    }
}

/// MPEG-TS program number (1..=65535; 0 is the network PID entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct ProgramNumber(u16);

impl ProgramNumber {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for ProgramNumber {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u16::try_from(v) {
            Ok(p) if p >= 1 => Ok(ProgramNumber(p)),
            _ => Err(format!("program number {v} is out of range: must be 1..=65535")),
        }
    }
}

impl From<ProgramNumber> for u16 {
    fn from(p: ProgramNumber) -> u16 {
        p.0
    }
}

/// An SRT passphrase: 10–79 characters (libsrt `SRTO_PASSPHRASE`). Never
/// printed: `Debug` and `Display` redact it, and it serialises redacted, so it
/// cannot leak into logs, telemetry or reported configuration.
///
/// A value of the wrong type is refused without quoting it either: serde's
/// own "invalid type: integer `123456789012`" would carry the secret into the
/// error, the log and the retained `config/reported` message.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl<'de> Deserialize<'de> for Passphrase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_any`, so that every value reaches the visitor below;
        // `deserialize_string` lets buffered content (internally tagged
        // outputs) format the value into the error by itself.
        let s = d.deserialize_any(SecretVisitor)?;
        Passphrase::try_from(s).map_err(serde::de::Error::custom)
    }
}

/// Accepts a string; for anything else names only the kind of value.
pub(super) struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: serde::de::Error>(kind: &str) -> Result<String, E> {
        Err(E::custom(format_args!("invalid type: {kind} (value not shown: a secret), expected a string")))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<String, E> {
        Self::refuse("boolean")
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<String, E> {
        Self::refuse("integer")
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<String, E> {
        Self::refuse("integer")
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<String, E> {
        Self::refuse("integer")
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<String, E> {
        Self::refuse("integer")
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<String, E> {
        Self::refuse("float")
    }
    fn visit_char<E: serde::de::Error>(self, v: char) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<String, E> {
        Self::refuse("bytes")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<String, E> {
        Self::refuse("none")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
        Self::refuse("unit")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Self::refuse("array")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Self::refuse("table")
    }
}

impl Passphrase {
    /// The secret itself, only for handing to libsrt.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Passphrase {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let n = s.chars().count();
        if (10..=79).contains(&n) {
            Ok(Passphrase(s))
        } else {
            Err(format!("passphrase has {n} characters: must be 10..=79"))
        }
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Serialize for Passphrase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// SRT key length in bytes: 16, 24 or 32 (AES-128/192/256, `SRTO_PBKEYLEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct PbKeyLen(u8);

impl PbKeyLen {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for PbKeyLen {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            16 => Ok(PbKeyLen(16)),
            24 => Ok(PbKeyLen(24)),
            32 => Ok(PbKeyLen(32)),
            _ => Err(format!("pbkeylen {v} is invalid: must be 16, 24 or 32 (AES-128/192/256)")),
        }
    }
}

impl From<PbKeyLen> for u8 {
    fn from(k: PbKeyLen) -> u8 {
        k.0
    }
}

/// SRT stream id: at most 512 bytes (`SRTO_STREAMID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() <= 512 {
            Ok(StreamId(s))
        } else {
            Err(format!("stream_id is {} bytes: must be at most 512", s.len()))
        }
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.0
    }
}

/// `host:port` where an output sends. Only the syntax is checked when the
/// file is read: a name is resolved each time the output connects, so DNS
/// that is down at boot is that output's error, retried and alarmed, never
/// a configuration error (which would stop the agent for good).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPort {
    text: String,
    port: u16,
    /// Set when the host is an IP literal (nothing to resolve).
    literal: Option<SocketAddr>,
}

impl HostPort {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address when the host is an IP literal.
    pub fn literal(&self) -> Option<SocketAddr> {
        self.literal
    }

    /// Resolves the name now (blocking: the system resolver's timeout);
    /// the first address wins, as `getaddrinfo` orders them.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        if let Some(a) = self.literal {
            return Ok(a);
        }
        self.text
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{}`: {e}", self.text))?
            .next()
            .ok_or_else(|| format!("`{}` resolves to no address", self.text))
    }
}

/// Whether `host` is a syntactically valid DNS name (RFC 1123 §2.1: labels
/// of letters, digits and hyphens, 1–63 characters, not starting or ending
/// with a hyphen; 253 characters in all).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl TryFrom<String> for HostPort {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("`{s}` is not host:port"));
        };
        if host.is_empty() {
            return Err(format!("`{s}` has no host"));
        }
        let Ok(port) = port.parse::<u16>() else {
            return Err(format!("`{s}` has an invalid port: must be 0..=65535"));
        };
        let ip_text = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let literal = ip_text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port));
        if literal.is_none() && !is_dns_name(host) {
            return Err(format!("`{s}`: `{host}` is neither an IP address nor a host name"));
        }
        Ok(HostPort { text: s, port, literal })
    }
}

/// `ip:port` a socket binds to: an address of this box, so an IP literal
/// (a name here would make the bind depend on DNS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BindAddr(SocketAddr);

impl BindAddr {
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

impl TryFrom<String> for BindAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse::<SocketAddr>().map(BindAddr).map_err(|_| format!("`{s}` is not ip:port (a bind address is an address of this box)"))
    }
}

impl From<BindAddr> for String {
    fn from(b: BindAddr) -> String {
        b.0.to_string()
    }
}

/// `ip:port` an SRT listener output waits on for its caller: an address of
/// this box (an IP literal, `0.0.0.0` for all) and a fixed port, since the
/// caller (MediaLive `SRT_CALLER`, MediaConnect `srt-caller`) is configured
/// with it; port 0 would listen where no caller can find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenAddr(SocketAddr);

impl ListenAddr {
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

impl TryFrom<String> for ListenAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.parse::<SocketAddr>() {
            Ok(a) if a.port() == 0 => Err(format!("`{s}`: port 0 cannot be called; give the port the caller dials")),
            Ok(a) => Ok(ListenAddr(a)),
            Err(_) => Err(format!("`{s}` is not ip:port (an address of this box, or 0.0.0.0, and the port callers dial)")),
        }
    }
}

impl From<ListenAddr> for String {
    fn from(l: ListenAddr) -> String {
        l.0.to_string()
    }
}

impl From<HostPort> for String {
    fn from(h: HostPort) -> String {
        h.text
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A video frame rate as an exact fraction. Written as `30`, `25`, `29.97`,
/// `59.94` or `"30000/1001"`; broadcast rates are kept exact (30000/1001,
/// not 29.97) so timestamps do not drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FrameRateRepr", into = "String")]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FrameRateRepr {
    Int(i64),
    Float(f64),
    Text(String),
}

impl TryFrom<FrameRateRepr> for FrameRate {
    type Error = String;
    fn try_from(r: FrameRateRepr) -> Result<Self, String> {
        let (num, den) = match r {
            FrameRateRepr::Int(n) => (n, 1),
            FrameRateRepr::Float(f) => match f {
                x if (x - 23.976).abs() < 0.01 => (24_000, 1001),
                x if (x - 29.97).abs() < 0.01 => (30_000, 1001),
                x if (x - 59.94).abs() < 0.01 => (60_000, 1001),
                // Guarded to 1..=120 with no fraction, so the cast is exact.
                #[allow(clippy::cast_possible_truncation)]
                x if x.fract() == 0.0 && (1.0..=120.0).contains(&x) => (x as i64, 1),
                x => return Err(format!("frame rate {x} is not a broadcast rate; write it as \"num/den\"")),
            },
            FrameRateRepr::Text(s) => {
                let parsed = match s.split_once('/') {
                    Some((n, d)) => n.trim().parse::<i64>().ok().zip(d.trim().parse::<i64>().ok()),
                    None => s.trim().parse::<i64>().ok().map(|n| (n, 1)),
                };
                parsed.ok_or_else(|| format!("frame rate `{s}` is not a number or num/den"))?
            }
        };
        let rate = num as f64 / den.max(1) as f64;
        match (u32::try_from(num), u32::try_from(den)) {
            (Ok(n), Ok(d)) if d > 0 && (1.0..=120.0).contains(&rate) => Ok(FrameRate { num: n, den: d }),
            _ => Err(format!("frame rate {num}/{den} is out of range: must be 1..=120 fps")),
        }
    }
}

impl From<FrameRate> for String {
    fn from(f: FrameRate) -> String {
        if f.den == 1 {
            f.num.to_string()
        } else {
            format!("{}/{}", f.num, f.den)
        }
    }
}

impl FrameRate {
    /// Frames per second as a float, for display and bitrate arithmetic.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

/// A name for an output: 1–32 characters of `[A-Za-z0-9_-]`, used in status
/// lines, telemetry keys and MQTT topics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OutputName(String);

impl OutputName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OutputName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !s.is_empty() && s.len() <= 32 && ok_chars {
            Ok(OutputName(s))
        } else {
            Err(format!("name `{s}` is invalid: use 1..=32 characters of A-Z a-z 0-9 - _"))
        }
    }
}

impl From<OutputName> for String {
    fn from(n: OutputName) -> String {
        n.0
    }
}

impl fmt::Display for OutputName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Device identifier: MQTT client id and certificate CN, so restricted to
/// characters that are safe in a topic level (no `/`, `+`, `#`).
pub type DeviceId = OutputName;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_length_limits() {
        assert!(Passphrase::try_from("123456789".to_owned()).is_err());
        assert!(Passphrase::try_from("1234567890".to_owned()).is_ok());
        assert!(Passphrase::try_from("x".repeat(79)).is_ok());
        assert!(Passphrase::try_from("x".repeat(80)).is_err());
    }

    #[test]
    fn passphrase_never_prints() {
        let p = Passphrase::try_from("correct-horse-battery-staple".to_owned()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
        assert!(!serde_json::to_string(&p).unwrap().contains("horse"));
    }

    #[test]
    fn stream_id_limit() {
        assert!(StreamId::try_from("a".repeat(512)).is_ok());
        assert!(StreamId::try_from("a".repeat(513)).is_err());
    }

    #[test]
    fn frame_rates_are_exact() {
        let r = FrameRate::try_from(FrameRateRepr::Float(29.97)).unwrap();
        assert_eq!((r.num, r.den), (30_000, 1001));
        let r = FrameRate::try_from(FrameRateRepr::Text("60000/1001".into())).unwrap();
        assert_eq!((r.num, r.den), (60_000, 1001));
        assert!(FrameRate::try_from(FrameRateRepr::Int(0)).is_err());
        assert!(FrameRate::try_from(FrameRateRepr::Int(500)).is_err());
    }

    #[test]
    fn host_port_rejects_garbage() {
        assert!(HostPort::try_from("127.0.0.1:9001".to_owned()).is_ok());
        assert!(HostPort::try_from("127.0.0.1".to_owned()).is_err());
        assert!(HostPort::try_from("127.0.0.1:99999".to_owned()).is_err());
        // A name is checked for syntax only: resolving waits for the connect.
        let named = HostPort::try_from("ingest.no-such-host.invalid:5000".to_owned()).unwrap();
        assert_eq!((named.literal(), named.port()), (None, 5000));
        // (Its resolution failing is tests/tests/dns.rs, in a namespace
        // with its own DNS: a unit test must not query the machine's.)
        assert_eq!(HostPort::try_from("[::1]:9".to_owned()).unwrap().literal(), Some("[::1]:9".parse().unwrap()));
        for bad in ["bad_host:1", "-x.example:1", "a..b:1", "x y:1"] {
            assert!(HostPort::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        assert!(BindAddr::try_from("0.0.0.0:0".to_owned()).is_ok());
        assert!(BindAddr::try_from("localhost:0".to_owned()).is_err(), "a bind address is an IP literal");
        assert!(HostPort::try_from(":80".to_owned()).is_err());
    }

    #[test]
    fn pbkeylen_values() {
        for ok in [16, 24, 32] {
            assert!(PbKeyLen::try_from(ok).is_ok());
        }
        assert!(PbKeyLen::try_from(20).is_err());
    }
}

ranged_u32!(
    /// Seconds between AWS health polls and flow destination refreshes.
    /// DescribeFlow is cheap but throttled per account; 2 s is for tests.
    AwsPollS, 2, 3600, "s"
);

/// A MediaConnect flow ARN (validated by `edge-cloud`).
pub use edge_cloud::FlowArn;

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                let check: fn(&str) -> bool = $check;
                if check(&s) {
                    Ok($name(s))
                } else {
                    Err(format!("`{}` is not {}", s.chars().take(80).collect::<String>(), $what))
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// An AWS region name such as `eu-west-1` or `us-gov-west-1`.
    AwsRegion,
    |s| {
        let parts: Vec<&str> = s.split('-').collect();
        s.len() <= 32
            && parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
            && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    },
    "an AWS region (e.g. eu-west-1)"
);

checked_string!(
    /// A flow source name (MediaConnect: printable, no `.`, ≤ 128).
    FlowSourceName,
    |s| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| !c.is_control()),
    "a flow source name (1-128 printable characters)"
);

checked_string!(
    /// An endpoint override: `http://` or `https://` with a host.
    EndpointUrl,
    |s| {
        let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
        rest.is_some_and(|r| !r.is_empty() && !r.chars().any(char::is_whitespace)) && s.len() <= 256
    },
    "an http:// or https:// endpoint URL"
);
