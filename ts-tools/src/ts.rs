//! A small MPEG-TS checker: sync bytes, continuity counters, per-PID counts,
//! PCR presence and PCR continuity (ISO/IEC 13818-1 §2.4.3). Used by the receive tool and by
//! tests that prove an output's stream survived another output's outage.

use std::collections::BTreeMap;

pub const TS_PACKET: usize = 188;
const NULL_PID: u16 = 0x1FFF;

/// Running counts for one PID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidStats {
    pub packets: u64,
    pub cc_errors: u64,
    pub pcrs: u64,
    /// Largest step between consecutive PCRs, in 27 MHz ticks.
    pub max_pcr_step: u64,
    /// PCRs that went backwards (a wrap of the 33-bit base excepted).
    pub pcr_backwards: u64,
    /// Packets with the adaptation field's discontinuity_indicator set.
    pub discontinuities: u64,
    /// PES packets that carry a PTS (one per video frame from the agent's
    /// muxer: x264 in zerolatency has no B-frames, so PTS only rises).
    pub pts_count: u64,
    /// PTS steps that differ from the first step seen: a missing frame (a
    /// double step), a repeated or reordered one. 0 on an unbroken stream
    /// at a constant frame rate.
    pub pts_irregular: u64,
    last_cc: Option<u8>,
    last_pcr: Option<u64>,
    last_pts: Option<u64>,
    pts_step: Option<u64>,
}

/// The PCR period, in 27 MHz ticks: 2^33 × 300.
const PCR_WRAP: u64 = (1 << 33) * 300;
/// The PTS period, in 90 kHz ticks: 2^33.
const PTS_WRAP: u64 = 1 << 33;

/// Feeds on any byte slices (not necessarily packet-aligned).
#[derive(Debug, Default, Clone)]
pub struct TsAnalyzer {
    pub packets: u64,
    pub sync_errors: u64,
    pub pids: BTreeMap<u16, PidStats>,
    carry: Vec<u8>,
}

impl TsAnalyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Continuity errors over all PIDs.
    pub fn cc_errors(&self) -> u64 {
        self.pids.values().map(|p| p.cc_errors).sum()
    }

    /// Largest PCR step on any PID, in milliseconds.
    pub fn max_pcr_step_ms(&self) -> f64 {
        self.pids.values().map(|p| p.max_pcr_step).max().unwrap_or(0) as f64 / 27_000.0
    }

    /// PCRs that went backwards, over all PIDs.
    pub fn pcr_backwards(&self) -> u64 {
        self.pids.values().map(|p| p.pcr_backwards).sum()
    }

    /// PTS steps off the stream's cadence, over all PIDs (see
    /// [`PidStats::pts_irregular`]).
    pub fn pts_irregular(&self) -> u64 {
        self.pids.values().map(|p| p.pts_irregular).sum()
    }

    /// Packets flagged as discontinuities, over all PIDs.
    pub fn discontinuities(&self) -> u64 {
        self.pids.values().map(|p| p.discontinuities).sum()
    }

    pub fn push(&mut self, mut data: &[u8]) {
        if !self.carry.is_empty() {
            let need = TS_PACKET - self.carry.len();
            let take = need.min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < TS_PACKET {
                return;
            }
            let pkt = std::mem::take(&mut self.carry);
            self.packet(&pkt);
        }
        while data.len() >= TS_PACKET {
            if data[0] != 0x47 {
                // Resynchronise on the next sync byte.
                self.sync_errors += 1;
                let skip = data[1..].iter().position(|&b| b == 0x47).map_or(data.len(), |p| p + 1);
                data = &data[skip..];
                continue;
            }
            self.packet(&data[..TS_PACKET]);
            data = &data[TS_PACKET..];
        }
        self.carry.extend_from_slice(data);
    }

    fn packet(&mut self, p: &[u8]) {
        if p[0] != 0x47 {
            self.sync_errors += 1;
            return;
        }
        self.packets += 1;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 0x3;
        let cc = p[3] & 0x0F;
        let has_payload = afc & 0x1 != 0;
        let has_af = afc & 0x2 != 0;
        let af_len = if has_af { usize::from(p[4]) } else { 0 };
        let discontinuity = has_af && af_len > 0 && p[5] & 0x80 != 0;
        let pcr = has_af && af_len > 0 && p[5] & 0x10 != 0;
        let st = self.pids.entry(pid).or_default();
        st.packets += 1;
        if discontinuity {
            st.discontinuities += 1;
        }
        if pcr && af_len >= 7 {
            st.pcrs += 1;
            // §2.4.3.5: 33-bit base, 6 reserved bits, 9-bit extension.
            let base = (u64::from(p[6]) << 25)
                | (u64::from(p[7]) << 17)
                | (u64::from(p[8]) << 9)
                | (u64::from(p[9]) << 1)
                | (u64::from(p[10]) >> 7);
            let ext = (u64::from(p[10] & 1) << 8) | u64::from(p[11]);
            // Modulo the wrap: the extension has 9 bits on the wire but only
            // 0..300 are valid, and a larger one put the value past PCR_WRAP,
            // so the next step's `value + PCR_WRAP - last` underflowed (found
            // by the fuzz target ts, docs/fuzzing.md).
            let value = (base * 300 + ext) % PCR_WRAP;
            if let Some(last) = st.last_pcr {
                let step = (value + PCR_WRAP - last) % PCR_WRAP;
                if step > PCR_WRAP / 2 {
                    st.pcr_backwards += 1;
                } else {
                    st.max_pcr_step = st.max_pcr_step.max(step);
                }
            }
            st.last_pcr = Some(value);
        }
        if pid == NULL_PID {
            return;
        }
        let pusi = p[1] & 0x40 != 0;
        let start = 4 + if has_af { 1 + af_len } else { 0 };
        if let (true, true, Some(pes)) = (pusi, has_payload, p.get(start..)) {
            if let Some(pts) = pes_pts(pes) {
                st.pts_count += 1;
                if let Some(last) = st.last_pts {
                    let step = (pts + PTS_WRAP - last) % PTS_WRAP;
                    match st.pts_step {
                        None => st.pts_step = Some(step),
                        Some(s) if s != step => st.pts_irregular += 1,
                        Some(_) => {}
                    }
                }
                st.last_pts = Some(pts);
            }
        }
        if let (Some(last), false) = (st.last_cc, discontinuity) {
            // §2.4.3.3: the counter increments only with a payload; one
            // duplicate (same counter) is allowed.
            let expected = if has_payload { (last + 1) & 0x0F } else { last };
            if cc != expected && !(has_payload && cc == last) {
                st.cc_errors += 1;
            }
        }
        st.last_cc = Some(cc);
    }
}

/// The PTS of a PES packet header, if it carries one (ISO/IEC 13818-1
/// §2.4.3.6/§2.4.3.7: start code 00 00 01, PTS_DTS_flags in byte 7, the
/// 33-bit PTS in bytes 9–13 with marker bits).
fn pes_pts(pes: &[u8]) -> Option<u64> {
    if pes.len() < 14 || pes[..3] != [0, 0, 1] || pes[7] & 0x80 == 0 {
        return None;
    }
    let b = &pes[9..14];
    Some(
        (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(pid: u16, cc: u8) -> [u8; 188] {
        let mut p = [0xFFu8; 188];
        p[0] = 0x47;
        p[1] = (pid >> 8) as u8 & 0x1F;
        p[2] = (pid & 0xFF) as u8;
        p[3] = 0x10 | (cc & 0x0F);
        p
    }

    #[test]
    fn counts_continuity_errors_across_unaligned_pushes() {
        let mut a = TsAnalyzer::new();
        let mut stream = Vec::new();
        for cc in [0u8, 1, 2, 4, 5] {
            stream.extend_from_slice(&pkt(481, cc));
        }
        for piece in stream.chunks(100) {
            a.push(piece);
        }
        assert_eq!(a.packets, 5);
        assert_eq!(a.cc_errors(), 1);
    }

    #[test]
    fn wraps_and_tolerates_one_duplicate() {
        let mut a = TsAnalyzer::new();
        for cc in [14u8, 15, 15, 0, 1] {
            a.push(&pkt(256, cc));
        }
        assert_eq!(a.cc_errors(), 0);
    }

    #[allow(clippy::cast_possible_truncation)] // byte packing
    fn pcr_pkt(pid: u16, cc: u8, pcr_27mhz: u64) -> [u8; 188] {
        let mut p = pkt(pid, cc);
        p[3] = 0x30 | (cc & 0x0F);
        p[4] = 7;
        p[5] = 0x10;
        let (base, ext) = (pcr_27mhz / 300, pcr_27mhz % 300);
        p[6] = (base >> 25) as u8;
        p[7] = (base >> 17) as u8;
        p[8] = (base >> 9) as u8;
        p[9] = (base >> 1) as u8;
        p[10] = ((base & 1) << 7) as u8 | 0x7E | (ext >> 8) as u8;
        p[11] = ext as u8;
        p
    }

    #[test]
    fn measures_pcr_steps_across_the_wrap_and_counts_backward_jumps() {
        let mut a = TsAnalyzer::new();
        let ms = 27_000u64;
        for (i, pcr) in (0u8..).zip([PCR_WRAP - 20 * ms, PCR_WRAP - 10 * ms, 15 * ms, 55 * ms, 40 * ms]) {
            a.push(&pcr_pkt(481, i, pcr));
        }
        assert_eq!(a.pids[&481].pcrs, 5);
        assert!((a.max_pcr_step_ms() - 40.0).abs() < 1e-9, "{}", a.max_pcr_step_ms());
        assert_eq!(a.pcr_backwards(), 1);
        assert_eq!(a.discontinuities(), 0);
    }

    /// Regression (fuzz target ts): a PCR with every bit set (extension
    /// 511, out of range) followed by PCR 0 panicked with an underflow.
    #[test]
    fn an_out_of_range_pcr_extension_is_counted_not_a_panic() {
        let mut a = TsAnalyzer::new();
        let mut high = pcr_pkt(481, 0, 0);
        high[6..12].fill(0xFF);
        a.push(&high);
        a.push(&pcr_pkt(481, 1, 0));
        assert_eq!(a.pids[&481].pcrs, 2);
        // All ones is 211 ticks past the wrap, so 0 is a step backwards.
        assert_eq!(a.pcr_backwards(), 1);
    }

    #[test]
    fn garbage_resyncs() {
        let mut a = TsAnalyzer::new();
        a.push(&[1, 2, 3]);
        a.push(&pkt(100, 0));
        a.push(&[9; 400]);
        assert!(a.sync_errors > 0);
    }

    /// A PES start packet with `pts` on `pid` (the casts pack bytes).
    #[allow(clippy::cast_possible_truncation)]
    fn pes(pid: u16, cc: u8, pts: u64) -> [u8; 188] {
        let mut p = pkt(pid, cc);
        p[1] |= 0x40;
        let h = [
            0,
            0,
            1,
            0xE0,
            0,
            0,
            0x80,
            0x80,
            5,
            0x21 | ((pts >> 29) & 0x0E) as u8,
            (pts >> 22) as u8,
            0x01 | ((pts >> 14) & 0xFE) as u8,
            (pts >> 7) as u8,
            0x01 | ((pts << 1) & 0xFE) as u8,
        ];
        p[4..4 + h.len()].copy_from_slice(&h);
        p
    }

    #[test]
    fn a_missing_frame_is_an_irregular_pts_step() {
        let mut a = TsAnalyzer::new();
        let base = (1u64 << 33) - 7200; // wraps on the way
        for (i, frame) in [0u64, 1, 2, 3, 5, 6].into_iter().enumerate() {
            a.push(&pes(481, u8::try_from(i).unwrap(), (base + frame * 3600) % (1 << 33)));
        }
        assert_eq!((a.pids[&481].pts_count, a.pts_irregular()), (6, 1), "frame 4 is missing");
        assert_eq!(a.cc_errors(), 0);
    }
}
