//! The decoder's receive window: the most recent media packets, keyed by
//! extended (unwrapped, 64-bit) sequence number.
//!
//! 16-bit sequence numbers are unwrapped relative to the newest packet
//! (RFC 3550 appendix A.1), so a matrix straddling 65535 → 0 is just a run
//! of consecutive extended numbers. Packets live in a ring of `size` slots;
//! a slot belongs to an extended number only while that number is inside
//! `[highest + 1 - size, highest]`, so stale slots never need clearing.

/// RFC 3550 appendix A.1 `MAX_DROPOUT`: a larger forward jump may be a
/// stream restart rather than loss.
const MAX_DROPOUT: i64 = 3000;
/// Extended numbers start here, so "below the window" never underflows.
const EXT_START: u64 = 1 << 32;

/// Where a media sequence number falls relative to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Newer than the newest packet, by at most `MAX_DROPOUT`.
    Ahead(u64),
    /// The newest packet or older, still inside the window.
    Inside(u64),
    /// Too old, or too far ahead.
    Far,
}

#[derive(Debug, Clone)]
struct Slot {
    ext: u64,
    present: bool,
    data: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct MediaWindow {
    size: u64,
    slots: Vec<Slot>,
    /// Extended number of the newest media packet; `None` before the first.
    highest: Option<u64>,
    /// Extended number of the first packet since (re)start: nothing before
    /// it is ever reported missing.
    first: u64,
}

impl MediaWindow {
    pub fn new(size: u16) -> Self {
        let empty = Slot { ext: 0, present: false, data: Vec::new() };
        MediaWindow { size: u64::from(size.max(1)), slots: vec![empty; usize::from(size.max(1))], highest: None, first: EXT_START }
    }

    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Oldest extended number still inside the window.
    pub fn low(&self) -> u64 {
        self.highest.map_or(EXT_START, |h| h + 1 - self.size)
    }

    /// Unwraps `seq` to the extended number nearest the newest packet.
    pub fn extend(&self, seq: u16) -> Option<u64> {
        self.highest.map(|h| h.saturating_add_signed(seq_delta(seq, h)))
    }

    /// Where a media packet with `seq` goes; `None` before the first packet.
    pub fn place(&self, seq: u16) -> Option<Placement> {
        let highest = self.highest?;
        let delta = seq_delta(seq, highest);
        let size = i64::try_from(self.size).unwrap_or(i64::MAX);
        let ext = highest.saturating_add_signed(delta);
        Some(if delta > 0 && delta <= MAX_DROPOUT {
            Placement::Ahead(ext)
        } else if delta <= 0 && -delta < size {
            Placement::Inside(ext)
        } else {
            Placement::Far
        })
    }

    /// Starts a stream at `seq`; returns its extended number. Previous
    /// contents become unreachable (the new numbers lie ≥ 2^16 beyond them).
    pub fn restart(&mut self, seq: u16) -> u64 {
        let ext = match self.highest {
            None => EXT_START + u64::from(seq),
            Some(h) => (((h >> 16) + 2) << 16) | u64::from(seq),
        };
        self.highest = Some(ext);
        self.first = ext;
        ext
    }

    /// Forgets the stream; the next packet starts afresh.
    pub fn clear(&mut self) {
        self.highest = None;
        self.first = EXT_START;
        for slot in &mut self.slots {
            slot.present = false;
        }
    }

    fn slot(&self, ext: u64) -> Option<&Slot> {
        // The remainder is below `size` (<= 32768), so it always fits.
        let index = usize::try_from(ext % self.size).unwrap_or(0);
        self.slots.get(index).filter(|s| s.present && s.ext == ext)
    }

    /// The packet with extended number `ext`, if held.
    pub fn get(&self, ext: u64) -> Option<&[u8]> {
        let inside = self.highest.is_some_and(|h| ext <= h) && ext >= self.low();
        inside.then(|| self.slot(ext)).flatten().map(|s| &s.data[..])
    }

    pub fn contains(&self, ext: u64) -> bool {
        self.get(ext).is_some()
    }

    /// Stores a packet; `ext` must be inside the window (`place`/`restart`).
    pub fn store(&mut self, ext: u64, packet: &[u8]) {
        let index = usize::try_from(ext % self.size).unwrap_or(0);
        if let Some(slot) = self.slots.get_mut(index) {
            slot.ext = ext;
            slot.present = true;
            slot.data.clear(); // keeps the allocation: no per-packet malloc
            slot.data.extend_from_slice(packet);
        }
    }

    /// Makes `new_highest` the newest number and calls `on_missing` for
    /// each number that falls out of the window without a packet.
    pub fn advance(&mut self, new_highest: u64, mut on_missing: impl FnMut(u64)) {
        let old_low = self.low();
        self.highest = Some(new_highest);
        for ext in old_low.max(self.first)..self.low() {
            if self.slot(ext).is_none() {
                on_missing(ext);
            }
        }
    }

    /// Numbers inside the window (since the stream's first) without a packet.
    pub fn missing(&self) -> impl Iterator<Item = u64> + '_ {
        let range = match self.highest {
            Some(h) => self.low().max(self.first)..h + 1,
            None => 0..0,
        };
        range.filter(|&ext| !self.contains(ext))
    }
}

/// Signed distance from the newest extended number to `seq` (RFC 3550
/// A.1: the shorter way round modulo 2^16).
fn seq_delta(seq: u16, highest: u64) -> i64 {
    // Reinterpreting the modular difference as i16 gives the shorter way.
    i64::from(i16::from_ne_bytes(seq.wrapping_sub(low16(highest)).to_ne_bytes()))
}

/// The 16-bit sequence number of an extended one.
pub(crate) fn low16(ext: u64) -> u16 {
    // Masking first makes the conversion lossless.
    u16::try_from(ext & 0xffff).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_across_65535() {
        let mut w = MediaWindow::new(256);
        assert_eq!(w.place(1), None);
        let start = w.restart(65534);
        w.store(start, b"a");
        assert_eq!(w.place(1), Some(Placement::Ahead(start + 3)));
        assert_eq!(w.extend(65530), Some(start - 4));
        assert_eq!(w.place(65534 - 255), Some(Placement::Inside(start - 255)));
        assert_eq!(w.place(65534 - 256), Some(Placement::Far));
        assert_eq!(w.place(65534u16.wrapping_add(3001)), Some(Placement::Far));
        assert_eq!(w.get(start), Some(&b"a"[..]));
    }

    #[test]
    fn reports_numbers_leaving_without_a_packet() {
        let mut w = MediaWindow::new(256);
        let start = w.restart(0);
        w.store(start, b"x");
        w.store(start + 2, b"y");
        let mut gone = Vec::new();
        w.advance(start + 258, |e| gone.push(e - start));
        w.store(start + 258, b"z");
        assert_eq!(gone, [1], "0 and 2 were held; 3.. are still inside");
        assert_eq!(w.get(start + 2), None, "outside the window now");
        assert_eq!(w.missing().count(), 255, "everything but the newest");
        let again = w.restart(10);
        assert!(again > start + 65536 && w.get(again - 256 + 2).is_none());
        w.clear();
        assert_eq!(w.highest(), None);
    }
}
