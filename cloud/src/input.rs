//! Resolving an output named by MediaLive input id (`medialive_input_id` and
//! `pipeline`) into where and how to send (`docs/medialive-inputs.md`).
//!
//! `DescribeInput` gives the input's type and one entry per pipeline (A
//! first) in the list that type uses; the output's own kind must fit the
//! type:
//!
//! | Input type | Output | Pipeline entry |
//! |---|---|---|
//! | `RTP_PUSH` | `rtp` or `rtp-fec` | `Destinations[i]`: send to `Ip:Port` (FEC on P+2/P+4) |
//! | `RTMP_PUSH` | `rtmp` | `Destinations[i].Url` |
//! | `SRT_CALLER` | `srt`, `mode = "listener"` | `SrtSettings.SrtCallerSources[i]`: MediaLive calls the box |
//! | `MEDIACONNECT` | `srt` (caller), `rtp`, `rtp-fec` | `MediaConnectFlows[i]`: resolved like `flow_arn` |
//!
//! Anything else is a mismatch: an error for that output only, which needs a
//! person (the input is not the box's to change). The check comes before
//! any other call, so a mismatch changes nothing.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::api::{ApiError, ChannelApi, FlowApi};
use crate::model::{FlowArn, InputId, InputType, Pipeline};
use crate::resolve::{FlowTarget, OutputKind, ResolveError, Resolved};

/// The kind of agent output naming an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputOutputKind {
    /// `kind = "srt"`, `mode = "caller"`.
    SrtCaller,
    /// `kind = "srt"`, `mode = "listener"`.
    SrtListener,
    Rtp,
    RtpFec,
    Rtmp,
}

impl InputOutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputOutputKind::SrtCaller => "srt (caller)",
            InputOutputKind::SrtListener => "srt (listener)",
            InputOutputKind::Rtp => "rtp",
            InputOutputKind::RtpFec => "rtp-fec",
            InputOutputKind::Rtmp => "rtmp",
        }
    }

    /// Whether this output can feed an input of type `t`.
    pub fn fits(self, t: &InputType) -> bool {
        use InputOutputKind as K;
        matches!(
            (t, self),
            (InputType::RtpPush, K::Rtp | K::RtpFec)
                | (InputType::RtmpPush, K::Rtmp)
                | (InputType::SrtCaller, K::SrtListener)
                | (InputType::MediaConnect, K::SrtCaller | K::Rtp | K::RtpFec)
        )
    }

    /// The flow resolver's kind, for a `MEDIACONNECT` input.
    fn flow_kind(self) -> Option<OutputKind> {
        match self {
            InputOutputKind::SrtCaller => Some(OutputKind::Srt),
            InputOutputKind::Rtp => Some(OutputKind::Rtp),
            InputOutputKind::RtpFec => Some(OutputKind::RtpFec),
            InputOutputKind::SrtListener | InputOutputKind::Rtmp => None,
        }
    }
}

/// What an output of the agent asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputTarget {
    pub id: InputId,
    pub pipeline: Pipeline,
    pub kind: InputOutputKind,
    /// SRT listener: the port the box listens on; must be the port
    /// MediaLive calls (`SrtListenerPort`).
    pub listen_port: Option<u16>,
    /// SRT: the box's configured stream id, if any.
    pub stream_id: Option<String>,
    /// SRT: whether the box has a passphrase.
    pub encrypted: bool,
    /// `MEDIACONNECT`: which source of the flow (as `flow_source`).
    pub flow_source: Option<String>,
    /// `MEDIACONNECT`: StartFlow when the flow waits in STANDBY.
    pub start_if_standby: bool,
    /// The box's public address (`[aws] public_ip`), known or not.
    pub public_ip: Option<IpAddr>,
    /// `manage_whitelist`: a flow source's whitelist is kept at
    /// `public_ip`; a push input's security groups are checked to admit it.
    pub manage_whitelist: bool,
}

/// Where the output sends, or where it is called, for one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum InputEndpoint {
    /// `RTP_PUSH`: send RTP here (an `rtp-fec` output adds P+2 and P+4).
    Send { address: SocketAddr, fec_ports: Option<(u16, u16)> },
    /// `RTMP_PUSH`: push here. The last path segment (the stream name) is
    /// masked when printed, like an RTMP output's stream key.
    Push {
        #[serde(serialize_with = "masked_url")]
        url: String,
    },
    /// `SRT_CALLER`: MediaLive calls `address:port` (the box listens on
    /// `port`). The passphrase stays in Secrets Manager: only its ARN.
    Listen {
        address: Option<String>,
        port: u16,
        stream_id: Option<String>,
        minimum_latency_ms: Option<u32>,
        decryption_algorithm: Option<String>,
        passphrase_secret_arn: Option<String>,
    },
    /// `MEDIACONNECT`: this pipeline's flow, resolved like `flow_arn`.
    Flow(Resolved),
}

impl InputEndpoint {
    /// The address an output sends to, when it sends.
    pub fn address(&self) -> Option<SocketAddr> {
        match self {
            InputEndpoint::Send { address, .. } => Some(*address),
            InputEndpoint::Flow(r) => Some(r.destination.address),
            InputEndpoint::Push { .. } | InputEndpoint::Listen { .. } => None,
        }
    }

    /// One line for `edge-agent resolve` and logs (no secret).
    pub fn describe(&self) -> String {
        match self {
            InputEndpoint::Send { address, fec_ports: Some((c, r)) } => format!("send to {address} fec {c}/{r}"),
            InputEndpoint::Send { address, fec_ports: None } => format!("send to {address}"),
            InputEndpoint::Push { url } => format!("push to {}", mask_url(url)),
            InputEndpoint::Listen { address, port, stream_id, passphrase_secret_arn, .. } => {
                let mut s = format!("MediaLive calls {}:{port}", address.as_deref().unwrap_or("(box)"));
                if let Some(id) = stream_id {
                    s.push_str(&format!(" streamid `{id}`"));
                }
                if let Some(arn) = passphrase_secret_arn {
                    s.push_str(&format!(" passphrase from {arn}"));
                }
                s
            }
            InputEndpoint::Flow(r) => {
                let d = &r.destination;
                format!("flow {} [{}] source `{}` {} at {}", d.flow_name, d.flow_status, d.source_name, d.protocol, d.address)
            }
        }
    }
}

/// `rtmp://host:1935/app/name` → `rtmp://host:1935/app/***`.
pub fn mask_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    match url[scheme_end..].rfind('/') {
        Some(i) if scheme_end + i + 1 < url.len() => format!("{}***", &url[..scheme_end + i + 1]),
        _ => url.to_owned(),
    }
}

fn masked_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_url(url))
}

/// A resolution and what it did on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputResolved {
    pub input_id: String,
    pub input_name: Option<String>,
    pub input_type: InputType,
    pub pipeline: Pipeline,
    pub endpoint: InputEndpoint,
    /// e.g. `public_ip 192.0.2.7 allowed by security group 123`.
    pub actions: Vec<String>,
}

/// Why an output named by input id could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A MediaLive call failed.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The output's kind cannot feed the input's type.
    #[error("input mismatch: a {kind} output cannot feed MediaLive input {id} of type {input_type}; it needs {needs}")]
    Mismatch { kind: &'static str, id: String, input_type: String, needs: &'static str },
    /// A type no output of the box can feed.
    #[error(
        "MediaLive input {id} is of type {input_type}, which the box cannot feed (RTP_PUSH, RTMP_PUSH, SRT_CALLER, MEDIACONNECT)"
    )]
    UnsupportedType { id: String, input_type: String },
    /// The input has no entry for the pipeline (single-pipeline input, or
    /// an endpoint that does not report it).
    #[error("MediaLive input {id} has no {what} for pipeline {pipeline} ({have})")]
    NoPipeline { id: String, pipeline: Pipeline, what: &'static str, have: String },
    /// The pipeline's entry cannot be used.
    #[error("MediaLive input {id} pipeline {pipeline}: {detail}")]
    BadDestination { id: String, pipeline: Pipeline, detail: String },
    /// An SRT_CALLER input whose settings disagree with the listener's.
    #[error("input mismatch: MediaLive input {id} pipeline {pipeline}: {detail}")]
    SrtMismatch { id: String, pipeline: Pipeline, detail: String },
    /// No security group of the input admits the box's public address.
    #[error("MediaLive input {id}: no security group admits public_ip {ip} ({groups})")]
    NotWhitelisted { id: String, ip: IpAddr, groups: String },
    /// The `MEDIACONNECT` input's flow could not be resolved.
    #[error("MediaLive input {id} pipeline {pipeline}: {source}")]
    Flow { id: String, pipeline: Pipeline, source: Box<ResolveError> },
}

impl InputError {
    /// Whether retrying soon can help (an API outage can; a wrong kind needs
    /// a person).
    pub fn is_permanent(&self) -> bool {
        match self {
            InputError::Api(_) => false,
            InputError::Flow { source, .. } => source.is_permanent(),
            _ => true,
        }
    }
}

fn needs(t: &InputType) -> &'static str {
    match t {
        InputType::RtpPush => "an rtp or rtp-fec output",
        InputType::RtmpPush => "an rtmp output",
        InputType::SrtCaller => "an srt output with mode = \"listener\" (MediaLive calls the box)",
        InputType::MediaConnect => "an srt (caller), rtp or rtp-fec output (its flows' sources decide which)",
        InputType::Unsupported(_) => "a supported input type",
    }
}

/// Describes the input and resolves the target's pipeline. `dry_run`: a
/// `MEDIACONNECT` input's flow is planned, not started or updated.
pub fn resolve_input(ml: &dyn ChannelApi, mc: &dyn FlowApi, t: &InputTarget, dry_run: bool) -> Result<InputResolved, InputError> {
    let input = ml.describe_input(t.id.as_str())?;
    let id = t.id.to_string();
    let input_type = input.input_type();
    if let InputType::Unsupported(s) = &input_type {
        return Err(InputError::UnsupportedType { id, input_type: s.clone() });
    }
    if !t.kind.fits(&input_type) {
        return Err(InputError::Mismatch { kind: t.kind.as_str(), id, input_type: input_type.to_string(), needs: needs(&input_type) });
    }
    let p = t.pipeline;
    let no_pipeline = |what: &'static str, n: usize| InputError::NoPipeline {
        id: id.clone(),
        pipeline: p,
        what,
        have: match n {
            0 => "it reports none".to_owned(),
            1 => "it reports one: a single-pipeline input has only A".to_owned(),
            n => format!("it reports {n}"),
        },
    };
    let bad = |detail: String| InputError::BadDestination { id: id.clone(), pipeline: p, detail };
    let mut actions = Vec::new();
    let endpoint = match input_type {
        InputType::RtpPush => {
            let d = input.destinations.get(p.index()).ok_or_else(|| no_pipeline("destination", input.destinations.len()))?;
            let address = push_address(d.ip.as_deref(), d.port.as_deref(), d.url.as_deref()).map_err(bad)?;
            let fec_ports = match t.kind {
                InputOutputKind::RtpFec => Some((
                    address.port().checked_add(2).ok_or_else(|| bad("P+2 overflows".into()))?,
                    address.port().checked_add(4).ok_or_else(|| bad("P+4 overflows".into()))?,
                )),
                _ => None,
            };
            check_security_groups(ml, t, &input.security_groups, &id, &mut actions)?;
            InputEndpoint::Send { address, fec_ports }
        }
        InputType::RtmpPush => {
            let d = input.destinations.get(p.index()).ok_or_else(|| no_pipeline("destination", input.destinations.len()))?;
            let url = d.url.clone().filter(|u| u.starts_with("rtmp://") || u.starts_with("rtmps://"));
            let url = url.ok_or_else(|| bad("the destination has no rtmp:// Url".into()))?;
            check_security_groups(ml, t, &input.security_groups, &id, &mut actions)?;
            InputEndpoint::Push { url }
        }
        InputType::SrtCaller => {
            let s = input
                .srt_caller_sources
                .get(p.index())
                .ok_or_else(|| no_pipeline("SRT caller source", input.srt_caller_sources.len()))?;
            let port: u16 = s
                .listener_port
                .as_deref()
                .and_then(|v| v.trim().parse().ok())
                .filter(|v| *v != 0)
                .ok_or_else(|| bad(format!("SrtListenerPort `{}` is not a port", s.listener_port.as_deref().unwrap_or(""))))?;
            let srt = |detail: String| InputError::SrtMismatch { id: id.clone(), pipeline: p, detail };
            if t.listen_port != Some(port) {
                let have = t.listen_port.map_or_else(|| "no port".to_owned(), |l| format!("port {l}"));
                return Err(srt(format!("MediaLive calls port {port}, the output listens on {have}")));
            }
            if let (Some(theirs), Some(ours)) = (&s.stream_id, &t.stream_id) {
                if theirs != ours {
                    return Err(srt(format!("MediaLive sends streamid `{theirs}`, the output admits `{ours}`")));
                }
            }
            match (&s.passphrase_secret_arn, t.encrypted) {
                (Some(arn), false) => {
                    return Err(srt(format!("the input decrypts with the passphrase in {arn}; the output has no passphrase")))
                }
                (None, true) => return Err(srt("the output has a passphrase; the input expects no encryption".into())),
                _ => {}
            }
            if let (Some(ip), Some(addr)) = (t.public_ip, s.listener_address.as_deref()) {
                if addr.parse::<IpAddr>().ok() != Some(ip) {
                    actions.push(format!("MediaLive calls {addr}, [aws] public_ip is {ip}: a forwarded port must reach the box"));
                }
            }
            InputEndpoint::Listen {
                address: s.listener_address.clone(),
                port,
                stream_id: s.stream_id.clone(),
                minimum_latency_ms: s.minimum_latency_ms,
                decryption_algorithm: s.decryption_algorithm.clone(),
                passphrase_secret_arn: s.passphrase_secret_arn.clone(),
            }
        }
        InputType::MediaConnect => {
            let arn = input.flow_arns.get(p.index()).ok_or_else(|| no_pipeline("MediaConnect flow", input.flow_arns.len()))?;
            let arn = FlowArn::try_from(arn.clone()).map_err(bad)?;
            let kind = t.kind.flow_kind().ok_or_else(|| bad("unreachable: checked by fits".into()))?;
            let whitelist = match (t.manage_whitelist, t.public_ip) {
                (true, Some(ip)) => Some(format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })),
                _ => None,
            };
            let ft = FlowTarget {
                arn,
                kind,
                source_name: t.flow_source.clone(),
                start_if_standby: t.start_if_standby,
                whitelist_cidr: whitelist,
            };
            let r = if dry_run { crate::resolve::plan(mc, &ft) } else { crate::resolve::resolve(mc, &ft) };
            InputEndpoint::Flow(r.map_err(|e| InputError::Flow { id: id.clone(), pipeline: p, source: Box::new(e) })?)
        }
        InputType::Unsupported(s) => return Err(InputError::UnsupportedType { id: id.clone(), input_type: s }),
    };
    Ok(InputResolved { input_id: id, input_name: input.name.clone(), input_type: input.input_type(), pipeline: p, endpoint, actions })
}

/// A push destination's address: `Ip` and `Port`, else the `Url`'s
/// `host:port` (an IP literal: MediaLive reports addresses, not names).
fn push_address(ip: Option<&str>, port: Option<&str>, url: Option<&str>) -> Result<SocketAddr, String> {
    if let (Some(ip), Some(port)) = (ip, port) {
        let ip: IpAddr = ip.trim().parse().map_err(|_| format!("destination Ip `{ip}` is not an IP address"))?;
        let port: u16 =
            port.trim().parse().ok().filter(|p| *p != 0).ok_or_else(|| format!("destination Port `{port}` is not a port"))?;
        return Ok(SocketAddr::new(ip, port));
    }
    let url = url.ok_or("the destination reports no Ip, Port or Url")?;
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or_default();
    hostport.parse().map_err(|_| format!("destination Url `{url}` has no ip:port"))
}

/// `manage_whitelist` on a push input: one of the input's security groups
/// must admit `public_ip`. The groups are only read: a group is shared by
/// inputs and `UpdateInputSecurityGroup` replaces every rule, so the agent
/// does not rewrite it. Without a known public address nothing is checked,
/// as for a flow's whitelist.
fn check_security_groups(
    ml: &dyn ChannelApi,
    t: &InputTarget,
    groups: &[String],
    id: &str,
    actions: &mut Vec<String>,
) -> Result<(), InputError> {
    let (true, Some(ip)) = (t.manage_whitelist, t.public_ip) else { return Ok(()) };
    if groups.is_empty() {
        actions.push("security groups not checked: the input lists none".into());
        return Ok(());
    }
    let mut seen = Vec::new();
    for g in groups {
        match ml.describe_input_security_group(g) {
            Ok(sg) => {
                if let Some(c) = sg.cidrs.iter().find(|c| cidr_contains(c, ip)) {
                    actions.push(format!("public_ip {ip} allowed by security group {g} ({c})"));
                    return Ok(());
                }
                seen.push(format!("{g}: {}", if sg.cidrs.is_empty() { "no rules".to_owned() } else { sg.cidrs.join(", ") }));
            }
            // Not readable (moto has no DescribeInputSecurityGroup, or no
            // permission): say so, and do not hold the output back.
            Err(e) => {
                actions.push(format!("security group {g} not checked: {e}"));
                return Ok(());
            }
        }
    }
    Err(InputError::NotWhitelisted { id: id.to_owned(), ip, groups: seen.join("; ") })
}

/// Whether `cidr` (`a.b.c.d/n`, IPv6 too; a bare address is /32 or /128)
/// contains `ip`. A malformed rule contains nothing.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let (addr, len) = cidr.trim().split_once('/').map_or((cidr.trim(), None), |(a, l)| (a, Some(l)));
    let Ok(net) = addr.parse::<IpAddr>() else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let Some(len) = len.map_or(Some(32), |l| l.parse::<u32>().ok().filter(|l| *l <= 32)) else { return false };
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let Some(len) = len.map_or(Some(128), |l| l.parse::<u32>().ok().filter(|l| *l <= 128)) else { return false };
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeCloud;
    use crate::model::*;

    const FLOW_A: &str = "arn:aws:mediaconnect:eu-west-1:111122223333:flow:1-a:venue-a";
    const FLOW_B: &str = "arn:aws:mediaconnect:eu-west-1:111122223333:flow:1-b:venue-b";
    const SECRET_ARN: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:srt-pw";

    fn id(s: &str) -> InputId {
        InputId::try_from(s.to_owned()).unwrap()
    }

    fn target(input: &str, pipeline: Pipeline, kind: InputOutputKind) -> InputTarget {
        InputTarget {
            id: id(input),
            pipeline,
            kind,
            listen_port: None,
            stream_id: None,
            encrypted: false,
            flow_source: None,
            start_if_standby: false,
            public_ip: None,
            manage_whitelist: false,
        }
    }

    fn dest(ip: &str, port: &str, url: &str) -> InputDestination {
        InputDestination { ip: Some(ip.into()), port: Some(port.into()), url: Some(url.into()) }
    }

    /// The four types as real MediaLive reports them, two pipelines each.
    fn fake() -> FakeCloud {
        let f = FakeCloud::default();
        f.put_input(Input {
            id: "1001".into(),
            kind: Some("RTP_PUSH".into()),
            destinations: vec![
                dest("203.0.113.5", "5000", "rtp://203.0.113.5:5000"),
                dest("203.0.113.6", "5000", "rtp://203.0.113.6:5000"),
            ],
            security_groups: vec!["77".into()],
            ..Input::default()
        });
        f.put_input(Input {
            id: "1002".into(),
            kind: Some("RTMP_PUSH".into()),
            destinations: vec![
                dest("203.0.113.5", "1935", "rtmp://203.0.113.5:1935/live/venue-a"),
                dest("203.0.113.6", "1935", "rtmp://203.0.113.6:1935/live/venue-b"),
            ],
            security_groups: vec!["77".into()],
            ..Input::default()
        });
        let caller = |port: &str| SrtCallerSource {
            listener_address: Some("198.51.100.9".into()),
            listener_port: Some(port.into()),
            stream_id: Some("venue".into()),
            minimum_latency_ms: Some(2000),
            decryption_algorithm: Some("AES128".into()),
            passphrase_secret_arn: Some(SECRET_ARN.into()),
        };
        f.put_input(Input {
            id: "1003".into(),
            kind: Some("SRT_CALLER".into()),
            srt_caller_sources: vec![caller("9001"), caller("9002")],
            ..Input::default()
        });
        f.put_input(Input {
            id: "1004".into(),
            kind: Some("MEDIACONNECT".into()),
            flow_arns: vec![FLOW_A.into(), FLOW_B.into()],
            ..Input::default()
        });
        f.put_input(Input {
            id: "1005".into(),
            kind: Some("RTP_PUSH".into()),
            destinations: vec![dest("203.0.113.5", "5000", "rtp://203.0.113.5:5000")],
            ..Input::default()
        });
        f.put_input(Input { id: "1006".into(), kind: Some("URL_PULL".into()), ..Input::default() });
        f.put_security_group(InputSecurityGroup { id: "77".into(), cidrs: vec!["192.0.2.0/24".into()] });
        for (arn, port) in [(FLOW_A, 6000), (FLOW_B, 6010)] {
            f.put_flow(Flow {
                arn: FlowArn::try_from(arn.to_owned()).unwrap(),
                name: "venue".into(),
                status: FlowStatus::Active,
                sources: vec![FlowSource {
                    name: "main".into(),
                    arn: Some(format!("{arn}:src")),
                    ingest_ip: Some("198.51.100.4".into()),
                    ingest_port: Some(port),
                    transport: Transport { protocol: Some(Protocol::RtpFec), ..Transport::default() },
                    ..FlowSource::default()
                }],
                egress_ip: None,
            });
        }
        f
    }

    fn go(f: &FakeCloud, t: &InputTarget) -> Result<InputResolved, InputError> {
        resolve_input(f, f, t, false)
    }

    #[test]
    fn rtp_push_gives_each_pipeline_its_destination() {
        let f = fake();
        let a = go(&f, &target("1001", Pipeline::A, InputOutputKind::Rtp)).unwrap();
        assert_eq!(a.endpoint, InputEndpoint::Send { address: "203.0.113.5:5000".parse().unwrap(), fec_ports: None });
        let b = go(&f, &target("1001", Pipeline::B, InputOutputKind::RtpFec)).unwrap();
        assert_eq!(b.endpoint, InputEndpoint::Send { address: "203.0.113.6:5000".parse().unwrap(), fec_ports: Some((5002, 5004)) });
        assert_eq!(b.input_type, InputType::RtpPush);
    }

    #[test]
    fn rtmp_push_gives_the_url_and_masks_the_stream_name_when_printed() {
        let f = fake();
        let b = go(&f, &target("1002", Pipeline::B, InputOutputKind::Rtmp)).unwrap();
        assert_eq!(b.endpoint, InputEndpoint::Push { url: "rtmp://203.0.113.6:1935/live/venue-b".into() });
        assert_eq!(b.endpoint.describe(), "push to rtmp://203.0.113.6:1935/live/***");
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains("venue-b"), "{json}");
    }

    #[test]
    fn srt_caller_input_checks_the_listener_against_the_inputs_settings() {
        let f = fake();
        let mut t = target("1003", Pipeline::B, InputOutputKind::SrtListener);
        t.listen_port = Some(9002);
        t.encrypted = true;
        t.stream_id = Some("venue".into());
        let r = go(&f, &t).unwrap();
        let InputEndpoint::Listen { port, stream_id, passphrase_secret_arn, .. } = &r.endpoint else { panic!("{r:?}") };
        assert_eq!((*port, stream_id.as_deref(), passphrase_secret_arn.as_deref()), (9002, Some("venue"), Some(SECRET_ARN)));
        // Pipeline A is called on 9001: a listener on 9002 never sees it.
        let e = go(&f, &InputTarget { pipeline: Pipeline::A, ..t.clone() }).unwrap_err();
        assert!(e.to_string().contains("calls port 9001, the output listens on port 9002"), "{e}");
        assert!(e.is_permanent());
        let e = go(&f, &InputTarget { encrypted: false, ..t.clone() }).unwrap_err();
        assert!(e.to_string().contains("no passphrase"), "{e}");
        let e = go(&f, &InputTarget { stream_id: Some("other".into()), ..t }).unwrap_err();
        assert!(e.to_string().contains("streamid"), "{e}");
    }

    #[test]
    fn mediaconnect_input_resolves_each_pipelines_flow() {
        let f = fake();
        let a = go(&f, &target("1004", Pipeline::A, InputOutputKind::RtpFec)).unwrap();
        assert_eq!(a.endpoint.address(), Some("198.51.100.4:6000".parse().unwrap()));
        let b = go(&f, &target("1004", Pipeline::B, InputOutputKind::Rtp)).unwrap();
        assert_eq!(b.endpoint.address(), Some("198.51.100.4:6010".parse().unwrap()));
        // The flow's source decides as for flow_arn: SRT needs srt-listener.
        let e = go(&f, &target("1004", Pipeline::A, InputOutputKind::SrtCaller)).unwrap_err();
        assert!(matches!(&e, InputError::Flow { source, .. } if matches!(**source, ResolveError::ProtocolMismatch { .. })), "{e}");
        assert!(e.is_permanent());
    }

    #[test]
    fn mismatch_names_both_sides_and_calls_nothing_else() {
        let f = fake();
        let e = go(&f, &target("1001", Pipeline::A, InputOutputKind::SrtCaller)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("srt (caller)") && msg.contains("RTP_PUSH") && msg.contains("rtp or rtp-fec"), "{msg}");
        assert!(e.is_permanent());
        for (input, kind) in [
            ("1003", InputOutputKind::SrtCaller),
            ("1003", InputOutputKind::Rtp),
            ("1002", InputOutputKind::RtpFec),
            ("1001", InputOutputKind::Rtmp),
            ("1004", InputOutputKind::SrtListener),
            ("1004", InputOutputKind::Rtmp),
        ] {
            assert!(matches!(go(&f, &target(input, Pipeline::A, kind)), Err(InputError::Mismatch { .. })), "{input} {kind:?}");
        }
        assert!(f.calls().iter().all(|c| *c == "DescribeInput"), "{:?}", f.calls());
        let e = go(&f, &target("1006", Pipeline::A, InputOutputKind::Rtp)).unwrap_err();
        assert!(matches!(e, InputError::UnsupportedType { .. }), "{e}");
    }

    #[test]
    fn single_pipeline_input_has_no_b() {
        let f = fake();
        let e = go(&f, &target("1005", Pipeline::B, InputOutputKind::Rtp)).unwrap_err();
        assert!(e.to_string().contains("single-pipeline"), "{e}");
        assert!(matches!(go(&f, &target("404", Pipeline::A, InputOutputKind::Rtp)), Err(InputError::Api(ApiError::NotFound(_)))));
    }

    #[test]
    fn security_groups_are_checked_only_with_a_known_public_ip() {
        let f = fake();
        let t = target("1001", Pipeline::A, InputOutputKind::Rtp);
        assert!(go(&f, &InputTarget { manage_whitelist: true, ..t.clone() }).unwrap().actions.is_empty());
        assert!(!f.calls().contains(&"DescribeInputSecurityGroup"));
        let inside = InputTarget { manage_whitelist: true, public_ip: Some("192.0.2.7".parse().unwrap()), ..t.clone() };
        assert!(go(&f, &inside).unwrap().actions[0].contains("allowed by security group 77"));
        let outside = InputTarget { public_ip: Some("198.51.100.1".parse().unwrap()), ..inside };
        let e = go(&f, &outside).unwrap_err();
        assert!(matches!(e, InputError::NotWhitelisted { .. }) && e.to_string().contains("192.0.2.0/24"), "{e}");
    }

    #[test]
    fn cidrs_and_push_addresses_parse_without_panicking() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains("10.0.0.0/8", ip("10.1.2.3")));
        assert!(cidr_contains("0.0.0.0/0", ip("10.1.2.3")));
        assert!(cidr_contains("192.0.2.7", ip("192.0.2.7")));
        assert!(!cidr_contains("10.0.0.0/33", ip("10.1.2.3")));
        assert!(!cidr_contains("junk", ip("10.1.2.3")));
        assert!(cidr_contains("2001:db8::/32", ip("2001:db8::1")));
        assert!(!cidr_contains("2001:db8::/32", ip("10.1.2.3")));
        assert_eq!(push_address(None, None, Some("rtp://203.0.113.5:5000")), Ok("203.0.113.5:5000".parse().unwrap()));
        assert!(push_address(Some("x"), Some("5000"), None).is_err());
        assert!(push_address(Some("203.0.113.5"), Some("99999"), None).is_err());
        assert!(push_address(None, None, Some("rtp://")).is_err());
        assert!(push_address(None, None, None).is_err());
        assert_eq!(mask_url("rtmp://h:1935/"), "rtmp://h:1935/");
        assert_eq!(mask_url("rtmp://h"), "rtmp://h");
    }
}
