//! ts-tools: the MPEG-TS analyzer over arbitrary bytes (sync loss, carried
//! partial packets, adaptation fields, PCR/PTS), and the receive core
//! (`RtpReceiver`: FEC decoder, reorder buffer, TS checker) fed a session
//! of datagrams (`edge_fuzz::datagrams`; tag bits 0-1: media, column FEC,
//! row FEC, a clock tick; the tag's upper bits advance the clock in ms).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rtp_fec::FecKind;
use ts_tools::{RtpReceiver, TsAnalyzer};

fuzz_target!(|data: &[u8]| {
    // The analyzer alone, in chunks of 1..=256 bytes picked by the input.
    let mut ts = TsAnalyzer::new();
    let step = usize::from(data.first().copied().unwrap_or(0)) + 1;
    for chunk in data.chunks(step) {
        ts.push(chunk);
    }
    let _ = (ts.cc_errors(), ts.max_pcr_step_ms(), ts.pcr_backwards(), ts.pts_irregular(), ts.discontinuities());

    let mut rx = RtpReceiver::default();
    let mut now = Duration::ZERO;
    for (tag, packet) in edge_fuzz::datagrams(data) {
        now += Duration::from_millis(u64::from(tag >> 2) * 10);
        match tag & 3 {
            0 => rx.push_media(packet, now),
            1 => rx.push_fec(packet, FecKind::Column, now),
            2 => rx.push_fec(packet, FecKind::Row, now),
            _ => rx.tick(now),
        }
    }
    rx.finish(now + Duration::from_secs(1));
    let _ = (rx.stats(), rx.decoder_stats());
});
