//! `kind = "rist"`: RIST simple profile (VSF TR-06-1) to a receiver, what a
//! MediaConnect flow source with protocol `rist` takes (`docs/rist.md`).
//!
//! The receiver listens on an even port P for RTP and on P+1 for RTCP
//! (TR-06-1 §5.1), so [`RistAddress`] refuses an odd port or one whose P+1
//! does not exist; `buffer_ms` is how long the sender keeps packets for
//! retransmission, the sender's half of the flow source's `max_latency`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::types::{BindAddr, HostPort, OutputName};
use super::yes;

/// RIST simple-profile output settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RistOutputConfig {
    pub name: OutputName,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `host:P`: the receiver's RTP port P (even); RTCP goes to P+1.
    pub address: RistAddress,
    /// Retransmission buffer: how long a sent packet can still be resent
    /// after a NACK. Set it to the receiver's buffer (MediaConnect: the
    /// source's `max_latency`).
    #[serde(default = "default_buffer")]
    pub buffer_ms: RistBufferMs,
    /// Local address the RTP packets leave from (pins the uplink). The
    /// RTCP socket is bound by `ristsink` itself to any address
    /// (`docs/rist.md#limitations`).
    pub bind: Option<BindAddr>,
}

fn default_buffer() -> RistBufferMs {
    RistBufferMs(RistBufferMs::DEFAULT)
}

/// A RIST receiver's address: a [`HostPort`] whose port P is even and not
/// 0, so that P+1 (RTCP) is a port too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RistAddress(HostPort);

impl RistAddress {
    pub fn host_port(&self) -> &HostPort {
        &self.0
    }

    /// The RTP port P.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// The host part, without brackets around an IPv6 literal (as
    /// `ristsink`'s `address` property takes it).
    pub fn host(&self) -> String {
        let text = self.0.to_string();
        let host = text.rsplit_once(':').map_or(text.as_str(), |(h, _)| h);
        host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).to_owned()
    }
}

impl TryFrom<String> for RistAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let hp = HostPort::try_from(s)?;
        match hp.port() {
            0 => Err(format!("`{hp}`: port 0 cannot be sent to; give the receiver's RTP port (even)")),
            p if p % 2 == 1 => Err(format!(
                "`{hp}`: RIST needs an even RTP port (TR-06-1: RTP on P, RTCP on P+1); the receiver's RTP port is {} or {}",
                p - 1,
                p.saturating_add(1)
            )),
            _ => Ok(RistAddress(hp)),
        }
    }
}

impl From<RistAddress> for String {
    fn from(a: RistAddress) -> String {
        a.0.into()
    }
}

impl fmt::Display for RistAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The sender's retransmission buffer in milliseconds: 50–15000, the range
/// MediaConnect takes for a source's `max_latency` (below 50 ms a single
/// NACK round trip on a venue uplink does not fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct RistBufferMs(u32);

impl RistBufferMs {
    pub const MIN: u32 = 50;
    pub const MAX: u32 = 15_000;
    pub const DEFAULT: u32 = 1000;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for RistBufferMs {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(v) if (Self::MIN..=Self::MAX).contains(&v) => Ok(RistBufferMs(v)),
            _ => Err(format!("{v} is out of range: must be {}..={} ms", Self::MIN, Self::MAX)),
        }
    }
}

impl From<RistBufferMs> for u32 {
    fn from(b: RistBufferMs) -> u32 {
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::invalid_for_test as invalid;

    const DOC: &str = r#"device_id = "venue-01"

[[outputs]]
name = "mc-rist"
kind = "rist"
address = "203.0.113.7:5000"
"#;

    #[test]
    fn a_rist_output_loads_with_defaults() {
        let cfg = crate::config::from_str(DOC).unwrap();
        let crate::config::OutputConfig::Rist(r) = &cfg.outputs[0] else { panic!("rist output expected") };
        assert_eq!((r.address.host(), r.address.port()), ("203.0.113.7".to_owned(), 5000));
        assert_eq!(r.buffer_ms.get(), RistBufferMs::DEFAULT);
        assert!(r.enabled && r.bind.is_none());
        assert_eq!(cfg.outputs[0].target().address.map(|a| a.port()), Some(5000));
        assert!(cfg.outputs[0].cloud_kind().is_none());
        let with = DOC.replace("5000\"", "5000\"\nbuffer_ms = 2000\nbind = \"192.0.2.1:0\"");
        let cfg = crate::config::from_str(&with).unwrap();
        let crate::config::OutputConfig::Rist(r) = &cfg.outputs[0] else { panic!("rist output expected") };
        assert_eq!((r.buffer_ms.get(), r.bind.map(|b| b.addr().to_string())), (2000, Some("192.0.2.1:0".into())));
    }

    #[test]
    fn an_odd_port_names_the_key_the_line_and_the_even_neighbours() {
        let e = invalid(&DOC.replace(":5000", ":5001"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].address", Some(6)), "{e}");
        assert!(e.message.contains("even") && e.message.contains("5000 or 5002"), "{e}");
        let e = invalid(&DOC.replace(":5000", ":0"));
        assert_eq!(e.key, "outputs[0].address");
        let e = invalid(&DOC.replace(":5000", ""));
        assert_eq!(e.key, "outputs[0].address");
    }

    #[test]
    fn the_buffer_is_range_checked_with_its_line() {
        for bad in ["49", "15001", "-1"] {
            let e = invalid(&DOC.replace("5000\"", &format!("5000\"\nbuffer_ms = {bad}")));
            assert_eq!((e.key.as_str(), e.line), ("outputs[0].buffer_ms", Some(7)), "{e}");
            assert!(e.message.contains("50..=15000"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_and_flow_fields_are_refused() {
        let e = invalid(&DOC.replace("5000\"", "5000\"\nlatency_ms = 500"));
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("latency_ms"), "{e}");
        let e = invalid(&DOC.replace("5000\"", "5000\"\nflow_arn = \"arn:aws:mediaconnect:x\""));
        assert!(e.message.contains("flow_arn"), "{e}");
    }

    #[test]
    fn the_example_loads() {
        let cfg = crate::config::from_str(include_str!("../../../examples/rist.toml")).unwrap();
        let crate::config::OutputConfig::Rist(r) = &cfg.outputs[0] else { panic!("rist output expected") };
        assert_eq!((r.address.port(), r.buffer_ms.get()), (5000, 1000));
    }

    #[test]
    fn ipv6_and_names_keep_their_host() {
        let a = RistAddress::try_from("[::1]:6000".to_owned()).unwrap();
        assert_eq!((a.host(), a.port()), ("::1".to_owned(), 6000));
        let a = RistAddress::try_from("rist.example.net:6000".to_owned()).unwrap();
        assert_eq!(a.host(), "rist.example.net");
        assert_eq!(a.to_string(), "rist.example.net:6000");
    }
}
