//! Per-output status: written by the output's thread, read by the status
//! line, telemetry and tests.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fanout::QueueCounters;

/// Where an output is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputState {
    /// Configured but disabled.
    Disabled,
    /// A connection attempt is under way.
    Connecting,
    /// An SRT listener waiting for its caller.
    Listening,
    /// Sending.
    Connected,
    /// Waiting before the next attempt after a failure.
    Backoff,
    /// Stopped (shutdown).
    Stopped,
}

impl fmt::Display for OutputState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputState::Disabled => "disabled",
            OutputState::Connecting => "connecting",
            OutputState::Listening => "listening",
            OutputState::Connected => "connected",
            OutputState::Backoff => "backoff",
            OutputState::Stopped => "stopped",
        })
    }
}

/// SRT figures from libsrt (`srt_bistats`), as operators read them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SrtSnapshot {
    pub rtt_ms: f64,
    pub send_rate_mbps: f64,
    pub bandwidth_mbps: f64,
    pub packets_sent: i64,
    pub packets_retransmitted: i64,
    pub packets_lost: i64,
    pub packets_dropped: i64,
    pub send_buffer_ms: i64,
    pub negotiated_latency_ms: u32,
}

/// RTP/RTP-FEC figures kept by the output itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RtpSnapshot {
    pub fec_column_sent: u64,
    pub fec_row_sent: u64,
    pub send_errors: u64,
    /// Most packets that left within any 1 ms (pacing quality).
    pub max_burst_packets_1ms: u64,
    /// Highest rate over any 10 ms window, Mbit/s.
    pub max_rate_10ms_mbps: f64,
    /// The pacing rate, Mbit/s.
    pub pace_mbps: f64,
    /// Who paces: `"kernel-fq"` (the fq qdisc at SO_MAX_PACING_RATE; the
    /// burst figures above are then the modelled departure schedule at that
    /// rate) or `"userspace"` (the output's pacer; figures measured at hand-
    /// off). Empty until the socket is open.
    pub pacing: String,
    /// Mean datagrams per send system call (sendmmsg or GSO sendmsg).
    pub send_batch_mean: f64,
}

/// RTMP push figures (`rtmp2sink` statistics).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RtmpSnapshot {
    /// The destination, stream key redacted.
    pub url: String,
    /// Bytes written to the RTMP connections since start (all sessions).
    pub bytes_sent: u64,
    /// FLV tags (video frames, audio frames) handed to the connection.
    pub tags_sent: u64,
    /// Tags skipped to restart at a keyframe after a reconnect or a backlog.
    pub tags_skipped: u64,
}

/// RIST simple-profile figures (`ristsink` statistics and its RTCP socket).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RistSnapshot {
    /// The receiver, `host:P` (RTP on P, RTCP on P+1).
    pub address: String,
    /// The retransmission buffer, ms.
    pub buffer_ms: u32,
    /// RTP bytes handed to `ristsink` (TS payload) since start.
    pub bytes_sent: u64,
    /// Original RTP packets sent (all sessions).
    pub packets_sent: u64,
    /// Packets resent after the receiver's NACKs (all sessions).
    pub packets_retransmitted: u64,
    /// Round-trip time from the receiver's RTCP reports; 0 until one came.
    pub rtt_ms: f64,
    /// RTCP packets heard from the receiver (reports and NACKs).
    pub rtcp_received: u64,
}

/// A consistent copy of one output's status.
#[derive(Debug, Clone, Serialize)]
pub struct OutputSnapshot {
    pub name: String,
    pub state: OutputState,
    /// Seconds in the current state.
    pub state_age_s: f64,
    /// Seconds since the output was last connected (or since it started, if
    /// never); 0 while connected or disabled.
    pub down_for_s: f64,
    /// Connections made since start.
    pub connects: u64,
    /// Failed connection attempts since the last success.
    pub failed_attempts: u32,
    /// The most recent error, worded for an operator.
    pub last_error: Option<String>,
    pub chunks_sent: u64,
    /// Dropped at the producer: queue full (stalled or slow path).
    pub dropped_queue_full: u64,
    /// Dropped by the output: queued while disconnected, too old to send.
    pub dropped_stale: u64,
    pub srt: Option<SrtSnapshot>,
    pub rtp: Option<RtpSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmp: Option<RtmpSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rist: Option<RistSnapshot>,
}

#[derive(Debug)]
struct Inner {
    state: OutputState,
    since: Instant,
    /// When it stopped being connected; `None` while connected.
    down_since: Option<Instant>,
    connects: u64,
    failed_attempts: u32,
    last_error: Option<String>,
    chunks_sent: u64,
    dropped_stale: u64,
    srt: Option<SrtSnapshot>,
    rtp: Option<RtpSnapshot>,
    rtmp: Option<RtmpSnapshot>,
    rist: Option<RistSnapshot>,
}

/// Shared status of one output.
#[derive(Debug)]
pub struct OutputStatus {
    pub name: String,
    queue: Arc<QueueCounters>,
    inner: Mutex<Inner>,
}

impl OutputStatus {
    pub fn new(name: &str, queue: Arc<QueueCounters>) -> Self {
        OutputStatus {
            name: name.to_owned(),
            queue,
            inner: Mutex::new(Inner {
                state: OutputState::Connecting,
                since: Instant::now(),
                down_since: Some(Instant::now()),
                connects: 0,
                failed_attempts: 0,
                last_error: None,
                chunks_sent: 0,
                dropped_stale: 0,
                srt: None,
                rtp: None,
                rtmp: None,
                rist: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_state(&self, state: OutputState) {
        let mut i = self.lock();
        if i.state != state {
            if i.state == OutputState::Connected {
                i.down_since = Some(Instant::now());
            }
            i.state = state;
            i.since = Instant::now();
        }
    }

    pub fn connected(&self) {
        let mut i = self.lock();
        i.connects += 1;
        i.failed_attempts = 0;
        i.last_error = None;
        i.state = OutputState::Connected;
        i.since = Instant::now();
        i.down_since = None;
    }

    pub fn failed(&self, error: String) {
        let mut i = self.lock();
        i.failed_attempts = i.failed_attempts.saturating_add(1);
        i.last_error = Some(error);
    }

    pub fn add_sent(&self, chunks: u64, stale: u64) {
        let mut i = self.lock();
        i.chunks_sent += chunks;
        i.dropped_stale += stale;
    }

    pub fn set_srt(&self, srt: SrtSnapshot) {
        self.lock().srt = Some(srt);
    }

    pub fn update_rtmp(&self, f: impl FnOnce(&mut RtmpSnapshot)) {
        f(self.lock().rtmp.get_or_insert_with(RtmpSnapshot::default));
    }

    pub fn update_rist(&self, f: impl FnOnce(&mut RistSnapshot)) {
        f(self.lock().rist.get_or_insert_with(RistSnapshot::default));
    }

    pub fn update_rtp(&self, f: impl FnOnce(&mut RtpSnapshot)) {
        f(self.lock().rtp.get_or_insert_with(RtpSnapshot::default));
    }

    pub fn snapshot(&self) -> OutputSnapshot {
        let i = self.lock();
        OutputSnapshot {
            name: self.name.clone(),
            state: i.state.clone(),
            state_age_s: i.since.elapsed().as_secs_f64(),
            down_for_s: match (&i.state, i.down_since) {
                (OutputState::Disabled, _) | (_, None) => 0.0,
                (_, Some(t)) => t.elapsed().as_secs_f64(),
            },
            connects: i.connects,
            failed_attempts: i.failed_attempts,
            last_error: i.last_error.clone(),
            chunks_sent: i.chunks_sent,
            dropped_queue_full: self.queue.dropped_full.load(Ordering::Relaxed),
            dropped_stale: i.dropped_stale,
            srt: i.srt.clone(),
            rtp: i.rtp.clone(),
            rtmp: i.rtmp.clone(),
            rist: i.rist.clone(),
        }
    }
}

impl OutputSnapshot {
    /// The snapshot of an output that is configured but not running.
    pub fn disabled(name: &str) -> Self {
        OutputSnapshot {
            name: name.to_owned(),
            state: OutputState::Disabled,
            state_age_s: 0.0,
            down_for_s: 0.0,
            connects: 0,
            failed_attempts: 0,
            last_error: None,
            chunks_sent: 0,
            dropped_queue_full: 0,
            dropped_stale: 0,
            srt: None,
            rtp: None,
            rtmp: None,
            rist: None,
        }
    }

    /// The one-line status an operator reads in the journal.
    pub fn status_line(&self) -> String {
        let age = fmt_age(Duration::from_secs_f64(self.state_age_s));
        let mut line = format!("{:<10} {:<10} {:>8}", self.name, self.state.to_string(), age);
        match (&self.state, &self.srt) {
            (OutputState::Connected, Some(s)) => line.push_str(&format!(
                "  rate {:5.2} Mb/s  rtt {:6.1} ms  lat {} ms  sent {}  retx {}  lost {}  drop {}  qdrop {}  buf {} ms",
                s.send_rate_mbps,
                s.rtt_ms,
                s.negotiated_latency_ms,
                s.packets_sent,
                s.packets_retransmitted,
                s.packets_lost,
                s.packets_dropped,
                self.dropped_queue_full + self.dropped_stale,
                s.send_buffer_ms,
            )),
            (OutputState::Connected, None) if self.rtp.is_some() => {
                let r = self.rtp.clone().unwrap_or_default();
                line.push_str(&format!(
                    "  sent {}  fec col {} row {}  burst {} pkt/ms  peak {:.2} Mb/s (pace {:.2} {}, {:.1}/call)  errors {}  qdrop {}",
                    self.chunks_sent,
                    r.fec_column_sent,
                    r.fec_row_sent,
                    r.max_burst_packets_1ms,
                    r.max_rate_10ms_mbps,
                    r.pace_mbps,
                    r.pacing,
                    r.send_batch_mean,
                    r.send_errors,
                    self.dropped_queue_full + self.dropped_stale,
                ))
            }
            (OutputState::Connected, None) if self.rtmp.is_some() => {
                let r = self.rtmp.clone().unwrap_or_default();
                line.push_str(&format!(
                    "  {}  sent {} B  tags {}  skipped {}  qdrop {}",
                    r.url,
                    r.bytes_sent,
                    r.tags_sent,
                    r.tags_skipped,
                    self.dropped_queue_full + self.dropped_stale,
                ))
            }
            (OutputState::Connected, None) if self.rist.is_some() => {
                let r = self.rist.clone().unwrap_or_default();
                line.push_str(&format!(
                    "  {}  rtt {:6.1} ms  buf {} ms  sent {}  retx {}  rtcp {}  qdrop {}",
                    r.address,
                    r.rtt_ms,
                    r.buffer_ms,
                    r.packets_sent,
                    r.packets_retransmitted,
                    r.rtcp_received,
                    self.dropped_queue_full + self.dropped_stale,
                ))
            }
            _ => {
                if self.failed_attempts > 0 {
                    line.push_str(&format!("  attempts {}", self.failed_attempts));
                }
                if let Some(e) = &self.last_error {
                    line.push_str(&format!("  last error: {e}"));
                }
            }
        }
        line
    }
}

fn fmt_age(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}
