//! The agent's side of the AWS integration (`edge-cloud`): clients built
//! from `[aws]`, flow destinations shared between the output threads and a
//! monitor thread, and the health report for telemetry and alarms.
//!
//! # Design
//! An output named by `flow_arn` resolves its destination itself before it
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

use edge_cloud::{ApiError, ChannelApi, ChannelHealth, CloudAlarm, FlowApi, FlowHealth, FlowTarget, Resolved};
use serde::Serialize;

use crate::config::{AgentConfig, AwsConfig, OutputConfig};
pub use crate::dest::{Dest, FlowLink, LinkState, RESOLVE_AFTER_FAILURES};

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
    /// Every alarm: flow and channel health, plus protocol mismatches.
    pub fn alarms(&self) -> Vec<CloudAlarm> {
        let mut v: Vec<CloudAlarm> = self.flows.iter().flat_map(|f| f.alarms.iter().cloned()).collect();
        v.extend(self.channel.iter().flat_map(|c| c.alarms.iter().cloned()));
        for (name, st) in &self.destinations {
            if let (true, Some(e)) = (st.permanent, &st.error) {
                v.push(CloudAlarm {
                    code: "FLOW_MISMATCH",
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

    fn flow_api(&self, region: Option<&str>, fallback: &str) -> Result<Arc<dyn FlowApi>, String> {
        if let Some((f, _)) = &self.injected {
            return Ok(f.clone());
        }
        #[cfg(feature = "aws")]
        {
            self.client(region, Some(fallback)).map(|c| c as Arc<dyn FlowApi>)
        }
        #[cfg(not(feature = "aws"))]
        {
            self.client(region, Some(fallback)).and_then(|_| Err(NO_AWS.to_owned()))
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
    /// Where `o` sends; for a flow-named output, its (new) link. `dry_run`
    /// links never start a flow or change a whitelist.
    pub fn dest(&self, o: &OutputConfig, dry_run: bool) -> Option<Dest> {
        let t = o.target();
        if let Some(addr) = t.address {
            return Some(addr.literal().map_or_else(|| Dest::Name(addr.clone()), Dest::Fixed));
        }
        let arn = t.flow_arn?;
        let whitelist = match (t.manage_whitelist, self.config().and_then(|a| a.public_ip)) {
            (true, Some(ip)) => Some(format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })),
            _ => None,
        };
        let target = FlowTarget {
            arn: arn.clone(),
            kind: o.cloud_kind()?,
            source_name: t.flow_source.map(|s| s.as_str().to_owned()),
            start_if_standby: t.start_flow_if_standby,
            whitelist_cidr: whitelist,
        };
        let clients = self.clients.clone();
        let factory: crate::dest::FlowApiFactory = Arc::new(move |region, fallback| clients.flow_api(region, fallback));
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
        for link in &links {
            let _ = link.resolve();
            report.destinations.insert(link.output.clone(), link.state());
            let Ok(api) = link.api() else { continue };
            match api.describe_flow(&link.target.arn) {
                Ok(flow) => {
                    let meta = match api.source_metadata(&link.target.arn) {
                        Ok(m) => Some(m),
                        Err(ApiError::Unsupported(_)) => None,
                        Err(e) => {
                            report.errors.push(format!("{}: DescribeFlowSourceMetadata: {e}", link.output));
                            None
                        }
                    };
                    let source = link.state().resolved.map(|r| r.destination.source_name);
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
                    let flows: Vec<String> = links.iter().map(|l| l.target.arn.to_string()).collect();
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
    /// `address` or the flow ARN.
    pub source: String,
    pub destination: Option<SocketAddr>,
    /// P+2 and P+4 for `rtp-fec`.
    pub fec_ports: Option<(u16, u16)>,
    pub flow: Option<Resolved>,
    pub ms: Option<u64>,
    pub error: Option<String>,
}

impl DryRunRow {
    /// One line an operator can paste into a ticket.
    pub fn line(&self) -> String {
        let dest = match (&self.destination, &self.error) {
            (Some(d), _) => d.to_string(),
            (None, Some(e)) => format!("ERROR {e}"),
            (None, None) => "-".to_owned(),
        };
        let mut s = format!("{} ({}{}) -> {dest}", self.output, self.kind, if self.enabled { "" } else { ", disabled" });
        if let Some((c, r)) = self.fec_ports {
            s.push_str(&format!(" fec {c}/{r}"));
        }
        if let Some(f) = &self.flow {
            let d = &f.destination;
            s.push_str(&format!(" via {} [{}] source `{}` {}", d.flow_name, d.flow_status, d.source_name, d.protocol));
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
    let cloud = Cloud::new(cfg);
    cfg.outputs
        .iter()
        .map(|o| {
            let t = o.target();
            let kind = o.cloud_kind().map_or("rtmp", edge_cloud::OutputKind::as_str);
            let mut row = DryRunRow {
                output: o.name().as_str().to_owned(),
                kind,
                enabled: o.enabled(),
                source: t.address.map(|a| a.to_string()).or_else(|| t.flow_arn.map(|a| a.to_string())).unwrap_or_default(),
                destination: None,
                fec_ports: None,
                flow: None,
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
                    match link.resolve() {
                        Ok(r) => {
                            row.destination = Some(r.destination.address);
                            row.fec_ports = r.destination.fec_ports;
                            row.flow = Some(r);
                        }
                        Err(e) => row.error = Some(e),
                    }
                    row.ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                }
                None => row.error = Some("no address and no flow_arn".into()),
            }
            if let (Some(a), None, "rtp-fec") = (row.destination, &row.flow, kind) {
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
