//! The agent's side of the AWS integration (`edge-cloud`): clients built
//! from `[aws]`, flow destinations shared between the output threads and a
//! monitor thread, and the health report for telemetry and alarms.
//!
//! # Design
//! An output named by `flow_arn` (or by `medialive_input_id` and `pipeline`,
//! `docs/medialive-inputs.md`) resolves its destination itself before it
//! first sends and again after [`RESOLVE_AFTER_FAILURES`] failed attempts
//! (the flow may have moved). While it sends, it never blocks on AWS: the
//! monitor thread re-resolves every `poll_interval_s` into the output's
//! [`FlowLink`], and the output reconnects when the address changed. The
//! monitor also polls flow status, source metadata and the MediaLive channel
//! into one [`CloudReport`].
//!
//! # Limitations
//! Without the `aws` build feature there is no client: outputs with
//! `flow_arn` report that, and the rest of the agent runs normally.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_cloud::{
    ApiError, ChannelApi, ChannelHealth, CloudAlarm, FlowApi, FlowArn, FlowHealth, FlowTarget, InputOutputKind, InputResolved,
    InputTarget, Resolved,
};
use serde::Serialize;

use crate::config::{AgentConfig, AwsConfig, OutputConfig, SrtMode};
pub use crate::dest::{Apis, Dest, FlowLink, LinkState, LinkTarget, RESOLVE_AFTER_FAILURES};

/// What AWS says, for telemetry and alarms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CloudReport {
    pub destinations: BTreeMap<String, LinkState>,
    pub flows: Vec<FlowHealth>,
    pub channel: Option<ChannelHealth>,
    /// Calls that failed in the last poll (no secrets: service messages).
    pub errors: Vec<String>,
}

impl CloudReport {
    /// Every alarm: flow and channel health, plus protocol and input-type
    /// mismatches (`FLOW_MISMATCH`, `INPUT_MISMATCH`).
    pub fn alarms(&self) -> Vec<CloudAlarm> {
        let mut v: Vec<CloudAlarm> = self.flows.iter().flat_map(|f| f.alarms.iter().cloned()).collect();
        v.extend(self.channel.iter().flat_map(|c| c.alarms.iter().cloned()));
        for (name, st) in &self.destinations {
            if let (true, Some(e)) = (st.permanent, &st.error) {
                v.push(CloudAlarm {
                    code: if st.named_by == "medialive_input_id" { "INPUT_MISMATCH" } else { "FLOW_MISMATCH" },
                    component: format!("output:{name}"),
                    severity: edge_cloud::Severity::Major,
                    message: e.clone(),
                });
            }
        }
        v
    }
}

/// Clients and the links of the flow-named outputs.
#[derive(Debug)]
pub struct Cloud {
    links: Mutex<BTreeMap<String, Arc<FlowLink>>>,
    clients: Arc<Clients>,
}

/// The SDK clients, one per region, built on first use and shared by the
/// links, the monitor and the channel commands.
#[derive(Debug)]
struct Clients {
    cfg: Option<AwsConfig>,
    by_region: Mutex<BTreeMap<String, Arc<Client>>>,
    /// Another backend for both services (tests: `edge_cloud::fake`).
    injected: Option<(Arc<dyn FlowApi>, Arc<dyn ChannelApi>)>,
}

/// One region's client (both services).
#[cfg(feature = "aws")]
type Client = edge_cloud::aws::AwsCloud;
#[cfg(not(feature = "aws"))]
type Client = NoClient;

/// Stands in for the SDK client in builds without the `aws` feature.
#[cfg(not(feature = "aws"))]
#[derive(Debug)]
pub struct NoClient;

/// Why no client is available.
pub const NO_AWS: &str = "this edge-agent was built without AWS support (cargo feature `aws`)";

impl Cloud {
    pub fn new(cfg: &AgentConfig) -> Cloud {
        Cloud::over(cfg, None)
    }

    /// A cloud over another backend (e.g. the hand-written fake).
    pub fn with_backend(cfg: &AgentConfig, flows: Arc<dyn FlowApi>, channels: Arc<dyn ChannelApi>) -> Cloud {
        Cloud::over(cfg, Some((flows, channels)))
    }

    fn over(cfg: &AgentConfig, injected: Option<(Arc<dyn FlowApi>, Arc<dyn ChannelApi>)>) -> Cloud {
        let clients = Arc::new(Clients { cfg: cfg.aws.clone(), by_region: Mutex::default(), injected });
        Cloud { links: Mutex::default(), clients }
    }

    pub fn config(&self) -> Option<&AwsConfig> {
        self.clients.cfg.as_ref()
    }
}

impl Clients {
    /// The client for `region` (`None`: configured or default), cached.
    fn client(&self, region: Option<&str>, fallback: Option<&str>) -> Result<Arc<Client>, String> {
        let key = region.or(fallback).unwrap_or_default().to_owned();
        let mut clients = self.by_region.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = Arc::new(self.build_client(region, fallback)?);
        clients.insert(key, c.clone());
        Ok(c)
    }

    #[cfg(feature = "aws")]
    fn build_client(&self, region: Option<&str>, fallback: Option<&str>) -> Result<Client, String> {
        let aws = self.cfg.clone().unwrap_or(AwsConfig {
            region: None,
            credentials_file: None,
            profile: None,
            endpoint_url: None,
            public_ip: None,
            channel_id: None,
            poll_interval_s: crate::config::types::AwsPollS::try_from(30).map_err(|e| e.to_string())?,
        });
        let settings = edge_cloud::aws::AwsSettings {
            region: region.map(str::to_owned).or_else(|| aws.region.as_ref().map(|r| r.as_str().to_owned())),
            credentials_file: aws.credentials_file.clone(),
            profile: aws.profile.clone(),
            endpoint_url: aws.endpoint_url.as_ref().map(|u| u.as_str().to_owned()),
        };
        edge_cloud::aws::AwsCloud::new(&settings, fallback).map_err(|e| e.to_string())
    }

    #[cfg(not(feature = "aws"))]
    fn build_client(&self, _region: Option<&str>, _fallback: Option<&str>) -> Result<Client, String> {
        Err(NO_AWS.to_owned())
    }

    /// Both services for a link: its region, else the ARN's (`fallback`).
    fn apis(&self, region: Option<&str>, fallback: Option<&str>) -> Result<Apis, String> {
        if let Some((flows, channels)) = &self.injected {
            return Ok(Apis { flows: flows.clone(), channels: channels.clone() });
        }
        #[cfg(feature = "aws")]
        {
            self.client(region, fallback).map(|c| Apis { flows: c.clone(), channels: c })
        }
        #[cfg(not(feature = "aws"))]
        {
            self.client(region, fallback).and_then(|_| Err(NO_AWS.to_owned()))
        }
    }

    fn channel_api(&self) -> Result<Arc<dyn ChannelApi>, String> {
        if let Some((_, c)) = &self.injected {
            return Ok(c.clone());
        }
        #[cfg(feature = "aws")]
        {
            self.client(None, None).map(|c| c as Arc<dyn ChannelApi>)
        }
        #[cfg(not(feature = "aws"))]
        {
            self.client(None, None).and_then(|_| Err(NO_AWS.to_owned()))
        }
    }
}

impl Cloud {
    /// Where `o` sends; for a flow- or input-named output, its (new) link.
    /// `dry_run` links never start a flow or change a whitelist.
    pub fn dest(&self, o: &OutputConfig, dry_run: bool) -> Option<Dest> {
        let t = o.target();
        if let Some(addr) = t.address {
            return Some(addr.literal().map_or_else(|| Dest::Name(addr.clone()), Dest::Fixed));
        }
        let public_ip = self.config().and_then(|a| a.public_ip);
        let target = match (t.flow_arn, t.medialive_input_id, t.pipeline) {
            (Some(arn), _, _) => {
                let whitelist = match (t.manage_whitelist, public_ip) {
                    (true, Some(ip)) => Some(format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })),
                    _ => None,
                };
                LinkTarget::Flow(FlowTarget {
                    arn: arn.clone(),
                    kind: o.cloud_kind()?,
                    source_name: t.flow_source.map(|s| s.as_str().to_owned()),
                    start_if_standby: t.start_flow_if_standby,
                    whitelist_cidr: whitelist,
                })
            }
            (None, Some(id), Some(pipeline)) => {
                let (kind, listen_port, stream_id, encrypted) = match o {
                    OutputConfig::Srt(s) => (
                        if s.mode == SrtMode::Listener { InputOutputKind::SrtListener } else { InputOutputKind::SrtCaller },
                        s.listen_addr().map(|a| a.port()),
                        s.stream_id.as_ref().map(|i| i.as_str().to_owned()),
                        s.passphrase.is_some(),
                    ),
                    OutputConfig::Rtp(_) => (InputOutputKind::Rtp, None, None, false),
                    OutputConfig::RtpFec(_) => (InputOutputKind::RtpFec, None, None, false),
                    OutputConfig::Rtmp(_) => (InputOutputKind::Rtmp, None, None, false),
                    // Has no medialive_input_id: never reaches here.
                    OutputConfig::Rist(_) => return None,
                };
                LinkTarget::Input(InputTarget {
                    id: id.clone(),
                    pipeline,
                    kind,
                    listen_port,
                    stream_id,
                    encrypted,
                    flow_source: t.flow_source.map(|s| s.as_str().to_owned()),
                    start_if_standby: t.start_flow_if_standby,
                    public_ip,
                    manage_whitelist: t.manage_whitelist,
                })
            }
            _ => return None,
        };
        let clients = self.clients.clone();
        let factory: crate::dest::FlowApiFactory = Arc::new(move |region, fallback| clients.apis(region, fallback));
        let region = t.region.map(|r| r.as_str().to_owned());
        let link = Arc::new(FlowLink::new(o.name().as_str(), target, region, dry_run, factory));
        if !dry_run {
            self.links.lock().unwrap_or_else(|p| p.into_inner()).insert(link.output.clone(), link.clone());
        }
        Some(Dest::Flow(link))
    }

    /// Forgets an output's link (output removed or changed).
    pub fn forget(&self, output: &str) {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).remove(output);
    }

    /// `channel.start` / `channel.stop`.
    pub fn channel_command(&self, start: bool) -> Result<String, String> {
        let id = self.config().and_then(|a| a.channel_id.clone()).ok_or("no [aws] channel_id configured")?;
        let api = self.clients.channel_api()?;
        let r = if start { api.start_channel(&id) } else { api.stop_channel(&id) };
        r.map_err(|e| e.to_string())
    }

    /// One monitor pass: re-resolve links, poll flow and channel health.
    /// `sending(output)` says whether the output is connected. Blocks for
    /// as long as AWS takes: run it off the controller.
    pub fn poll(&self, sending: &dyn Fn(&str) -> bool) -> CloudReport {
        let links: Vec<Arc<FlowLink>> = self.links.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut report = CloudReport::default();
        let mut flows: Vec<String> = Vec::new();
        for link in &links {
            let st = link.refresh();
            report.destinations.insert(link.output.clone(), st.clone());
            let Ok(api) = link.api() else { continue };
            // The flow behind the link: the configured ARN, else the one a
            // MEDIACONNECT input resolved to.
            let arn = match &link.target {
                LinkTarget::Flow(f) => Some(f.arn.clone()),
                LinkTarget::Input(_) => st.flow().and_then(|r| FlowArn::try_from(r.destination.flow_arn.clone()).ok()),
            };
            let Some(arn) = arn else { continue };
            flows.push(arn.to_string());
            match api.flows.describe_flow(&arn) {
                Ok(flow) => {
                    let meta = match api.flows.source_metadata(&arn) {
                        Ok(m) => Some(m),
                        Err(ApiError::Unsupported(_)) => None,
                        Err(e) => {
                            report.errors.push(format!("{}: DescribeFlowSourceMetadata: {e}", link.output));
                            None
                        }
                    };
                    let source = st.flow().map(|r| r.destination.source_name.clone());
                    report.flows.push(edge_cloud::flow_health(
                        &link.output,
                        &flow,
                        source.as_deref(),
                        meta.as_ref(),
                        sending(&link.output),
                    ));
                }
                Err(e) => report.errors.push(format!("{}: DescribeFlow: {e}", link.output)),
            }
        }
        if let Some(id) = self.config().and_then(|a| a.channel_id.clone()) {
            match self.clients.channel_api().and_then(|api| Ok((api.describe_channel(&id).map_err(|e| e.to_string())?, api))) {
                Ok((ch, api)) => {
                    let inputs: Vec<_> = ch
                        .input_attachments
                        .iter()
                        .filter_map(|a| a.input_id.as_deref())
                        .filter_map(|i| api.describe_input(i).ok())
                        .collect();
                    report.channel = Some(edge_cloud::channel_health(&ch, &inputs, &flows));
                }
                Err(e) => report.errors.push(format!("channel {id}: {e}")),
            }
        }
        report
    }

    /// Whether there is anything to poll.
    pub fn has_work(&self) -> bool {
        !self.links.lock().unwrap_or_else(|p| p.into_inner()).is_empty() || self.config().is_some_and(|a| a.channel_id.is_some())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.config().map_or(30, |a| a.poll_interval_s.get())))
    }
}

/// One output in `edge-agent resolve`.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunRow {
    pub output: String,
    pub kind: &'static str,
    pub enabled: bool,
    /// `address`, the flow ARN, `medialive_input_id <id> pipeline <A|B>`, or
    /// a listener's `listen <ip:port>`.
    pub source: String,
    pub destination: Option<SocketAddr>,
    /// P+2 and P+4 for `rtp-fec`.
    pub fec_ports: Option<(u16, u16)>,
    pub flow: Option<Resolved>,
    /// A `medialive_input_id` output's input: type, pipeline, endpoint.
    pub input: Option<InputResolved>,
    pub ms: Option<u64>,
    pub error: Option<String>,
}

impl DryRunRow {
    /// One line an operator can paste into a ticket.
    pub fn line(&self) -> String {
        let dest = match (&self.destination, &self.error) {
            (Some(d), _) => d.to_string(),
            (None, Some(e)) => format!("ERROR {e}"),
            // An RTMP output's configured URL (key redacted).
            (None, None) if self.source.starts_with("rtmp") => self.source.clone(),
            (None, None) => "-".to_owned(),
        };
        let mut s = format!("{} ({}{}) -> {dest}", self.output, self.kind, if self.enabled { "" } else { ", disabled" });
        if let Some((c, r)) = self.fec_ports {
            s.push_str(&format!(" fec {c}/{r}"));
        }
        if let Some(i) = &self.input {
            s.push_str(&format!(" via MediaLive input {}", i.input_id));
            if let Some(name) = &i.input_name {
                s.push_str(&format!(" `{name}`"));
            }
            s.push_str(&format!(" {} pipeline {}: {}", i.input_type, i.pipeline, i.endpoint.describe()));
            for a in &i.actions {
                s.push_str(&format!("; {a}"));
            }
        } else if self.error.is_some() && self.source.starts_with("medialive_input_id") {
            s.push_str(&format!(" [{}]", self.source));
        }
        let flow = self.flow.as_ref().or(match self.input.as_ref().map(|i| &i.endpoint) {
            Some(edge_cloud::InputEndpoint::Flow(r)) => Some(r),
            _ => None,
        });
        if let Some(f) = flow {
            let d = &f.destination;
            if self.input.is_none() {
                s.push_str(&format!(" via {} [{}] source `{}` {}", d.flow_name, d.flow_status, d.source_name, d.protocol));
            }
            if let Some(l) = d.min_latency_ms {
                s.push_str(&format!(" min_latency {l} ms"));
            }
            for a in &f.actions {
                s.push_str(&format!("; {a}"));
            }
        }
        if let Some(ms) = self.ms {
            s.push_str(&format!(" ({ms} ms)"));
        }
        s
    }
}

/// Resolves every output without changing anything (`edge-agent resolve`).
pub fn dry_run(cfg: &AgentConfig) -> Vec<DryRunRow> {
    dry_run_on(&Cloud::new(cfg), cfg)
}

/// [`dry_run`] over a given cloud (tests: the fake).
pub fn dry_run_on(cloud: &Cloud, cfg: &AgentConfig) -> Vec<DryRunRow> {
    cfg.outputs
        .iter()
        .map(|o| {
            let t = o.target();
            let kind = match o {
                OutputConfig::Rtmp(_) => "rtmp",
                OutputConfig::Rist(_) => "rist",
                _ => o.cloud_kind().map_or("?", edge_cloud::OutputKind::as_str),
            };
            let listen = match o {
                OutputConfig::Srt(s) => s.listen_addr(),
                _ => None,
            };
            // A configured RTMP URL, key redacted.
            let url = match o {
                OutputConfig::Rtmp(r) => r.url.as_ref(),
                _ => None,
            };
            let source = match (t.address, t.flow_arn, t.medialive_input_id, listen, url) {
                (Some(a), _, _, _, _) => a.to_string(),
                (_, Some(a), _, _, _) => a.to_string(),
                (_, _, Some(id), _, _) => {
                    format!("medialive_input_id {id} pipeline {}", t.pipeline.map_or("?".into(), |p| p.to_string()))
                }
                (_, _, _, Some(l), _) => format!("listen {l}"),
                (_, _, _, _, Some(u)) => u.to_string(),
                _ => String::new(),
            };
            let mut row = DryRunRow {
                output: o.name().as_str().to_owned(),
                kind,
                enabled: o.enabled(),
                source,
                destination: None,
                fec_ports: None,
                flow: None,
                input: None,
                ms: None,
                error: None,
            };
            match cloud.dest(o, true) {
                Some(Dest::Fixed(a)) => row.destination = Some(a),
                Some(Dest::Name(h)) => {
                    let started = Instant::now();
                    match h.resolve() {
                        Ok(a) => row.destination = Some(a),
                        Err(e) => row.error = Some(e),
                    }
                    row.ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                }
                Some(Dest::Flow(link)) => {
                    let started = Instant::now();
                    let st = link.refresh();
                    if let Some(r) = &st.resolved {
                        row.destination = Some(r.destination.address);
                        row.fec_ports = r.destination.fec_ports;
                        row.flow = r.flow.clone();
                    }
                    row.input = st.input;
                    row.error = st.error;
                    if row.error.is_some() {
                        row.destination = None;
                    }
                    row.ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                }
                // A listener waits for its caller, an RTMP output pushes
                // to its url: nothing to resolve.
                None if listen.is_some() || url.is_some() => {}
                None => row.error = Some("no address and no flow_arn".into()),
            }
            if let (Some(a), None, None, "rtp-fec") = (row.destination, &row.flow, &row.input, kind) {
                row.fec_ports = Some((a.port().wrapping_add(2), a.port().wrapping_add(4)));
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_cloud::fake::FakeCloud;
    use edge_cloud::model::*;

    const ARN_SRT: &str = "arn:aws:mediaconnect:eu-west-1:1:flow:1-a:venue-a";
    const ARN_FEC: &str = "arn:aws:mediaconnect:eu-west-1:1:flow:1-b:venue-b";

    fn config() -> AgentConfig {
        crate::config::from_str(&format!(
            "device_id = \"t\"\n[input]\nkind = \"test-pattern\"\n\n[aws]\nchannel_id = \"42\"\n\n\
             [[outputs]]\nname = \"primary\"\nkind = \"srt\"\nflow_arn = \"{ARN_SRT}\"\n\n\
             [[outputs]]\nname = \"backup\"\nkind = \"srt\"\nflow_arn = \"{ARN_FEC}\"\n"
        ))
        .unwrap()
    }

    fn flow(arn: &str, protocol: Protocol) -> Flow {
        Flow {
            arn: FlowArn::try_from(arn.to_owned()).unwrap(),
            name: "venue".into(),
            status: FlowStatus::Active,
            sources: vec![FlowSource {
                name: "main".into(),
                arn: Some(format!("{arn}:src")),
                ingest_ip: Some("198.51.100.4".into()),
                ingest_port: Some(5000),
                transport: Transport { protocol: Some(protocol), min_latency_ms: Some(2000), ..Transport::default() },
                ..FlowSource::default()
            }],
            egress_ip: None,
        }
    }

    /// The whole agent-side path over the fake: resolution, flow health
    /// with metadata, the channel's active input, and the alarms the fleet
    /// sees.
    #[test]
    fn report_carries_metadata_channel_and_mismatch_alarms() {
        let fake = Arc::new(FakeCloud::default());
        fake.put_flow(flow(ARN_SRT, Protocol::SrtListener));
        fake.put_flow(flow(ARN_FEC, Protocol::RtpFec));
        fake.put_metadata(
            &FlowArn::try_from(ARN_SRT.to_owned()).unwrap(),
            SourceMetadata {
                messages: vec![MetadataMessage { code: "PID_ERROR".into(), message: "no PMT".into(), resource_name: None }],
                ..SourceMetadata::default()
            },
        );
        fake.put_channel(Channel {
            id: "42".into(),
            state: "RUNNING".into(),
            pipelines: vec![PipelineDetail { pipeline_id: "0".into(), active_input_attachment_name: Some("slate".into()) }],
            input_attachments: vec![InputAttachment { name: Some("slate".into()), input_id: Some("9".into()) }],
            ..Channel::default()
        });
        fake.put_input(Input { id: "9".into(), kind: Some("MP4_FILE".into()), ..Input::default() });
        let cfg = config();
        let cloud = Cloud::with_backend(&cfg, fake.clone(), fake.clone());
        let links: Vec<Dest> = cfg.outputs.iter().filter_map(|o| cloud.dest(o, false)).collect();
        let Dest::Flow(primary) = &links[0] else { panic!("flow link expected") };
        assert_eq!(primary.resolve().unwrap().destination.address, "198.51.100.4:5000".parse().unwrap());

        let report = cloud.poll(&|name| name == "primary");
        assert_eq!(report.flows.len(), 2);
        let codes: Vec<&str> = report.alarms().iter().map(|a| a.code).collect();
        assert!(codes.contains(&"FLOW_SOURCE_PROBLEM"), "{codes:?}");
        assert!(codes.contains(&"CHANNEL_INPUT_NOT_BOX"), "{codes:?}");
        assert!(codes.contains(&"FLOW_MISMATCH"), "{codes:?}");
        assert_eq!(report.channel.as_ref().unwrap().pipelines[0].box_flow_active, Some(false));
        let json = serde_json::to_value(&report).unwrap();
        let primary = json["flows"].as_array().unwrap().iter().find(|f| f["output"] == "primary").unwrap();
        assert_eq!(primary["metadata"]["messages"][0], "PID_ERROR: no PMT");
        assert_eq!(json["destinations"]["backup"]["permanent"], true);

        assert_eq!(cloud.channel_command(false).unwrap(), "STOPPING");
    }

    const ML_HEAD: &str = "device_id = \"t\"\n[input]\nkind = \"test-pattern\"\n\n[aws]\npublic_ip = \"192.0.2.7\"\n\n";

    /// RTP_PUSH, SRT_CALLER and MEDIACONNECT inputs as real MediaLive
    /// reports them (moto reports no addresses: `docs/medialive-inputs.md#moto`).
    fn medialive_fake() -> Arc<FakeCloud> {
        let fake = Arc::new(FakeCloud::default());
        let d = |ip: &str| InputDestination { ip: Some(ip.into()), port: Some("5000".into()), url: Some(format!("rtp://{ip}:5000")) };
        fake.put_input(Input {
            id: "1001".into(),
            name: Some("venue-rtp".into()),
            kind: Some("RTP_PUSH".into()),
            destinations: vec![d("203.0.113.5"), d("203.0.113.6")],
            security_groups: vec!["77".into()],
            ..Input::default()
        });
        fake.put_security_group(InputSecurityGroup { id: "77".into(), cidrs: vec!["192.0.2.0/24".into()] });
        let caller = |port: &str| SrtCallerSource {
            listener_address: Some("192.0.2.7".into()),
            listener_port: Some(port.into()),
            stream_id: Some("venue".into()),
            passphrase_secret_arn: Some("arn:aws:secretsmanager:eu-west-1:1:secret:pw".into()),
            ..SrtCallerSource::default()
        };
        fake.put_input(Input {
            id: "1003".into(),
            kind: Some("SRT_CALLER".into()),
            srt_caller_sources: vec![caller("9001"), caller("9002")],
            ..Input::default()
        });
        fake.put_input(Input {
            id: "1004".into(),
            kind: Some("MEDIACONNECT".into()),
            flow_arns: vec![ARN_FEC.into(), ARN_SRT.into()],
            ..Input::default()
        });
        let rtmp = |ip: &str, key: &str| InputDestination {
            ip: Some(ip.into()),
            port: Some("1935".into()),
            url: Some(format!("rtmp://{ip}:1935/live/{key}")),
        };
        fake.put_input(Input {
            id: "1002".into(),
            name: Some("venue-rtmp".into()),
            kind: Some("RTMP_PUSH".into()),
            destinations: vec![rtmp("203.0.113.5", "s3cr3t-a"), rtmp("203.0.113.6", "s3cr3t-b")],
            security_groups: vec!["77".into()],
            ..Input::default()
        });
        fake.put_flow(flow(ARN_SRT, Protocol::SrtListener));
        fake.put_flow(flow(ARN_FEC, Protocol::RtpFec));
        fake
    }

    /// An RTMP output naming an `RTMP_PUSH` input pushes to its pipeline's
    /// URL; one naming an `RTP_PUSH` input is that output's error and
    /// alarm; the stream names never reach the report or the logs' fields.
    #[test]
    fn rtmp_outputs_resolve_an_rtmp_push_input_per_pipeline_and_a_mismatch_is_theirs() {
        let fake = medialive_fake();
        let cfg = crate::config::from_str(&format!(
            "{ML_HEAD}[[outputs]]\nname = \"ml-a\"\nkind = \"rtmp\"\nmedialive_input_id = \"1002\"\npipeline = \"A\"\n\n\
             [[outputs]]\nname = \"ml-b\"\nkind = \"rtmp\"\nmedialive_input_id = \"1002\"\npipeline = \"B\"\n\
             manage_whitelist = true\n\n\
             [[outputs]]\nname = \"wrong\"\nkind = \"rtmp\"\nmedialive_input_id = \"1001\"\npipeline = \"A\"\n\n\
             [[outputs]]\nname = \"rtp-a\"\nkind = \"rtp\"\nmedialive_input_id = \"1001\"\npipeline = \"A\"\n"
        ))
        .unwrap();
        let cloud = Cloud::with_backend(&cfg, fake.clone(), fake.clone());
        let links: Vec<Arc<FlowLink>> = cfg
            .outputs
            .iter()
            .map(|o| match cloud.dest(o, false) {
                Some(Dest::Flow(l)) => l,
                other => panic!("link expected, got {other:?}"),
            })
            .collect();
        assert!(links[0].current_push().is_none(), "nothing resolved yet");
        let a = links[0].resolve_push().unwrap();
        assert_eq!(a.expose(), "rtmp://203.0.113.5:1935/live/s3cr3t-a");
        assert_eq!(links[0].current_push(), Some(a));
        let b = links[1].resolve_push().unwrap();
        assert_eq!(b.expose(), "rtmp://203.0.113.6:1935/live/s3cr3t-b");
        assert_eq!(b.to_string(), "rtmp://203.0.113.6:1935/live/<redacted>");
        let st = links[1].state();
        assert!(st.input.as_ref().unwrap().actions[0].contains("allowed by security group 77"), "{st:?}");
        // An RTP_PUSH input: the mismatch, retried slowly, no URL.
        let e = links[2].resolve_push().unwrap_err();
        assert!(e.contains("input mismatch") && e.contains("rtmp output") && e.contains("RTP_PUSH"), "{e}");
        assert!(links[2].current_push().is_none());
        assert_eq!(links[2].retry_delay(Duration::from_millis(1)), crate::dest::PERMANENT_RETRY);
        // The RTP output on the same input is unaffected.
        assert_eq!(links[3].resolve().unwrap().destination.address, "203.0.113.5:5000".parse().unwrap());

        let report = cloud.poll(&|_| true);
        let alarms = report.alarms();
        let mismatches: Vec<&str> = alarms.iter().filter(|a| a.code == "INPUT_MISMATCH").map(|a| a.component.as_str()).collect();
        assert_eq!(mismatches, ["output:wrong"], "{alarms:?}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("s3cr3t"), "{json}");
        assert!(json.contains("rtmp://203.0.113.6:1935/live/***"), "{json}");

        let rows = dry_run_on(&Cloud::with_backend(&cfg, fake.clone(), fake.clone()), &cfg);
        let lines: Vec<String> = rows.iter().map(DryRunRow::line).collect();
        assert!(
            lines[1].starts_with(
                "ml-b (rtmp) -> - via MediaLive input 1002 `venue-rtmp` RTMP_PUSH pipeline B: push to rtmp://203.0.113.6:1935/live/***"
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("ERROR input mismatch") && lines[2].contains("[medialive_input_id 1001 pipeline A]"),
            "{}",
            lines[2]
        );
        assert!(rows[0].error.is_none() && rows[1].error.is_none());
        let printed = format!("{}{}", lines.join("\n"), serde_json::to_string(&rows).unwrap());
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }

    #[test]
    fn resolve_shows_a_configured_rtmp_url_without_its_key_or_an_error() {
        let cfg = crate::config::from_str(
            "device_id = \"t\"\n[input]\nkind = \"test-pattern\"\n\n[[outputs]]\nname = \"m\"\nkind = \"rtmp\"\n\
             url = \"rtmp://127.0.0.1:1935/live/s3cr3t\"\n",
        )
        .unwrap();
        let rows = dry_run(&cfg);
        assert!(rows[0].error.is_none(), "{rows:?}");
        assert_eq!(rows[0].line(), "m (rtmp) -> rtmp://127.0.0.1:1935/live/<redacted>");
    }

    #[test]
    fn input_named_outputs_resolve_per_pipeline_and_a_mismatch_is_that_outputs_alarm() {
        let fake = medialive_fake();
        let cfg = crate::config::from_str(&format!(
            "{ML_HEAD}[[outputs]]\nname = \"rtp-b\"\nkind = \"rtp-fec\"\nmedialive_input_id = \"1001\"\npipeline = \"B\"\n\
             manage_whitelist = true\nfec_columns = 10\nfec_rows = 10\n\n\
             [[outputs]]\nname = \"wrong\"\nkind = \"srt\"\nmedialive_input_id = \"1001\"\npipeline = \"A\"\n\n\
             [[outputs]]\nname = \"listener\"\nkind = \"srt\"\nmode = \"listener\"\nlisten = \"0.0.0.0:9002\"\n\
             medialive_input_id = \"1003\"\npipeline = \"B\"\nstream_id = \"venue\"\npassphrase = \"0123456789abcdef\"\n\n\
             [[outputs]]\nname = \"mc-b\"\nkind = \"srt\"\nmedialive_input_id = \"1004\"\npipeline = \"B\"\n"
        ))
        .unwrap();
        let cloud = Cloud::with_backend(&cfg, fake.clone(), fake.clone());
        let links: Vec<Arc<FlowLink>> = cfg
            .outputs
            .iter()
            .map(|o| match cloud.dest(o, false) {
                Some(Dest::Flow(l)) => l,
                other => panic!("link expected, got {other:?}"),
            })
            .collect();
        let r = links[0].resolve().unwrap();
        assert_eq!(r.destination, crate::dest::SendTo { address: "203.0.113.6:5000".parse().unwrap(), fec_ports: Some((5002, 5004)) });
        assert!(r.actions[0].contains("allowed by security group 77"), "{:?}", r.actions);
        let e = links[1].resolve().unwrap_err();
        assert!(e.contains("input mismatch") && e.contains("RTP_PUSH"), "{e}");
        assert_eq!(links[1].retry_delay(Duration::from_millis(1)), crate::dest::PERMANENT_RETRY);
        // The listener sends nowhere: its link says who calls it.
        let st = links[2].refresh();
        assert!(st.error.is_none() && st.resolved.is_none(), "{st:?}");
        let ep = st.input.as_ref().unwrap().endpoint.describe();
        assert!(ep.contains("calls 192.0.2.7:9002") && ep.contains("secret:pw"), "{ep}");
        assert_eq!(links[3].resolve().unwrap().destination.address, "198.51.100.4:5000".parse().unwrap());

        let report = cloud.poll(&|_| true);
        let alarms = report.alarms();
        let mismatches: Vec<_> = alarms.iter().filter(|a| a.code == "INPUT_MISMATCH").collect();
        assert_eq!(mismatches.len(), 1, "{alarms:?}");
        assert_eq!(mismatches[0].component, "output:wrong");
        // The MEDIACONNECT input's flow is watched like a flow_arn output's.
        assert_eq!(report.flows.len(), 1);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["destinations"]["rtp-b"]["resolved"]["destination"]["address"], "203.0.113.6:5000");
        assert_eq!(json["destinations"]["listener"]["input"]["input_type"], "SRT_CALLER");
        assert_eq!(json["destinations"]["wrong"]["named_by"], "medialive_input_id");
        assert!(!json.to_string().contains("0123456789abcdef"));
    }

    #[test]
    fn resolve_prints_input_type_pipeline_destination_and_mismatch() {
        let fake = medialive_fake();
        let cfg = crate::config::from_str(&format!(
            "{ML_HEAD}[[outputs]]\nname = \"a\"\nkind = \"rtp\"\nmedialive_input_id = \"1001\"\npipeline = \"A\"\n\n\
             [[outputs]]\nname = \"wrong\"\nkind = \"rtp\"\nmedialive_input_id = \"1003\"\npipeline = \"B\"\n\n\
             [[outputs]]\nname = \"mc\"\nkind = \"rtp-fec\"\nmedialive_input_id = \"1004\"\npipeline = \"A\"\n\
             fec_columns = 10\nfec_rows = 10\n"
        ))
        .unwrap();
        let rows = dry_run_on(&Cloud::with_backend(&cfg, fake.clone(), fake.clone()), &cfg);
        let lines: Vec<String> = rows.iter().map(DryRunRow::line).collect();
        assert!(
            lines[0].starts_with("a (rtp) -> 203.0.113.5:5000 via MediaLive input 1001 `venue-rtp` RTP_PUSH pipeline A: send to"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("ERROR input mismatch") && lines[1].contains("SRT_CALLER"), "{}", lines[1]);
        assert!(lines[1].contains("[medialive_input_id 1003 pipeline B]"), "{}", lines[1]);
        assert!(lines[2].starts_with("mc (rtp-fec) -> 198.51.100.4:5000 fec 5002/5004 via MediaLive input 1004"), "{}", lines[2]);
        assert!(lines[2].contains("MEDIACONNECT pipeline A: flow venue"), "{}", lines[2]);
        // A dry run starts and updates nothing.
        assert!(fake.calls().iter().all(|c| c.starts_with("Describe")), "{:?}", fake.calls());
    }

    #[test]
    fn dry_run_shows_listeners_with_who_calls_them_and_without_error() {
        let fake = medialive_fake();
        let cfg = crate::config::from_str(&format!(
            "{ML_HEAD}[[outputs]]\nname = \"plain\"\nkind = \"srt\"\nmode = \"listener\"\nlisten = \"0.0.0.0:9001\"\n\n\
             [[outputs]]\nname = \"ml\"\nkind = \"srt\"\nmode = \"listener\"\nlisten = \"0.0.0.0:9002\"\n\
             medialive_input_id = \"1003\"\npipeline = \"B\"\npassphrase = \"0123456789abcdef\"\n"
        ))
        .unwrap();
        let rows = dry_run_on(&Cloud::with_backend(&cfg, fake.clone(), fake.clone()), &cfg);
        assert!(rows.iter().all(|r| r.error.is_none()), "{rows:?}");
        assert_eq!(rows[0].line(), "plain (srt) -> -");
        let line = rows[1].line();
        assert!(
            line.starts_with("ml (srt) -> - via MediaLive input 1003 SRT_CALLER pipeline B: MediaLive calls 192.0.2.7:9002"),
            "{line}"
        );
        assert!(!line.contains("0123456789abcdef"), "{line}");
    }

    #[test]
    fn dry_run_lists_fixed_and_flow_outputs() {
        let cfg = crate::config::from_str(
            "device_id = \"t\"\n[input]\nkind = \"test-pattern\"\n\n[[outputs]]\nname = \"a\"\nkind = \"rtp-fec\"\n\
             address = \"127.0.0.1:5000\"\nfec_columns = 10\nfec_rows = 10\n",
        )
        .unwrap();
        let rows = dry_run(&cfg);
        assert_eq!(rows[0].destination, Some("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(rows[0].fec_ports, Some((5002, 5004)));
        assert!(rows[0].line().starts_with("a (rtp-fec) -> 127.0.0.1:5000 fec 5002/5004"), "{}", rows[0].line());
    }
}
