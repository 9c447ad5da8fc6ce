//! Helpers shared by the fuzz targets.

/// Splits fuzz input into datagrams: each is one tag byte, a big-endian
/// `u16` length, then that many bytes (cut short at the end of the input).
/// The tag picks the port (media or FEC) in the receive targets, so one
/// input is a whole session that libFuzzer can mutate packet by packet.
pub fn datagrams(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (packet, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some((tag, packet))
    })
}
