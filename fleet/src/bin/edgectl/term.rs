//! Device-controlled text on the operator's terminal.
//!
//! Device ids (a topic level), alarm codes and messages, output names, last
//! errors and command results all come from devices, any of which may be
//! compromised or broken. Printed raw, an ESC or CSI sequence (`\x1b[2J`,
//! `\u{9b}2J`), a carriage return or a bidi override can clear the screen,
//! hide lines, fake output or retitle the terminal. Everything a device sent
//! goes through [`text`] (plain output) or [`json`] (JSON output) first.

use std::borrow::Cow;
use std::fmt::Write as _;

/// C0 (all of them, tab and newline too), DEL, C1, and the Unicode bidi
/// controls that reorder what the terminal shows.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `s` with every unsafe character shown as a visible escape: `\x1b`,
/// `\r`, `\u{9b}`. Escaping ESC and CSI neutralises every escape sequence;
/// its remaining bytes (`[2J`) print as plain text.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x80 && unsafe_char(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text safe for a terminal. serde_json escapes C0 inside strings but
/// writes DEL, C1 and bidi controls raw; those can only occur inside string
/// literals, where `\uXXXX` means the same character, so the JSON is
/// unchanged in meaning.
pub fn json(s: String) -> String {
    if !s.chars().any(unsafe_char) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) && c != '\n' {
            // Outside strings serde_json writes only newlines and spaces
            // (pretty printing); every other control is inside a string.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "enc\x1b[2J\rfake\u{9b}31mred\x7f\x07\u{202e}txt";

    #[test]
    fn text_escapes_c0_del_c1_and_esc_sequences_visibly() {
        let shown = text(HOSTILE);
        assert!(!shown.chars().any(unsafe_char), "{shown:?}");
        assert_eq!(shown, "enc\\x1b[2J\\rfake\\u{9b}31mred\\x7f\\x07\\u{202e}txt");
        assert_eq!(text("\n\t"), "\\n\\t");
        assert!(matches!(text("enc-0001 ok é"), Cow::Borrowed(_)), "plain text is untouched");
    }

    #[test]
    fn json_output_keeps_its_meaning_and_has_no_raw_controls() {
        let v = serde_json::json!({"device": HOSTILE, "alarms": [{"message": "\u{9b}2J\x1b]0;pwned\x07"}]});
        for s in [serde_json::to_string(&v).unwrap(), serde_json::to_string_pretty(&v).unwrap()] {
            let safe = json(s);
            let no_newlines = safe.replace('\n', "");
            assert!(!no_newlines.chars().any(unsafe_char), "{safe:?}");
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
            assert_eq!(back, v, "same JSON value");
        }
    }
}
