//! Loopback ports from binding port 0: the kernel picks a free one, the
//! socket is dropped and the number handed out. Inherently racy (another
//! process may take it in between); prefer binding the real socket to port
//! 0 when the code under test allows it.

use std::io;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// Attempts when hunting for a free port triple.
const TRIPLE_ATTEMPTS: usize = 64;

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// If binding an ephemeral loopback port fails (the machine is broken).
#[must_use]
pub fn free_tcp_port() -> u16 {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("cannot bind an ephemeral TCP port on 127.0.0.1: {e}"),
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// If binding an ephemeral loopback port fails (the machine is broken).
#[must_use]
pub fn free_udp_port() -> u16 {
    match UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|s| s.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("cannot bind an ephemeral UDP port on 127.0.0.1: {e}"),
    }
}

/// An even base port `P` such that `P`, `P+2` and `P+4` were all bindable
/// on 127.0.0.1 a moment ago (RTP media + 2022-1 column/row FEC).
///
/// # Panics
/// If no triple is found within a bounded number of attempts.
#[must_use]
pub fn free_udp_port_triple() -> u16 {
    match try_free_udp_port_triple() {
        Ok(p) => p,
        Err(e) => panic!("no free UDP port triple on 127.0.0.1: {e}"),
    }
}

/// [`free_udp_port_triple`], returning the error (for callers that retry
/// or report it themselves).
pub fn try_free_udp_port_triple() -> io::Result<u16> {
    for _ in 0..TRIPLE_ATTEMPTS {
        // Let the kernel pick a random ephemeral port as the candidate, so
        // concurrent tests spread out instead of colliding on a scan.
        let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let base = probe & !1;
        let Some(top) = base.checked_add(4) else {
            continue;
        };
        let held: io::Result<Vec<UdpSocket>> =
            [base, base + 2, top].iter().map(|&p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p))).collect();
        if held.is_ok() {
            return Ok(base);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, format!("no free P, P+2, P+4 after {TRIPLE_ATTEMPTS} attempts")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable() {
        assert!(TcpListener::bind(("127.0.0.1", free_tcp_port())).is_ok());
        assert!(UdpSocket::bind(("127.0.0.1", free_udp_port())).is_ok());
        let base = free_udp_port_triple();
        assert_eq!(base % 2, 0);
    }
}
