//! Batched UDP sends for the RTP outputs: many packets per system call, and
//! pacing by the kernel where the egress interface can do it
//! (`docs/fec.md#batched-kernel-paced-sending`).
//!
//! - **sendmmsg(2)**: one call hands the kernel every packet of a wake-up
//!   (media to P, column FEC to P+2, row FEC to P+4 mixed), each its own
//!   datagram, so a pacing qdisc still sees (and spaces) each packet.
//! - **UDP GSO** (`UDP_SEGMENT`, Linux ≥ 4.18): one `sendmsg` carries a run
//!   of equal-sized datagrams to one destination, segmented below the
//!   qdisc. Only for the userspace pacer: fq paces a GSO super-packet as one
//!   unit (its whole length at the pacing rate, sent at once), which would
//!   turn a paced run back into a line-rate burst.
//! - **SO_MAX_PACING_RATE** (socket(7)): caps the socket's pacing rate; the
//!   fq qdisc (tc-fq(8)) enforces it per flow, releasing packets from a
//!   kernel timer, so the sending thread need not wake per packet. Other
//!   qdiscs ignore the value, hence [`egress_pacing`] checks for fq first.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;

use nix::libc;
use nix::sys::socket::{self, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
use nix::{setsockopt_impl, sockopt_impl};
use serde::Serialize;

// nix has no wrapper for SO_MAX_PACING_RATE; its `sockopt_impl!` defines a
// safe setter. The kernel takes a u32 (bytes per second, ~0 = no cap) or,
// on 64-bit kernels, a u64; u32 covers up to 34 Gbit/s.
sockopt_impl!(
    /// `SO_MAX_PACING_RATE`: the socket's pacing cap in bytes per second.
    MaxPacingRate,
    SetOnly,
    libc::SOL_SOCKET,
    libc::SO_MAX_PACING_RATE,
    u32
);

/// Most datagrams in one sendmmsg call. The kernel caps a call at
/// UIO_MAXIOV (1024); 64 is more than a wake-up normally holds.
pub const MAX_MMSG: usize = 64;
/// Most segments in one GSO send: the kernel's limit is UDP_MAX_SEGMENTS
/// (64 before Linux 5.x raised it to 128) and 64 KiB per call; 32 × 1328 B
/// stays under both.
pub const MAX_GSO_SEGMENTS: usize = 32;

/// Who spaces the packets out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PacingMode {
    /// The fq qdisc on the egress interface, at the socket's
    /// `SO_MAX_PACING_RATE`.
    #[serde(rename = "kernel-fq")]
    KernelFq,
    /// The output's own pacer ([`rtp_fec::Pacer`]), sleeping between
    /// batches (the interface has no fq, e.g. loopback).
    #[serde(rename = "userspace")]
    Userspace,
}

impl PacingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PacingMode::KernelFq => "kernel-fq",
            PacingMode::Userspace => "userspace",
        }
    }
}

impl std::fmt::Display for PacingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The egress interface towards a destination and what paces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Egress {
    /// Interface the route to the destination leaves by (`None`: unknown).
    pub dev: Option<String>,
    /// Its root qdisc kind (`fq`, `mq`, `noqueue`, …).
    pub qdisc: Option<String>,
    pub pacing: PacingMode,
    /// The smallest per-flow packet limit of its fq qdiscs (tc-fq(8)
    /// `flow_limit`), when fq paces it.
    pub fq_flow_limit: Option<u32>,
}

/// Finds the interface the kernel routes `dest` through (from `from`, the
/// bound local address, if any) and whether fq paces it, with iproute2
/// (`ip -j route get`, `tc -j qdisc show`; in the image). Any failure means
/// [`PacingMode::Userspace`]: the userspace pacer is always correct, only
/// dearer.
pub fn egress_pacing(dest: IpAddr, from: Option<IpAddr>) -> Egress {
    let mut route = Command::new("ip");
    route.args(["-j", "route", "get", &dest.to_string()]);
    if let Some(src) = from.filter(|a| !a.is_unspecified()) {
        route.args(["from", &src.to_string()]);
    }
    let dev = run_json(&mut route).and_then(|v| v.get(0)?.get("dev")?.as_str().map(str::to_owned));
    let Some(dev) = dev else {
        return Egress { dev: None, qdisc: None, pacing: PacingMode::Userspace, fq_flow_limit: None };
    };
    let qdiscs = run_json(Command::new("tc").args(["-j", "qdisc", "show", "dev", &dev]));
    let (qdisc, paces) = qdiscs.as_ref().map_or((None, false), qdisc_paces);
    let fq_flow_limit = qdiscs.as_ref().filter(|_| paces).and_then(fq_flow_limit);
    Egress { dev: Some(dev), qdisc, pacing: if paces { PacingMode::KernelFq } else { PacingMode::Userspace }, fq_flow_limit }
}

/// From `tc -j qdisc show dev X`: the smallest `flow_limit` among its fq
/// qdiscs (`None` if none says).
pub fn fq_flow_limit(qdiscs: &serde_json::Value) -> Option<u32> {
    qdiscs
        .as_array()?
        .iter()
        .filter(|q| q.get("kind").and_then(|k| k.as_str()) == Some("fq"))
        .filter_map(|q| q.get("options")?.get("flow_limit")?.as_u64())
        .map(|l| u32::try_from(l).unwrap_or(u32::MAX))
        .min()
}

fn run_json(cmd: &mut Command) -> Option<serde_json::Value> {
    let out = cmd.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// From `tc -j qdisc show dev X`: the root qdisc's kind, and whether every
/// packet of the interface passes an fq: fq at the root, or an `mq` root
/// (multi-queue NICs) whose every child is fq (what `net.core.default_qdisc
/// = fq` gives such a NIC).
pub fn qdisc_paces(qdiscs: &serde_json::Value) -> (Option<String>, bool) {
    let Some(list) = qdiscs.as_array() else { return (None, false) };
    let kind = |q: &serde_json::Value| q.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_owned();
    let Some(root) = list.iter().find(|q| q.get("root").and_then(|r| r.as_bool()) == Some(true)) else {
        return (None, false);
    };
    let root_kind = kind(root);
    let paces = match root_kind.as_str() {
        "fq" => true,
        "mq" => {
            let children: Vec<String> = list.iter().filter(|q| q.get("root").is_none()).map(kind).collect();
            !children.is_empty() && children.iter().all(|k| k == "fq")
        }
        _ => false,
    };
    (Some(root_kind), paces)
}

/// What one [`BatchSocket::send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams refused (counted as send errors).
    pub errors: u64,
    /// System calls made.
    pub calls: u64,
}

/// A UDP socket that sends batches.
#[derive(Debug)]
pub struct BatchSocket {
    sock: UdpSocket,
    headers: MultiHeaders<SockaddrStorage>,
    /// GSO is tried until the kernel refuses it once (EIO: the device lacks
    /// checksum offload; EINVAL: an old kernel), then never again.
    gso_ok: bool,
}

impl BatchSocket {
    pub fn new(sock: UdpSocket) -> Self {
        BatchSocket { sock, headers: MultiHeaders::preallocate(MAX_MMSG, None), gso_ok: true }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Sets `SO_MAX_PACING_RATE` from a rate in bit/s.
    pub fn set_max_pacing_rate(&self, bps: u64) -> io::Result<()> {
        let bytes = u32::try_from(bps / 8).unwrap_or(u32::MAX - 1).max(1);
        socket::setsockopt(&self.sock, MaxPacingRate, &bytes).map_err(io::Error::from)
    }

    /// Sends `packets` (bytes, destination) in order per destination, in as
    /// few system calls as possible. With `gso`, runs of ≥ 2 equal-sized
    /// datagrams to one destination go as one GSO send (the last of a run
    /// may be shorter, as UDP_SEGMENT allows).
    pub fn send(&mut self, packets: &[(&[u8], SocketAddr)], gso: bool) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        if packets.is_empty() {
            return out;
        }
        let mut rest: Vec<(&[u8], SocketAddr)> = Vec::with_capacity(packets.len());
        if gso && self.gso_ok && packets.len() >= 2 {
            // Per destination, in order.
            let mut dests: Vec<SocketAddr> = Vec::new();
            for (_, to) in packets {
                if !dests.contains(to) {
                    dests.push(*to);
                }
            }
            for to in dests {
                let run: Vec<&[u8]> = packets.iter().filter(|p| p.1 == to).map(|p| p.0).collect();
                let mut i = 0;
                while i < run.len() {
                    let seg = run[i].len();
                    let mut j = i + 1;
                    while j < run.len() && j - i < MAX_GSO_SEGMENTS && run[j].len() == seg {
                        j += 1;
                    }
                    // A shorter datagram may close the run.
                    if j < run.len() && j - i < MAX_GSO_SEGMENTS && run[j].len() < seg && !run[j].is_empty() {
                        j += 1;
                    }
                    if j - i >= 2 && self.gso_ok && self.send_gso(&run[i..j], seg, to, &mut out) {
                        i = j;
                        continue;
                    }
                    rest.extend(run[i..j].iter().map(|b| (*b, to)));
                    i = j;
                }
            }
        } else {
            rest.extend_from_slice(packets);
        }
        for part in rest.chunks(MAX_MMSG) {
            self.send_mmsg(part, &mut out);
        }
        out
    }

    /// One GSO send; `false` (nothing sent) if the kernel refuses GSO.
    fn send_gso(&mut self, run: &[&[u8]], seg: usize, to: SocketAddr, out: &mut BatchOutcome) -> bool {
        let Ok(seg16) = u16::try_from(seg) else { return false };
        let iov: Vec<io::IoSlice<'_>> = run.iter().map(|b| io::IoSlice::new(b)).collect();
        let cmsg = [ControlMessage::UdpGsoSegments(&seg16)];
        let addr = SockaddrStorage::from(to);
        out.calls += 1;
        match socket::sendmsg(self.sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&addr)) {
            Ok(_) => {
                out.sent += run.len() as u64;
                true
            }
            Err(nix::errno::Errno::EIO | nix::errno::Errno::EINVAL | nix::errno::Errno::ENOPROTOOPT) => {
                self.gso_ok = false;
                false
            }
            Err(_) => {
                out.errors += run.len() as u64;
                true
            }
        }
    }

    fn send_mmsg(&mut self, part: &[(&[u8], SocketAddr)], out: &mut BatchOutcome) {
        let mut start = 0;
        while start < part.len() {
            let todo = &part[start..];
            let slices: Vec<[io::IoSlice<'_>; 1]> = todo.iter().map(|p| [io::IoSlice::new(p.0)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = todo.iter().map(|p| Some(SockaddrStorage::from(p.1))).collect();
            out.calls += 1;
            let res = socket::sendmmsg(self.sock.as_raw_fd(), &mut self.headers, &slices, &addrs, [], MsgFlags::empty());
            match res {
                Ok(r) => {
                    let n = r.count().max(1).min(todo.len());
                    out.sent += n as u64;
                    start += n;
                }
                // The first datagram of the call was refused: count it and
                // go on with the next (an unreachable port must not stop the
                // others).
                Err(_) => {
                    out.errors += 1;
                    start += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fq_detection_from_tc_json() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(qdisc_paces(&v(r#"[{"kind":"noqueue","handle":"0:","root":true}]"#)), (Some("noqueue".into()), false));
        assert_eq!(qdisc_paces(&v(r#"[{"kind":"fq","handle":"8001:","root":true,"options":{}}]"#)), (Some("fq".into()), true));
        let mq = r#"[{"kind":"mq","handle":"0:","root":true},{"kind":"fq","handle":"0:","parent":":2"},{"kind":"fq","handle":"0:","parent":":1"}]"#;
        assert_eq!(qdisc_paces(&v(mq)), (Some("mq".into()), true));
        let mixed = r#"[{"kind":"mq","handle":"0:","root":true},{"kind":"fq_codel","handle":"0:","parent":":1"}]"#;
        assert_eq!(qdisc_paces(&v(mixed)), (Some("mq".into()), false));
        assert_eq!(qdisc_paces(&v("{}")), (None, false));
        // The flow limit the backlog bound derives from.
        assert_eq!(fq_flow_limit(&v(r#"[{"kind":"fq","root":true,"options":{"limit":10000,"flow_limit":100}}]"#)), Some(100));
        let mq =
            r#"[{"kind":"mq","root":true},{"kind":"fq","options":{"flow_limit":300}},{"kind":"fq","options":{"flow_limit":200}}]"#;
        assert_eq!(fq_flow_limit(&v(mq)), Some(200));
        assert_eq!(fq_flow_limit(&v(r#"[{"kind":"fq","root":true,"options":{}}]"#)), None);
        assert_eq!(fq_flow_limit(&v("{}")), None);
    }

    #[test]
    fn loopback_is_userspace_paced() {
        // Loopback has no qdisc (noqueue) unless someone attached one.
        let e = egress_pacing("127.0.0.1".parse().unwrap(), None);
        if e.qdisc.as_deref() == Some("noqueue") {
            assert_eq!(e.pacing, PacingMode::Userspace);
        }
    }

    /// Mixed sizes and destinations, with and without GSO: every datagram
    /// arrives, unchanged, in order per destination.
    #[test]
    fn batches_arrive_whole_and_in_order() {
        let rx: Vec<UdpSocket> = (0..2).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for r in &rx {
            r.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let to: Vec<SocketAddr> = rx.iter().map(|r| r.local_addr().unwrap()).collect();
        let mut tx = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        for gso in [false, true] {
            let media: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1328]).collect();
            let fec: Vec<Vec<u8>> = (0..5u8).map(|i| vec![100 + i; 1344 - usize::from(i)]).collect();
            let mut pkts: Vec<(&[u8], SocketAddr)> = Vec::new();
            for (i, m) in media.iter().enumerate() {
                pkts.push((m, to[0]));
                if i % 8 == 7 {
                    pkts.push((&fec[i / 8], to[1]));
                }
            }
            let o = tx.send(&pkts, gso);
            assert_eq!((o.sent, o.errors), (45, 0), "gso {gso}");
            // sendmmsg: one call. GSO: media 32 + 8, the FEC sizes pair off
            // (a shorter datagram closes a run) and the odd one goes alone.
            assert!(o.calls <= if gso { 5 } else { 1 }, "gso {gso}: {o:?}");
            let mut buf = [0u8; 2048];
            for m in &media {
                let n = rx[0].recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &m[..]);
            }
            for f in &fec {
                let n = rx[1].recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &f[..]);
            }
        }
        tx.set_max_pacing_rate(20_000_000).unwrap();
    }
}
