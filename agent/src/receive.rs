//! The I/O shell of `edge-agent receive`: one thread per UDP socket (P, and
//! P+2/P+4 with FEC) feeding a channel into the sans-IO core
//! ([`ts_tools::receive::RtpReceiver`], which documents the reorder buffer
//! and its limits), one line (or JSON object) per second, until `--seconds`
//! pass or [`Shutdown`] is triggered.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use agent::shutdown::Shutdown;
use rtp_fec::FecKind;
use socket2::{Domain, Protocol, Socket, Type};
use ts_tools::receive::{ReceiveStats, ReceiverConfig, RtpReceiver};

/// Largest UDP payload read.
const MAX_DATAGRAM: usize = 65536;

/// Options of `edge-agent receive`.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// Media port P (FEC on P+2 and P+4).
    pub port: u16,
    /// Local address to listen on.
    pub bind: IpAddr,
    /// Also listen for SMPTE 2022-1 FEC on P+2 (column) and P+4 (row).
    pub fec: bool,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Write the ordered, repaired TS here.
    pub output: Option<PathBuf>,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Reorder hold time.
    pub hold: Duration,
}

/// Errors that stop the receive tool.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("cannot listen on UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot write the TS output: {0}")]
    Write(String),
    #[error("cannot print the report: {0}")]
    Report(#[from] std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Which socket a datagram came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    Media,
    Fec(FecKind),
}

/// One report line in `--json` mode.
#[derive(Debug, serde::Serialize)]
struct Report {
    elapsed_s: f64,
    /// Media rate over the last interval (whole RTP packets).
    media_mbps: f64,
    media_pps: f64,
    #[serde(rename = "final")]
    is_final: bool,
    #[serde(flatten)]
    stats: ReceiveStats,
}

fn open_socket(addr: SocketAddr) -> Result<UdpSocket, ReceiveError> {
    let bind_err = |source| ReceiveError::Bind { addr, source };
    let domain = if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(bind_err)?;
    // Bursts of a frame's packets must not overflow the default buffer.
    let _ = sock.set_recv_buffer_size(4 << 20);
    sock.bind(&addr.into()).map_err(bind_err)?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(100))).map_err(bind_err)?;
    Ok(sock)
}

/// Receives until `opts.duration` passes or `shutdown` is triggered, printing
/// a report to `out` every second and a final one; returns the final counters.
pub fn run(opts: &ReceiveOptions, shutdown: &Shutdown, out: &mut dyn Write) -> Result<ReceiveStats, ReceiveError> {
    let mut ports = vec![(Port::Media, opts.port)];
    if opts.fec {
        for kind in [FecKind::Column, FecKind::Row] {
            ports.push((Port::Fec(kind), opts.port.wrapping_add(kind.port_offset())));
        }
    }
    let sockets = ports
        .iter()
        .map(|&(port, number)| Ok((port, open_socket(SocketAddr::new(opts.bind, number))?)))
        .collect::<Result<Vec<_>, ReceiveError>>()?;

    let mut receiver = RtpReceiver::new(ReceiverConfig { hold: opts.hold, fec: opts.fec, ..ReceiverConfig::default() });
    if let Some(path) = &opts.output {
        let file = std::fs::File::create(path).map_err(|source| ReceiveError::Create { path: path.clone(), source })?;
        receiver = receiver.with_sink(Box::new(std::io::BufWriter::new(file)));
    }
    tracing::info!(bind = %opts.bind, port = opts.port, fec = opts.fec, "receiving");

    let stop = Shutdown::new();
    let (tx, rx) = mpsc::channel::<(Port, Vec<u8>, Instant)>();
    let mut threads = Vec::new();
    for (port, sock) in sockets {
        let (tx, stop) = (tx.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("rx-{port:?}").to_lowercase())
            .spawn(move || read_loop(&sock, port, &tx, &stop))
            .map_err(ReceiveError::Thread)?;
        threads.push(thread);
    }
    drop(tx);

    let epoch = Instant::now();
    let deadline = opts.duration.map(|d| epoch + d);
    let mut last_report = (epoch, 0u64, 0u64);
    let result = loop {
        if shutdown.is_triggered() || deadline.is_some_and(|d| Instant::now() >= d) {
            break Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((port, bytes, at)) => feed(&mut receiver, port, &bytes, at.saturating_duration_since(epoch)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        }
        receiver.tick(epoch.elapsed());
        if let Some(e) = receiver.sink_error() {
            break Err(ReceiveError::Write(e.to_string()));
        }
        if last_report.0.elapsed() >= Duration::from_secs(1) {
            if let Err(e) = report(out, opts.json, &receiver, epoch, &mut last_report, false) {
                break Err(e.into());
            }
        }
    };
    stop.trigger();
    for thread in threads {
        let _ = thread.join();
    }
    // What the sockets read before they stopped.
    for (port, bytes, at) in rx.try_iter() {
        feed(&mut receiver, port, &bytes, at.saturating_duration_since(epoch));
    }
    receiver.finish(epoch.elapsed());
    result?;
    if let Some(e) = receiver.sink_error() {
        return Err(ReceiveError::Write(e.to_string()));
    }
    report(out, opts.json, &receiver, epoch, &mut last_report, true)?;
    Ok(receiver.stats())
}

fn feed(receiver: &mut RtpReceiver, port: Port, bytes: &[u8], now: Duration) {
    match port {
        Port::Media => receiver.push_media(bytes, now),
        Port::Fec(kind) => receiver.push_fec(bytes, kind, now),
    }
}

fn read_loop(sock: &UdpSocket, port: Port, tx: &mpsc::Sender<(Port, Vec<u8>, Instant)>, stop: &Shutdown) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.is_triggered() {
        match sock.recv(&mut buf) {
            Ok(n) => {
                if tx.send((port, buf[..n].to_vec(), Instant::now())).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            // E.g. ECONNREFUSED from an earlier ICMP error: keep reading.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Prints one report (text or JSON) and starts the next interval.
fn report(
    out: &mut dyn Write,
    json: bool,
    receiver: &RtpReceiver,
    epoch: Instant,
    last: &mut (Instant, u64, u64),
    is_final: bool,
) -> std::io::Result<()> {
    let s = receiver.stats();
    let secs = last.0.elapsed().as_secs_f64().max(1e-3);
    let media_mbps = (s.media_bytes - last.1) as f64 * 8.0 / secs / 1e6;
    let media_pps = (s.media_packets - last.2) as f64 / secs;
    *last = (Instant::now(), s.media_bytes, s.media_packets);
    let elapsed_s = (epoch.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    if json {
        let line = Report { elapsed_s, media_mbps, media_pps, is_final, stats: s };
        let text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
    } else {
        let matrix = match (s.fec_l, s.fec_d) {
            (Some(l), Some(d)) => format!(" L={l} D={d}"),
            (Some(l), None) => format!(" L={l} D=?"),
            _ => String::new(),
        };
        let when = if is_final { format!("final {elapsed_s:.1}s") } else { format!("{elapsed_s:.1}s") };
        writeln!(
            out,
            "{when:>12} media {media_mbps:.2} Mb/s {media_pps:.0} pkt/s | rx {} dup {} reord {} late {} | missing {} recovered {} UNRECOVERED {} | fec col {} row {}{matrix} | ts {} cc {} sync {} | buf {}",
            s.media_packets,
            s.duplicates,
            s.reordered,
            s.late,
            s.missing,
            s.recovered,
            s.unrecovered,
            s.fec_column,
            s.fec_row,
            s.ts_packets,
            s.cc_errors,
            s.sync_errors,
            s.buffered,
        )?;
    }
    out.flush()
}
