//! A front-panel board simulated on a pseudo-terminal.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_serial::{SerialPort, SerialStream};

use super::codec::{encode_board, host_line_seq, parse_host_line};
use super::{BoardMessage, HostCommand, LedState, LineBuffer, PanelError, Press, Tally};

/// What the simulated board shows and what it was told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimState {
    /// Indexed by [`super::Led::index`].
    pub leds: [LedState; 4],
    pub tally: Tally,
    /// Every valid command received, oldest first.
    pub received: Vec<HostCommand>,
    /// Lines that did not parse.
    pub malformed: Vec<String>,
}

/// Plays the board on a pty: answers every command (`OK`, or `ERR` for what
/// it cannot parse), records LED and tally state, and can inject messages.
/// The host opens `link`, a symlink to the pty's slave side that is
/// re-pointed on every replug, as udev does for `/dev/serial/by-id`.
///
/// The simulator keeps its own handle on the slave side open, so the host
/// can close and reopen the port without the pty going away; only
/// [`Self::unplug`] makes it vanish. One difference from a real USB tty:
/// `serialport` opens ports exclusively (`TIOCEXCL`), and a pty keeps that
/// flag until its master closes, so a non-root host cannot reopen the same
/// pty (`EBUSY`) until [`Self::replug`]; a real tty forgets it on the last
/// close. Unplug/replug, the path the tests and the demo take, is unaffected.
#[derive(Debug)]
pub struct SimBoard {
    link: PathBuf,
    firmware: String,
    state: Arc<Mutex<SimState>>,
    plugged: Option<Plugged>,
}

#[derive(Debug)]
struct Plugged {
    tx: mpsc::UnboundedSender<String>,
    task: JoinHandle<()>,
    pts: PathBuf,
}

impl SimBoard {
    /// Creates the pty, points `link` at it and announces `HELLO firmware`,
    /// like a board after power-on. Needs a tokio runtime with I/O enabled.
    pub fn start(link: impl Into<PathBuf>, firmware: &str) -> Result<SimBoard, PanelError> {
        let mut board = SimBoard { link: link.into(), firmware: firmware.to_owned(), state: Arc::default(), plugged: None };
        board.replug()?;
        Ok(board)
    }

    pub fn link(&self) -> &Path {
        &self.link
    }

    /// The current pty slave (`/dev/pts/N`), while plugged.
    pub fn pts(&self) -> Option<&Path> {
        self.plugged.as_ref().map(|p| p.pts.as_path())
    }

    pub fn is_plugged(&self) -> bool {
        self.plugged.is_some()
    }

    pub fn state(&self) -> SimState {
        lock(&self.state).clone()
    }

    /// Forgets received and malformed lines (LED state stays).
    pub fn clear_log(&self) {
        let mut st = lock(&self.state);
        st.received.clear();
        st.malformed.clear();
    }

    /// A button press, as `BTN <name> <short|long>`.
    pub fn press(&self, name: &str, press: Press) -> Result<(), PanelError> {
        self.send(&BoardMessage::Button { name: name.to_owned(), press })
    }

    pub fn send(&self, msg: &BoardMessage) -> Result<(), PanelError> {
        self.send_raw(&encode_board(msg))
    }

    /// Writes bytes as they are, e.g. garbage.
    pub fn send_raw(&self, text: &str) -> Result<(), PanelError> {
        let plugged = self.plugged.as_ref().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        plugged.tx.send(text.to_owned()).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(())
    }

    /// Firmware reset without unplugging: outputs off, then `HELLO`.
    pub fn reset(&self) -> Result<(), PanelError> {
        blank(&mut lock(&self.state));
        self.send(&BoardMessage::Hello { firmware: self.firmware.clone() })
    }

    /// Pulls the cable: the pty is closed (the host sees a hang-up) and the
    /// link symlink removed. Waits until the pty is really closed.
    pub async fn unplug(&mut self) {
        if let Some(p) = self.plugged.take() {
            p.task.abort();
            // Completes once the task's future, which owns the pty, is dropped.
            let _ = p.task.await;
        }
        let _ = fs::remove_file(&self.link);
    }

    /// Plugs in again: a new pty (the board powers up blank), the link
    /// re-pointed at it, `HELLO` announced. A no-op while plugged.
    pub fn replug(&mut self) -> Result<(), PanelError> {
        if self.plugged.is_some() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| PanelError::NoRuntime(e.to_string()))?;
        let (master, slave, pts) = open_pty()?;
        blank(&mut lock(&self.state));
        point_link(&self.link, &pts).map_err(|e| PanelError::Open { path: self.link.clone(), reason: e.to_string() })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = runtime.spawn(serve(master, slave, rx, Arc::clone(&self.state), self.firmware.clone()));
        self.plugged = Some(Plugged { tx, task, pts });
        self.send(&BoardMessage::Hello { firmware: self.firmware.clone() })
    }
}

impl Drop for SimBoard {
    fn drop(&mut self) {
        if let Some(p) = self.plugged.take() {
            p.task.abort();
        }
        let _ = fs::remove_file(&self.link);
    }
}

fn lock(state: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn blank(st: &mut SimState) {
    st.leds = Default::default();
    st.tally = Tally::Off;
}

/// A pty pair from `serialport`'s safe `TTYPort::pair()`, which opens the
/// slave side raw (no echo, no line editing), as the board's USB CDC-ACM
/// endpoint would be, and both sides wrapped for tokio.
fn open_pty() -> Result<(SerialStream, SerialStream, PathBuf), PanelError> {
    let fail = |reason: String| PanelError::Open { path: PathBuf::from("/dev/ptmx"), reason };
    let (master, slave) = SerialStream::pair().map_err(|e| fail(e.to_string()))?;
    let pts = slave.name().ok_or_else(|| fail("pty slave has no name".to_owned()))?;
    Ok((master, slave, PathBuf::from(pts)))
}

/// Re-points `link` atomically (symlink beside it, then rename), so the
/// host never sees a half-made link.
fn point_link(link: &Path, target: &Path) -> io::Result<()> {
    let mut tmp = link.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp)?;
    fs::rename(&tmp, link)
}

/// The board's firmware loop. Owns both pty sides: aborting the task
/// closes them.
async fn serve(
    master: SerialStream,
    _slave: SerialStream,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    state: Arc<Mutex<SimState>>,
    firmware: String,
) {
    let (mut rd, mut wr) = tokio::io::split(master);
    let mut lines = LineBuffer::new();
    let mut buf = [0u8; 256];
    loop {
        let reply = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(n) if n > 0 => lines
                    .push(buf.get(..n).unwrap_or_default())
                    .into_iter()
                    .map(|line| respond(&state, &firmware, line))
                    .collect::<String>(),
                _ => return,
            },
            text = outgoing.recv() => match text {
                Some(text) => text,
                None => return,
            },
        };
        if wr.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Applies one host line and returns the reply lines.
fn respond(state: &Mutex<SimState>, firmware: &str, line: Result<String, PanelError>) -> String {
    let mut st = lock(state);
    let line = match line {
        Ok(line) => line,
        Err(e) => {
            st.malformed.push(e.to_string());
            return String::new();
        }
    };
    let cmd = match parse_host_line(&line) {
        Ok(cmd) => cmd,
        Err(e) => {
            st.malformed.push(line.clone());
            return match host_line_seq(&line) {
                Some(seq) => encode_board(&BoardMessage::Err { seq, reason: e.to_string() }),
                None => String::new(),
            };
        }
    };
    st.received.push(cmd.clone());
    let ok = |seq| encode_board(&BoardMessage::Ok { seq });
    match cmd {
        HostCommand::Hello { seq } => {
            blank(&mut st);
            encode_board(&BoardMessage::Hello { firmware: firmware.to_owned() }) + &ok(seq)
        }
        HostCommand::Led { seq, led, state } => {
            st.leds[led.index()] = state;
            ok(seq)
        }
        HostCommand::Tally { seq, tally } => {
            st.tally = tally;
            ok(seq)
        }
        HostCommand::Ping { seq } => ok(seq),
    }
}
