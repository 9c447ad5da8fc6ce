//! The bounded outbox: events and final command results wait here, on
//! disk, until the broker acknowledges them (QoS 1 PUBACK). One file per
//! message (`<id>.msg`: topic, newline, payload), written atomically; the
//! oldest messages are dropped (and counted) beyond the bounds.

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::store::write_atomically;

/// One waiting message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The outbox of one device; `dir: None` keeps it in memory only.
#[derive(Debug)]
pub struct Outbox {
    dir: Option<PathBuf>,
    entries: VecDeque<OutboxEntry>,
    max_messages: usize,
    max_bytes: usize,
    bytes: usize,
    next_id: u64,
    /// Messages dropped because the outbox was full.
    pub dropped: u64,
}

impl Outbox {
    /// Opens (and creates) `dir`, loading what an earlier run left.
    pub fn open(dir: impl Into<PathBuf>, max_messages: usize, max_bytes: usize) -> std::io::Result<Outbox> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(&dir)? {
            let path = e?.path();
            let Some(id) =
                path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".msg")).and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = std::fs::read(&path)?;
            let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
                continue;
            };
            let topic = String::from_utf8_lossy(&bytes[..nl]).into_owned();
            found.push(OutboxEntry { id, topic, payload: bytes[nl + 1..].to_vec() });
        }
        found.sort_by_key(|e| e.id);
        let mut o = Outbox::in_memory(max_messages, max_bytes);
        o.dir = Some(dir);
        o.next_id = found.last().map_or(1, |e| e.id + 1);
        o.bytes = found.iter().map(|e| e.payload.len()).sum();
        o.entries = found.into();
        o.enforce_bounds();
        Ok(o)
    }

    /// An outbox that does not survive a restart (tests, simulator).
    pub fn in_memory(max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox { dir: None, entries: VecDeque::new(), max_messages, max_bytes, bytes: 0, next_id: 1, dropped: 0 }
    }

    fn path(&self, id: u64) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{id:020}.msg")))
    }

    /// Stores a message durably and returns its id.
    pub fn push(&mut self, topic: &str, payload: &[u8]) -> std::io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(p) = self.path(id) {
            let mut buf = Vec::with_capacity(topic.len() + 1 + payload.len());
            buf.extend_from_slice(topic.as_bytes());
            buf.push(b'\n');
            buf.extend_from_slice(payload);
            write_atomically(&p, &buf)?;
        }
        self.bytes += payload.len();
        self.entries.push_back(OutboxEntry { id, topic: topic.to_owned(), payload: payload.to_vec() });
        self.enforce_bounds();
        Ok(id)
    }

    fn enforce_bounds(&mut self) {
        while self.entries.len() > self.max_messages || self.bytes > self.max_bytes {
            let Some(e) = self.entries.front().map(|e| e.id) else { break };
            self.remove(e);
            self.dropped += 1;
        }
    }

    /// Forgets a message (acknowledged, or dropped).
    pub fn remove(&mut self, id: u64) {
        if let Some(pos) = self.entries.iter().position(|e| e.id == id) {
            if let Some(e) = self.entries.remove(pos) {
                self.bytes -= e.payload.len();
            }
            if let Some(p) = self.path(id) {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// Waiting messages, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.entries.iter()
    }

    /// Number of waiting messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_drops_oldest_beyond_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 3, 1000).unwrap();
        for i in 0..5 {
            o.push("t/x", format!("{{\"n\":{i}}}").as_bytes()).unwrap();
        }
        assert_eq!((o.len(), o.dropped), (3, 2));
        let first = o.entries().next().unwrap().id;
        o.remove(first);
        let o2 = Outbox::open(dir.path(), 3, 1000).unwrap();
        let payloads: Vec<_> = o2.entries().map(|e| String::from_utf8(e.payload.clone()).unwrap()).collect();
        assert_eq!(payloads, vec!["{\"n\":3}", "{\"n\":4}"]);
        assert_eq!(o2.entries().next().unwrap().topic, "t/x");
    }

    #[test]
    fn byte_bound() {
        let mut o = Outbox::in_memory(100, 10);
        o.push("t", b"123456").unwrap();
        o.push("t", b"123456").unwrap();
        assert_eq!((o.len(), o.dropped), (1, 1));
    }
}
