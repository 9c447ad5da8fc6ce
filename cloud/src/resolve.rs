//! Resolving an output named by flow ARN into where and how to send.
//!
//! `DescribeFlow` gives the source's ingest IP and port and its transport;
//! the protocol must fit the output's kind (`docs/mediaconnect.md#flow-sources`):
//! - an SRT output is an SRT *caller*, so it needs an `srt-listener` source;
//! - an RTP-FEC output needs an `rtp-fec` source, media on P, column FEC on
//!   P+2, row FEC on P+4 (SMPTE 2022-1 §8; the ports are reserved by the flow);
//! - a plain RTP output needs an `rtp` source (an `rtp-fec` source also takes
//!   plain RTP, so it is accepted too).

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::api::{ApiError, FlowApi};
use crate::model::{Flow, FlowArn, FlowSource, FlowStatus, Protocol, SourceUpdate};

/// The kind of agent output asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    Srt,
    Rtp,
    RtpFec,
}

impl OutputKind {
    fn fits(self, p: &Protocol) -> bool {
        matches!(
            (self, p),
            (OutputKind::Srt, Protocol::SrtListener)
                | (OutputKind::RtpFec, Protocol::RtpFec)
                | (OutputKind::Rtp, Protocol::Rtp | Protocol::RtpFec)
        )
    }

    fn needs(self) -> &'static str {
        match self {
            OutputKind::Srt => "srt-listener",
            OutputKind::Rtp => "rtp or rtp-fec",
            OutputKind::RtpFec => "rtp-fec",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Srt => "srt",
            OutputKind::Rtp => "rtp",
            OutputKind::RtpFec => "rtp-fec",
        }
    }
}

/// What an output of the agent asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTarget {
    pub arn: FlowArn,
    pub kind: OutputKind,
    /// Which source, when the flow has two (failover); default: the one
    /// whose protocol fits, else the first.
    pub source_name: Option<String>,
    /// `StartFlow` when the flow waits in STANDBY.
    pub start_if_standby: bool,
    /// Keep the source's `WhitelistCidr` at this CIDR (the box's public
    /// address, `/32`).
    pub whitelist_cidr: Option<String>,
}

/// Where and how to send, as resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub flow_arn: String,
    pub flow_name: String,
    pub flow_status: FlowStatus,
    pub source_name: String,
    pub source_arn: Option<String>,
    pub protocol: Protocol,
    /// Ingest IP and port (the media port P for RTP).
    pub address: SocketAddr,
    /// Column and row FEC ports (P+2, P+4) for `rtp-fec`.
    pub fec_ports: Option<(u16, u16)>,
    /// The flow's minimum SRT latency; the larger side wins the handshake.
    pub min_latency_ms: Option<u32>,
    pub max_bitrate_bps: Option<u64>,
    pub whitelist_cidr: Option<String>,
    /// Whether the source expects SRT encryption (passphrase in Secrets
    /// Manager; the box needs the same passphrase in its own config).
    pub encrypted: bool,
}

/// A resolution and what it did on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub destination: Destination,
    /// e.g. `started flow (was STANDBY)`, `whitelist_cidr set to …`.
    pub actions: Vec<String>,
}

/// Why an output could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The AWS call failed.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The flow has no source at all.
    #[error("flow {flow} has no source")]
    NoSource { flow: String },
    /// The named source does not exist.
    #[error("flow {flow} has no source named `{name}` (sources: {have})")]
    NoSuchSource { flow: String, name: String, have: String },
    /// The source's protocol does not fit the output's kind: an error for
    /// this output only.
    #[error("protocol mismatch: a {kind} output needs a {needs} source, but flow {flow} source `{source_name}` is {protocol}")]
    ProtocolMismatch { kind: &'static str, needs: &'static str, flow: String, source_name: String, protocol: String },
    /// The flow reports no usable ingest address.
    #[error("flow {flow} source `{source_name}` has no usable ingest address ({detail})")]
    NoIngestAddress { flow: String, source_name: String, detail: String },
    /// The flow is not started and the output may not start it.
    #[error("flow {flow} is {status}; set start_flow_if_standby = true or start it in the console")]
    NotStarted { flow: String, status: String },
}

impl ResolveError {
    /// Whether retrying soon can help (an API outage can; a wrong protocol
    /// needs a person).
    pub fn is_permanent(&self) -> bool {
        matches!(self, ResolveError::ProtocolMismatch { .. } | ResolveError::NoSuchSource { .. } | ResolveError::NoSource { .. })
    }
}

/// Picks the source for `target` and checks its protocol.
pub fn pick_source<'f>(flow: &'f Flow, target: &FlowTarget) -> Result<&'f FlowSource, ResolveError> {
    let flow_name = || flow.arn.to_string();
    let source = match &target.source_name {
        Some(name) => flow.sources.iter().find(|s| &s.name == name).ok_or_else(|| ResolveError::NoSuchSource {
            flow: flow_name(),
            name: name.clone(),
            have: flow.sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        })?,
        None => flow
            .sources
            .iter()
            .find(|s| s.transport.protocol.as_ref().is_some_and(|p| target.kind.fits(p)))
            .or_else(|| flow.sources.first())
            .ok_or_else(|| ResolveError::NoSource { flow: flow_name() })?,
    };
    match &source.transport.protocol {
        Some(p) if target.kind.fits(p) => Ok(source),
        other => Err(ResolveError::ProtocolMismatch {
            kind: target.kind.as_str(),
            needs: target.kind.needs(),
            flow: flow_name(),
            source_name: source.name.clone(),
            protocol: other.as_ref().map_or_else(|| "of unknown protocol".to_owned(), |p| p.to_string()),
        }),
    }
}

/// The destination for `target` in `flow` (no I/O).
pub fn destination(flow: &Flow, target: &FlowTarget) -> Result<Destination, ResolveError> {
    let source = pick_source(flow, target)?;
    let no_addr =
        |detail: String| ResolveError::NoIngestAddress { flow: flow.arn.to_string(), source_name: source.name.clone(), detail };
    let ip: IpAddr = source
        .ingest_ip
        .as_deref()
        .ok_or_else(|| no_addr("no IngestIp".into()))?
        .parse()
        .map_err(|_| no_addr(format!("IngestIp `{}` is not an IP address", source.ingest_ip.as_deref().unwrap_or_default())))?;
    let port = source.ingest_port.filter(|p| *p != 0).ok_or_else(|| no_addr("no IngestPort".into()))?;
    let protocol = source.transport.protocol.clone().unwrap_or(Protocol::Other(String::new()));
    let fec_ports = if protocol == Protocol::RtpFec && target.kind == OutputKind::RtpFec {
        Some((
            port.checked_add(2).ok_or_else(|| no_addr("P+2 overflows".into()))?,
            port.checked_add(4).ok_or_else(|| no_addr("P+4 overflows".into()))?,
        ))
    } else {
        None
    };
    Ok(Destination {
        flow_arn: flow.arn.to_string(),
        flow_name: flow.name.clone(),
        flow_status: flow.status.clone(),
        source_name: source.name.clone(),
        source_arn: source.arn.clone(),
        protocol,
        address: SocketAddr::new(ip, port),
        fec_ports,
        min_latency_ms: source.transport.min_latency_ms,
        max_bitrate_bps: source.transport.max_bitrate_bps,
        whitelist_cidr: source.whitelist_cidr.clone(),
        encrypted: source.decryption.is_some(),
    })
}

/// The `UpdateFlowSource` that sets the whitelist and carries every other
/// field over unchanged (read-modify-write).
pub fn whitelist_update(flow: &Flow, source: &FlowSource, cidr: &str) -> Option<SourceUpdate> {
    Some(SourceUpdate {
        flow_arn: flow.arn.to_string(),
        source_arn: source.arn.clone()?,
        description: source.description.clone(),
        ingest_port: source.ingest_port,
        whitelist_cidr: Some(cidr.to_owned()),
        transport: source.transport.clone(),
        decryption: source.decryption.clone(),
    })
}

/// Describes the flow, starts it if asked, keeps the whitelist, and returns
/// the destination. Each call costs one `DescribeFlow`, plus one call per
/// action.
pub fn resolve(api: &dyn FlowApi, target: &FlowTarget) -> Result<Resolved, ResolveError> {
    let mut actions = Vec::new();
    let mut flow = api.describe_flow(&target.arn)?;
    // Check the protocol before touching anything: a mismatch must not start
    // a flow or rewrite its source.
    pick_source(&flow, target)?;
    if flow.status == FlowStatus::Standby {
        if !target.start_if_standby {
            return Err(ResolveError::NotStarted { flow: flow.arn.to_string(), status: flow.status.to_string() });
        }
        let now = api.start_flow(&target.arn)?;
        actions.push(format!("started flow (was STANDBY, now {now})"));
        flow.status = now;
    }
    if let Some(cidr) = &target.whitelist_cidr {
        let source = pick_source(&flow, target)?;
        if source.whitelist_cidr.as_deref() != Some(cidr.as_str()) {
            match whitelist_update(&flow, source, cidr) {
                Some(update) => {
                    api.update_flow_source(&update)?;
                    actions.push(format!("whitelist_cidr {} -> {cidr}", source.whitelist_cidr.as_deref().unwrap_or("(none)")));
                    // Read back: resolve against what the flow now says.
                    let status = flow.status.clone();
                    flow = api.describe_flow(&target.arn)?;
                    if flow.status == FlowStatus::Standby {
                        flow.status = status;
                    }
                }
                None => actions.push("whitelist not updated: the source has no ARN".to_owned()),
            }
        }
    }
    Ok(Resolved { destination: destination(&flow, target)?, actions })
}

/// A dry run: one `DescribeFlow` and nothing else. The actions say what
/// [`resolve`] would do (`would start flow`, `would set whitelist_cidr`).
pub fn plan(api: &dyn FlowApi, target: &FlowTarget) -> Result<Resolved, ResolveError> {
    let flow = api.describe_flow(&target.arn)?;
    let source = pick_source(&flow, target)?;
    let mut actions = Vec::new();
    if flow.status == FlowStatus::Standby {
        actions.push(if target.start_if_standby {
            "would start the flow (STANDBY)".to_owned()
        } else {
            "flow is STANDBY and start_flow_if_standby is off: the output would wait".to_owned()
        });
    }
    if let Some(cidr) = target.whitelist_cidr.as_deref().filter(|c| source.whitelist_cidr.as_deref() != Some(*c)) {
        actions.push(format!("would set whitelist_cidr {} -> {cidr}", source.whitelist_cidr.as_deref().unwrap_or("(none)")));
    }
    Ok(Resolved { destination: destination(&flow, target)?, actions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeCloud;
    use crate::model::{SourceDecryption, Transport};

    fn arn() -> FlowArn {
        FlowArn::try_from("arn:aws:mediaconnect:eu-west-1:111122223333:flow:1-abc:venue-a".to_owned()).unwrap()
    }

    fn source(name: &str, protocol: Protocol, port: u16) -> FlowSource {
        FlowSource {
            name: name.into(),
            arn: Some(format!("arn:aws:mediaconnect:eu-west-1:111122223333:source:1-abc:{name}")),
            description: Some("venue".into()),
            ingest_ip: Some("203.0.113.10".into()),
            ingest_port: Some(port),
            whitelist_cidr: Some("198.51.100.0/24".into()),
            peer_ip: None,
            transport: Transport {
                protocol: Some(protocol),
                min_latency_ms: Some(1500),
                max_latency_ms: None,
                max_bitrate_bps: Some(20_000_000),
                stream_id: Some("box-1".into()),
                smoothing_latency_ms: None,
            },
            decryption: Some(SourceDecryption {
                algorithm: None,
                key_type: Some("srt-password".into()),
                role_arn: Some("arn:aws:iam::111122223333:role/mc".into()),
                secret_arn: Some("arn:aws:secretsmanager:eu-west-1:111122223333:secret:pw".into()),
            }),
        }
    }

    fn flow(status: FlowStatus, sources: Vec<FlowSource>) -> Flow {
        Flow { arn: arn(), name: "venue-a".into(), status, sources, egress_ip: None }
    }

    fn target(kind: OutputKind) -> FlowTarget {
        FlowTarget { arn: arn(), kind, source_name: None, start_if_standby: false, whitelist_cidr: None }
    }

    #[test]
    fn srt_listener_source_gives_the_ingest_address_and_latency() {
        let d =
            destination(&flow(FlowStatus::Active, vec![source("a", Protocol::SrtListener, 5000)]), &target(OutputKind::Srt)).unwrap();
        assert_eq!(d.address, "203.0.113.10:5000".parse().unwrap());
        assert_eq!(d.min_latency_ms, Some(1500));
        assert_eq!(d.fec_ports, None);
        assert!(d.encrypted);
    }

    #[test]
    fn rtp_fec_source_gives_fec_on_plus_two_and_four() {
        let d =
            destination(&flow(FlowStatus::Active, vec![source("a", Protocol::RtpFec, 5000)]), &target(OutputKind::RtpFec)).unwrap();
        assert_eq!(d.fec_ports, Some((5002, 5004)));
    }

    #[test]
    fn protocol_mismatch_names_both_sides() {
        let e =
            destination(&flow(FlowStatus::Active, vec![source("a", Protocol::RtpFec, 5000)]), &target(OutputKind::Srt)).unwrap_err();
        assert!(e.is_permanent());
        let msg = e.to_string();
        assert!(msg.contains("srt-listener") && msg.contains("rtp-fec"), "{msg}");
        let e = destination(&flow(FlowStatus::Active, vec![source("a", Protocol::SrtCaller, 5000)]), &target(OutputKind::Srt))
            .unwrap_err();
        assert!(matches!(e, ResolveError::ProtocolMismatch { .. }), "{e}");
    }

    #[test]
    fn the_fitting_source_of_two_is_chosen_unless_one_is_named() {
        let f = flow(FlowStatus::Active, vec![source("rtp", Protocol::RtpFec, 5000), source("srt", Protocol::SrtListener, 6000)]);
        assert_eq!(destination(&f, &target(OutputKind::Srt)).unwrap().address.port(), 6000);
        let named = FlowTarget { source_name: Some("rtp".into()), ..target(OutputKind::Srt) };
        assert!(matches!(destination(&f, &named), Err(ResolveError::ProtocolMismatch { .. })));
        let missing = FlowTarget { source_name: Some("x".into()), ..target(OutputKind::Srt) };
        assert!(matches!(destination(&f, &missing), Err(ResolveError::NoSuchSource { .. })));
    }

    #[test]
    fn standby_flow_is_started_only_when_asked() {
        let fake = FakeCloud::default();
        fake.put_flow(flow(FlowStatus::Standby, vec![source("a", Protocol::SrtListener, 5000)]));
        assert!(matches!(resolve(&fake, &target(OutputKind::Srt)), Err(ResolveError::NotStarted { .. })));
        assert_eq!(fake.calls(), vec!["DescribeFlow"]);
        let r = resolve(&fake, &FlowTarget { start_if_standby: true, ..target(OutputKind::Srt) }).unwrap();
        assert!(r.actions[0].contains("started"), "{:?}", r.actions);
        assert_eq!(fake.flow(&arn()).unwrap().status, FlowStatus::Starting);
    }

    #[test]
    fn mismatch_touches_nothing() {
        let fake = FakeCloud::default();
        fake.put_flow(flow(FlowStatus::Standby, vec![source("a", Protocol::Rtp, 5000)]));
        let t = FlowTarget { start_if_standby: true, whitelist_cidr: Some("192.0.2.7/32".into()), ..target(OutputKind::Srt) };
        assert!(matches!(resolve(&fake, &t), Err(ResolveError::ProtocolMismatch { .. })));
        assert_eq!(fake.calls(), vec!["DescribeFlow"]);
    }

    #[test]
    fn whitelist_update_sends_every_field() {
        let fake = FakeCloud::default();
        let original = source("a", Protocol::SrtListener, 5000);
        fake.put_flow(flow(FlowStatus::Active, vec![original.clone()]));
        let t = FlowTarget { whitelist_cidr: Some("192.0.2.7/32".into()), ..target(OutputKind::Srt) };
        let r = resolve(&fake, &t).unwrap();
        assert_eq!(r.destination.whitelist_cidr.as_deref(), Some("192.0.2.7/32"));
        // The fake blanks unsent fields like moto does, so an update that
        // forgot one would show here.
        let after = &fake.flow(&arn()).unwrap().sources[0];
        assert_eq!(after, &FlowSource { whitelist_cidr: Some("192.0.2.7/32".into()), ..original });
        let sent = fake.updates();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].ingest_port, Some(5000));
        assert_eq!(sent[0].transport.min_latency_ms, Some(1500));
        assert!(sent[0].decryption.is_some());
        // Already right: no second update.
        resolve(&fake, &t).unwrap();
        assert_eq!(fake.updates().len(), 1);
    }

    #[test]
    fn plan_changes_nothing_and_says_what_it_would_do() {
        let fake = FakeCloud::default();
        fake.put_flow(flow(FlowStatus::Standby, vec![source("a", Protocol::SrtListener, 5000)]));
        let t = FlowTarget { start_if_standby: true, whitelist_cidr: Some("192.0.2.7/32".into()), ..target(OutputKind::Srt) };
        let r = plan(&fake, &t).unwrap();
        assert_eq!(r.destination.address.port(), 5000);
        assert_eq!(r.actions.len(), 2, "{:?}", r.actions);
        assert_eq!(fake.calls(), vec!["DescribeFlow"]);
    }

    #[test]
    fn api_errors_are_retryable() {
        let fake = FakeCloud::default();
        let e = resolve(&fake, &target(OutputKind::Srt)).unwrap_err();
        assert!(matches!(e, ResolveError::Api(ApiError::NotFound(_))), "{e}");
        assert!(!e.is_permanent());
    }
}
