//! The I/O shell: a tokio task that owns the serial port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, SerialStream, StopBits};

use super::{
    encode, parse_board_line, BoardMessage, HostCommand, Led, LedState, LineBuffer, PanelDesired, PanelError, PanelState, Press, Tally,
};

/// Timing of the link. The defaults suit a USB CDC-ACM board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelLinkConfig {
    pub baud_rate: u32,
    /// How long to wait for `OK`/`ERR` before re-sending.
    pub ack_timeout: Duration,
    /// Send `PING` after this long without hearing from the board.
    pub ping_interval: Duration,
    /// Reopen the port after this long without any line from the board.
    pub silence_limit: Duration,
    /// Reconnect backoff: doubles from `backoff_min` up to `backoff_max`,
    /// back to `backoff_min` after a connection that lasted `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A write that does not finish in this time (board not draining) drops
    /// the connection.
    pub write_timeout: Duration,
    /// Events buffered for a slow consumer; beyond that they are dropped
    /// and counted in [`PanelStatus::events_dropped`].
    pub event_capacity: usize,
}

impl Default for PanelLinkConfig {
    fn default() -> Self {
        PanelLinkConfig {
            baud_rate: 115_200,
            ack_timeout: Duration::from_millis(500),
            ping_interval: Duration::from_secs(2),
            // Three missed pings.
            silence_limit: Duration::from_secs(7),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            write_timeout: Duration::from_secs(1),
            event_capacity: 64,
        }
    }
}

/// The link as telemetry reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PanelStatus {
    /// The port is open.
    pub connected: bool,
    /// From the board's last `HELLO`.
    pub firmware: Option<String>,
    /// The board acknowledged the whole desired state.
    pub in_sync: bool,
    pub open_attempts: u64,
    pub connections: u64,
    pub events_dropped: u64,
    /// Why the last open failed or the last connection ended.
    pub last_error: Option<String>,
}

/// What the link reports to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PanelEvent {
    Connected,
    Disconnected {
        reason: String,
    },
    /// The board (re)started; its state is being re-sent.
    Hello {
        firmware: String,
    },
    Button {
        name: String,
        press: Press,
    },
    Temp {
        millicelsius: i32,
    },
    Fan {
        rpm: u32,
    },
    Psu {
        millivolts: u32,
        milliamps: u32,
    },
    /// The board refused a command (`ERR`).
    Refused {
        seq: u16,
        reason: String,
    },
}

/// Handle to the front-panel link task. Setters never block: they update a
/// watch channel that the task reconciles whenever the board is there. The
/// task stops when the handle is dropped.
#[derive(Debug)]
pub struct PanelLink {
    desired: watch::Sender<PanelDesired>,
    status: watch::Receiver<PanelStatus>,
    task: JoinHandle<()>,
}

impl PanelLink {
    /// Starts the link to the serial port at `path` (typically a stable
    /// `/dev/serial/by-id/...` symlink) on the current tokio runtime, which
    /// must have I/O and time enabled (`#[tokio::main]` does; without them
    /// tokio panics inside the link task, which then stops, but the caller
    /// is unaffected). Returns the handle and the event stream. The port
    /// need not exist yet. Outside a runtime this is an error, not a panic.
    pub fn spawn(path: impl Into<PathBuf>, config: PanelLinkConfig) -> Result<(PanelLink, mpsc::Receiver<PanelEvent>), PanelError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| PanelError::NoRuntime(e.to_string()))?;
        let (desired_tx, desired_rx) = watch::channel(PanelDesired::default());
        let (status_tx, status_rx) = watch::channel(PanelStatus::default());
        let (event_tx, event_rx) = mpsc::channel(config.event_capacity.max(1));
        let task = Task {
            path: path.into(),
            state: PanelState::new(config.ack_timeout),
            config,
            desired: desired_rx,
            status: status_tx,
            events: event_tx,
        };
        let task = runtime.spawn(task.run());
        Ok((PanelLink { desired: desired_tx, status: status_rx, task }, event_rx))
    }

    pub fn set_led(&self, led: Led, state: LedState) {
        self.desired.send_if_modified(|d| {
            let changed = d.led(led) != state;
            d.set_led(led, state);
            changed
        });
    }

    pub fn set_tally(&self, tally: Tally) {
        self.desired.send_if_modified(|d| std::mem::replace(&mut d.tally, tally) != tally);
    }

    pub fn set_desired(&self, desired: PanelDesired) {
        self.desired.send_if_modified(|d| std::mem::replace(d, desired) != desired);
    }

    pub fn desired(&self) -> PanelDesired {
        *self.desired.borrow()
    }

    pub fn status(&self) -> PanelStatus {
        self.status.borrow().clone()
    }

    /// A receiver that is notified on every status change.
    pub fn watch_status(&self) -> watch::Receiver<PanelStatus> {
        self.status.clone()
    }
}

impl Drop for PanelLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum End {
    /// The handle was dropped.
    Shutdown,
    /// The connection failed; reconnect.
    Lost(String),
}

struct Task {
    path: PathBuf,
    config: PanelLinkConfig,
    state: PanelState,
    desired: watch::Receiver<PanelDesired>,
    status: watch::Sender<PanelStatus>,
    events: mpsc::Sender<PanelEvent>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = self.config.backoff_min;
        loop {
            self.status.send_modify(|s| s.open_attempts += 1);
            match open(&self.path, self.config.baud_rate) {
                Ok(port) => {
                    tracing::info!("front panel connected on {}", self.path.display());
                    self.status.send_modify(|s| {
                        s.connected = true;
                        s.connections += 1;
                        s.last_error = None;
                    });
                    self.emit(PanelEvent::Connected);
                    let since = Instant::now();
                    let reason = match self.session(port).await {
                        End::Shutdown => return,
                        End::Lost(reason) => reason,
                    };
                    tracing::warn!("front panel disconnected: {reason}");
                    self.status.send_modify(|s| {
                        s.connected = false;
                        s.firmware = None;
                        s.in_sync = false;
                        s.last_error = Some(reason.clone());
                    });
                    self.emit(PanelEvent::Disconnected { reason });
                    if since.elapsed() >= self.config.backoff_max {
                        backoff = self.config.backoff_min;
                    }
                }
                Err(e) => {
                    // The board is optional: a missing port is routine.
                    tracing::debug!("{e}");
                    self.status.send_modify(|s| s.last_error = Some(e.to_string()));
                }
            }
            if !self.sleep(backoff).await {
                return;
            }
            backoff = backoff.saturating_mul(2).min(self.config.backoff_max);
        }
    }

    /// Sleeps while disconnected; false if the handle was dropped.
    async fn sleep(&mut self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            tokio::select! {
                () = time::sleep_until(deadline) => return true,
                r = self.desired.changed() => if r.is_err() { return false },
            }
        }
    }

    async fn session(&mut self, port: SerialStream) -> End {
        let (mut rd, mut wr) = tokio::io::split(port);
        self.state.board_reset();
        self.state.set_desired(*self.desired.borrow_and_update());
        let hello_seq = self.state.next_seq();
        if let Err(e) = self.write(&mut wr, &[HostCommand::Hello { seq: hello_seq }]).await {
            return End::Lost(e);
        }
        // Hold the state back until the board answered HELLO (which blanks
        // it) or did not within the ack timeout (old firmware).
        let mut hello_deadline = Some(Instant::now() + self.config.ack_timeout);
        let mut lines = LineBuffer::new();
        let mut buf = [0u8; 256];
        let (mut last_rx, mut last_ping) = (Instant::now(), Instant::now());
        let tick_period = (self.config.ack_timeout.min(self.config.ping_interval) / 4).max(Duration::from_millis(5));
        let mut tick = time::interval(tick_period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) => return End::Lost("port closed".to_owned()),
                    Ok(n) => {
                        last_rx = Instant::now();
                        for line in lines.push(buf.get(..n).unwrap_or_default()) {
                            match line.and_then(|l| parse_board_line(&l)) {
                                Ok(BoardMessage::Ok { seq } | BoardMessage::Err { seq, .. }) if seq == hello_seq => {
                                    hello_deadline = None;
                                }
                                Ok(msg) => self.handle(msg),
                                Err(e) => tracing::debug!("front panel: ignoring line: {e}"),
                            }
                        }
                    }
                    Err(e) => return End::Lost(format!("read: {e}")),
                },
                r = self.desired.changed() => match r {
                    Ok(()) => self.state.set_desired(*self.desired.borrow_and_update()),
                    Err(_) => return End::Shutdown,
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    let quiet = now.saturating_duration_since(last_rx);
                    if quiet >= self.config.silence_limit {
                        return End::Lost(PanelError::Silent(quiet).to_string());
                    }
                    let ping_due = now.saturating_duration_since(last_ping) >= self.config.ping_interval;
                    if quiet >= self.config.ping_interval && ping_due {
                        last_ping = now;
                        let ping = HostCommand::Ping { seq: self.state.next_seq() };
                        if let Err(e) = self.write(&mut wr, &[ping]).await {
                            return End::Lost(e);
                        }
                    }
                }
            }
            if hello_deadline.is_some_and(|d| Instant::now() >= d) {
                hello_deadline = None;
            }
            if hello_deadline.is_none() {
                let cmds = self.state.poll(Instant::now().into_std());
                if !cmds.is_empty() {
                    if let Err(e) = self.write(&mut wr, &cmds).await {
                        return End::Lost(e);
                    }
                }
            }
            let in_sync = self.state.in_sync();
            self.status.send_if_modified(|s| std::mem::replace(&mut s.in_sync, in_sync) != in_sync);
        }
    }

    fn handle(&mut self, msg: BoardMessage) {
        match msg {
            BoardMessage::Ok { seq } => {
                self.state.on_ok(seq);
            }
            BoardMessage::Err { seq, reason } => {
                if self.state.on_err(seq) {
                    tracing::warn!("front panel refused command {seq}: {reason}");
                    self.emit(PanelEvent::Refused { seq, reason });
                }
            }
            BoardMessage::Hello { firmware } => {
                tracing::info!("front panel firmware {firmware} (re)started; re-sending state");
                self.state.board_reset();
                self.status.send_modify(|s| s.firmware = Some(firmware.clone()));
                self.emit(PanelEvent::Hello { firmware });
            }
            BoardMessage::Button { name, press } => self.emit(PanelEvent::Button { name, press }),
            BoardMessage::Temp { millicelsius } => self.emit(PanelEvent::Temp { millicelsius }),
            BoardMessage::Fan { rpm } => self.emit(PanelEvent::Fan { rpm }),
            BoardMessage::Psu { millivolts, milliamps } => self.emit(PanelEvent::Psu { millivolts, milliamps }),
        }
    }

    async fn write(&self, wr: &mut WriteHalf<SerialStream>, cmds: &[HostCommand]) -> Result<(), String> {
        let text: String = cmds.iter().map(encode).collect();
        let io = async {
            wr.write_all(text.as_bytes()).await?;
            wr.flush().await
        };
        match time::timeout(self.config.write_timeout, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write: {e}")),
            Err(_) => Err(format!("write stalled for {:?}", self.config.write_timeout)),
        }
    }

    /// Never waits: a consumer that does not keep up loses events, and the
    /// loss is counted.
    fn emit(&self, event: PanelEvent) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.status.send_modify(|s| s.events_dropped += 1);
        }
    }
}

/// Opens the port 8N1 without flow control. The open is a few non-blocking
/// syscalls (serialport opens with `O_NONBLOCK`), so it runs on the task.
fn open(path: &Path, baud_rate: u32) -> Result<SerialStream, PanelError> {
    let err = |reason: String| PanelError::Open { path: path.to_owned(), reason };
    let name = path.to_str().ok_or_else(|| err("path is not UTF-8".to_owned()))?;
    tokio_serial::new(name, baud_rate)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .open_native_async()
        .map_err(|e| err(e.to_string()))
}
