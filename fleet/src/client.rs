//! The I/O shell: rumqttc, the device, the outbox and a [`Session`].
//!
//! Each device runs two tokio tasks: one owns rumqttc's `EventLoop` and
//! only polls it (never cancelled mid-poll, which could tear a packet);
//! the other owns the [`Session`], talks to the [`Device`] and publishes
//! through the `AsyncClient` channel with `try_publish` (never awaiting the
//! broker). [`FleetClient::spawn`] gives them a single-threaded runtime on
//! a thread of their own, so the media path never waits for MQTT;
//! [`FleetClient::spawn_on`] puts them on a shared runtime (a simulator
//! runs thousands of devices on one).
//!
//! Connection: clean session, keep-alive from the settings, 128 KiB packet
//! limit both ways, Will = offline `status` with the `bdseq` of this very
//! attempt (set on the `EventLoop` options before each reconnect); on
//! error, reconnect after an exponential, jittered delay; on every CONNACK
//! re-subscribe and re-publish the birth documents, then flush the outbox.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::tokio_native_tls::native_tls::{Certificate, Identity, Protocol, TlsConnector};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::clock::Now;
use crate::device::{CommandResult, Device, Job};
use crate::limits::MAX_PACKET;
use crate::outbox::Outbox;
use crate::session::{ConfigOutcome, Delivery, Output, Publish, Qos, Session, SessionConfig, SessionStats};
use crate::settings::{FleetSettings, TlsSettings};
use crate::store::FileStore;

/// The device as shared with the fleet task.
pub type SharedDevice = Arc<Mutex<dyn Device>>;

/// Why a client cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The settings are invalid: {0}
    #[error("invalid fleet settings: {0}")]
    Settings(String),
    /// A certificate or key cannot be read or used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The state directory cannot be used.
    #[error("state directory: {0}")]
    State(#[from] std::io::Error),
}

/// Counters of the I/O shell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    pub connects: u64,
    pub connection_errors: u64,
    pub publishes_dropped_offline: u64,
    pub publishes_dropped_queue_full: u64,
    pub outbox_len: u64,
    pub outbox_dropped: u64,
    pub connected: bool,
    pub bdseq: u64,
    /// The session's own counters (telemetry drops, rejections, rollbacks).
    pub session: SessionStats,
}

/// Builds the TLS transport: only `ca` is trusted, the client presents
/// `cert` + `key` (PKCS#8), TLS 1.2 or newer.
pub fn tls_transport(tls: &TlsSettings) -> Result<Transport, FleetError> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| FleetError::Tls(format!("{}: {e}", p.display())));
    let (ca, cert, key) = (read(&tls.ca)?, read(&tls.cert)?, read(&tls.key)?);
    let ca = Certificate::from_pem(&ca).map_err(|e| FleetError::Tls(format!("ca: {e}")))?;
    let id = Identity::from_pkcs8(&cert, &key).map_err(|e| FleetError::Tls(format!("cert/key (PKCS#8 PEM?): {e}")))?;
    let connector = TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .identity(id)
        .min_protocol_version(Some(Protocol::Tlsv12))
        .build()
        .map_err(|e| FleetError::Tls(e.to_string()))?;
    Ok(Transport::tls_with_config(TlsConfiguration::NativeConnector(connector)))
}

/// MQTT options shared by devices and `edgectl`: clean session, 128 KiB
/// packets both ways, TLS or (explicitly) plain TCP.
pub fn mqtt_options(client_id: &str, broker: &str, tls: Option<&TlsSettings>, keep_alive_s: u16) -> Result<MqttOptions, FleetError> {
    let (host, port) = crate::settings::split_host_port(broker).map_err(FleetError::Settings)?;
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(u64::from(keep_alive_s.max(5))));
    o.set_clean_session(true);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some(tls) = tls {
        o.set_transport(tls_transport(tls)?);
    }
    Ok(o)
}

/// Starts fleet clients.
#[derive(Debug)]
pub struct FleetClient;

/// A running client: stats, and a clean shutdown.
#[derive(Debug)]
pub struct FleetHandle {
    shutdown: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    stats: Arc<Mutex<ClientStats>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FleetHandle {
    /// A snapshot of the counters.
    pub fn stats(&self) -> ClientStats {
        lock(&self.stats).clone()
    }

    /// A cheap, cloneable "is the broker connected?" for other threads
    /// (the front panel's network LED).
    pub fn connected_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let stats = self.stats.clone();
        move || lock(&stats).connected
    }

    /// Publishes the explicit offline status, disconnects and waits for the
    /// client to stop (at most `timeout`). Returns whether it stopped.
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        let _ = self.shutdown.send(true);
        let deadline = std::time::Instant::now() + timeout;
        let mut stopped = *self.done.borrow();
        while !stopped && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            // A dropped sender means the task is gone too.
            stopped = *self.done.borrow() || self.done.has_changed().is_err();
        }
        if stopped {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        stopped
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FleetClient {
    /// Runs the client on a new thread with its own single-threaded tokio
    /// runtime.
    pub fn spawn(settings: FleetSettings, device: SharedDevice) -> Result<FleetHandle, FleetError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("fleet".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(FleetError::State(e)));
                    return;
                }
            };
            match FleetClient::spawn_on(rt.handle(), settings, device) {
                Ok(handle) => {
                    let mut done = handle.done.clone();
                    let _ = tx.send(Ok(handle));
                    // Run until the client task has finished its shutdown.
                    rt.block_on(async move {
                        while !*done.borrow_and_update() {
                            if done.changed().await.is_err() {
                                break;
                            }
                        }
                    });
                    // A device job still running (a slow apply) must not
                    // hold the agent's shutdown.
                    rt.shutdown_timeout(Duration::from_millis(500));
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
        let mut handle = rx.recv().map_err(|_| FleetError::Settings("fleet thread died".into()))??;
        handle.thread = Some(thread);
        Ok(handle)
    }

    /// Runs the client as tasks on `rt`.
    pub fn spawn_on(rt: &tokio::runtime::Handle, settings: FleetSettings, device: SharedDevice) -> Result<FleetHandle, FleetError> {
        settings.validate().map_err(FleetError::Settings)?;
        let opts = mqtt_options(&settings.device_id, &settings.broker, settings.tls.as_ref(), settings.keep_alive_s)?;
        let store = FileStore::new(settings.state_dir.join("state"))?;
        let outbox = Outbox::open(settings.state_dir.join("outbox"), settings.outbox_max_messages, settings.outbox_max_bytes)?;
        let running = lock(&device).running_config();
        let mut cfg = SessionConfig::new(&settings.device_id);
        cfg.telemetry_interval_s = settings.telemetry_interval_s;
        let session = Session::new(cfg, Box::new(store), running, Now::system());

        let (client, eventloop) = AsyncClient::new(opts, 256);
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let (go_tx, go_rx) = mpsc::channel(1);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let (job_tx, job_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(ClientStats::default()));
        let poller = rt.spawn(poll_loop(eventloop, go_rx, ev_tx));
        let shell = Shell {
            session,
            device,
            outbox,
            client,
            go: go_tx,
            connected: false,
            reconnect_at: None,
            backoff: Backoff::new(Duration::from_secs(u64::from(settings.reconnect_max_s))),
            sent: VecDeque::new(),
            awaiting: HashMap::new(),
            sent_outbox: HashSet::new(),
            offline_pkid: None,
            stats: stats.clone(),
            jobs: VecDeque::new(),
            job_running: false,
            job_done: job_tx,
        };
        rt.spawn(async move {
            shell.run(ev_rx, job_rx, shutdown_rx).await;
            poller.abort();
            let _ = done_tx.send(true);
        });
        let shutdown = shutdown_tx;
        Ok(FleetHandle { shutdown, done: done_rx, stats, thread: None })
    }
}

/// What the event-loop task reports.
enum NetEvent {
    Event(Event),
    Error(String),
}

/// Owns the `EventLoop`: waits for a go-ahead carrying the Will of the
/// next attempt, then polls until the connection fails.
async fn poll_loop(mut eventloop: EventLoop, mut go: mpsc::Receiver<LastWill>, events: mpsc::Sender<NetEvent>) {
    while let Some(will) = go.recv().await {
        // Drop requests queued for the dead connection (clean session).
        eventloop.clean();
        eventloop.mqtt_options.set_last_will(will);
        loop {
            match eventloop.poll().await {
                Ok(ev) => {
                    if events.send(NetEvent::Event(ev)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if events.send(NetEvent::Error(e.to_string())).await.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Why a publish was handed to rumqttc (matched to `Outgoing::Publish`).
#[derive(Debug, Clone, Copy)]
enum Sent {
    Outbox(u64),
    Offline,
    Other,
}

struct Shell {
    session: Session,
    device: SharedDevice,
    outbox: Outbox,
    client: AsyncClient,
    go: mpsc::Sender<LastWill>,
    connected: bool,
    reconnect_at: Option<tokio::time::Instant>,
    backoff: Backoff,
    /// Publishes handed to rumqttc, in order, until their Outgoing event.
    sent: VecDeque<Sent>,
    /// pkid → what to do on PUBACK.
    awaiting: HashMap<u16, Sent>,
    /// Outbox ids published on this connection.
    sent_outbox: HashSet<u64>,
    offline_pkid: Option<Option<u16>>,
    stats: Arc<Mutex<ClientStats>>,
    /// Device work waiting to run, in the order the session asked for it.
    jobs: VecDeque<(JobKind, Job<JobResult>)>,
    /// Whether a job is running (at most one at a time).
    job_running: bool,
    job_done: mpsc::UnboundedSender<(JobKind, JobResult)>,
}

/// What a device job was for, so its result reaches the session.
#[derive(Debug)]
enum JobKind {
    Command { id: String },
    Config { version: u64 },
    Rollback { version: u64 },
}

/// What a device job returned.
enum JobResult {
    Command(CommandResult),
    Config(Result<(), String>),
}

fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

impl Shell {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<NetEvent>,
        mut jobs_done: mpsc::UnboundedReceiver<(JobKind, JobResult)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.drive();
        self.start_attempt().await;
        // One observation per second and device: cheap enough for thousands
        // of simulated devices on one runtime, precise enough for deadlines.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reconnect_at = self.reconnect_at;
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                ev = events.recv() => match ev {
                    Some(ev) => self.on_net(ev),
                    None => break,
                },
                Some((kind, result)) = jobs_done.recv() => {
                    self.job_running = false;
                    self.on_job_done(kind, result);
                    self.drive();
                }
                _ = tick.tick() => self.on_tick(),
                _ = tokio::time::sleep_until(reconnect_at.unwrap_or_else(tokio::time::Instant::now)), if reconnect_at.is_some() => {
                    self.reconnect_at = None;
                    self.start_attempt().await;
                }
            }
        }
        self.clean_shutdown(&mut events).await;
    }

    async fn start_attempt(&mut self) {
        let (topic, payload) = self.session.prepare_connect(Now::system());
        lock(&self.stats).bdseq = self.session.bdseq();
        let _ = self.go.send(LastWill::new(topic, payload, QoS::AtLeastOnce, true)).await;
    }

    fn on_net(&mut self, ev: NetEvent) {
        let now = Now::system();
        match ev {
            NetEvent::Event(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code != ConnectReturnCode::Success {
                    return self.on_error(&format!("connection refused: {:?}", ack.code));
                }
                info!(device = self.session.device_id(), bdseq = self.session.bdseq(), "connected to the broker");
                self.connected = true;
                self.backoff.reset();
                self.sent.clear();
                self.awaiting.clear();
                self.sent_outbox.clear();
                {
                    let mut s = lock(&self.stats);
                    s.connects += 1;
                    s.connected = true;
                }
                self.session.connected(now);
                self.drive();
                self.flush_outbox();
            }
            NetEvent::Event(Event::Incoming(Packet::Publish(p))) => {
                self.session.handle_message(now, &p.topic, &p.payload);
                self.drive();
            }
            NetEvent::Event(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(Sent::Outbox(id)) = self.awaiting.remove(&ack.pkid) {
                    self.outbox.remove(id);
                    self.sent_outbox.remove(&id);
                }
            }
            NetEvent::Event(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some(s) = self.sent.pop_front() {
                    if matches!(s, Sent::Offline) {
                        self.offline_pkid = Some(Some(pkid));
                    }
                    if pkid != 0 {
                        self.awaiting.insert(pkid, s);
                    }
                }
            }
            NetEvent::Event(_) => {}
            NetEvent::Error(e) => self.on_error(&e),
        }
    }

    fn on_error(&mut self, e: &str) {
        let delay = self.backoff.next_delay();
        let errors = {
            let mut s = lock(&self.stats);
            s.connection_errors += 1;
            s.connected = false;
            s.connection_errors
        };
        if self.connected {
            warn!(device = self.session.device_id(), error = e, "broker connection lost");
        } else if errors.is_power_of_two() {
            // 1st, 2nd, 4th, 8th… failure: visible without flooding the log.
            warn!(device = self.session.device_id(), error = e, attempts = errors, "cannot connect to the broker");
        } else {
            debug!(device = self.session.device_id(), error = e, "cannot connect to the broker");
        }
        self.connected = false;
        self.session.disconnected(Now::system());
        self.sent.clear();
        self.awaiting.clear();
        self.sent_outbox.clear();
        self.reconnect_at = Some(tokio::time::Instant::now() + delay);
    }

    fn on_tick(&mut self) {
        let now = Now::system();
        self.session.tick(now);
        let (state, alarms, healthy) = {
            let d = lock(&self.device);
            let healthy = if self.session.awaiting_confirm() { Some(d.outputs_healthy()) } else { None };
            (d.state(), d.alarms(), healthy)
        };
        self.session.observe(now, state, alarms);
        if let Some(h) = healthy {
            self.session.health(now, h);
        }
        let thumbnail = lock(&self.device).thumbnail();
        if let Some(jpeg) = thumbnail {
            self.session.thumbnail(jpeg);
        }
        let fallback = lock(&self.device).take_config_fallback();
        if let Some(f) = fallback {
            self.session.config_fell_back(now, &f);
        }
        let updates = lock(&self.device).poll_command_updates();
        for u in updates {
            match u {
                crate::device::CommandUpdate::Progress { id, result } => self.session.command_progress(now, &id, result),
                crate::device::CommandUpdate::Done { id, result } => self.session.command_result(now, &id, result),
                crate::device::CommandUpdate::DoneAfterRestart { id, result } => {
                    self.session.command_result_after_restart(now, &id, result)
                }
            }
        }
        self.drive();
        self.flush_outbox();
        let mut s = lock(&self.stats);
        s.outbox_len = self.outbox.len() as u64;
        s.outbox_dropped = self.outbox.dropped;
        s.session = self.session.stats.clone();
    }

    fn try_send(&mut self, topic: &str, payload: &[u8], q: Qos, retain: bool, why: Sent) -> bool {
        match self.client.try_publish(topic, qos(q), retain, payload.to_vec()) {
            Ok(()) => {
                self.sent.push_back(why);
                true
            }
            Err(_) => {
                lock(&self.stats).publishes_dropped_queue_full += 1;
                false
            }
        }
    }

    /// Publishes outbox messages not yet sent on this connection.
    fn flush_outbox(&mut self) {
        if !self.connected {
            return;
        }
        let todo: Vec<_> = self
            .outbox
            .entries()
            .filter(|e| !self.sent_outbox.contains(&e.id))
            .take(50)
            .map(|e| (e.id, e.topic.clone(), e.payload.clone()))
            .collect();
        for (id, topic, payload) in todo {
            if !self.try_send(&topic, &payload, Qos::AtLeastOnce, false, Sent::Outbox(id)) {
                break;
            }
            self.sent_outbox.insert(id);
        }
    }

    fn publish(&mut self, p: Publish) {
        match p.delivery {
            Delivery::Durable => match self.outbox.push(&p.topic, &p.payload) {
                Ok(_) => self.flush_outbox(),
                Err(e) => {
                    warn!(error = %e, "outbox write failed; sending without it");
                    if self.connected {
                        self.try_send(&p.topic, &p.payload, p.qos, p.retain, Sent::Other);
                    }
                }
            },
            Delivery::BestEffort if self.connected => {
                self.try_send(&p.topic, &p.payload, p.qos, p.retain, Sent::Other);
            }
            Delivery::BestEffort => lock(&self.stats).publishes_dropped_offline += 1,
        }
    }

    /// Carries out everything the session asks for.
    fn drive(&mut self) {
        while let Some(o) = self.session.poll_output() {
            let now = Now::system();
            match o {
                Output::Publish(p) => self.publish(p),
                Output::Subscribe(topics) => {
                    let filters = topics.into_iter().map(|t| rumqttc::SubscribeFilter::new(t, QoS::AtLeastOnce));
                    if let Err(e) = self.client.try_subscribe_many(filters) {
                        warn!(error = %e, "cannot queue the subscription");
                    }
                }
                Output::Execute { id, command } if command.is_long_running() => {
                    let started = lock(&self.device).start(&id, &command);
                    if let Err(e) = started {
                        self.session.command_result(now, &id, Err(e));
                    }
                }
                Output::Execute { id, command } => {
                    let work = lock(&self.device).execute_job(&command);
                    self.jobs.push_back((JobKind::Command { id }, Box::new(move || JobResult::Command(work()))));
                }
                Output::ApplyConfig { version, config, rollback } => {
                    let mut d = lock(&self.device);
                    let kind = if rollback {
                        JobKind::Rollback { version }
                    } else if let Err(rej) = d.validate_config(&config) {
                        drop(d);
                        self.session.config_outcome(now, version, ConfigOutcome::Invalid(rej));
                        continue;
                    } else {
                        JobKind::Config { version }
                    };
                    let work = d.apply_config_job(&config);
                    drop(d);
                    self.jobs.push_back((kind, Box::new(move || JobResult::Config(work()))));
                }
                Output::NeedBirth => {
                    let (info, state, alarms) = {
                        let d = lock(&self.device);
                        (d.info(), d.state(), d.alarms())
                    };
                    self.session.birth(now, info, state, alarms);
                }
                Output::NeedTelemetry => {
                    let t = lock(&self.device).telemetry();
                    self.session.telemetry(now, t);
                }
            }
        }
        self.start_next_job();
    }

    /// Runs the next device job on a blocking thread, if none is running:
    /// the runtime goes on polling the broker (keep-alives, acks) meanwhile.
    fn start_next_job(&mut self) {
        if self.job_running {
            return;
        }
        let Some((kind, work)) = self.jobs.pop_front() else { return };
        self.job_running = true;
        let done = self.job_done.clone();
        tokio::task::spawn_blocking(move || {
            let _ = done.send((kind, work()));
        });
    }

    fn on_job_done(&mut self, kind: JobKind, result: JobResult) {
        let now = Now::system();
        match (kind, result) {
            (JobKind::Command { id }, JobResult::Command(r)) => self.session.command_result(now, &id, r),
            (JobKind::Config { version }, JobResult::Config(r)) => {
                let outcome = match r {
                    Ok(()) => ConfigOutcome::Applied,
                    Err(e) => ConfigOutcome::Failed(e),
                };
                self.session.config_outcome(now, version, outcome);
            }
            (JobKind::Rollback { version }, JobResult::Config(Err(e))) => {
                warn!(version, error = %e, "rollback to the last known good config failed");
            }
            (JobKind::Rollback { .. }, JobResult::Config(Ok(()))) => {}
            (kind, _) => warn!(?kind, "device job returned the wrong kind of result"),
        }
    }

    /// Offline status, wait (≤2 s) for its PUBACK, DISCONNECT (≤1 s).
    async fn clean_shutdown(&mut self, events: &mut mpsc::Receiver<NetEvent>) {
        if !self.connected {
            return;
        }
        self.session.shutdown(Now::system());
        while let Some(o) = self.session.poll_output() {
            if let Output::Publish(p) = o {
                self.try_send(&p.topic, &p.payload, p.qos, p.retain, Sent::Offline);
            }
        }
        let acked = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(ev) = events.recv().await {
                let is_ack =
                    matches!(&ev, NetEvent::Event(Event::Incoming(Packet::PubAck(a))) if self.offline_pkid == Some(Some(a.pkid)));
                let is_err = matches!(ev, NetEvent::Error(_));
                self.on_net(ev);
                if is_ack || is_err {
                    return;
                }
            }
        })
        .await;
        if acked.is_err() {
            warn!("offline status not acknowledged in time");
        }
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(ev) = events.recv().await {
                if matches!(ev, NetEvent::Error(_) | NetEvent::Event(Event::Outgoing(Outgoing::Disconnect))) {
                    return;
                }
            }
        })
        .await;
        self.session.disconnected(Now::system());
        lock(&self.stats).connected = false;
    }
}
