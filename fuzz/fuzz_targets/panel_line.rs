//! The front panel's serial line protocol (hal::panel::codec): the byte
//! stream split into lines (`LineBuffer`), each line parsed as the board's
//! message (what the agent reads) and as a host command (what the board
//! and the simulator read). A board message that parses must survive its
//! own encoding: `encode_board` then `parse_board_line` gives it back.
#![no_main]

use hal::panel::codec::{encode, encode_board, host_line_seq, parse_board_line, parse_host_line, LineBuffer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = LineBuffer::new();
    for line in lines.push(data).into_iter().flatten() {
        if let Ok(msg) = parse_board_line(&line) {
            let wire = encode_board(&msg);
            assert_eq!(parse_board_line(&wire).ok().as_ref(), Some(&msg), "{line:?} -> {wire:?}");
        }
        if let Ok(cmd) = parse_host_line(&line) {
            let wire = encode(&cmd);
            assert_eq!(parse_host_line(&wire).ok().as_ref(), Some(&cmd), "{line:?} -> {wire:?}");
        }
        let _ = host_line_seq(&line);
    }
});
