//! RTMP(S) push output: FLV tags from the pipeline's FLV branch
//! ([`crate::pipeline::flv`]) to one server, through GStreamer's
//! `rtmp2sink` in a small pipeline of its own (`appsrc ! rtmp2sink`).
//!
//! # Design
//! The output's thread owns that pipeline. When the server refuses, drops
//! the connection or stops reading, the thread tears its pipeline down and
//! builds a new one after a backoff; the encoding graph, the TS outputs and
//! the other RTMP output never notice. A new session starts at a video
//! keyframe, with the stream headers (`streamheader` caps) sent first by
//! `rtmp2sink`. A session that falls behind (a slow server) skips ahead to
//! the next keyframe instead of sending old media.
//!
//! The URL is the configured `url`, or a MediaLive `RTMP_PUSH` input's
//! pipeline resolved through AWS ([`FlowLink::resolve_push`]): until it
//! resolves, the output waits in `connecting` with the reason as
//! `last_error` (an input of another type is that output's error and an
//! `INPUT_MISMATCH` alarm); a URL that changes on a later poll ends the
//! session and the next one pushes to the new URL.
//!
//! # Limitations
//! RTMP runs over TCP: how far behind a slow server may fall is bounded by
//! [`BACKLOG_BYTES`] and the live edge, not by a latency setting as in SRT.
//! There are no transport figures beyond bytes written, so this output does
//! not steer the adaptive bitrate (like RTP).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::{info, warn};

use super::status::{OutputState, OutputStatus};
use crate::backoff::Backoff;
use crate::config::{RtmpOutputConfig, RtmpUrl};
use crate::dest::{Dest, FlowLink};
use crate::fanout::TsChunk;
use crate::pipeline::flv::{hub, is_keyframe_tag};
use crate::shutdown::Shutdown;

/// A session with no RTMP connection after this long has failed (a host
/// that drops SYNs would otherwise hold it for the kernel's ~2 min).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connected, media handed over, and not one byte written for this long:
/// the server has stopped reading.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// More than this waiting in the session's `appsrc` (the server reads
/// slower than the stream) and the session skips to the next keyframe.
pub const BACKLOG_BYTES: u64 = 2 * 1024 * 1024;
/// The `appsrc` drops its oldest beyond this (a backstop; the skip above
/// acts first).
const APPSRC_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// How often a session looks at its input's last resolution (no AWS call:
/// the monitor refreshes it).
const LINK_CHECK: Duration = Duration::from_secs(1);
/// Unreachable after validation (`url` or `medialive_input_id` is required).
const NO_URL: &str = "no url and no medialive_input_id";

/// One RTMP output's worker.
#[derive(Debug)]
pub struct RtmpOutput {
    cfg: RtmpOutputConfig,
    /// An input-named output's link (`medialive_input_id`).
    link: Option<Arc<FlowLink>>,
    status: Arc<OutputStatus>,
    stop: Shutdown,
    agent_shutdown: Shutdown,
}

/// What one session pipeline is.
struct Session {
    /// Where this session pushes (its key scrubs the bus errors).
    url: RtmpUrl,
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst::Element,
}

/// Running totals over sessions.
#[derive(Debug, Default)]
struct Totals {
    /// Bytes of finished sessions.
    bytes_before: u64,
}

impl RtmpOutput {
    /// `dest` is the output's link when it names a MediaLive input
    /// (`Cloud::dest`); a configured `url` needs none.
    pub fn new(
        cfg: RtmpOutputConfig,
        dest: Option<Dest>,
        status: Arc<OutputStatus>,
        stop: Shutdown,
        agent_shutdown: Shutdown,
    ) -> Self {
        let link = match dest {
            Some(Dest::Flow(link)) => Some(link),
            Some(Dest::Fixed(_) | Dest::Name(_)) | None => None,
        };
        RtmpOutput { cfg, link, status, stop, agent_shutdown }
    }

    /// Where the next session pushes: the configured `url`, else the
    /// input's pipeline (the last resolution, or a new one: blocks on AWS).
    fn target_url(&self) -> Result<RtmpUrl, String> {
        match (&self.cfg.url, &self.link) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(link)) => link.current_push().map_or_else(|| link.resolve_push(), Ok),
            (None, None) => Err(NO_URL.into()),
        }
    }

    /// Why the session must end because the input's URL changed or stopped
    /// fitting (the monitor re-resolves it); `None` to carry on.
    fn moved(&self, url: &RtmpUrl) -> Option<String> {
        let link = self.link.as_ref().filter(|_| self.cfg.url.is_none())?;
        match link.current_push() {
            Some(now) if now == *url => None,
            Some(now) => Some(format!("the input's URL moved to {now}")),
            None => Some(link.state().error.unwrap_or_else(|| "the input no longer gives an RTMP URL".into())),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.is_triggered() || self.agent_shutdown.is_triggered()
    }

    /// Runs sessions until stopped; `rx` carries FLV tags from the hub.
    pub fn run(self, rx: Receiver<TsChunk>) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut totals = Totals::default();
        while !self.stopped() {
            self.status.set_state(OutputState::Connecting);
            let url = match self.target_url() {
                Ok(url) => url,
                // Not resolved (yet): wait in `connecting`, saying why; a
                // mismatch is retried every PERMANENT_RETRY.
                Err(reason) => {
                    self.status.failed(reason);
                    let delay = self.link.as_ref().map_or(backoff.next_delay(), |l| l.retry_delay(backoff.next_delay()));
                    if self.drain_for(&rx, delay) {
                        break;
                    }
                    continue;
                }
            };
            self.status.update_rtmp(|r| r.url = url.to_string());
            let outcome = self.session(&rx, &url, &mut totals, &mut backoff);
            if self.stopped() {
                break;
            }
            match outcome {
                // A new FLV stream (the pipeline was rebuilt): a new session at once.
                Ok(()) => continue,
                Err(reason) => {
                    warn!(output = %self.cfg.name, url = %url, %reason, "RTMP session failed");
                    self.status.failed(reason);
                }
            }
            self.status.set_state(OutputState::Backoff);
            if self.drain_for(&rx, backoff.next_delay()) {
                break;
            }
        }
        hub().fan.remove(self.cfg.name.as_str());
        self.status.set_state(OutputState::Stopped);
    }

    /// Discards queued data for `d`; true when stopped meanwhile.
    fn drain_for(&self, rx: &Receiver<TsChunk>, d: Duration) -> bool {
        super::drain_for(rx, d, &self.status, || self.stopped())
    }

    /// One RTMP session: waits for the FLV stream, connects, sends until an
    /// error, a stall or a new stream (`Ok`).
    fn session(&self, rx: &Receiver<TsChunk>, url: &RtmpUrl, totals: &mut Totals, backoff: &mut Backoff) -> Result<(), String> {
        let (generation, caps) = loop {
            if let Some(s) = hub().stream() {
                break s;
            }
            if self.drain_for(rx, Duration::from_millis(200)) {
                return Ok(());
            }
        };
        let s = self.build(&caps, url)?;
        let result = match s.pipeline.set_state(gst::State::Playing) {
            Ok(_) => self.send(&s, rx, generation, totals, backoff),
            Err(_) => Err(self.bus_error(&s).unwrap_or_else(|| "the RTMP pipeline refused to start".into())),
        };
        totals.bytes_before += out_bytes(&s.sink);
        let _ = s.pipeline.set_state(gst::State::Null);
        result
    }

    fn build(&self, caps: &gst::Caps, url: &RtmpUrl) -> Result<Session, String> {
        gst::init().map_err(|e| e.to_string())?;
        let pipeline = gst::Pipeline::with_name(&format!("rtmp-{}", self.cfg.name));
        let src = gst_app::AppSrc::builder()
            .name("flv-in")
            .caps(caps)
            .is_live(true)
            .max_bytes(APPSRC_MAX_BYTES)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let sink = gst::ElementFactory::make("rtmp2sink")
            .name("rtmp-sink")
            .build()
            .map_err(|_| "GStreamer element `rtmp2sink` is not installed (gstreamer1.0-plugins-bad)".to_owned())?;
        sink.set_property("location", url.expose());
        // Never wait for the clock or for preroll: the tags are live and
        // the appsrc in front absorbs a slow connection.
        sink.set_property("sync", false);
        sink.set_property("async", false);
        pipeline.add_many([src.upcast_ref(), &sink]).map_err(|e| e.to_string())?;
        src.link(&sink).map_err(|e| e.to_string())?;
        Ok(Session { url: url.clone(), pipeline, src, sink })
    }

    /// The first error on the session's bus, worded without the stream key.
    fn bus_error(&self, s: &Session) -> Option<String> {
        let bus = s.pipeline.bus()?;
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => return Some(s.url.scrub(&e.error().to_string())),
                gst::MessageView::Eos(_) => return Some("the RTMP session ended".into()),
                _ => {}
            }
        }
        None
    }

    fn send(
        &self,
        s: &Session,
        rx: &Receiver<TsChunk>,
        generation: u64,
        totals: &Totals,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        let live_edge = hub().fan.live_edge();
        let started = Instant::now();
        let mut connected = false;
        let mut need_key = true;
        let mut checked_link = Instant::now();
        let (mut last_bytes, mut last_progress, mut pushed_since_progress) = (0u64, Instant::now(), false);
        loop {
            if self.stopped() || hub().generation() != generation {
                return Ok(());
            }
            if let Some(e) = self.bus_error(s) {
                return Err(e);
            }
            if checked_link.elapsed() >= LINK_CHECK {
                checked_link = Instant::now();
                if let Some(why) = self.moved(&s.url) {
                    return Err(why);
                }
            }
            let bytes = out_bytes(&s.sink);
            if bytes > last_bytes {
                (last_bytes, last_progress, pushed_since_progress) = (bytes, Instant::now(), false);
            }
            if !connected && bytes > 0 {
                connected = true;
                self.status.connected();
                backoff.reset();
                info!(output = %self.cfg.name, url = %s.url, "RTMP session publishing");
            }
            self.status.update_rtmp(|r| r.bytes_sent = totals.bytes_before + bytes);
            if !connected && started.elapsed() > CONNECT_TIMEOUT {
                return Err(format!("no RTMP session after {} s", CONNECT_TIMEOUT.as_secs()));
            }
            if connected && pushed_since_progress && last_progress.elapsed() > STALL_TIMEOUT {
                return Err(format!("the server has read nothing for {} s", STALL_TIMEOUT.as_secs()));
            }
            let first = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            let (mut sent, mut stale, mut skipped) = (0u64, 0u64, 0u64);
            for chunk in std::iter::once(first).chain(rx.try_iter().take(64)) {
                if live_edge.is_stale(&chunk) {
                    stale += 1;
                    need_key = true;
                    continue;
                }
                if s.src.current_level_bytes() > BACKLOG_BYTES {
                    need_key = true;
                }
                if need_key && !is_keyframe_tag(&chunk.data) {
                    skipped += 1;
                    continue;
                }
                need_key = false;
                s.src.push_buffer(gst::Buffer::from_slice(chunk.data)).map_err(|e| format!("cannot queue FLV: {e:?}"))?;
                sent += 1;
            }
            pushed_since_progress |= sent > 0;
            self.status.add_sent(sent, stale);
            self.status.update_rtmp(|r| {
                r.tags_sent += sent;
                r.tags_skipped += skipped;
            });
        }
    }
}

/// Bytes `rtmp2sink` has written on its connection (its `stats`).
fn out_bytes(sink: &gst::Element) -> u64 {
    let stats = sink.property::<Option<gst::Structure>>("stats");
    stats.and_then(|s| s.get::<u64>("out-bytes-total").ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Cloud;
    use edge_cloud::fake::FakeCloud;
    use edge_cloud::model::{Input, InputDestination};

    fn fake() -> Arc<FakeCloud> {
        let fake = Arc::new(FakeCloud::default());
        let d = |url: &str| InputDestination { ip: None, port: None, url: Some(url.into()) };
        fake.put_input(Input {
            id: "1001".into(),
            kind: Some("RTP_PUSH".into()),
            destinations: vec![d("rtp://203.0.113.5:5000"), d("rtp://203.0.113.6:5000")],
            ..Input::default()
        });
        fake.put_input(Input {
            id: "1002".into(),
            kind: Some("RTMP_PUSH".into()),
            destinations: vec![d("rtmp://203.0.113.5:1935/live/s3cr3t-a"), d("rtmp://203.0.113.6:1935/live/s3cr3t-b")],
            ..Input::default()
        });
        fake
    }

    /// Starts the output named by `input` and `pipeline` over the fake;
    /// returns its status once `until` holds (or after 5 s), stopped.
    fn run_until(input: &str, pipeline: &str, until: impl Fn(&crate::output::status::OutputSnapshot) -> bool) -> Vec<String> {
        let cfg = crate::config::from_str(&format!(
            "device_id = \"t\"\n[[outputs]]\nname = \"m\"\nkind = \"rtmp\"\nmedialive_input_id = \"{input}\"\npipeline = \"{pipeline}\"\n"
        ))
        .unwrap();
        let crate::config::OutputConfig::Rtmp(r) = &cfg.outputs[0] else { panic!("rtmp output expected") };
        let fake = fake();
        let cloud = Cloud::with_backend(&cfg, fake.clone(), fake);
        let dest = cloud.dest(&cfg.outputs[0], false);
        assert!(matches!(dest, Some(Dest::Flow(_))), "{dest:?}");
        let (_tx, rx, counters) = crate::fanout::queue(16);
        let status = Arc::new(OutputStatus::new("m", counters));
        let stop = Shutdown::new();
        let worker = RtmpOutput::new(r.clone(), dest, status.clone(), stop.clone(), Shutdown::new());
        let thread = std::thread::spawn(move || worker.run(rx));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut snap = status.snapshot();
        while !until(&snap) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            snap = status.snapshot();
        }
        stop.trigger();
        thread.join().unwrap();
        assert!(until(&snap), "{snap:?}");
        assert_eq!(status.snapshot().state, OutputState::Stopped);
        vec![serde_json::to_string(&snap).unwrap(), format!("{snap:?}"), snap.last_error.unwrap_or_default()]
    }

    #[test]
    fn an_output_naming_an_rtp_push_input_waits_with_the_mismatch_as_its_error() {
        let seen = run_until("1001", "A", |s| s.last_error.is_some());
        let json = &seen[0];
        assert!(json.contains("\"state\":\"connecting\""), "{json}");
        let e = &seen[2];
        assert!(e.contains("input mismatch") && e.contains("RTP_PUSH") && e.contains("a rtmp output"), "{e}");
    }

    #[test]
    fn an_output_naming_an_rtmp_push_input_pushes_to_its_pipelines_url_without_showing_the_key() {
        let seen = run_until("1002", "B", |s| s.rtmp.as_ref().is_some_and(|r| !r.url.is_empty()));
        assert!(seen[0].contains("\"url\":\"rtmp://203.0.113.6:1935/live/<redacted>\""), "{}", seen[0]);
        assert!(seen.iter().all(|s| !s.contains("s3cr3t")), "{seen:?}");
    }
}
