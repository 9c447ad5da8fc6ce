//! The two observers of a run.
//!
//! - [`Watcher`]: the bench subscribes as a controller to
//!   `fleet/v1/+/telemetry` (`edgectl watch` does not subscribe to
//!   telemetry: it folds `status`, `state` and `alarms`) and records, per
//!   message, receive time − envelope `ts`, and per device the gap between
//!   deliveries. It also folds `fleet/v1/+/status` at QoS 0 (edgectl
//!   subscribes at QoS 1, where mosquitto's per-client queue limit can drop
//!   messages) and reads mosquitto's `$SYS` drop counter.
//! - [`EdgectlWatch`]: the real `edgectl watch` as a child process, its
//!   stdout (plain text when not a terminal) parsed for the summary line
//!   of each redraw.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use fleet::client::mqtt_options;
use fleet::{topics, wire, TlsSettings};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, QoS};

use test_support::ChildGuard;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the telemetry watcher saw.
#[derive(Debug, Default)]
pub struct WatchData {
    /// (receive time, now − envelope ts in ms) per telemetry message.
    pub recs: Vec<(Instant, u32)>,
    /// Last delivery per device.
    pub last: HashMap<String, Instant>,
    /// Longest gap between two deliveries of one device, and which.
    pub max_gap: Duration,
    pub max_gap_device: String,
    /// Gaps longer than the staleness limit.
    pub gaps_over: u64,
    /// Messages that are not valid telemetry documents.
    pub bad: u64,
    /// Why the watcher's connection ended early.
    pub error: Option<String>,
    /// mosquitto's `$SYS/broker/publish/messages/dropped` (last value):
    /// messages not sent to a subscriber because its queue was full.
    pub broker_dropped: Option<u64>,
    /// Presence as seen through a QoS 0 subscription to `status`:
    /// device → (bdseq, online), with edgectl's stale-offline rule.
    pub presence: HashMap<String, (u64, bool)>,
}

/// mosquitto's counter of publishes dropped for full client queues.
pub const SYS_DROPPED: &str = "$SYS/broker/publish/messages/dropped";

/// The in-process telemetry watcher: its own thread and runtime.
#[derive(Debug)]
pub struct Watcher {
    pub data: Arc<Mutex<WatchData>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Connects, subscribes and returns once the SUBACK is in (≤15 s).
    /// `gap_limit`: gaps above it are counted. Sets `interrupted` on
    /// SIGINT/SIGTERM.
    pub fn start(
        broker: &str,
        tls: Option<&TlsSettings>,
        client_id: &str,
        gap_limit: Duration,
        interrupted: Arc<AtomicBool>,
    ) -> Result<Watcher> {
        let opts = mqtt_options(client_id, broker, tls, 30)?;
        let data = Arc::new(Mutex::new(WatchData::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (d, s) = (data.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("watcher".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let (client, eventloop) = AsyncClient::new(opts, 64);
                let poller = tokio::spawn(poll(client.clone(), eventloop, d, gap_limit, ready_tx));
                tokio::spawn(async move {
                    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
                    match term {
                        Ok(mut term) => {
                            tokio::select! {
                                _ = tokio::signal::ctrl_c() => {}
                                _ = term.recv() => {}
                            }
                        }
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                    interrupted.store(true, Ordering::SeqCst);
                });
                while !s.load(Ordering::SeqCst) && !poller.is_finished() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_millis(500), poller).await;
            });
        })?;
        let w = Watcher { data, stop, thread: Some(thread) };
        match ready_rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(())) => Ok(w),
            Ok(Err(e)) => bail!("telemetry watcher: {e}"),
            Err(_) => bail!("telemetry watcher: no SUBACK within 15 s"),
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn poll(
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    data: Arc<Mutex<WatchData>>,
    gap_limit: Duration,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let filter = topics::topic("+", topics::TELEMETRY);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(a))) => {
                if a.code != ConnectReturnCode::Success {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(format!("connection refused: {:?}", a.code)));
                    }
                    return;
                }
                let status = topics::topic("+", topics::STATUS);
                let filters = [&filter, &status, SYS_DROPPED].map(|f| rumqttc::SubscribeFilter::new(f.to_owned(), QoS::AtMostOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.to_string()));
                    }
                    return;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => record(&mut lock(&data), &p.topic, &p.payload, gap_limit),
            Ok(_) => {}
            Err(e) => {
                match ready.take() {
                    Some(r) => {
                        let _ = r.send(Err(e.to_string()));
                    }
                    None => lock(&data).error = Some(e.to_string()),
                }
                return;
            }
        }
    }
}

fn record(d: &mut WatchData, topic: &str, payload: &[u8], gap_limit: Duration) {
    let (at, wall) = (Instant::now(), SystemTime::now());
    if topic == SYS_DROPPED {
        d.broker_dropped = std::str::from_utf8(payload).ok().and_then(|s| s.trim().parse().ok());
        return;
    }
    let Some((device, suffix)) = topics::split(topic) else {
        d.bad += 1;
        return;
    };
    if suffix == topics::STATUS {
        match wire::parse::<wire::Status>(payload) {
            Ok(st) => {
                let e = d.presence.entry(device.to_owned()).or_insert((st.bdseq, st.online));
                let stale = !st.online && e.1 && e.0 > st.bdseq;
                if !stale {
                    *e = (st.bdseq, st.online);
                }
            }
            Err(_) => d.bad += 1,
        }
        return;
    }
    if suffix != topics::TELEMETRY {
        d.bad += 1;
        return;
    }
    let Ok(t) = wire::parse::<wire::Telemetry>(payload) else {
        d.bad += 1;
        return;
    };
    let Ok(ts) = humantime::parse_rfc3339(&t.ts) else {
        d.bad += 1;
        return;
    };
    let lag = wall.duration_since(ts).unwrap_or_default();
    d.recs.push((at, u32::try_from(lag.as_millis()).unwrap_or(u32::MAX)));
    match d.last.get_mut(device) {
        Some(prev) => {
            let gap = at.duration_since(*prev);
            *prev = at;
            if gap > gap_limit {
                d.gaps_over += 1;
            }
            if gap > d.max_gap {
                d.max_gap = gap;
                device.clone_into(&mut d.max_gap_device);
            }
        }
        None => {
            d.last.insert(device.to_owned(), at);
        }
    }
}

/// One redraw of `edgectl watch`: its summary line.
#[derive(Debug, Clone, Copy)]
pub struct Redraw {
    pub at: Instant,
    pub total: usize,
    pub online: usize,
}

/// `edgectl watch` as a child process.
#[derive(Debug)]
pub struct EdgectlWatch {
    pub guard: ChildGuard,
    pub redraws: Arc<Mutex<Vec<Redraw>>>,
    pub last_summary: Arc<Mutex<String>>,
}

/// Parses `5000 devices | 4990 online | 10 offline | alarms: …`.
fn parse_summary(line: &str) -> Option<(usize, usize)> {
    let mut parts = line.split(" | ");
    let total = parts.next()?.strip_suffix(" devices")?.parse().ok()?;
    let online = parts.next()?.strip_suffix(" online")?.parse().ok()?;
    Some((total, online))
}

impl EdgectlWatch {
    /// Starts `edgectl <broker args> watch --interval N` and waits (≤15 s)
    /// for its first redraw.
    pub fn start(exe: &Path, broker_args: &[String], interval_s: u64, stderr_log: &Path) -> Result<EdgectlWatch> {
        let child = Command::new(exe)
            .args(broker_args)
            .args(["watch", "--interval", &interval_s.to_string(), "--page-size", "5", "--problems", "5"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr_log)?)
            .spawn()
            .with_context(|| format!("start {}", exe.display()))?;
        let mut guard = ChildGuard::new("edgectl watch", child);
        let stdout = guard.take_stdout()?;
        let redraws = Arc::new(Mutex::new(Vec::new()));
        let last_summary = Arc::new(Mutex::new(String::new()));
        let (r, l) = (redraws.clone(), last_summary.clone());
        std::thread::Builder::new().name("edgectl-out".into()).spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((total, online)) = parse_summary(&line) {
                    lock(&r).push(Redraw { at: Instant::now(), total, online });
                    *lock(&l) = line;
                }
            }
        })?;
        let w = EdgectlWatch { guard, redraws, last_summary };
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut w = w;
        while lock(&w.redraws).is_empty() {
            if let Some(st) = w.guard.exited() {
                bail!("edgectl watch exited ({st}): {}", std::fs::read_to_string(stderr_log).unwrap_or_default().trim());
            }
            if Instant::now() > deadline {
                bail!("edgectl watch drew nothing within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_summary;

    #[test]
    fn summary_line() {
        assert_eq!(parse_summary("5000 devices | 4990 online | 10 offline | alarms: 0 critical"), Some((5000, 4990)));
        assert_eq!(parse_summary("DEVICE   ONLINE"), None);
    }
}
