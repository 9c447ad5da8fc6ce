//! UDP helpers for the RTP and RTP-FEC tests: port triples (P, P+2, P+4), a
//! lossy recording relay, a collector, and the bookkeeping that says which
//! dropped packets FEC can rebuild at all.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Extended sequence numbers start here so unwrapping never underflows.
const EXT_START: u64 = 1 << 32;

/// Binds 127.0.0.1 ports P, P+2 and P+4 (media, column FEC, row FEC) and
/// keeps them: nobody else can take them before the test uses them.
pub fn bind_port_triple() -> (u16, [UdpSocket; 3]) {
    for _ in 0..200 {
        let Ok(media) = UdpSocket::bind("127.0.0.1:0") else { continue };
        let Ok(port) = media.local_addr().map(|a| a.port()) else { continue };
        // Even, as RTP media ports conventionally are (RFC 3550 §11).
        if port % 2 != 0 || port > u16::MAX - 4 {
            continue;
        }
        let (Ok(column), Ok(row)) = (UdpSocket::bind(("127.0.0.1", port + 2)), UdpSocket::bind(("127.0.0.1", port + 4))) else {
            continue;
        };
        return (port, [media, column, row]);
    }
    panic!("cannot find free UDP ports P, P+2, P+4 on 127.0.0.1");
}

/// P such that P, P+2 and P+4 were free a moment ago, for a child process
/// that binds them itself.
pub use test_support::ports::free_udp_port_triple as free_port_triple;

/// An `[[outputs]]` entry of kind `rtp`, or `rtp-fec` with an L×D matrix
/// and mode (`"column"` or `"column-and-row"`).
pub fn rtp_output(name: &str, port: u16, fec: Option<(u8, u8, &str)>) -> String {
    match fec {
        None => format!("[[outputs]]\nname = \"{name}\"\nkind = \"rtp\"\naddress = \"127.0.0.1:{port}\"\n\n"),
        Some((l, d, mode)) => format!(
            "[[outputs]]\nname = \"{name}\"\nkind = \"rtp-fec\"\naddress = \"127.0.0.1:{port}\"\nfec_columns = {l}\nfec_rows = {d}\nfec_mode = \"{mode}\"\n\n"
        ),
    }
}

/// Sequence number of an RTP packet (bytes 2..4).
pub fn rtp_seq(packet: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]))
}

/// Unwraps `seq` to the extended number nearest `reference` (RFC 3550 A.1).
pub fn unwrap_seq(seq: u16, reference: u64) -> u64 {
    let low = u16::try_from(reference & 0xffff).unwrap_or_default();
    let delta = i64::from(i16::from_ne_bytes(seq.wrapping_sub(low).to_ne_bytes()));
    reference.saturating_add_signed(delta)
}

/// The fields of a SMPTE 2022-1 FEC packet that say what it protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecInfo {
    pub sn_base: u16,
    pub offset: u8,
    pub na: u8,
    /// D bit: row FEC (else column).
    pub row: bool,
}

impl FecInfo {
    /// Parses the FEC header after the 12-byte RTP header.
    pub fn parse(packet: &[u8]) -> Option<FecInfo> {
        let h = packet.get(12..28)?;
        Some(FecInfo { sn_base: u16::from_be_bytes([h[0], h[1]]), offset: h[13], na: h[14], row: h[12] & 0x40 != 0 })
    }
}

/// What the relay saw.
#[derive(Debug, Default, Clone)]
pub struct RelayRecord {
    /// Every media packet that reached the relay, in arrival order, with
    /// whether it was dropped.
    pub media: Vec<(Vec<u8>, bool)>,
    /// FEC packets forwarded (all of them), with their port offset (2 or 4).
    pub fec: Vec<(u16, Vec<u8>)>,
}

impl RelayRecord {
    /// Media packets by extended sequence number (unwrapped in arrival
    /// order, first packet at 2^32 + its seq); duplicates keep the first copy.
    pub fn media_by_ext(&self) -> BTreeMap<u64, (Vec<u8>, bool)> {
        let mut out = BTreeMap::new();
        let mut highest: Option<u64> = None;
        for (packet, dropped) in &self.media {
            let Some(seq) = rtp_seq(packet) else { continue };
            let ext = highest.map_or(EXT_START + u64::from(seq), |h| unwrap_seq(seq, h));
            highest = Some(highest.map_or(ext, |h| h.max(ext)));
            out.entry(ext).or_insert_with(|| (packet.clone(), *dropped));
        }
        out
    }

    pub fn dropped_count(&self) -> usize {
        self.media.iter().filter(|(_, d)| *d).count()
    }
}

/// Forwards P→T, P+2→T+2, P+4→T+4 on loopback, dropping media packets at
/// random (seeded, so a run is repeatable up to the sender's numbering) and
/// recording every media packet and every FEC packet. FEC is forwarded
/// untouched. The first media packet is never dropped: no receiver can know
/// about a packet before the first one it sees.
#[derive(Debug)]
pub struct LossyRelay {
    /// The media port P the sender sends to.
    pub port: u16,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<RelayRecord>>,
    threads: Vec<JoinHandle<()>>,
}

/// splitmix64: a tiny seeded generator, good enough for loss patterns.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl LossyRelay {
    /// Starts relaying to `target` (its P; FEC to P+2/P+4) with media loss
    /// probability `loss`.
    pub fn start(target: u16, loss: f64, seed: u64) -> Self {
        let (port, sockets) = bind_port_triple();
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(RelayRecord::default()));
        let rng = Arc::new(Mutex::new(SplitMix(seed)));
        let threads = sockets
            .into_iter()
            .zip([0u16, 2, 4])
            .map(|(sock, offset)| {
                let to = SocketAddr::from(([127, 0, 0, 1], target + offset));
                let (stop, record, rng) = (stop.clone(), record.clone(), rng.clone());
                std::thread::spawn(move || relay_loop(&sock, offset, to, loss, &stop, &record, &rng))
            })
            .collect();
        LossyRelay { port, stop, record, threads }
    }

    /// Media packets seen so far (dropped ones included).
    pub fn media_seen(&self) -> usize {
        self.record.lock().map(|r| r.media.len()).unwrap_or(0)
    }

    /// FEC packets forwarded so far.
    pub fn fec_seen(&self) -> usize {
        self.record.lock().map(|r| r.fec.len()).unwrap_or(0)
    }

    /// Stops the threads and returns what was seen.
    pub fn stop(mut self) -> RelayRecord {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        std::mem::take(&mut *self.record.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay_loop(
    sock: &UdpSocket,
    offset: u16,
    to: SocketAddr,
    loss: f64,
    stop: &AtomicBool,
    record: &Mutex<RelayRecord>,
    rng: &Mutex<SplitMix>,
) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let packet = &buf[..n];
        let mut rec = record.lock().unwrap_or_else(|p| p.into_inner());
        if offset == 0 {
            let first = rec.media.is_empty();
            let drop = !first && rng.lock().unwrap_or_else(|p| p.into_inner()).next_f64() < loss;
            rec.media.push((packet.to_vec(), drop));
            if drop {
                continue;
            }
        } else {
            rec.fec.push((offset, packet.to_vec()));
        }
        drop(rec);
        let _ = sock.send_to(packet, to);
    }
}

/// Collects every datagram arriving on a socket until stopped.
#[derive(Debug)]
pub struct UdpCollector {
    stop: Arc<AtomicBool>,
    packets: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
}

impl UdpCollector {
    pub fn start(sock: UdpSocket) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let packets = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (stop.clone(), packets.clone());
        let thread = std::thread::spawn(move || {
            let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    p.lock().unwrap_or_else(|e| e.into_inner()).push(buf[..n].to_vec());
                }
            }
        });
        UdpCollector { stop, packets, thread: Some(thread) }
    }

    pub fn count(&self) -> usize {
        self.packets.lock().map(|p| p.len()).unwrap_or(0)
    }

    pub fn stop(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.packets.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for UdpCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Which dropped packets SMPTE 2022-1 FEC can rebuild, given exactly the
/// FEC packets that were delivered.
#[derive(Debug, Clone, Default)]
pub struct RecoveryPlan {
    /// L and D from the column FEC (offset, NA).
    pub l: u64,
    pub d: u64,
    /// Extended number of the first and last media packet the relay saw.
    pub first: u64,
    pub last: u64,
    /// Dropped by the relay (extended numbers).
    pub dropped: BTreeSet<u64>,
    /// Dropped packets an ideal decoder rebuilds from the delivered FEC
    /// (iterating rows and columns until nothing changes), excluding any
    /// after the last packet forwarded (no decoder can know they exist).
    pub recoverable: BTreeSet<u64>,
    /// Dropped packets in the final, incomplete matrix: their FEC was
    /// never sent.
    pub in_final_matrix: BTreeSet<u64>,
    /// Extended number of the first packet of the final, incomplete matrix.
    pub final_matrix_start: u64,
    /// Matrix starts (from the column FEC SNBase) whose L column FEC
    /// packets did not all arrive.
    pub matrices_missing_columns: BTreeSet<u64>,
}

impl RecoveryPlan {
    /// Dropped but not recoverable.
    pub fn unrecoverable(&self) -> BTreeSet<u64> {
        self.dropped.difference(&self.recoverable).copied().collect()
    }
}

/// Works out the [`RecoveryPlan`] of a relay record.
pub fn recovery_plan(record: &RelayRecord) -> RecoveryPlan {
    let media = record.media_by_ext();
    let (Some(&first), Some(&last)) = (media.keys().next(), media.keys().next_back()) else {
        return RecoveryPlan::default();
    };
    let last_forwarded = media.iter().rev().find(|(_, (_, d))| !d).map_or(first, |(&e, _)| e);
    let dropped: BTreeSet<u64> = media.iter().filter(|(_, (_, d))| *d).map(|(&e, _)| e).collect();
    // Unwrap the FEC's SNBase near the media (a test spans far fewer than
    // 32768 packets).
    let fec: Vec<(FecInfo, u64)> =
        record.fec.iter().filter_map(|(_, p)| FecInfo::parse(p)).map(|f| (f, unwrap_seq(f.sn_base, (first + last) / 2))).collect();
    let column = fec.iter().find(|(f, _)| !f.row);
    let (l, d) = column.map_or((0, 0), |(f, _)| (u64::from(f.offset), u64::from(f.na)));
    let size = (l * d).max(1);
    let base = column.map_or(first, |&(_, b)| b);
    // The matrix holding the last packet sent is incomplete unless that
    // packet ends it.
    let last_start = if last >= base { base + (last - base) / size * size } else { base };
    let final_matrix_start = if last + 1 - last_start == size { last + 1 } else { last_start };
    let in_final_matrix = dropped.range(final_matrix_start..).copied().collect();

    let mut columns_per_matrix: BTreeMap<u64, u64> = BTreeMap::new();
    for (f, b) in &fec {
        if !f.row {
            *columns_per_matrix.entry(b - (b - base) % size.max(1)).or_default() += 1;
        }
    }
    let mut matrices_missing_columns = BTreeSet::new();
    let mut m = base;
    while m + size <= final_matrix_start {
        if m >= first && columns_per_matrix.get(&m).copied().unwrap_or(0) < l {
            matrices_missing_columns.insert(m);
        }
        m += size;
    }

    let mut missing: BTreeSet<u64> = dropped.iter().copied().filter(|&e| e < last_forwarded).collect();
    let mut recoverable = BTreeSet::new();
    loop {
        let mut progress = false;
        for (f, b) in &fec {
            let members = (0..u64::from(f.na)).map(|k| b + k * u64::from(f.offset));
            let gone: Vec<u64> = members.filter(|e| missing.contains(e) || *e < first || *e > last).collect();
            if let [only] = gone[..] {
                if missing.remove(&only) {
                    recoverable.insert(only);
                    progress = true;
                }
            }
        }
        if !progress {
            break;
        }
    }
    RecoveryPlan { l, d, first, last, dropped, recoverable, in_final_matrix, final_matrix_start, matrices_missing_columns }
}
