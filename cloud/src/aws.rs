//! The SDK-backed [`FlowApi`] and [`ChannelApi`] (feature `aws`).
//!
//! # Design
//! The agent is threaded and blocking, so [`AwsCloud`] owns a one-worker
//! tokio runtime and blocks on each call (from a scoped helper thread when
//! the caller is itself inside a runtime, e.g. the fleet session). Timeouts:
//! 3 s connect, 10 s per operation, standard retries (3 attempts), so a call
//! never blocks an output for long.
//!
//! # moto compatibility
//! moto 5.2.5 (the test endpoint) answers sources with flat fields
//! (`protocol`, `minLatency`, …) and no `transport` object, which the SDK's
//! `Source` type does not model (`docs/mediaconnect.md#moto`). An interceptor keeps the raw
//! `DescribeFlow` body so those flat fields fill in `Transport` only where
//! the SDK's is absent; real MediaConnect always sends `transport`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_mediaconnect::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_mediaconnect::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_mediaconnect::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_mediaconnect::types as mc;
use serde_json::Value;

use crate::api::{ApiError, ChannelApi, FlowApi};
use crate::model::*;

/// How to reach AWS. `Debug` shows no secret (there is none here: the
/// credentials stay in the file or the default chain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region for the calls; default: the SDK's chain, then the flow ARN's.
    pub region: Option<String>,
    /// A shared-credentials file (`[default]` or `profile`); default: the
    /// SDK's default chain (env, profile, SSO-less web identity, ECS, IMDS).
    pub credentials_file: Option<PathBuf>,
    pub profile: Option<String>,
    /// Endpoint override (tests: `http://127.0.0.1:<port>`).
    pub endpoint_url: Option<String>,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// The runtime could not start.
    #[error("cannot start the AWS client runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// No region anywhere.
    #[error("no AWS region: set [aws] region or a region in the environment")]
    NoRegion,
}

/// MediaConnect and MediaLive through the SDK.
#[derive(Debug)]
pub struct AwsCloud {
    rt: tokio::runtime::Runtime,
    mc: aws_sdk_mediaconnect::Client,
    ml: aws_sdk_medialive::Client,
    region: String,
}

impl AwsCloud {
    /// Builds clients; `fallback_region` (from a flow ARN) applies when no
    /// region is configured or in the environment.
    pub fn new(settings: &AwsSettings, fallback_region: Option<&str>) -> Result<AwsCloud, AwsSetupError> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("aws").enable_all().build()?;
        let conf = rt.block_on(load_config(settings, fallback_region));
        let region = conf.region().map(|r| r.to_string()).ok_or(AwsSetupError::NoRegion)?;
        let mc = aws_sdk_mediaconnect::Client::new(&conf);
        let ml = aws_sdk_medialive::Client::new(&conf);
        Ok(AwsCloud { rt, mc, ml, region })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Blocks on `f`; from inside another runtime, on a helper thread
    /// (tokio forbids nested `block_on`).
    fn run<F: Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.rt.block_on(f);
        }
        std::thread::scope(|s| match s.spawn(|| self.rt.block_on(f)).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

async fn load_config(s: &AwsSettings, fallback_region: Option<&str>) -> SdkConfig {
    let chain = RegionProviderChain::first_try(s.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(fallback_region.map(|r| Region::new(r.to_owned())));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(chain).timeout_config(
        TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).operation_timeout(Duration::from_secs(10)).build(),
    );
    if let Some(file) = &s.credentials_file {
        // The named file is authoritative: a profile provider over it alone,
        // not the whole chain (where environment variables would win).
        let files = EnvConfigFiles::builder().with_file(EnvConfigFileKind::Credentials, file).build();
        let mut p = ProfileFileCredentialsProvider::builder().profile_files(files);
        if let Some(name) = &s.profile {
            p = p.profile_name(name);
        }
        loader = loader.credentials_provider(p.build());
    } else if let Some(name) = &s.profile {
        loader = loader.profile_name(name);
    }
    if let Some(url) = &s.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Maps an SDK error without echoing request data.
fn api_error<E>(op: &'static str, e: SdkError<E, aws_sdk_mediaconnect::config::http::HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    match &e {
        SdkError::ServiceError(_) => {
            let code = e.code().unwrap_or_default().to_owned();
            let message = e.message().unwrap_or_default().to_owned();
            match (code.as_str(), status) {
                ("NotFoundException", _) => ApiError::NotFound(if message.is_empty() { op.to_owned() } else { message }),
                ("", Some(404)) => ApiError::Unsupported(op.to_owned()),
                ("", _) => ApiError::Service { code: format!("HTTP {}", status.unwrap_or_default()), message: op.to_owned() },
                _ => ApiError::Service { code, message },
            }
        }
        // moto's HTML 404 for an operation it lacks cannot be parsed.
        SdkError::ResponseError(_) if status == Some(404) => ApiError::Unsupported(op.to_owned()),
        _ => ApiError::Transport(format!("{op}: {}", DisplayErrorContext(&e))),
    }
}

/// Keeps the raw body of the last response (see the module docs).
#[derive(Debug, Default, Clone)]
struct RawBody(Arc<Mutex<Option<Vec<u8>>>>);

impl Intercept for RawBody {
    fn name(&self) -> &'static str {
        "edge-cloud raw body (moto flat source fields)"
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = ctx.response().body().bytes() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes.to_vec());
        }
        Ok(())
    }
}

fn to_u16(v: Option<i32>) -> Option<u16> {
    v.and_then(|p| u16::try_from(p).ok())
}
fn to_u32(v: Option<i32>) -> Option<u32> {
    v.and_then(|p| u32::try_from(p).ok())
}

fn transport(t: &mc::Transport) -> Transport {
    Transport {
        protocol: t.protocol().map(|p| Protocol::from_wire(p.as_str())),
        min_latency_ms: to_u32(t.min_latency()),
        max_latency_ms: to_u32(t.max_latency()),
        max_bitrate_bps: t.max_bitrate().and_then(|b| u64::try_from(b).ok()),
        stream_id: t.stream_id().map(str::to_owned),
        smoothing_latency_ms: to_u32(t.smoothing_latency()),
    }
}

/// moto's flat source fields, by source name.
fn flat_transport(raw: &Value, name: &str) -> Option<Transport> {
    let flow = raw.get("flow")?;
    let mut all = flow.get("sources").and_then(Value::as_array).cloned().unwrap_or_default();
    all.extend(flow.get("source").cloned());
    let src = all.iter().find(|s| s.get("name").and_then(Value::as_str) == Some(name))?;
    let num = |k: &str| src.get(k).and_then(Value::as_i64);
    Some(Transport {
        protocol: src.get("protocol").and_then(Value::as_str).map(Protocol::from_wire),
        min_latency_ms: num("minLatency").and_then(|v| u32::try_from(v).ok()),
        max_latency_ms: num("maxLatency").and_then(|v| u32::try_from(v).ok()),
        max_bitrate_bps: num("maxBitrate").and_then(|v| u64::try_from(v).ok()),
        stream_id: src.get("streamId").and_then(Value::as_str).map(str::to_owned),
        smoothing_latency_ms: num("smoothingLatency").and_then(|v| u32::try_from(v).ok()),
    })
}

fn source(s: &mc::Source, raw: Option<&Value>) -> FlowSource {
    let name = s.name().unwrap_or_default().to_owned();
    let transport = match s.transport() {
        Some(t) => transport(t),
        None => raw.and_then(|r| flat_transport(r, &name)).unwrap_or_default(),
    };
    FlowSource {
        arn: s.source_arn().map(str::to_owned),
        description: s.description().map(str::to_owned),
        ingest_ip: s.ingest_ip().map(str::to_owned),
        ingest_port: to_u16(s.ingest_port()),
        whitelist_cidr: s.whitelist_cidr().map(str::to_owned),
        peer_ip: s.peer_ip_address().map(str::to_owned),
        decryption: s.decryption().map(|d| SourceDecryption {
            algorithm: d.algorithm().map(|a| a.as_str().to_owned()),
            key_type: d.key_type().map(|k| k.as_str().to_owned()),
            role_arn: d.role_arn().map(str::to_owned),
            secret_arn: d.secret_arn().map(str::to_owned),
        }),
        transport,
        name,
    }
}

impl FlowApi for AwsCloud {
    fn describe_flow(&self, arn: &FlowArn) -> Result<Flow, ApiError> {
        let raw = RawBody::default();
        let out = self
            .run(
                self.mc
                    .describe_flow()
                    .flow_arn(arn.as_str())
                    .customize()
                    .config_override(aws_sdk_mediaconnect::config::Builder::default().interceptor(raw.clone()))
                    .send(),
            )
            .map_err(|e| api_error("DescribeFlow", e))?;
        let raw: Option<Value> = raw.0.lock().unwrap_or_else(|p| p.into_inner()).take().and_then(|b| serde_json::from_slice(&b).ok());
        let f =
            out.flow().ok_or_else(|| ApiError::Service { code: "Malformed".into(), message: "DescribeFlow without a flow".into() })?;
        let mut sources: Vec<FlowSource> = f.sources().iter().map(|s| source(s, raw.as_ref())).collect();
        if sources.is_empty() {
            sources.extend(f.source().map(|s| source(s, raw.as_ref())));
        }
        Ok(Flow {
            arn: arn.clone(),
            name: f.name().unwrap_or_default().to_owned(),
            status: FlowStatus::from_wire(f.status().map(|s| s.as_str()).unwrap_or_default()),
            sources,
            egress_ip: f.egress_ip().map(str::to_owned),
        })
    }

    fn start_flow(&self, arn: &FlowArn) -> Result<FlowStatus, ApiError> {
        let out = self.run(self.mc.start_flow().flow_arn(arn.as_str()).send()).map_err(|e| api_error("StartFlow", e))?;
        Ok(FlowStatus::from_wire(out.status().map(|s| s.as_str()).unwrap_or("STARTING")))
    }

    fn update_flow_source(&self, u: &SourceUpdate) -> Result<(), ApiError> {
        let t = &u.transport;
        let i32_of = |v: Option<u32>| v.and_then(|x| i32::try_from(x).ok());
        let req = self
            .mc
            .update_flow_source()
            .flow_arn(&u.flow_arn)
            .source_arn(&u.source_arn)
            .set_description(u.description.clone())
            .set_ingest_port(u.ingest_port.map(i32::from))
            .set_whitelist_cidr(u.whitelist_cidr.clone())
            .set_protocol(t.protocol.as_ref().map(|p| mc::Protocol::from(p.as_str())))
            .set_min_latency(i32_of(t.min_latency_ms))
            .set_max_latency(i32_of(t.max_latency_ms))
            .set_max_bitrate(t.max_bitrate_bps.and_then(|b| i32::try_from(b).ok()))
            .set_stream_id(t.stream_id.clone())
            .set_decryption(u.decryption.as_ref().map(|d| {
                mc::UpdateEncryption::builder()
                    .set_algorithm(d.algorithm.as_deref().map(mc::Algorithm::from))
                    .set_key_type(d.key_type.as_deref().map(mc::KeyType::from))
                    .set_role_arn(d.role_arn.clone())
                    .set_secret_arn(d.secret_arn.clone())
                    .build()
            }));
        self.run(req.send()).map(|_| ()).map_err(|e| api_error("UpdateFlowSource", e))
    }

    fn source_metadata(&self, arn: &FlowArn) -> Result<SourceMetadata, ApiError> {
        let out = self
            .run(self.mc.describe_flow_source_metadata().flow_arn(arn.as_str()).send())
            .map_err(|e| api_error("DescribeFlowSourceMetadata", e))?;
        let info = out.transport_media_info();
        Ok(SourceMetadata {
            timestamp: out.timestamp().map(|t| t.to_string()),
            messages: out
                .messages()
                .iter()
                .map(|m| MetadataMessage {
                    code: m.code().unwrap_or_default().to_owned(),
                    message: m.message().unwrap_or_default().to_owned(),
                    resource_name: m.resource_name().map(str::to_owned),
                })
                .collect(),
            ts_id: info.and_then(|i| i.ts_id()).map(i64::from),
            programs: info
                .map(|i| i.programs())
                .unwrap_or_default()
                .iter()
                .map(|p| Program {
                    number: p.program_number().map(i64::from).unwrap_or_default(),
                    name: p.program_name().map(str::to_owned),
                    pid: p.program_pid().map(i64::from).unwrap_or_default(),
                    pcr_pid: p.pcr_pid().map(i64::from).unwrap_or_default(),
                    streams: p
                        .streams()
                        .iter()
                        .map(|s| ElementaryStream {
                            pid: s.pid().map(i64::from).unwrap_or_default(),
                            stream_type: s.stream_type().unwrap_or_default().to_owned(),
                            codec: s.codec().map(str::to_owned),
                            frame_rate: s.frame_rate().map(str::to_owned),
                            width: s.frame_resolution().and_then(|r| r.frame_width()).map(i64::from),
                            height: s.frame_resolution().and_then(|r| r.frame_height()).map(i64::from),
                            channels: s.channels().map(i64::from),
                            sample_rate: s.sample_rate().map(i64::from),
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

impl ChannelApi for AwsCloud {
    fn describe_channel(&self, id: &ChannelId) -> Result<Channel, ApiError> {
        let out = self.run(self.ml.describe_channel().channel_id(id.as_str()).send()).map_err(|e| api_error("DescribeChannel", e))?;
        Ok(Channel {
            id: id.to_string(),
            name: out.name().map(str::to_owned),
            state: out.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            pipelines_running: out.pipelines_running_count().map(i64::from),
            pipelines: out
                .pipeline_details()
                .iter()
                .map(|p| PipelineDetail {
                    pipeline_id: p.pipeline_id().unwrap_or_default().to_owned(),
                    active_input_attachment_name: p.active_input_attachment_name().map(str::to_owned),
                })
                .collect(),
            input_attachments: out
                .input_attachments()
                .iter()
                .map(|a| InputAttachment {
                    name: a.input_attachment_name().map(str::to_owned),
                    input_id: a.input_id().map(str::to_owned),
                })
                .collect(),
        })
    }

    fn describe_input(&self, id: &str) -> Result<Input, ApiError> {
        let out = self.run(self.ml.describe_input().input_id(id).send()).map_err(|e| api_error("DescribeInput", e))?;
        Ok(Input {
            id: id.to_owned(),
            name: out.name().map(str::to_owned),
            kind: out.r#type().map(|t| t.as_str().to_owned()),
            state: out.state().map(|s| s.as_str().to_owned()),
            flow_arns: out.media_connect_flows().iter().filter_map(|f| f.flow_arn().map(str::to_owned)).collect(),
            destinations: out
                .destinations()
                .iter()
                .map(|d| InputDestination {
                    ip: d.ip().map(str::to_owned),
                    port: d.port().map(str::to_owned),
                    url: d.url().map(str::to_owned),
                })
                .collect(),
            srt_caller_sources: out
                .srt_settings()
                .map(|s| s.srt_caller_sources())
                .unwrap_or_default()
                .iter()
                .map(|c| SrtCallerSource {
                    listener_address: c.srt_listener_address().map(str::to_owned),
                    listener_port: c.srt_listener_port().map(str::to_owned),
                    stream_id: c.stream_id().map(str::to_owned),
                    minimum_latency_ms: to_u32(c.minimum_latency()),
                    decryption_algorithm: c.decryption().and_then(|d| d.algorithm()).map(|a| a.as_str().to_owned()),
                    passphrase_secret_arn: c.decryption().and_then(|d| d.passphrase_secret_arn()).map(str::to_owned),
                })
                .collect(),
            security_groups: out.security_groups().to_vec(),
        })
    }

    fn describe_input_security_group(&self, id: &str) -> Result<InputSecurityGroup, ApiError> {
        let out = self
            .run(self.ml.describe_input_security_group().input_security_group_id(id).send())
            .map_err(|e| api_error("DescribeInputSecurityGroup", e))?;
        Ok(InputSecurityGroup {
            id: out.id().unwrap_or(id).to_owned(),
            cidrs: out.whitelist_rules().iter().filter_map(|r| r.cidr().map(str::to_owned)).collect(),
        })
    }

    fn start_channel(&self, id: &ChannelId) -> Result<String, ApiError> {
        let out = self.run(self.ml.start_channel().channel_id(id.as_str()).send()).map_err(|e| api_error("StartChannel", e))?;
        Ok(out.state().map(|s| s.as_str().to_owned()).unwrap_or_default())
    }

    fn stop_channel(&self, id: &ChannelId) -> Result<String, ApiError> {
        let out = self.run(self.ml.stop_channel().channel_id(id.as_str()).send()).map_err(|e| api_error("StopChannel", e))?;
        Ok(out.state().map(|s| s.as_str().to_owned()).unwrap_or_default())
    }
}
