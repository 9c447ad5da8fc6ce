//! RIST simple-profile output (VSF TR-06-1): TS chunks from the fan-out to
//! one receiver through GStreamer's `ristsink`, in a small pipeline of its
//! own (`appsrc ! rtpmp2tpay ! ristsink`), on the output's own thread.
//!
//! # Design
//! `ristsink` sends RTP to the receiver's port P and RTCP to P+1, keeps
//! `buffer_ms` of sent packets and resends the ones the receiver NACKs
//! (RTX with the RIST SSRC convention); see `docs/rist.md` for why this
//! element and not a hand-written sender. The thread pushes chunks into an
//! `appsrc` that drops its oldest data rather than block, so the fan-out
//! never waits for this path; chunks that fell behind the live edge are
//! dropped here, as the other outputs do. A pipeline error tears the
//! session down and builds a new one after a backoff.
//!
//! RIST has no connection. The output counts as connected while the
//! receiver's RTCP (receiver reports, NACKs) reaches the sender's RTCP
//! socket, counted by a probe on `ristsink`'s RTCP `udpsrc`; silence for
//! [`RECEIVER_SILENT`] is "connecting" again (so `down_for_s` grows and
//! `OUTPUT_DOWN` follows), while the sender goes on sending: the receiver
//! may only have lost its return path.
//!
//! # Limitations
//! `ristsink` (GStreamer 1.22) binds its RTCP socket to any address and an
//! ephemeral port itself; `bind` pins only the RTP socket. There is no
//! send-buffer figure to steer the rate by, so the adaptive bitrate
//! ignores this output (like RTP).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::{info, warn};

use super::status::{OutputState, OutputStatus};
use crate::backoff::Backoff;
use crate::config::RistOutputConfig;
use crate::fanout::{LiveEdge, TsChunk};
use crate::shutdown::Shutdown;

/// No RTCP from the receiver for this long: it is not (or no longer)
/// hearing us, or its reports cannot reach us. TR-06-1 receivers report at
/// least every 100 ms while data flows.
pub const RECEIVER_SILENT: Duration = Duration::from_secs(5);
/// The `appsrc` drops its oldest beyond this rather than block the thread
/// (about 2.7 s at 12 Mbit/s; the live-edge check acts first).
const APPSRC_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// How often the figures are read from `ristsink`.
const STATS_EVERY: Duration = Duration::from_millis(500);

/// One RIST output's worker.
#[derive(Debug)]
pub struct RistOutput {
    cfg: RistOutputConfig,
    status: Arc<OutputStatus>,
    live_edge: Arc<LiveEdge>,
    stop: Shutdown,
    agent_shutdown: Shutdown,
}

/// RTCP heard from the receiver, written by the pad probe.
#[derive(Debug)]
struct Heard {
    epoch: Instant,
    packets: AtomicU64,
    /// Nanoseconds after `epoch` of the last packet (0: none yet).
    last_ns: AtomicU64,
}

impl Heard {
    fn new() -> Self {
        Heard { epoch: Instant::now(), packets: AtomicU64::new(0), last_ns: AtomicU64::new(0) }
    }

    fn mark(&self) {
        let ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.last_ns.store(ns, Ordering::Relaxed);
    }

    /// Since the last RTCP packet; `None` before the first.
    fn silent_for(&self) -> Option<Duration> {
        match self.last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.epoch.elapsed().saturating_sub(Duration::from_nanos(ns))),
        }
    }
}

struct Session {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst::Element,
    heard: Arc<Heard>,
}

/// `ristsink`'s counters for one session.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct SinkStats {
    sent: u64,
    retransmitted: u64,
    rtt_ms: f64,
}

/// Running totals over sessions.
#[derive(Debug, Default)]
struct Totals {
    bytes: u64,
    sent_before: u64,
    retransmitted_before: u64,
    rtcp_before: u64,
}

impl RistOutput {
    pub fn new(
        cfg: RistOutputConfig,
        status: Arc<OutputStatus>,
        live_edge: Arc<LiveEdge>,
        stop: Shutdown,
        agent_shutdown: Shutdown,
    ) -> Self {
        RistOutput { cfg, status, live_edge, stop, agent_shutdown }
    }

    fn stopped(&self) -> bool {
        self.stop.is_triggered() || self.agent_shutdown.is_triggered()
    }

    /// Runs sessions until stopped.
    pub fn run(self, rx: Receiver<TsChunk>) {
        let (address, buffer_ms) = (self.cfg.address.to_string(), self.cfg.buffer_ms.get());
        self.status.update_rist(|r| {
            r.address = address.clone();
            r.buffer_ms = buffer_ms;
        });
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut totals = Totals::default();
        while !self.stopped() {
            self.status.set_state(OutputState::Connecting);
            let outcome = self.session(&rx, &mut totals, &mut backoff);
            if self.stopped() {
                break;
            }
            if let Err(reason) = outcome {
                warn!(output = %self.cfg.name, address = %address, %reason, "RIST session failed");
                self.status.failed(reason);
            }
            self.status.set_state(OutputState::Backoff);
            if self.drain_for(&rx, backoff.next_delay()) {
                break;
            }
        }
        self.status.set_state(OutputState::Stopped);
    }

    /// Discards queued data for `d`; true when stopped meanwhile.
    fn drain_for(&self, rx: &Receiver<TsChunk>, d: Duration) -> bool {
        super::drain_for(rx, d, &self.status, || self.stopped())
    }

    /// One session: builds, plays and sends until an error (`Err`) or stop.
    fn session(&self, rx: &Receiver<TsChunk>, totals: &mut Totals, backoff: &mut Backoff) -> Result<(), String> {
        let s = self.build()?;
        let result = match s.pipeline.set_state(gst::State::Playing) {
            Ok(_) => self.send(&s, rx, totals, backoff),
            Err(_) => Err(bus_error(&s.pipeline).unwrap_or_else(|| "the RIST pipeline refused to start".into())),
        };
        let last = sink_stats(&s.sink);
        totals.sent_before += last.sent;
        totals.retransmitted_before += last.retransmitted;
        totals.rtcp_before += s.heard.packets.load(Ordering::Relaxed);
        let _ = s.pipeline.set_state(gst::State::Null);
        result
    }

    fn build(&self) -> Result<Session, String> {
        gst::init().map_err(|e| e.to_string())?;
        let missing = |e: &str| format!("GStreamer element `{e}` is not installed (gstreamer1.0-plugins-bad/-good)");
        let pipeline = gst::Pipeline::with_name(&format!("rist-{}", self.cfg.name));
        let caps = gst::Caps::builder("video/mpegts").field("systemstream", true).field("packetsize", 188i32).build();
        let src = gst_app::AppSrc::builder()
            .name("ts-in")
            .caps(&caps)
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_bytes(APPSRC_MAX_BYTES)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let pay = gst::ElementFactory::make("rtpmp2tpay").name("pay").build().map_err(|_| missing("rtpmp2tpay"))?;
        let sink = gst::ElementFactory::make("ristsink").name("rist-sink").build().map_err(|_| missing("ristsink"))?;
        sink.set_property("address", self.cfg.address.host());
        sink.set_property("port", u32::from(self.cfg.address.port()));
        sink.set_property("sender-buffer", self.cfg.buffer_ms.get());
        let bin = sink.downcast_ref::<gst::Bin>().ok_or("ristsink is not a bin")?;
        if let Some(bind) = self.cfg.bind {
            let udp = bin.by_name("rist_rtp_udpsink0").ok_or("ristsink has no RTP udpsink to bind")?;
            udp.set_property("bind-address", bind.addr().ip().to_string());
            udp.set_property("bind-port", i32::from(bind.addr().port()));
        }
        let heard = Arc::new(Heard::new());
        let rtcp_src = bin.by_name("rist_rtcp_udpsrc0").ok_or("ristsink has no RTCP udpsrc")?;
        let pad = rtcp_src.static_pad("src").ok_or("ristsink's RTCP udpsrc has no src pad")?;
        let h = heard.clone();
        let payloader = pay.downgrade();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            h.mark();
            let ours = payloader.upgrade().and_then(|p| p.property::<gst::Structure>("stats").get::<u32>("ssrc").ok());
            if let (Some(ours), Some(buffer)) = (ours, info.buffer_mut()) {
                if let Ok(mut map) = buffer.make_mut().map_writable() {
                    relabel_receiver_ssrc(map.as_mut_slice(), ours);
                }
            }
            gst::PadProbeReturn::Ok
        });
        pipeline.add_many([src.upcast_ref(), &pay, &sink]).map_err(|e| e.to_string())?;
        gst::Element::link_many([src.upcast_ref(), &pay, &sink]).map_err(|e| e.to_string())?;
        Ok(Session { pipeline, src, sink, heard })
    }

    fn send(&self, s: &Session, rx: &Receiver<TsChunk>, totals: &mut Totals, backoff: &mut Backoff) -> Result<(), String> {
        let mut heard = false;
        let mut last_stats = Instant::now() - STATS_EVERY;
        loop {
            if self.stopped() {
                return Ok(());
            }
            if let Some(e) = bus_error(&s.pipeline) {
                return Err(e);
            }
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                let now = s.heard.silent_for().is_some_and(|d| d < RECEIVER_SILENT);
                if now && !heard {
                    self.status.connected();
                    backoff.reset();
                    info!(output = %self.cfg.name, address = %self.cfg.address, "RIST receiver reporting");
                } else if !now && heard {
                    let reason = format!("no RTCP from the receiver for {} s", RECEIVER_SILENT.as_secs());
                    warn!(output = %self.cfg.name, address = %self.cfg.address, %reason, "RIST receiver silent");
                    self.status.failed(reason);
                    self.status.set_state(OutputState::Connecting);
                }
                heard = now;
                let st = sink_stats(&s.sink);
                let rtcp = totals.rtcp_before + s.heard.packets.load(Ordering::Relaxed);
                let bytes = totals.bytes;
                self.status.update_rist(|r| {
                    r.packets_sent = totals.sent_before + st.sent;
                    r.packets_retransmitted = totals.retransmitted_before + st.retransmitted;
                    r.rtt_ms = st.rtt_ms;
                    r.rtcp_received = rtcp;
                    r.bytes_sent = bytes;
                });
            }
            let first = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            let (mut sent, mut stale) = (0u64, 0u64);
            for chunk in std::iter::once(first).chain(rx.try_iter().take(64)) {
                if self.live_edge.is_stale(&chunk) {
                    stale += 1;
                    continue;
                }
                let len = chunk.data.len() as u64;
                s.src.push_buffer(gst::Buffer::from_slice(chunk.data)).map_err(|e| format!("cannot queue TS: {e:?}"))?;
                totals.bytes += len;
                sent += 1;
            }
            self.status.add_sent(sent, stale);
        }
    }
}

/// Gives the receiver's reports an SSRC of their own when they carry the
/// sender's: librist's simple-profile receiver (0.2.7) sends its RR, SDES
/// and BYE with the flow's media SSRC as its own, which `rtpbin` takes for
/// an SSRC collision: it changes the sender's SSRC (about a second in, at
/// the first retransmission), the receiver restarts its flow and drops its
/// buffer, sometimes back and forth. The sender-SSRC field of SR, RR, the
/// first SDES chunk and BYE entries equal to `ours` or its RTX SSRC
/// (`ours | 1`) becomes `!ours`, a value neither can take; report blocks
/// (which name the source reported on) and feedback (NACKs) are left as
/// they are. Returns how many fields changed; a malformed compound packet
/// is left as it is from the first bad header on.
pub fn relabel_receiver_ssrc(rtcp: &mut [u8], ours: u32) -> usize {
    let mut changed = 0;
    let mut at = 0usize;
    let mut relabel = |field: &mut [u8]| {
        let ssrc = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        if ssrc == ours || ssrc == ours | 1 {
            field.copy_from_slice(&(!ours).to_be_bytes());
            changed += 1;
        }
    };
    while rtcp.len().saturating_sub(at) >= 4 {
        let (first, pt) = (rtcp[at], rtcp[at + 1]);
        let len = (usize::from(u16::from_be_bytes([rtcp[at + 2], rtcp[at + 3]])) + 1) * 4;
        if first >> 6 != 2 || at + len > rtcp.len() {
            break;
        }
        let packet = &mut rtcp[at..at + len];
        let count = usize::from(first & 0x1f);
        match pt {
            // SR, RR: the sender's SSRC; SDES: the first chunk's.
            200 | 201 if len >= 8 => relabel(&mut packet[4..8]),
            202 if count >= 1 && len >= 8 => relabel(&mut packet[4..8]),
            // BYE: `count` SSRCs.
            203 => {
                for i in 0..count.min((len - 4) / 4) {
                    relabel(&mut packet[4 + 4 * i..8 + 4 * i]);
                }
            }
            _ => {}
        }
        at += len;
    }
    changed
}

/// The first error on a session's bus.
fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => return Some(e.error().to_string()),
            gst::MessageView::Eos(_) => return Some("the RIST session ended".into()),
            _ => {}
        }
    }
    None
}

/// `ristsink`'s `stats`: `rist/x-sender-stats` with the totals and, per
/// bond, the round-trip time from the receiver's reports (ns).
fn sink_stats(sink: &gst::Element) -> SinkStats {
    let Some(s) = sink.property::<Option<gst::Structure>>("stats") else { return SinkStats::default() };
    let rtt_ns = s
        .get::<gst::glib::ValueArray>("session-stats")
        .ok()
        .and_then(|a| a.iter().find_map(|v| v.get::<gst::Structure>().ok()))
        .and_then(|b| b.get::<u64>("round-trip-time").ok())
        .unwrap_or(0);
    SinkStats {
        sent: s.get::<u64>("sent-original-packets").unwrap_or(0),
        retransmitted: s.get::<u64>("sent-retransmitted-packets").unwrap_or(0),
        rtt_ms: Duration::from_nanos(rtt_ns).as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receivers_reports_get_an_ssrc_of_their_own() {
        let ours = 0xc392_7ca4u32;
        let be = |v: u32| v.to_be_bytes();
        // RR (1 report block on our SSRC) + SDES (1 chunk) + generic NACK + BYE,
        // all from a receiver using our SSRC (or the RTX one) as its own.
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend(be(ours));
        rr.extend(be(ours)); // report block: the source reported on
        rr.extend([0u8; 20]);
        let mut sdes = vec![0x81, 202, 0, 2];
        sdes.extend(be(ours | 1));
        sdes.extend([1, 2, b'a', b'b']);
        let mut nack = vec![0x81, 205, 0, 3];
        nack.extend(be(ours));
        nack.extend(be(ours));
        nack.extend([0, 5, 0, 0]);
        let mut bye = vec![0x81, 203, 0, 1];
        bye.extend(be(ours));
        let mut compound = [rr, sdes, nack, bye].concat();
        let before = compound.clone();
        assert_eq!(relabel_receiver_ssrc(&mut compound, ours), 3);
        let at = |c: &[u8], i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
        assert_eq!(at(&compound, 4), !ours, "RR sender");
        assert_eq!(at(&compound, 8), ours, "report block untouched");
        assert_eq!(at(&compound, 36), !ours, "SDES chunk");
        assert_eq!((at(&compound, 48), at(&compound, 52)), (ours, ours), "NACK untouched");
        assert_eq!(at(&compound, 64), !ours, "BYE");
        // Another receiver's SSRC is left alone; so is anything malformed.
        let mut other = before.clone();
        assert_eq!(relabel_receiver_ssrc(&mut other, 0x1234_5678), 0);
        assert_eq!(other, before);
        for cut in 0..before.len() {
            let mut short = before[..cut].to_vec();
            relabel_receiver_ssrc(&mut short, ours);
        }
        let mut bad = vec![0x81, 201, 0xff, 0xff, 1, 2, 3, 4];
        assert_eq!(relabel_receiver_ssrc(&mut bad, 0x0102_0304), 0);
    }

    #[test]
    fn heard_tracks_the_last_rtcp_packet() {
        let h = Heard::new();
        assert_eq!(h.silent_for(), None);
        h.mark();
        assert!(h.silent_for().is_some_and(|d| d < RECEIVER_SILENT));
        assert_eq!(h.packets.load(Ordering::Relaxed), 1);
    }

    /// An even loopback port P with P+1, both bound (the receiver's).
    fn receiver_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
        for _ in 0..64 {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port() & !1;
            if let (Ok(a), Ok(b)) =
                (std::net::UdpSocket::bind(("127.0.0.1", probe)), std::net::UdpSocket::bind(("127.0.0.1", probe + 1)))
            {
                return (a, b);
            }
        }
        panic!("no free even UDP port pair on 127.0.0.1");
    }

    #[test]
    fn sends_from_the_bind_address_and_is_connected_once_the_receiver_reports() {
        if gst::init().is_err() || gst::ElementFactory::find("ristsink").is_none() {
            return;
        }
        let (rtp, rtcp) = receiver_pair();
        let p = rtp.local_addr().unwrap().port();
        let doc = format!(
            "device_id = \"t\"\n[[outputs]]\nname = \"r\"\nkind = \"rist\"\naddress = \"127.0.0.1:{p}\"\nbuffer_ms = 200\nbind = \"127.0.0.2:0\"\n"
        );
        let cfg = crate::config::from_str(&doc).unwrap();
        let crate::config::OutputConfig::Rist(r) = &cfg.outputs[0] else { panic!("rist output expected") };
        let fan = crate::fanout::FanOut::new(1);
        let (tx, rx, counters) = crate::fanout::queue(64);
        fan.add("r", crate::fanout::Payload::Ts, tx);
        let status = Arc::new(OutputStatus::new("r", counters));
        let stop = Shutdown::new();
        let worker = RistOutput::new(r.clone(), status.clone(), fan.live_edge(), stop.clone(), Shutdown::new());
        let thread = std::thread::spawn(move || worker.run(rx));
        let mut null_ts = Vec::with_capacity(1316);
        for _ in 0..7 {
            null_ts.extend_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
            null_ts.resize(null_ts.len() + 184, 0xff);
        }
        let chunk = || TsChunk { data: bytes::Bytes::from(null_ts.clone()), produced: Instant::now() };
        for s in [&rtp, &rtcp] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 2048];
        let (mut rtp_from, mut rtcp_from) = (None, None);
        while (rtp_from.is_none() || rtcp_from.is_none()) && Instant::now() < deadline {
            fan.publish(&chunk());
            if let Ok((_, from)) = rtp.recv_from(&mut buf) {
                rtp_from = Some(from);
            }
            if let Ok((_, from)) = rtcp.recv_from(&mut buf) {
                rtcp_from = Some(from);
            }
        }
        let (rtp_from, rtcp_from) = (rtp_from.expect("no RTP within 10 s"), rtcp_from.expect("no RTCP within 10 s"));
        assert_eq!(rtp_from.ip().to_string(), "127.0.0.2", "bind pins the RTP source");
        assert_ne!(status.snapshot().state, OutputState::Connected, "nothing heard from the receiver yet");
        // An empty receiver report (RFC 3550 §6.4.2) to the sender's RTCP
        // socket, as the receiver would send.
        let rr = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
        let deadline = Instant::now() + Duration::from_secs(5);
        while status.snapshot().state != OutputState::Connected && Instant::now() < deadline {
            rtcp.send_to(&rr, rtcp_from).unwrap();
            fan.publish(&chunk());
            std::thread::sleep(Duration::from_millis(20));
        }
        let snap = status.snapshot();
        stop.trigger();
        thread.join().unwrap();
        assert_eq!(snap.state, OutputState::Connected, "{snap:?}");
        let rist = snap.rist.unwrap();
        assert!(rist.rtcp_received > 0 && rist.packets_sent > 0 && rist.bytes_sent > 0, "{rist:?}");
        assert_eq!(status.snapshot().state, OutputState::Stopped);
    }

    #[test]
    fn ristsink_stats_parse_when_the_element_is_installed() {
        if gst::init().is_err() {
            return;
        }
        let Ok(sink) = gst::ElementFactory::make("ristsink").build() else { return };
        // Before any session the counters are zero; the fields are found.
        assert_eq!(sink_stats(&sink), SinkStats::default());
        let bin = sink.downcast_ref::<gst::Bin>().unwrap();
        assert!(bin.by_name("rist_rtcp_udpsrc0").is_some() && bin.by_name("rist_rtp_udpsink0").is_some());
    }
}
