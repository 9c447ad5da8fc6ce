//! A synthetic transport stream and constant-rate pacing.
//!
//! The packets are valid at the TS layer (sync byte 0x47, one PID, payload
//! only, continuity counter incrementing mod 16) with pseudo-random payload,
//! so encryption and any entropy-sensitive path see realistic bytes. There is
//! no PAT/PMT: the receivers only count bytes.

use std::time::{Duration, Instant};

/// One TS packet.
pub const TS_PACKET: usize = 188;
/// Seven TS packets: one SRT message or RTP payload.
pub const CHUNK: usize = 7 * TS_PACKET;

/// Generator of 1316-byte chunks.
#[derive(Debug, Clone)]
pub struct TsGen {
    pid: u16,
    cc: u8,
    rng: u64,
}

impl TsGen {
    pub fn new(pid: u16, seed: u64) -> TsGen {
        TsGen { pid: pid & 0x1FFF, cc: 0, rng: seed | 1 }
    }

    /// xorshift64*: cheap, and random enough to defeat any compression.
    fn next_u64(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Writes the next seven packets into `out`.
    pub fn fill(&mut self, out: &mut [u8; CHUNK]) {
        let [pid_hi, pid_lo] = self.pid.to_be_bytes();
        for pkt in out.chunks_exact_mut(TS_PACKET) {
            pkt[0] = 0x47;
            pkt[1] = pid_hi; // TEI 0, PUSI 0, priority 0
            pkt[2] = pid_lo;
            pkt[3] = 0x10 | self.cc; // not scrambled, payload only
            self.cc = (self.cc + 1) & 0x0F;
            for w in pkt[4..].chunks_exact_mut(8) {
                w.copy_from_slice(&self.next_u64().to_le_bytes());
            }
        }
    }
}

/// Sends item `i` at `start + i × bytes × 8 / rate`: a constant rate that
/// never drifts, whatever the oversleeps. With a burst period, the items due
/// within each period all leave at its start (like a muxer that emits a
/// video frame's packets at once).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    nanos_per_item: f64,
    burst_nanos: f64,
}

impl Schedule {
    pub fn new(rate_bps: f64, item_bytes: usize) -> Schedule {
        Schedule { start: Instant::now(), nanos_per_item: item_bytes as f64 * 8.0 * 1e9 / rate_bps, burst_nanos: 0.0 }
    }

    /// Groups items into bursts every `period` (zero: no bursts).
    pub fn with_burst(mut self, period: Duration) -> Schedule {
        self.burst_nanos = period.as_nanos() as f64;
        self
    }

    pub fn due(&self, i: u64) -> Instant {
        let mut t = i as f64 * self.nanos_per_item;
        if self.burst_nanos > 0.0 {
            t = (t / self.burst_nanos).floor() * self.burst_nanos;
        }
        self.start + Duration::from_secs_f64(t / 1e9)
    }

    /// Sleeps until item `i` is due.
    pub fn wait(&self, i: u64) {
        let due = self.due(i);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// How many chunks `seconds` of `rate_bps` hold.
pub fn chunks_for(rate_bps: f64, seconds: f64) -> u64 {
    round_u64(rate_bps * seconds / (CHUNK as f64 * 8.0))
}

/// Rounds a non-negative figure to an integer (0 for NaN or negatives,
/// saturating above `u64::MAX`).
pub fn round_u64(x: f64) -> u64 {
    // `as` from f64 saturates and maps NaN to 0: the intended clamping.
    #[allow(clippy::cast_possible_truncation)]
    let n = x.round().max(0.0) as u64;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_valid_ts_with_running_cc() {
        let mut g = TsGen::new(0x100, 7);
        let mut a = [0u8; CHUNK];
        let mut b = [0u8; CHUNK];
        g.fill(&mut a);
        g.fill(&mut b);
        let ccs: Vec<u8> = a.chunks(188).chain(b.chunks(188)).map(|p| p[3] & 0x0F).collect();
        assert_eq!(ccs, (0..14).map(|i| i % 16).collect::<Vec<u8>>());
        assert!(a.chunks(188).all(|p| p[0] == 0x47 && p[1] == 0x01 && p[2] == 0x00));
        assert_ne!(a[4..188], b[4..188]);
    }

    #[test]
    fn bursts_group_items() {
        // 1316 B at 10.528 Mbit/s = 1 ms per chunk; bursts every 5 ms.
        let s = Schedule::new(10.528e6, CHUNK).with_burst(Duration::from_millis(5));
        let off = |i| s.due(i) - s.due(0);
        assert_eq!(off(4), Duration::ZERO);
        assert_eq!(off(5), Duration::from_millis(5));
        assert_eq!(off(9), Duration::from_millis(5));
    }

    #[test]
    fn chunk_count() {
        // 20 Mbit/s for 20 s = 50 MB = 37,994 chunks.
        assert_eq!(chunks_for(20e6, 20.0), 37_994);
    }
}
