//! Flow and channel health: what AWS sees, turned into telemetry and alarms
//! (no I/O; the caller fetches and passes the answers in).
//!
//! - Flow: `Status` from `DescribeFlow`; source metadata from
//!   `DescribeFlowSourceMetadata` (MediaConnect User Guide, "Viewing source
//!   metadata"): its `Messages` say what the flow cannot see (e.g. no
//!   data, no PMT), its `TransportMediaInfo` what it does see.
//! - Channel: `DescribeChannel` `State` and `PipelineDetails[].
//!   ActiveInputAttachmentName` (MediaLive API Reference, `PipelineDetail`);
//!   the attachment's input lists the flows behind it (`DescribeInput`
//!   `MediaConnectFlows`).

use serde::Serialize;

use crate::model::{Channel, Flow, FlowStatus, Input, SourceMetadata};

/// How bad an alarm is (mapped onto the fleet's severities by the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Major,
    Critical,
}

/// One raised alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudAlarm {
    /// e.g. `FLOW_NOT_ACTIVE`.
    pub code: &'static str,
    /// e.g. `flow:primary`, `channel:1234567`.
    pub component: String,
    pub severity: Severity,
    pub message: String,
}

/// What the metadata says, in a few fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataSummary {
    pub timestamp: Option<String>,
    pub messages: Vec<String>,
    pub programs: usize,
    /// e.g. `h264 1280x720 29.97`, `aac 2ch 48000`.
    pub streams: Vec<String>,
}

/// Flow health of one output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowHealth {
    pub output: String,
    pub flow_arn: String,
    pub flow_name: String,
    pub status: FlowStatus,
    /// The address the flow receives from, when it reports one.
    pub peer_ip: Option<String>,
    /// `None` when the endpoint does not offer metadata (moto) or it failed.
    pub metadata: Option<MetadataSummary>,
    pub alarms: Vec<CloudAlarm>,
}

/// Summarises metadata for telemetry.
pub fn summarise(meta: &SourceMetadata) -> MetadataSummary {
    let streams = meta
        .programs
        .iter()
        .flat_map(|p| p.streams.iter())
        .map(|s| {
            let mut parts = vec![s.codec.clone().unwrap_or_else(|| s.stream_type.clone())];
            if let (Some(w), Some(h)) = (s.width, s.height) {
                parts.push(format!("{w}x{h}"));
            }
            if let Some(fr) = &s.frame_rate {
                parts.push(fr.clone());
            }
            if let Some(c) = s.channels {
                parts.push(format!("{c}ch"));
            }
            if let Some(r) = s.sample_rate {
                parts.push(r.to_string());
            }
            parts.join(" ")
        })
        .collect();
    MetadataSummary {
        timestamp: meta.timestamp.clone(),
        messages: meta.messages.iter().map(|m| format!("{}: {}", m.code, m.message)).collect(),
        programs: meta.programs.len(),
        streams,
    }
}

/// Health of the flow behind output `output`. `box_sending` is whether the
/// output is connected and sending: only then is a flow that sees nothing
/// an alarm (a stopped box explains an empty flow).
pub fn flow_health(
    output: &str,
    flow: &Flow,
    source_name: Option<&str>,
    meta: Option<&SourceMetadata>,
    box_sending: bool,
) -> FlowHealth {
    let component = format!("flow:{output}");
    let mut alarms = Vec::new();
    let source = source_name.and_then(|n| flow.sources.iter().find(|s| s.name == n)).or_else(|| flow.sources.first());
    if box_sending && flow.status != FlowStatus::Active {
        alarms.push(CloudAlarm {
            code: "FLOW_NOT_ACTIVE",
            component: component.clone(),
            severity: Severity::Major,
            message: format!("flow {} is {} while the box sends to it", flow.name, flow.status),
        });
    }
    if box_sending && flow.status == FlowStatus::Active {
        if let Some(m) = meta {
            if !m.messages.is_empty() {
                let text: Vec<String> = m.messages.iter().map(|x| format!("{}: {}", x.code, x.message)).collect();
                alarms.push(CloudAlarm {
                    code: "FLOW_SOURCE_PROBLEM",
                    component: component.clone(),
                    severity: Severity::Major,
                    message: format!("flow {} reports: {}", flow.name, text.join("; ")),
                });
            } else if m.programs.is_empty() {
                alarms.push(CloudAlarm {
                    code: "FLOW_NOT_RECEIVING",
                    component: component.clone(),
                    severity: Severity::Major,
                    message: format!("flow {} sees no transport stream programs while the box sends", flow.name),
                });
            }
        }
    }
    FlowHealth {
        output: output.to_owned(),
        flow_arn: flow.arn.to_string(),
        flow_name: flow.name.clone(),
        status: flow.status.clone(),
        peer_ip: source.and_then(|s| s.peer_ip.clone()),
        metadata: meta.map(summarise),
        alarms,
    }
}

/// One pipeline of the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineHealth {
    pub pipeline_id: String,
    pub active_input: Option<String>,
    /// Whether the active input is fed by one of the box's flows; `None`
    /// when unknown.
    pub box_flow_active: Option<bool>,
}

/// MediaLive channel health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelHealth {
    pub channel_id: String,
    pub name: Option<String>,
    pub state: String,
    pub pipelines_running: Option<i64>,
    /// Empty when MediaLive (or moto) gives no `PipelineDetails`.
    pub pipelines: Vec<PipelineHealth>,
    pub alarms: Vec<CloudAlarm>,
}

/// Health of the channel; `inputs` are the channel's attached inputs as
/// described, `box_flows` the ARNs of the flows the box feeds.
pub fn channel_health(channel: &Channel, inputs: &[Input], box_flows: &[String]) -> ChannelHealth {
    let component = format!("channel:{}", channel.id);
    let running = channel.state == "RUNNING";
    let mut alarms = Vec::new();
    let pipelines: Vec<PipelineHealth> = channel
        .pipelines
        .iter()
        .map(|p| {
            let attachment = p
                .active_input_attachment_name
                .as_deref()
                .and_then(|name| channel.input_attachments.iter().find(|a| a.name.as_deref() == Some(name)));
            let input = attachment.and_then(|a| a.input_id.as_deref()).and_then(|id| inputs.iter().find(|i| i.id == id));
            let box_flow_active = input.map(|i| i.flow_arns.iter().any(|f| box_flows.contains(f)));
            PipelineHealth {
                pipeline_id: p.pipeline_id.clone(),
                active_input: p.active_input_attachment_name.clone(),
                box_flow_active,
            }
        })
        .collect();
    if running {
        for p in &pipelines {
            if p.box_flow_active == Some(false) || (p.active_input.is_some() && p.box_flow_active.is_none()) {
                alarms.push(CloudAlarm {
                    code: "CHANNEL_INPUT_NOT_BOX",
                    component: component.clone(),
                    severity: Severity::Major,
                    message: format!(
                        "channel {} pipeline {} runs on input `{}`, which is not fed by this box's flows",
                        channel.id,
                        p.pipeline_id,
                        p.active_input.as_deref().unwrap_or("?")
                    ),
                });
            }
        }
    }
    ChannelHealth {
        channel_id: channel.id.clone(),
        name: channel.name.clone(),
        state: channel.state.clone(),
        pipelines_running: channel.pipelines_running,
        pipelines,
        alarms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn flow(status: FlowStatus) -> Flow {
        Flow {
            arn: FlowArn::try_from("arn:aws:mediaconnect:eu-west-1:1:flow:1-a:venue".to_owned()).unwrap(),
            name: "venue".into(),
            status,
            sources: vec![FlowSource { name: "a".into(), peer_ip: Some("192.0.2.7".into()), ..FlowSource::default() }],
            egress_ip: None,
        }
    }

    fn meta_ok() -> SourceMetadata {
        SourceMetadata {
            timestamp: Some("2026-11-22T05:00:00Z".into()),
            messages: vec![],
            ts_id: Some(1),
            programs: vec![Program {
                number: 1,
                name: None,
                pid: 480,
                pcr_pid: 481,
                streams: vec![
                    ElementaryStream {
                        pid: 481,
                        stream_type: "27".into(),
                        codec: Some("h264".into()),
                        frame_rate: Some("30".into()),
                        width: Some(1280),
                        height: Some(720),
                        ..Default::default()
                    },
                    ElementaryStream {
                        pid: 256,
                        stream_type: "15".into(),
                        codec: Some("aac".into()),
                        channels: Some(2),
                        sample_rate: Some(48000),
                        ..Default::default()
                    },
                ],
            }],
        }
    }

    #[test]
    fn healthy_flow_reports_metadata_without_alarms() {
        let h = flow_health("primary", &flow(FlowStatus::Active), None, Some(&meta_ok()), true);
        assert!(h.alarms.is_empty(), "{:?}", h.alarms);
        let m = h.metadata.unwrap();
        assert_eq!(m.streams, vec!["h264 1280x720 30", "aac 2ch 48000"]);
        assert_eq!(h.peer_ip.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn metadata_messages_raise_a_source_alarm() {
        let meta = SourceMetadata {
            messages: vec![MetadataMessage { code: "NO_DATA".into(), message: "no data received".into(), resource_name: None }],
            ..SourceMetadata::default()
        };
        let h = flow_health("primary", &flow(FlowStatus::Active), None, Some(&meta), true);
        assert_eq!(h.alarms.len(), 1);
        assert_eq!(h.alarms[0].code, "FLOW_SOURCE_PROBLEM");
        assert!(h.alarms[0].message.contains("no data received"));
        // A box that is not sending explains it: no alarm.
        assert!(flow_health("primary", &flow(FlowStatus::Active), None, Some(&meta), false).alarms.is_empty());
    }

    #[test]
    fn empty_metadata_and_inactive_flow_raise_alarms() {
        let h = flow_health("p", &flow(FlowStatus::Active), None, Some(&SourceMetadata::default()), true);
        assert_eq!(h.alarms[0].code, "FLOW_NOT_RECEIVING");
        let h = flow_health("p", &flow(FlowStatus::Standby), None, None, true);
        assert_eq!(h.alarms[0].code, "FLOW_NOT_ACTIVE");
        assert_eq!(h.alarms[0].component, "flow:p");
        // Unknown metadata (moto): status only, no guess.
        assert!(flow_health("p", &flow(FlowStatus::Active), None, None, true).alarms.is_empty());
    }

    fn channel(active: [&str; 2]) -> (Channel, Vec<Input>) {
        let ch = Channel {
            id: "1234567".into(),
            name: Some("venue".into()),
            state: "RUNNING".into(),
            pipelines_running: Some(2),
            pipelines: active
                .iter()
                .enumerate()
                .map(|(i, a)| PipelineDetail { pipeline_id: i.to_string(), active_input_attachment_name: Some((*a).to_owned()) })
                .collect(),
            input_attachments: vec![
                InputAttachment { name: Some("box".into()), input_id: Some("in-box".into()) },
                InputAttachment { name: Some("slate".into()), input_id: Some("in-slate".into()) },
            ],
        };
        let inputs = vec![
            Input {
                id: "in-box".into(),
                kind: Some("MEDIACONNECT".into()),
                flow_arns: vec!["arn:flow:a".into(), "arn:flow:b".into()],
                ..Input::default()
            },
            Input { id: "in-slate".into(), kind: Some("MP4_FILE".into()), ..Input::default() },
        ];
        (ch, inputs)
    }

    #[test]
    fn channel_on_the_box_input_is_healthy() {
        let (ch, inputs) = channel(["box", "box"]);
        let h = channel_health(&ch, &inputs, &["arn:flow:a".into()]);
        assert!(h.alarms.is_empty(), "{:?}", h.alarms);
        assert_eq!(h.pipelines[1].box_flow_active, Some(true));
    }

    #[test]
    fn channel_running_on_another_input_raises_per_pipeline() {
        let (ch, inputs) = channel(["box", "slate"]);
        let h = channel_health(&ch, &inputs, &["arn:flow:a".into()]);
        assert_eq!(h.alarms.len(), 1);
        assert_eq!(h.alarms[0].code, "CHANNEL_INPUT_NOT_BOX");
        assert!(h.alarms[0].message.contains("pipeline 1") && h.alarms[0].message.contains("slate"), "{}", h.alarms[0].message);
        // An idle channel is not alarming.
        let idle = Channel { state: "IDLE".into(), ..ch };
        assert!(channel_health(&idle, &inputs, &["arn:flow:a".into()]).alarms.is_empty());
    }

    #[test]
    fn no_pipeline_details_means_unknown_not_alarm() {
        let (ch, inputs) = channel(["box", "box"]);
        let ch = Channel { pipelines: vec![], ..ch };
        let h = channel_health(&ch, &inputs, &["arn:flow:a".into()]);
        assert!(h.alarms.is_empty() && h.pipelines.is_empty());
    }
}
