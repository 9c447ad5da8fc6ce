//! One transport-stream producer, N outputs, each behind its own bounded queue.
//!
//! The producer is the GStreamer streaming thread. It must never wait for a
//! network: a stalled, slow or disconnected output only overflows its own
//! queue, and what does not fit is dropped and counted for that output alone.
//! Chunks are reference-counted (`Bytes`), so N outputs cost N pointer copies,
//! not N buffer copies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;

/// Seven 188-byte TS packets: one SRT or RTP payload (`mpegtsmux alignment=7`).
pub const TS_CHUNK_BYTES: usize = 7 * 188;

/// One 1316-byte piece of the multiplex.
#[derive(Debug, Clone)]
pub struct TsChunk {
    pub data: Bytes,
    /// When the muxer produced it; outputs drop chunks that waited too long.
    pub produced: Instant,
}

/// Counters the producer side keeps per output.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// Chunks handed to the output's queue.
    pub enqueued: AtomicU64,
    /// Chunks dropped because the output's queue was full.
    pub dropped_full: AtomicU64,
}

/// The producer's end of one output queue.
#[derive(Debug, Clone)]
pub struct QueueSender {
    tx: SyncSender<TsChunk>,
    pub counters: Arc<QueueCounters>,
}

/// Creates an output queue holding at most `capacity` chunks.
pub fn queue(capacity: usize) -> (QueueSender, Receiver<TsChunk>, Arc<QueueCounters>) {
    let (tx, rx) = sync_channel(capacity);
    let counters = Arc::new(QueueCounters::default());
    (QueueSender { tx, counters: counters.clone() }, rx, counters)
}

/// The set of output queues the producer writes to. Outputs can be added and
/// removed while the producer runs (a config change touches only its output).
#[derive(Debug, Default)]
pub struct FanOut {
    outputs: RwLock<Vec<(String, QueueSender)>>,
}

impl FanOut {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&self, name: &str, sender: QueueSender) {
        let mut outs = self.outputs.write().unwrap_or_else(|p| p.into_inner());
        outs.retain(|(n, _)| n != name);
        outs.push((name.to_owned(), sender));
    }

    pub fn remove(&self, name: &str) {
        self.outputs.write().unwrap_or_else(|p| p.into_inner()).retain(|(n, _)| n != name);
    }

    /// Offers the chunk to every output without ever blocking.
    pub fn publish(&self, chunk: &TsChunk) {
        let outs = self.outputs.read().unwrap_or_else(|p| p.into_inner());
        for (_, out) in outs.iter() {
            match out.tx.try_send(chunk.clone()) {
                Ok(()) => out.counters.enqueued.fetch_add(1, Ordering::Relaxed),
                Err(TrySendError::Full(_)) => out.counters.dropped_full.fetch_add(1, Ordering::Relaxed),
                // The output has stopped; removing it is the owner's job.
                Err(TrySendError::Disconnected(_)) => 0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> TsChunk {
        TsChunk { data: Bytes::from_static(&[0x47; TS_CHUNK_BYTES]), produced: Instant::now() }
    }

    #[test]
    fn a_full_queue_drops_only_its_own_chunks() {
        let fan = FanOut::new();
        let (stalled, _stalled_rx, stalled_c) = queue(2);
        let (live, live_rx, live_c) = queue(100);
        fan.add("stalled", stalled);
        fan.add("live", live);
        for _ in 0..10 {
            fan.publish(&chunk());
        }
        assert_eq!(stalled_c.enqueued.load(Ordering::Relaxed), 2);
        assert_eq!(stalled_c.dropped_full.load(Ordering::Relaxed), 8);
        assert_eq!(live_c.dropped_full.load(Ordering::Relaxed), 0);
        assert_eq!(live_rx.try_iter().count(), 10);
    }

    #[test]
    fn a_dead_output_does_not_disturb_others() {
        let fan = FanOut::new();
        let (dead, dead_rx, _) = queue(2);
        drop(dead_rx);
        let (live, live_rx, _) = queue(10);
        fan.add("dead", dead);
        fan.add("live", live);
        fan.publish(&chunk());
        assert_eq!(live_rx.try_iter().count(), 1);
        fan.remove("dead");
    }
}
