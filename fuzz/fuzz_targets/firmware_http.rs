//! The firmware download's HTTP response-head reader (agent::firmware,
//! `read_head` through `fuzz_response_head`): status line, header lines
//! within their limits, Content-Length, Content-Range of a resumed
//! download, Transfer-Encoding. An input that starts with `R` and 8 more
//! bytes is a resume: those bytes are the offset asked for (`Range:
//! bytes=<from>-`, little-endian); otherwise the GET started at 0.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (from, head) = match data {
        [b'R', f @ ..] if f.len() >= 8 => {
            let (n, rest) = f.split_at(8);
            let mut b = [0u8; 8];
            b.copy_from_slice(n);
            (u64::from_le_bytes(b), rest)
        }
        _ => (0, data),
    };
    if let Ok((start, complete)) = agent::firmware::fuzz_response_head(head, from) {
        // A 206 continues where we asked; a 200 starts over.
        assert!(start == from || start == 0, "start {start}, asked {from}");
        let _ = complete;
    }
});
