//! Carries the VM tests' traffic through QEMU user networking, which with
//! `restrict=on` lets the guest reach nothing but `guestfwd` TCP forwards
//! (libslirp drops every other guest UDP datagram when restricted), while
//! SRT rides on UDP. So the datagrams are framed over TCP:
//!
//! * `vm_tunnel guest <udp-bind> <tcp-connect>` runs in the guest (a test-only
//!   unit): the agent sends SRT to `<udp-bind>`; each datagram goes as a
//!   2-byte big-endian length + payload over the TCP connection to the
//!   guestfwd address, and framed replies come back to the agent's address.
//!   Reconnects (once a second) if the connection drops.
//! * `vm_tunnel guest-dns <udp-bind> <tcp-connect>`: the same for DNS, where
//!   each query comes from its own port (systemd-resolved): a reply goes to
//!   the address its query came from, matched by the DNS message id.
//! * `vm_tunnel stdio-udp <udp-target>` is the host side, spawned by QEMU per
//!   guest connection (`guestfwd=...-cmd:`): frames on stdin go to the SRT
//!   listener as datagrams, its replies go back framed on stdout.
//! * `vm_tunnel stdio-tcp <tcp-target>` pipes stdin/stdout to a TCP server
//!   (mosquitto, the update HTTP server): one process per guest connection,
//!   so reconnects work (a plain `tcp:` chardev is one connection for life).
//!
//! Exits when its stdin closes, i.e. when QEMU (killed by PID) goes away.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("guest"), Some(bind), Some(tcp)) => guest(bind, tcp, false),
        (Some("guest-dns"), Some(bind), Some(tcp)) => guest(bind, tcp, true),
        (Some("stdio-udp"), Some(target), None) => stdio_udp(target),
        (Some("stdio-tcp"), Some(target), None) => stdio_tcp(target),
        _ => Err(std::io::Error::other(
            "usage: vm_tunnel guest|guest-dns <udp-bind> <tcp-connect> | stdio-udp <udp-target> | stdio-tcp <tcp-target>",
        )),
    };
    if let Err(e) = result {
        eprintln!("vm_tunnel: {e}");
        std::process::exit(1);
    }
}

/// Unbuffered stdout: `std::io::Stdout` is line-buffered, which would hold
/// binary MQTT packets back until a 0x0a byte happens to pass.
fn raw_stdout() -> std::io::Result<std::fs::File> {
    Ok(std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?))
}

fn read_frame(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let n = usize::from(u16::from_be_bytes(len));
    let frame = buf.get_mut(..n).ok_or_else(|| std::io::Error::other("frame too large"))?;
    r.read_exact(frame)?;
    Ok(n)
}

fn write_frame(w: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(data.len()).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    w.write_all(&out)?;
    w.flush()
}

/// Where replies go: the last sender, or with `by_dns_id` the sender of the
/// query with the reply's DNS id.
#[derive(Default)]
struct Peers {
    last: Option<SocketAddr>,
    by_id: std::collections::HashMap<u16, SocketAddr>,
}

fn dns_id(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

fn guest(bind: &str, tcp: &str, by_dns_id: bool) -> std::io::Result<()> {
    let udp = UdpSocket::bind(bind)?;
    let peer: Arc<Mutex<Peers>> = Arc::new(Mutex::new(Peers::default()));
    loop {
        let stream = match TcpStream::connect(tcp) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("vm_tunnel: connect {tcp}: {e}; retrying");
                // Retry backoff for a connection that does not exist yet.
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        stream.set_nodelay(true)?;
        let mut reader = stream.try_clone()?;
        let (udp_back, peer_back) = (udp.try_clone()?, peer.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = read_frame(&mut reader, &mut buf) {
                let data = buf.get(..n).unwrap_or_default();
                let to = {
                    let mut p = peer_back.lock().unwrap_or_else(|p| p.into_inner());
                    if by_dns_id {
                        dns_id(data).and_then(|id| p.by_id.remove(&id))
                    } else {
                        p.last
                    }
                };
                if let (Some(to), Some(data)) = (to, Some(data)) {
                    let _ = udp_back.send_to(data, to);
                }
            }
        });
        let mut writer = stream;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = udp.recv_from(&mut buf)?;
            {
                let mut p = peer.lock().unwrap_or_else(|p| p.into_inner());
                p.last = Some(from);
                if let Some(id) = dns_id(buf.get(..n).unwrap_or_default()).filter(|_| by_dns_id) {
                    // Unanswered queries must not pile up for ever.
                    if p.by_id.len() > 4096 {
                        p.by_id.clear();
                    }
                    p.by_id.insert(id, from);
                }
            }
            if write_frame(&mut writer, buf.get(..n).unwrap_or_default()).is_err() {
                eprintln!("vm_tunnel: connection lost; reconnecting");
                break;
            }
        }
    }
}

fn stdio_udp(target: &str) -> std::io::Result<()> {
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.connect(target)?;
    let back = udp.try_clone()?;
    let mut out = raw_stdout()?;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        // A refused datagram (listener not up yet) is not the end.
        loop {
            match back.recv(&mut buf) {
                Ok(n) => {
                    if write_frame(&mut out, buf.get(..n).unwrap_or_default()).is_err() {
                        std::process::exit(0);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(_) => std::process::exit(0),
            }
        }
    });
    let mut input = std::io::stdin().lock();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = read_frame(&mut input, &mut buf) {
        let _ = udp.send(buf.get(..n).unwrap_or_default());
    }
    Ok(())
}

fn stdio_tcp(target: &str) -> std::io::Result<()> {
    let stream = TcpStream::connect(target)?;
    let mut back = stream.try_clone()?;
    let mut out = raw_stdout()?;
    let replies = std::thread::spawn(move || {
        let _ = std::io::copy(&mut back, &mut out);
        // The server closed: the guest's side ends here even if it still
        // has something to say.
        std::process::exit(0);
    });
    let mut to = stream;
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
    // The guest stopped sending (half-close), but the server's reply may
    // still be on its way: returning now would cut it off.
    let _ = replies.join();
    Ok(())
}
