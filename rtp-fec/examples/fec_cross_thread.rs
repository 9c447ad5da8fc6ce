//! How long one `FecEncoder::push` (10×10, column + row) takes on packets
//! another thread has just made, as the RTP-FEC output sees them, against
//! the same push on a stream of packets (docs/fec.md#kernel-pacing-in-a-vm).
//!
//! ```text
//! cargo run --release -p rtp-fec --example fec_cross_thread -- [burst]
//! ```
//!
//! A producer thread packetises `burst` 1316-byte TS chunks (default 33,
//! one 30 fps frame at 8 Mbit/s), hands them over a channel and sleeps
//! 33 ms, 600 times; the consumer times its pushes with the wall clock. Then
//! the same without the sleeps, so the consumer pushes back to back.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rtp_fec::{FecEncoder, FecMatrix, FecMode, RtpPacketizer};

/// Microseconds per push over 600 batches of `burst` packets.
fn measure(burst: usize, pause: Duration) -> f64 {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Vec<u8>>>();
    let producer = std::thread::spawn(move || {
        let mut packetizer = RtpPacketizer::new(1, 0);
        let mut ts = 0u32;
        for _ in 0..600 {
            let mut batch = Vec::with_capacity(burst);
            for _ in 0..burst {
                ts = ts.wrapping_add(100);
                batch.push(packetizer.packetize(&[0x47u8; 1316], ts).expect("1316 bytes of TS").as_bytes().to_vec());
            }
            if tx.send(batch).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    let mut encoder = FecEncoder::new(FecMatrix::new(10, 10).expect("10×10"), FecMode::ColumnAndRow);
    let (mut spent, mut pushed) = (Duration::ZERO, 0u32);
    for batch in rx {
        let t0 = Instant::now();
        for packet in &batch {
            std::hint::black_box(encoder.push(packet).expect("a valid RTP packet"));
        }
        spent += t0.elapsed();
        pushed += u32::try_from(batch.len()).unwrap_or(u32::MAX);
    }
    producer.join().expect("producer");
    spent.as_secs_f64() * 1e6 / f64::from(pushed.max(1))
}

fn main() {
    let burst: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(33).max(1);
    println!("burst {burst}: {:.3} µs per push with 33 ms between bursts", measure(burst, Duration::from_millis(33)));
    println!("burst {burst}: {:.3} µs per push back to back", measure(burst, Duration::ZERO));
}
