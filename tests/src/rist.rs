//! RIST test support: a real RIST receiver (librist's `ristreceiver`, from
//! Debian's rist-tools) whose output is collected from a UDP socket, port
//! pairs (RTP on an even P, RTCP on P+1, TR-06-1) and a pair of impairment
//! relays that carries both.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::relay::{ImpairmentConfig, Relay};
use crate::{wait_for, ChildGuard};

/// Attempts when hunting for a free pair.
const PAIR_ATTEMPTS: usize = 64;

/// An even loopback UDP port P with P and P+1 both free at the time of the
/// call (bound and released here; the kernel picks the candidate, so
/// concurrent tests spread out).
pub fn try_free_udp_port_pair() -> io::Result<u16> {
    for _ in 0..PAIR_ATTEMPTS {
        let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let base = probe & !1;
        if base == 0 || base == u16::MAX - 1 {
            continue;
        }
        let held: io::Result<Vec<UdpSocket>> = [base, base + 1].iter().map(|&p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p))).collect();
        if held.is_ok() {
            return Ok(base);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, format!("no free even P with P+1 after {PAIR_ATTEMPTS} attempts")))
}

/// As [`try_free_udp_port_pair`], panicking when there is none.
pub fn free_udp_port_pair() -> u16 {
    try_free_udp_port_pair().unwrap_or_else(|e| panic!("no free UDP port pair on 127.0.0.1: {e}"))
}

/// Two relays whose front ports are an even P (RTP, `rtp` impairments
/// forward, none back) and P+1 (RTCP, `rtcp_forward` sender → receiver,
/// `rtcp_reverse` receiver → sender: NACKs and reports), relaying to
/// `upstream_base` and `+1`. The RTCP relay sends the receiver's replies to
/// the sender's RTCP socket (the last address it heard from), as a NAT
/// would.
///
/// # Errors
/// As [`Relay::start_on`]; `AddrInUse` when no pair could be bound.
pub fn start_rist_relays(
    upstream_base: SocketAddr,
    rtp: ImpairmentConfig,
    rtcp_forward: ImpairmentConfig,
    rtcp_reverse: ImpairmentConfig,
) -> io::Result<[Relay; 2]> {
    let rtcp_up = SocketAddr::new(upstream_base.ip(), upstream_base.port().checked_add(1).ok_or(io::ErrorKind::InvalidInput)?);
    let mut last_err = None;
    for _ in 0..PAIR_ATTEMPTS {
        let base = try_free_udp_port_pair()?;
        let front = |p: u16| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p);
        let pair = (|| {
            let a = Relay::start_on(front(base), upstream_base, rtp, ImpairmentConfig::NONE)?;
            let b = Relay::start_on(front(base + 1), rtcp_up, rtcp_forward, rtcp_reverse)?;
            Ok::<_, io::Error>([a, b])
        })();
        match pair {
            Ok(relays) => return Ok(relays),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// Datagrams collected from a UDP socket, each with its arrival time.
type Datagrams = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// `ristreceiver` in simple profile listening on `127.0.0.1:P` (RTP) and
/// P+1 (RTCP), forwarding the recovered TS to a UDP socket this side reads.
#[derive(Debug)]
pub struct RistReceiver {
    pub port: u16,
    pub log: PathBuf,
    pub proc: ChildGuard,
    got: Datagrams,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl RistReceiver {
    /// Starts the receiver with a `buffer_ms` recovery buffer on a free
    /// port pair and waits (bounded) until it listens. Its log (JSON stats
    /// every second) goes to `log`.
    pub fn start(buffer_ms: u32, log: &Path) -> Self {
        let out = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| panic!("bind collector: {e}"));
        crate::relay::grow_receive_buffer(&out);
        out.set_read_timeout(Some(Duration::from_millis(50))).unwrap_or_else(|e| panic!("collector timeout: {e}"));
        let out_port = out.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("collector address: {e}"));
        let port = free_udp_port_pair();
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = file.try_clone().unwrap_or_else(|e| panic!("clone log: {e}"));
        let child = Command::new("ristreceiver")
            .args(["-p", "0", "-S", "1000", "-i"])
            .arg(format!("rist://@127.0.0.1:{port}?buffer={buffer_ms}"))
            .arg("-o")
            .arg(format!("udp://127.0.0.1:{out_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ristreceiver (install rist-tools): {e}"));
        let proc = ChildGuard::new("ristreceiver", child);
        let got: Datagrams = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let reader = std::thread::Builder::new()
            .name("rist-collect".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !s.load(Ordering::Relaxed) {
                    if let Ok(n) = out.recv(&mut buf) {
                        g.lock().unwrap_or_else(PoisonError::into_inner).push((Instant::now(), buf[..n].to_vec()));
                    }
                }
            })
            .unwrap_or_else(|e| panic!("spawn collector: {e}"));
        let r = RistReceiver { port, log: log.to_owned(), proc, got, stop, reader: Some(reader) };
        wait_for("ristreceiver to listen", Duration::from_secs(10), || {
            r.log_text().contains("Starting receiver protocol loop").then_some(())
        });
        r
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// TS bytes received so far.
    pub fn received(&self) -> usize {
        self.got.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, d)| d.len()).sum()
    }

    /// The last `flow_cumulative_stats` line: (received, recovered, lost).
    pub fn cumulative(&self) -> Option<(u64, u64, u64)> {
        let text = self.log_text();
        let line = text.lines().rev().find(|l| l.contains("flow_cumulative_stats"))?;
        let json: serde_json::Value = serde_json::from_str(&line[line.find('{')?..]).ok()?;
        let s = &json["flow_cumulative_stats"];
        Some((s["received"].as_u64()?, s["recovered"].as_u64()?, s["lost"].as_u64()?))
    }

    /// The receiver's per-second stats lines that report packets lost or
    /// dropped (late or buffer full): the evidence when the TS has a gap.
    pub fn trouble(&self) -> Vec<String> {
        let bad = |l: &&str| {
            ["\"lost\":", "\"dropped_late\":", "\"dropped_full\":"]
                .iter()
                .any(|k| l.split(k).skip(1).any(|rest| !rest.starts_with('0')))
        };
        self.log_text().lines().filter(|l| l.contains("receiver-stats")).filter(bad).map(str::to_owned).collect()
    }

    /// How often the receiver moved to a new flow id (in simple profile,
    /// the sender's SSRC): each move drops its buffer.
    pub fn flow_changes(&self) -> usize {
        self.log_text().matches("Updating peer's flowid").count()
    }

    /// Stops collecting and the receiver; returns the datagrams received.
    pub fn stop(mut self) -> Vec<(Instant, Vec<u8>)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
        self.proc.kill();
        std::mem::take(&mut *self.got.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for RistReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

/// An `[[outputs]]` entry of kind rist.
pub fn rist_output(name: &str, port: u16, buffer_ms: u32) -> String {
    format!("[[outputs]]\nname = \"{name}\"\nkind = \"rist\"\naddress = \"127.0.0.1:{port}\"\nbuffer_ms = {buffer_ms}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_even_and_both_ports_bind() {
        let p = free_udp_port_pair();
        assert_eq!(p % 2, 0);
        assert!(UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok() && UdpSocket::bind((Ipv4Addr::LOCALHOST, p + 1)).is_ok());
    }

    #[test]
    fn relays_map_p_and_p_plus_one() {
        let up = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), free_udp_port_pair());
        let [a, b] = start_rist_relays(up, ImpairmentConfig::NONE, ImpairmentConfig::NONE, ImpairmentConfig::NONE).unwrap();
        assert_eq!(a.local_addr().port() % 2, 0);
        assert_eq!(b.local_addr().port(), a.local_addr().port() + 1);
        assert_eq!((a.upstream().port(), b.upstream().port()), (up.port(), up.port() + 1));
    }
}
