//! MediaConnect integration against a real moto server (feature `aws`):
//! resolution of srt-listener and rtp-fec flows, STANDBY start, whitelist
//! read-modify-write, a protocol mismatch confined to one output, and an SRT
//! output named only by flow ARN delivering to `srt-live-transmit` at the
//! address the emulated flow reports. MediaLive inputs named by id:
//! DescribeInput of each type, a MEDIACONNECT input's pipelines A and B
//! resolved to their flows, and an input-type mismatch confined to one
//! output while an input-named output streams (`docs/medialive-inputs.md#moto`).
//!
//! moto reports `IngestIp` `127.0.0.<source index>` and echoes the ingest
//! port it was given (`docs/mediaconnect.md#moto`), so a listener bound there on loopback
//! is the flow's ingest.
#![cfg(test)]
#![cfg(feature = "aws")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_mediaconnect::config::{Credentials, Region};
use aws_sdk_mediaconnect::types::{Protocol as SdkProtocol, SetSourceRequest};
use edge_cloud::aws::{AwsCloud, AwsSettings};
use edge_cloud::{
    ApiError, ChannelApi, FlowApi, FlowArn, FlowTarget, InputError, InputId, InputOutputKind, InputTarget, InputType, OutputKind,
    Pipeline, Protocol, ResolveError,
};
use edge_tests::moto::MotoServer;
use edge_tests::{agent_bin, config_toml, free_udp_port, record, wait_for, AgentProc, SrtListenerPeer};

const REGION: &str = "us-east-1";
/// A distinctive secret: it must never show in logs or status.
const SECRET: &str = "moto-SECRET-9f3c2e";

/// Creates a flow with one source through the SDK, as an operator's
/// tooling would; returns its ARN.
fn create_flow(moto: &MotoServer, name: &str, protocol: SdkProtocol, port: u16) -> FlowArn {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", SECRET, None, None, "test"))
            .endpoint_url(moto.endpoint())
            .load()
            .await;
        let mc = aws_sdk_mediaconnect::Client::new(&conf);
        let source = SetSourceRequest::builder()
            .name("main")
            .protocol(protocol)
            .ingest_port(i32::from(port))
            .min_latency(1200)
            .whitelist_cidr("10.0.0.0/8")
            .description("venue encoder")
            .build();
        let out = mc.create_flow().name(name).source(source).send().await.unwrap();
        FlowArn::try_from(out.flow().and_then(|f| f.flow_arn()).unwrap().to_owned()).unwrap()
    })
}

fn cloud(moto: &MotoServer) -> AwsCloud {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(&creds, format!("[default]\naws_access_key_id = testing\naws_secret_access_key = {SECRET}\n")).unwrap();
    let settings =
        AwsSettings { region: Some(REGION.into()), credentials_file: Some(creds), profile: None, endpoint_url: Some(moto.endpoint()) };
    let c = AwsCloud::new(&settings, None).unwrap();
    // The provider reads the file lazily, on the first call: keep it for
    // the whole test by leaking the directory.
    std::mem::forget(dir);
    c
}

fn target(arn: &FlowArn, kind: OutputKind) -> FlowTarget {
    FlowTarget { arn: arn.clone(), kind, source_name: None, start_if_standby: false, whitelist_cidr: None }
}

#[test]
fn srt_and_rtp_fec_flows_resolve_standby_starts_and_whitelist_keeps_every_field() {
    let moto = MotoServer::start();
    moto.reset();
    let srt = create_flow(&moto, "venue-srt", SdkProtocol::SrtListener, 5000);
    let fec = create_flow(&moto, "venue-fec", SdkProtocol::RtpFec, 6000);
    let api = cloud(&moto);

    // STANDBY and not allowed to start: a clear refusal, nothing changed.
    let e = edge_cloud::resolve(&api, &target(&srt, OutputKind::Srt)).unwrap_err();
    assert!(matches!(e, ResolveError::NotStarted { .. }), "{e}");

    let t0 = Instant::now();
    let r = edge_cloud::resolve(&api, &FlowTarget { start_if_standby: true, ..target(&srt, OutputKind::Srt) }).unwrap();
    record("aws_moto", "resolve with StartFlow against moto (ms)", t0.elapsed().as_millis());
    let d = &r.destination;
    assert_eq!(d.address, "127.0.0.0:5000".parse().unwrap());
    assert_eq!(d.protocol, Protocol::SrtListener);
    assert_eq!(d.min_latency_ms, Some(1200));
    assert!(r.actions.iter().any(|a| a.contains("started flow")), "{:?}", r.actions);
    // moto: STARTING, then ACTIVE on the next describe.
    assert_eq!(api.describe_flow(&srt).unwrap().status.as_str(), "ACTIVE");

    let t0 = Instant::now();
    let f = edge_cloud::plan(&api, &target(&fec, OutputKind::RtpFec)).unwrap().destination;
    record("aws_moto", "DescribeFlow resolve against moto (ms)", t0.elapsed().as_millis());
    assert_eq!(f.address.port(), 6000);
    assert_eq!(f.fec_ports, Some((6002, 6004)));

    // Wrong kind for the flow: a mismatch, and the flow is left alone.
    let e = edge_cloud::resolve(&api, &FlowTarget { start_if_standby: true, ..target(&fec, OutputKind::Srt) }).unwrap_err();
    assert!(matches!(e, ResolveError::ProtocolMismatch { .. }), "{e}");
    assert_eq!(api.describe_flow(&fec).unwrap().status.as_str(), "STANDBY");

    // Whitelist: moto blanks every field UpdateFlowSource does not carry,
    // so the ingest port, protocol and latency surviving proves the
    // read-modify-write sends them all.
    let w = FlowTarget { whitelist_cidr: Some("192.0.2.7/32".into()), ..target(&srt, OutputKind::Srt) };
    let r = edge_cloud::resolve(&api, &w).unwrap();
    assert!(r.actions.iter().any(|a| a.contains("192.0.2.7/32")), "{:?}", r.actions);
    let after = api.describe_flow(&srt).unwrap();
    let s = &after.sources[0];
    assert_eq!(s.whitelist_cidr.as_deref(), Some("192.0.2.7/32"));
    assert_eq!(s.ingest_port, Some(5000));
    assert_eq!(s.transport.protocol, Some(Protocol::SrtListener));
    assert_eq!(s.transport.min_latency_ms, Some(1200));
    assert_eq!(s.description.as_deref(), Some("venue encoder"));

    // Metadata is not emulated: reported as unsupported, not as an outage.
    assert!(matches!(api.source_metadata(&srt), Err(edge_cloud::ApiError::Unsupported(_))));
}

fn aws_section(moto: &MotoServer, dir: &std::path::Path) -> String {
    let creds = dir.join("credentials");
    std::fs::write(&creds, format!("[default]\naws_access_key_id = testing\naws_secret_access_key = {SECRET}\n")).unwrap();
    format!(
        "[aws]\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\ncredentials_file = \"{}\"\npoll_interval_s = 2\n\n",
        moto.endpoint(),
        creds.display()
    )
}

#[test]
fn srt_output_named_only_by_flow_arn_delivers_to_the_flow_ingest() {
    let moto = MotoServer::start();
    moto.reset();
    let dir = tempfile::tempdir().unwrap();
    // The flow's ingest port is the listener's: a free port on loopback.
    let port = free_udp_port();
    let arn = create_flow(&moto, "venue-e2e", SdkProtocol::SrtListener, port);
    let peer = SrtListenerPeer::start_at("127.0.0.0", port, 200, None, &dir.path().join("rx.ts"));
    let outputs = format!(
        "{}[[outputs]]\nname = \"primary\"\nkind = \"srt\"\nflow_arn = \"{arn}\"\nstart_flow_if_standby = true\nlatency_ms = 200\n",
        aws_section(&moto, dir.path())
    );
    let config = config_toml("aws-e2e", 800, &outputs);

    // Dry run first: prints the destination, changes nothing.
    let cfg_path = dir.path().join("dry.toml");
    std::fs::write(&cfg_path, &config).unwrap();
    let out = Command::new(agent_bin()).args(["resolve", "--json", "--config"]).arg(&cfg_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["destination"], format!("127.0.0.0:{port}"));
    assert!(rows[0]["flow"]["actions"][0].as_str().unwrap().contains("would start"), "{rows}");
    record("aws_moto", "edge-agent resolve: DescribeFlow latency (ms)", &rows[0]["ms"]);
    let text = Command::new(agent_bin()).args(["resolve", "--config"]).arg(&cfg_path).output().unwrap();
    println!("{}", String::from_utf8_lossy(&text.stdout));

    let agent = AgentProc::start(dir.path(), &config);
    let t0 = Instant::now();
    agent.wait_output_state("primary", "connected", Duration::from_secs(30));
    record("aws_moto", "flow-ARN SRT output: start to connected (s)", format!("{:.1}", t0.elapsed().as_secs_f64()));
    wait_for("200 kB at the flow's ingest listener", Duration::from_secs(30), || (peer.received() > 200_000).then_some(()));
    let status = wait_for("flow health in the status file", Duration::from_secs(20), || {
        agent.status().filter(|s| s["cloud"]["flows"][0]["status"] == "ACTIVE")
    });
    assert_eq!(status["cloud"]["destinations"]["primary"]["resolved"]["destination"]["address"], format!("127.0.0.0:{port}"));
    let probe = edge_tests::ffprobe(&peer.output, &["-show_programs"]);
    assert!(probe["programs"].as_array().is_some_and(|p| !p.is_empty()), "{probe}");
    let log = agent.log();
    assert!(log.contains("flow resolved"), "{log}");
    for text in [&log, &status.to_string()] {
        assert!(!text.contains(SECRET), "secret leaked");
    }
}

#[test]
fn protocol_mismatch_is_an_error_for_that_output_only() {
    let moto = MotoServer::start();
    moto.reset();
    let dir = tempfile::tempdir().unwrap();
    let fec_arn = create_flow(&moto, "venue-fec", SdkProtocol::RtpFec, 7000);
    let backup_port = free_udp_port();
    let peer = SrtListenerPeer::start(backup_port, 200, None, &dir.path().join("backup.ts"));
    let outputs = format!(
        "{}[[outputs]]\nname = \"primary\"\nkind = \"srt\"\nflow_arn = \"{fec_arn}\"\nstart_flow_if_standby = true\nlatency_ms = 200\n\n{}",
        aws_section(&moto, dir.path()),
        edge_tests::srt_output("backup", backup_port, 200, None)
    );
    let agent = AgentProc::start(dir.path(), &config_toml("aws-mismatch", 800, &outputs));
    agent.wait_output_state("backup", "connected", Duration::from_secs(30));
    wait_for("backup receiving", Duration::from_secs(30), || (peer.received() > 100_000).then_some(()));
    let primary = wait_for("primary to report the mismatch", Duration::from_secs(20), || {
        agent.output("primary").filter(|o| o["last_error"].as_str().is_some_and(|e| e.contains("protocol mismatch")))
    });
    assert_ne!(primary["state"], "connected");
    let e = primary["last_error"].as_str().unwrap_or_default();
    assert!(e.contains("srt-listener") && e.contains("rtp-fec"), "{e}");
    // The backup keeps streaming while the primary stays refused.
    let before = peer.received();
    wait_for("backup still receiving", Duration::from_secs(10), || (peer.received() > before + 50_000).then_some(()));
    let status = wait_for("the mismatch in the cloud report", Duration::from_secs(20), || {
        agent.status().filter(|s| s["cloud"]["destinations"]["primary"]["permanent"] == true)
    });
    assert_eq!(agent.output("backup").unwrap()["state"], "connected");
    // Nothing was started on the mismatched flow.
    let api = cloud(&moto);
    assert_eq!(api.describe_flow(&fec_arn).unwrap().status.as_str(), "STANDBY", "{status}");
}

/// One MediaLive REST call to moto, as an operator's tooling would make it
/// (the tests crate has no MediaLive SDK; the agent's side uses the SDK).
/// moto routes by the credential scope and checks no signature.
fn medialive(moto: &MotoServer, method: &str, path: &str, body: &str) -> serde_json::Value {
    let addr = moto.endpoint().trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/medialive/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.split(' ').nth(1).is_some_and(|c| c.starts_with('2')), "{method} {path}: {head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
}

/// CreateInput; returns the input id.
fn create_input(moto: &MotoServer, body: &str) -> InputId {
    let out = medialive(moto, "POST", "/prod/inputs", body);
    InputId::try_from(out["input"]["id"].as_str().unwrap().to_owned()).unwrap()
}

fn input_target(id: &InputId, pipeline: Pipeline, kind: InputOutputKind) -> InputTarget {
    InputTarget {
        id: id.clone(),
        pipeline,
        kind,
        listen_port: None,
        stream_id: None,
        encrypted: false,
        flow_source: None,
        start_if_standby: true,
        public_ip: None,
        manage_whitelist: false,
    }
}

#[test]
fn medialive_inputs_of_each_type_describe_and_resolve_per_pipeline() {
    let moto = MotoServer::start();
    moto.reset();
    let api = cloud(&moto);
    let flow_a = create_flow(&moto, "venue-a", SdkProtocol::SrtListener, 5100);
    let flow_b = create_flow(&moto, "venue-b", SdkProtocol::RtpFec, 5200);
    let rtp = create_input(&moto, r#"{"name":"venue-rtp","type":"RTP_PUSH","inputSecurityGroups":["1234"],"destinations":[{},{}]}"#);
    let rtmp = create_input(
        &moto,
        r#"{"name":"venue-rtmp","type":"RTMP_PUSH","destinations":[{"streamName":"live/a"},{"streamName":"live/b"}]}"#,
    );
    let srt = create_input(&moto, r#"{"name":"venue-srt","type":"SRT_CALLER"}"#);
    let mc = create_input(
        &moto,
        &format!(
            r#"{{"name":"venue-mc","type":"MEDIACONNECT","roleArn":"arn:aws:iam::123456789012:role/ml","mediaConnectFlows":[{{"flowArn":"{flow_a}"}},{{"flowArn":"{flow_b}"}}]}}"#
        ),
    );
    let pull = create_input(&moto, r#"{"name":"venue-pull","type":"URL_PULL"}"#);
    // moto drops InputSecurityGroups on CreateInput; UpdateInput keeps them
    // (and, like UpdateFlowSource, blanks every field it is not sent).
    medialive(
        &moto,
        "PUT",
        &format!("/prod/inputs/{rtp}"),
        r#"{"name":"venue-rtp","inputSecurityGroups":["1234"],"destinations":[{},{}]}"#,
    );

    // DescribeInput through the agent's SDK client: every type maps.
    let t0 = Instant::now();
    let d = api.describe_input(rtp.as_str()).unwrap();
    record("aws_moto", "DescribeInput against moto (ms)", t0.elapsed().as_millis());
    assert_eq!((d.input_type(), d.name.as_deref()), (InputType::RtpPush, Some("venue-rtp")));
    assert_eq!(d.security_groups, vec!["1234".to_owned()]);
    // moto allocates no addresses: two destinations, both empty.
    assert_eq!(d.destinations.len(), 2);
    assert!(d.destinations.iter().all(|x| x.ip.is_none() && x.port.is_none() && x.url.is_none()), "{d:?}");
    assert_eq!(api.describe_input(rtmp.as_str()).unwrap().input_type(), InputType::RtmpPush);
    let s = api.describe_input(srt.as_str()).unwrap();
    assert_eq!((s.input_type(), s.srt_caller_sources.len()), (InputType::SrtCaller, 0));
    let m = api.describe_input(mc.as_str()).unwrap();
    assert_eq!((m.input_type(), m.flow_arns.clone()), (InputType::MediaConnect, vec![flow_a.to_string(), flow_b.to_string()]));
    assert_eq!(api.describe_input(pull.as_str()).unwrap().input_type(), InputType::Unsupported("URL_PULL".into()));
    assert!(matches!(api.describe_input_security_group("1234"), Err(ApiError::Unsupported(_))));

    // A mismatch is found from DescribeInput alone and touches nothing:
    // the MEDIACONNECT input's flows stay in STANDBY.
    for (id, kind, ty) in [
        (&rtp, InputOutputKind::SrtCaller, "RTP_PUSH"),
        (&srt, InputOutputKind::Rtp, "SRT_CALLER"),
        (&rtmp, InputOutputKind::RtpFec, "RTMP_PUSH"),
        (&mc, InputOutputKind::SrtListener, "MEDIACONNECT"),
        (&mc, InputOutputKind::Rtmp, "MEDIACONNECT"),
    ] {
        let e = edge_cloud::resolve_input(&api, &api, &input_target(id, Pipeline::A, kind), false).unwrap_err();
        assert!(matches!(e, InputError::Mismatch { .. }) && e.to_string().contains(ty), "{kind:?}: {e}");
        assert!(e.is_permanent());
    }
    assert_eq!(api.describe_flow(&flow_a).unwrap().status.as_str(), "STANDBY");
    let e = edge_cloud::resolve_input(&api, &api, &input_target(&pull, Pipeline::A, InputOutputKind::Rtp), false).unwrap_err();
    assert!(matches!(e, InputError::UnsupportedType { .. }), "{e}");

    // MEDIACONNECT: pipeline A is the first flow, B the second, each
    // resolved like flow_arn (started from STANDBY, protocol checked).
    let a = edge_cloud::resolve_input(&api, &api, &input_target(&mc, Pipeline::A, InputOutputKind::SrtCaller), false).unwrap();
    assert_eq!(a.endpoint.address(), Some("127.0.0.0:5100".parse().unwrap()));
    let b = edge_cloud::resolve_input(&api, &api, &input_target(&mc, Pipeline::B, InputOutputKind::RtpFec), false).unwrap();
    let edge_cloud::InputEndpoint::Flow(fb) = &b.endpoint else { panic!("{b:?}") };
    assert_eq!((fb.destination.address.port(), fb.destination.fec_ports), (5200, Some((5202, 5204))));
    assert!(fb.actions.iter().any(|x| x.contains("started flow")), "{:?}", fb.actions);
    // The flow's own protocol still decides: B is rtp-fec, not SRT.
    let e = edge_cloud::resolve_input(&api, &api, &input_target(&mc, Pipeline::B, InputOutputKind::SrtCaller), false).unwrap_err();
    assert!(e.to_string().contains("protocol mismatch"), "{e}");

    // What moto leaves out is the output's error, named, never a panic:
    // push destinations without addresses, no SrtSettings.
    let e = edge_cloud::resolve_input(&api, &api, &input_target(&rtp, Pipeline::B, InputOutputKind::Rtp), false).unwrap_err();
    assert!(e.to_string().contains("pipeline B: the destination reports no Ip, Port or Url"), "{e}");
    let e = edge_cloud::resolve_input(&api, &api, &input_target(&rtmp, Pipeline::A, InputOutputKind::Rtmp), false).unwrap_err();
    assert!(e.to_string().contains("no rtmp:// Url"), "{e}");
    let listener = InputTarget { listen_port: Some(9001), ..input_target(&srt, Pipeline::A, InputOutputKind::SrtListener) };
    let e = edge_cloud::resolve_input(&api, &api, &listener, false).unwrap_err();
    assert!(e.to_string().contains("no SRT caller source for pipeline A"), "{e}");
    let missing = InputId::try_from("9999999".to_owned()).unwrap();
    let e = edge_cloud::resolve_input(&api, &api, &input_target(&missing, Pipeline::A, InputOutputKind::Rtp), false).unwrap_err();
    assert!(!e.is_permanent(), "{e}");
}

#[test]
fn input_type_mismatch_is_that_outputs_error_while_an_input_named_output_streams() {
    let moto = MotoServer::start();
    moto.reset();
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let flow_a = create_flow(&moto, "venue-a", SdkProtocol::SrtListener, 5300);
    let flow_b = create_flow(&moto, "venue-b", SdkProtocol::SrtListener, port);
    let mc = create_input(
        &moto,
        &format!(
            r#"{{"name":"venue-mc","type":"MEDIACONNECT","roleArn":"arn:aws:iam::123456789012:role/ml","mediaConnectFlows":[{{"flowArn":"{flow_a}"}},{{"flowArn":"{flow_b}"}}]}}"#
        ),
    );
    let rtp = create_input(&moto, r#"{"name":"venue-rtp","type":"RTP_PUSH","destinations":[{},{}]}"#);
    // moto reports an RTMP_PUSH input's destinations as `{}`: the RTMP
    // output naming it can only show that, as its own error.
    let rtmp = create_input(
        &moto,
        r#"{"name":"venue-rtmp","type":"RTMP_PUSH","destinations":[{"streamName":"live/a"},{"streamName":"live/b"}]}"#,
    );
    // Pipeline B's flow ingest: moto reports 127.0.0.0 for a flow's first source.
    let peer = SrtListenerPeer::start_at("127.0.0.0", port, 200, None, &dir.path().join("b.ts"));
    let outputs = format!(
        "{}[[outputs]]\nname = \"primary\"\nkind = \"srt\"\nmedialive_input_id = \"{rtp}\"\npipeline = \"A\"\nlatency_ms = 200\n\n\
         [[outputs]]\nname = \"backup\"\nkind = \"srt\"\nmedialive_input_id = \"{mc}\"\npipeline = \"B\"\n\
         start_flow_if_standby = true\nlatency_ms = 200\n\n\
         [[outputs]]\nname = \"rtmp-a\"\nkind = \"rtmp\"\nmedialive_input_id = \"{rtmp}\"\npipeline = \"A\"\n",
        aws_section(&moto, dir.path())
    );
    let config = config_toml("aws-input", 800, &outputs);
    let cfg_path = dir.path().join("agent.toml");
    std::fs::write(&cfg_path, &config).unwrap();

    // Dry run: the input type, the pipeline, the destination, the mismatch.
    let out = Command::new(agent_bin()).args(["resolve", "--json", "--config"]).arg(&cfg_path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = rows[0]["error"].as_str().unwrap_or_default();
    assert!(e.contains("input mismatch") && e.contains("RTP_PUSH"), "{rows}");
    assert_eq!(rows[0]["source"], format!("medialive_input_id {rtp} pipeline A"));
    assert_eq!(rows[1]["destination"], format!("127.0.0.0:{port}"));
    assert_eq!((&rows[1]["input"]["input_type"], &rows[1]["input"]["pipeline"]), (&"MEDIACONNECT".into(), &"B".into()));
    assert!(rows[1]["input"]["endpoint"]["actions"][0].as_str().unwrap_or_default().contains("would start"), "{rows}");
    let e = rows[2]["error"].as_str().unwrap_or_default();
    assert!(e.contains("pipeline A: the destination has no rtmp:// Url"), "{rows}");
    let text = Command::new(agent_bin()).args(["resolve", "--config"]).arg(&cfg_path).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    println!("{text}");
    assert!(text.contains("pipeline B: flow venue-b [STANDBY]"), "{text}");

    let agent = AgentProc::start(dir.path(), &config);
    let t0 = Instant::now();
    agent.wait_output_state("backup", "connected", Duration::from_secs(30));
    record(
        "aws_moto",
        "input-named SRT output (MEDIACONNECT, pipeline B): start to connected (s)",
        format!("{:.1}", t0.elapsed().as_secs_f64()),
    );
    wait_for("200 kB at pipeline B's flow ingest", Duration::from_secs(30), || (peer.received() > 200_000).then_some(()));
    let primary = wait_for("primary to report the mismatch", Duration::from_secs(20), || {
        agent.output("primary").filter(|o| o["last_error"].as_str().is_some_and(|e| e.contains("input mismatch")))
    });
    assert_ne!(primary["state"], "connected");
    let rtmp_out = wait_for("the RTMP output to say why it waits", Duration::from_secs(20), || {
        agent.output("rtmp-a").filter(|o| o["last_error"].as_str().is_some_and(|e| e.contains("no rtmp:// Url")))
    });
    assert_eq!(rtmp_out["state"], "connecting", "{rtmp_out}");
    let status = wait_for("the mismatch alarm in the cloud report", Duration::from_secs(20), || {
        agent.status().filter(|s| s["cloud"]["destinations"]["primary"]["permanent"] == true)
    });
    assert_eq!(status["cloud"]["destinations"]["primary"]["named_by"], "medialive_input_id");
    assert_eq!(status["cloud"]["destinations"]["backup"]["input"]["pipeline"], "B");
    // The backup keeps streaming while the primary stays refused; pipeline
    // A's flow was never started.
    let before = peer.received();
    wait_for("backup still receiving", Duration::from_secs(10), || (peer.received() > before + 50_000).then_some(()));
    assert_eq!(agent.output("backup").unwrap()["state"], "connected");
    let api = cloud(&moto);
    assert_eq!(api.describe_flow(&flow_a).unwrap().status.as_str(), "STANDBY");
    let log = agent.log();
    assert!(log.contains("medialive input resolved"), "{log}");
    for text in [&log, &status.to_string()] {
        assert!(!text.contains(SECRET), "secret leaked");
    }
}
