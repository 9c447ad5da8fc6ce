//! RTP and SMPTE 2022-1 FEC on the receive side (rtp-fec): the RTP header
//! parser, the FEC header parser and the FEC decoder fed a session of media
//! and FEC datagrams (`edge_fuzz::datagrams`; tag bits 0-1: media, column
//! FEC, row FEC, FEC without a port hint), with everything it recovers and
//! reports lost drained after each packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_fec::fec::header::FecPacketView;
use rtp_fec::{FecDecoder, FecKind, RtpHeader};

fuzz_target!(|data: &[u8]| {
    let mut decoder = FecDecoder::new();
    for (tag, packet) in edge_fuzz::datagrams(data) {
        if let Ok(h) = RtpHeader::parse(packet) {
            let _ = h.csrcs();
            let _ = h.payload(packet);
        }
        let _ = FecPacketView::parse(packet);
        let _ = match tag & 3 {
            0 => decoder.push_media(packet).map(drop),
            1 => decoder.push_fec(packet, Some(FecKind::Column)).map(drop),
            2 => decoder.push_fec(packet, Some(FecKind::Row)).map(drop),
            _ => decoder.push_fec(packet, None).map(drop),
        };
        while let Some(r) = decoder.poll_recovered() {
            // A recovered packet is a whole RTP packet again.
            let _ = RtpHeader::parse(&r.bytes);
        }
        let _ = decoder.take_lost();
    }
    decoder.finish();
    while decoder.poll_recovered().is_some() {}
    let _ = (decoder.stats(), decoder.learned_matrix(), decoder.take_lost());
});
