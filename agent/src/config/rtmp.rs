//! `kind = "rtmp"`: an RTMP (or RTMPS) push of the one encode as FLV, what
//! a MediaLive `RTMP_PUSH` input takes (`docs/rtmp.md`).
//!
//! The stream key is a secret, like an SRT passphrase: [`RtmpUrl`] prints,
//! logs and serialises itself with the key replaced by `<redacted>`, and a
//! malformed URL is refused without quoting it.
//!
//! Instead of `url`, an output may name a MediaLive `RTMP_PUSH` input and
//! one of its pipelines (`medialive_input_id` + `pipeline`,
//! `docs/medialive-inputs.md`): the URL then comes from `DescribeInput`
//! and is an [`RtmpUrl`] like a configured one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::types::{AwsRegion, OutputName, SecretVisitor};
use super::{yes, AgentConfig, AudioCodec, VideoCodec};

/// RTMP push output settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpOutputConfig {
    pub name: OutputName,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `rtmp://host[:port]/app/stream-key` (or `rtmps://`): MediaLive's
    /// input destination URL with the stream name appended. Give either
    /// this or `medialive_input_id`.
    pub url: Option<RtmpUrl>,
    /// A MediaLive `RTMP_PUSH` input to push to, its URL resolved through
    /// DescribeInput, instead of `url`; with `pipeline`
    /// (`docs/medialive-inputs.md`). Needs the `aws` build feature.
    pub medialive_input_id: Option<edge_cloud::InputId>,
    /// Which pipeline of the input this output feeds: `"A"` or `"B"`. Only
    /// with `medialive_input_id`.
    pub pipeline: Option<edge_cloud::Pipeline>,
    /// Region for the input's API calls; default `[aws] region`. Only with
    /// `medialive_input_id`.
    pub region: Option<AwsRegion>,
    /// Check that one of the input's security groups admits the box's
    /// public address (`[aws] public_ip`, required). Only with
    /// `medialive_input_id`.
    #[serde(default)]
    pub manage_whitelist: bool,
}

/// A validated RTMP URL: scheme `rtmp` or `rtmps`, a host, an optional
/// port, an application and a stream key (the last path segment, as
/// GStreamer's `rtmp2sink` splits it).
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    full: String,
    tls: bool,
    host: String,
    port: u16,
    app: String,
    key: String,
}

impl RtmpUrl {
    /// The whole URL, key included: only for handing to `rtmp2sink`.
    pub fn expose(&self) -> &str {
        &self.full
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, 1935 (RTMP) or 443 (RTMPS) when the URL has none.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `text` with the URL and the stream key replaced by `<redacted>`:
    /// for error messages that come from elsewhere (GStreamer) and might
    /// quote the location.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.full, &self.to_string());
        out = out.replace(&format!("{}/{}", self.app, self.key), &format!("{}/<redacted>", self.app));
        // A key long enough not to be an ordinary word is removed wherever
        // it appears; a very short one only where it follows the app.
        if self.key.chars().count() >= 6 {
            out = out.replace(&self.key, "<redacted>");
        }
        out
    }
}

impl TryFrom<String> for RtmpUrl {
    type Error = String;
    /// The messages never quote the URL: it holds the stream key.
    fn try_from(s: String) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("rtmp://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("rtmps://") {
            (true, r)
        } else {
            return Err("must start with rtmp:// or rtmps:// (value not shown: it holds the stream key)".into());
        };
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let (authority, path) = rest.split_once('/').ok_or("has no application and stream key: use rtmp://host:port/app/stream")?;
        if authority.contains('@') {
            return Err("user information in the URL is not supported".into());
        }
        let (host, port) = split_host_port(authority)?;
        let port = port.unwrap_or(if tls { 443 } else { 1935 });
        let (app, key) = path.rsplit_once('/').ok_or("has no stream key: use rtmp://host:port/app/stream")?;
        if app.is_empty() || app.split('/').any(str::is_empty) {
            return Err("has no application: use rtmp://host:port/app/stream".into());
        }
        if key.is_empty() {
            return Err("has no stream key: use rtmp://host:port/app/stream".into());
        }
        Ok(RtmpUrl { tls, host: host.to_owned(), port, app: app.to_owned(), key: key.to_owned(), full: s })
    }
}

/// `host`, `host:port` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or("has an unclosed `[` in the host")?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':').ok_or("has text after the IPv6 host")?)),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("has no host: use rtmp://host:port/app/stream".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("port `{p}` is not 1..=65535")),
        },
    };
    Ok((host, port))
}

impl fmt::Display for RtmpUrl {
    /// The URL with the stream key as `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{scheme}://{host}:{}/{}/<redacted>", self.port, self.app)
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpUrl({self})")
    }
}

impl<'de> Deserialize<'de> for RtmpUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = d.deserialize_any(SecretVisitor)?;
        RtmpUrl::try_from(s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RtmpUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl AgentConfig {
    /// What an RTMP output needs from the one encode: FLV to MediaLive
    /// carries H.264 and AAC (`docs/rtmp.md#what-medialive-needs`).
    /// `i` is the output's index, for the message.
    pub(super) fn validate_rtmp(&self, i: usize, r: &RtmpOutputConfig) -> Result<(), (String, String)> {
        match (&r.url, &r.medialive_input_id) {
            (Some(_), Some(_)) => {
                return Err((
                    format!("outputs[{i}].medialive_input_id"),
                    "give either url or medialive_input_id (with pipeline), not both".into(),
                ))
            }
            (None, None) => {
                return Err((
                    format!("outputs[{i}].url"),
                    "missing: give url (rtmp://host:port/app/stream) or medialive_input_id with pipeline".into(),
                ))
            }
            (Some(_), None) => {
                let input_only = [("region", r.region.is_some()), ("manage_whitelist", r.manage_whitelist)];
                if let Some((key, _)) = input_only.iter().find(|(_, set)| *set) {
                    return Err((format!("outputs[{i}].{key}"), "applies only to an output with medialive_input_id".into()));
                }
            }
            // `pipeline` and `manage_whitelist` are checked with the other
            // kinds' (`AgentConfig::validate`).
            (None, Some(_)) => {}
        }
        match self.video.codec {
            VideoCodec::H264 => {}
            VideoCodec::H265 => {
                return Err((
                    "video.codec".into(),
                    format!("outputs[{i}] is rtmp, which carries H.264 only (FLV, MediaLive RTMP_PUSH): use codec = \"h264\""),
                ))
            }
        }
        // Audio is always encoded (silence when there is no source), and
        // AAC is the only codec today; a new codec must decide here.
        match self.audio.codec {
            AudioCodec::Aac => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::invalid_for_test as invalid;

    fn url(s: &str) -> Result<RtmpUrl, String> {
        RtmpUrl::try_from(s.to_owned())
    }

    #[test]
    fn medialive_urls_parse() {
        let u = url("rtmp://203.0.113.10:1935/live/primary-key").unwrap();
        assert_eq!((u.host(), u.port(), u.app(), u.is_tls()), ("203.0.113.10", 1935, "live", false));
        assert_eq!(u.expose(), "rtmp://203.0.113.10:1935/live/primary-key");
        let s = url("rtmps://ingest.example.com/app/inst/key").unwrap();
        assert_eq!((s.port(), s.app(), s.is_tls()), (443, "app/inst", true));
        assert_eq!(url("rtmp://[::1]/live/k").unwrap().port(), 1935);
        assert_eq!(url("rtmp://[::1]:1936/live/k").unwrap().to_string(), "rtmp://[::1]:1936/live/<redacted>");
    }

    #[test]
    fn incomplete_urls_are_refused_without_the_key() {
        for (bad, why) in [
            ("http://h/live/secretkey1", "rtmp://"),
            ("rtmp://h", "application"),
            ("rtmp://h/secretkey1", "stream key"),
            ("rtmp://h/live/", "stream key"),
            ("rtmp:///live/secretkey1", "host"),
            ("rtmp://h:0/live/secretkey1", "port"),
            ("rtmp://h:99999/live/secretkey1", "port"),
            ("rtmp://h//secretkey1", "application"),
            ("rtmp://u:p@h/live/secretkey1", "user"),
            ("rtmp://h/live/secret key1", "spaces"),
        ] {
            let e = url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret"), "{bad}: {e}");
        }
    }

    const DOC: &str = r#"device_id = "venue-01"

[[outputs]]
name = "medialive-a"
kind = "rtmp"
url = "rtmp://127.0.0.1:1935/live/primary-s3cr3t"
"#;

    #[test]
    fn an_rtmp_output_loads_and_reports_without_its_key() {
        let cfg = crate::config::from_str(DOC).unwrap();
        let crate::config::OutputConfig::Rtmp(r) = &cfg.outputs[0] else { panic!("rtmp output expected") };
        assert_eq!(r.url.as_ref().map(RtmpUrl::expose), Some("rtmp://127.0.0.1:1935/live/primary-s3cr3t"));
        assert!(cfg.outputs[0].target().address.is_none());
        let reported = serde_json::to_string(&cfg).unwrap();
        assert!(!reported.contains("s3cr3t") && reported.contains("live/<redacted>"), "{reported}");
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_bad_url_names_the_key_and_hides_the_value() {
        let e = invalid(&DOC.replace("rtmp://127.0.0.1:1935/live/", "rtmp://127.0.0.1:1935/"));
        assert_eq!(e.key, "outputs[0].url");
        assert!(e.message.contains("stream key") && !e.to_string().contains("s3cr3t"), "{e}");
        let e = invalid(&DOC.replace("\"rtmp://127.0.0.1:1935/live/primary-s3cr3t\"", "12345678"));
        assert_eq!(e.key, "outputs[0].url");
        assert!(!e.to_string().contains("12345678"), "{e}");
    }

    const BY_INPUT: &str = "device_id = \"venue-01\"\n\n[aws]\npublic_ip = \"192.0.2.7\"\n\n\
                            [[outputs]]\nname = \"medialive-a\"\nkind = \"rtmp\"\n";

    #[test]
    fn an_rtmp_output_may_name_an_input_and_pipeline_instead_of_a_url() {
        let cfg = crate::config::from_str(&format!(
            "{BY_INPUT}medialive_input_id = \"1234567\"\npipeline = \"B\"\nregion = \"eu-west-1\"\nmanage_whitelist = true\n"
        ))
        .unwrap();
        let t = cfg.outputs[0].target();
        assert_eq!((t.medialive_input_id.map(|i| i.as_str()), t.pipeline), (Some("1234567"), Some(edge_cloud::Pipeline::B)));
        assert!(t.manage_whitelist && t.region.is_some() && t.address.is_none());
        let crate::config::OutputConfig::Rtmp(r) = &cfg.outputs[0] else { panic!("rtmp output expected") };
        assert!(r.url.is_none());
    }

    #[test]
    fn url_and_input_are_one_or_the_other_with_key_and_line() {
        // Both: the input's line (line 10; the url is on line 9).
        let e = invalid(&format!(
            "{BY_INPUT}url = \"rtmp://127.0.0.1:1935/live/s3cr3t\"\nmedialive_input_id = \"1234567\"\npipeline = \"A\"\n"
        ));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].medialive_input_id", Some(10)));
        assert!(e.message.contains("either url or medialive_input_id") && !e.to_string().contains("s3cr3t"), "{e}");
        // Neither.
        let e = invalid(BY_INPUT);
        assert_eq!(e.key, "outputs[0].url");
        assert!(e.message.contains("medialive_input_id"), "{e}");
        // An input without its pipeline, a pipeline without an input, a bad
        // id and a bad pipeline: the same keys and rules as srt and rtp.
        let e = invalid(&format!("{BY_INPUT}medialive_input_id = \"1234567\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].medialive_input_id", Some(9)));
        assert!(e.message.contains("pipeline"), "{e}");
        let e = invalid(&format!("{BY_INPUT}url = \"rtmp://127.0.0.1:1935/live/s3cr3t\"\npipeline = \"A\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].pipeline", Some(10)));
        let e = invalid(&format!("{BY_INPUT}medialive_input_id = \"12 34\"\npipeline = \"A\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].medialive_input_id", Some(9)));
        let e = invalid(&format!("{BY_INPUT}medialive_input_id = \"1234567\"\npipeline = \"C\"\n"));
        assert_eq!((e.key.as_str(), e.line), ("outputs[0].pipeline", Some(10)));
        // Input-only keys with a url.
        for key in ["region = \"eu-west-1\"", "manage_whitelist = true"] {
            let e = invalid(&format!("{BY_INPUT}url = \"rtmp://127.0.0.1:1935/live/s3cr3t\"\n{key}\n"));
            assert_eq!(e.line, Some(10), "{e}");
            assert!(e.message.contains("only to an output with medialive_input_id"), "{e}");
        }
        // manage_whitelist needs [aws] public_ip.
        let e = invalid(
            &format!("{BY_INPUT}medialive_input_id = \"1234567\"\npipeline = \"A\"\nmanage_whitelist = true\n")
                .replace("public_ip = \"192.0.2.7\"\n", ""),
        );
        assert_eq!(e.key, "outputs[0].manage_whitelist");
    }

    #[test]
    fn rtmp_needs_h264_video() {
        let e = invalid(&format!("{DOC}\n[video]\ncodec = \"h265\"\n"));
        assert_eq!(e.key, "video.codec");
        assert!(e.message.contains("H.264") && e.message.contains("outputs[0]"), "{e}");
    }

    #[test]
    fn the_stream_key_never_prints() {
        let u = url("rtmp://127.0.0.1:1935/live/s3cr3t-k3y").unwrap();
        assert_eq!(u.to_string(), "rtmp://127.0.0.1:1935/live/<redacted>");
        assert!(!format!("{u:?}").contains("s3cr3t"));
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"rtmp://127.0.0.1:1935/live/<redacted>\"");
        let scrubbed = u.scrub("cannot reach rtmp://127.0.0.1:1935/live/s3cr3t-k3y (live/s3cr3t-k3y, s3cr3t-k3y)");
        assert!(!scrubbed.contains("s3cr3t"), "{scrubbed}");
    }
}
