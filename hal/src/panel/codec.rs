//! Sans-IO encoding, parsing and framing of the front-panel protocol (see
//! the table in the [module docs](super)).

use super::{Led, LedColor, LedMode, LedState, PanelError, Press, Tally};

/// Longest line on the wire, including the terminating `\n`.
pub const MAX_LINE: usize = 64;

/// Host → board commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCommand {
    Hello { seq: u16 },
    Led { seq: u16, led: Led, state: LedState },
    Tally { seq: u16, tally: Tally },
    Ping { seq: u16 },
}

impl HostCommand {
    pub fn seq(&self) -> u16 {
        match self {
            HostCommand::Hello { seq } | HostCommand::Led { seq, .. } | HostCommand::Tally { seq, .. } | HostCommand::Ping { seq } => {
                *seq
            }
        }
    }
}

/// Board → host messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardMessage {
    Ok { seq: u16 },
    Err { seq: u16, reason: String },
    Button { name: String, press: Press },
    Temp { millicelsius: i32 },
    Fan { rpm: u32 },
    Psu { millivolts: u32, milliamps: u32 },
    Hello { firmware: String },
}

/// The wire line for a command, `\n` included. Always shorter than
/// [`MAX_LINE`]: the longest is `LED 65535 network blink amber\n`.
pub fn encode(cmd: &HostCommand) -> String {
    match cmd {
        HostCommand::Hello { seq } => format!("HELLO {seq}\n"),
        HostCommand::Ping { seq } => format!("PING {seq}\n"),
        HostCommand::Tally { seq, tally } => format!("TALLY {seq} {tally}\n"),
        HostCommand::Led { seq, led, state } => match state.color {
            Some(c) => format!("LED {seq} {led} {} {c}\n", state.mode),
            None => format!("LED {seq} {led} {}\n", state.mode),
        },
    }
}

/// The wire line for a board message (used by [`super::SimBoard`]).
/// Free-text fields are cut to keep the line within [`MAX_LINE`].
pub fn encode_board(msg: &BoardMessage) -> String {
    let line = match msg {
        BoardMessage::Ok { seq } => format!("OK {seq}"),
        BoardMessage::Err { seq, reason } => format!("ERR {seq} {reason}"),
        BoardMessage::Button { name, press } => format!("BTN {name} {press}"),
        BoardMessage::Temp { millicelsius } => format!("TEMP {millicelsius}"),
        BoardMessage::Fan { rpm } => format!("FAN {rpm}"),
        BoardMessage::Psu { millivolts, milliamps } => format!("PSU {millivolts} {milliamps}"),
        BoardMessage::Hello { firmware } => format!("HELLO {firmware}"),
    };
    let mut line: String = line.chars().filter(|c| is_printable(*c)).take(MAX_LINE - 1).collect();
    line.push('\n');
    line
}

/// Parses one line from the board (with or without its `\n`).
/// Total: any input gives `Ok` or `Err`, never a panic.
pub fn parse_board_line(line: &str) -> Result<BoardMessage, PanelError> {
    let mut f = Fields::new(line)?;
    let verb = f.word("message")?;
    let msg = match verb {
        "OK" => BoardMessage::Ok { seq: f.num("seq")? },
        "ERR" => {
            let seq = f.num("seq")?;
            let reason = f.rest();
            if reason.is_empty() {
                return Err(PanelError::Missing("reason"));
            }
            return Ok(BoardMessage::Err { seq, reason: reason.to_owned() });
        }
        "BTN" => BoardMessage::Button { name: f.name()?, press: f.enumerated("press", Press::from_wire)? },
        "TEMP" => BoardMessage::Temp { millicelsius: f.num("millideg")? },
        "FAN" => BoardMessage::Fan { rpm: f.num("rpm")? },
        "PSU" => BoardMessage::Psu { millivolts: f.num("millivolts")?, milliamps: f.num("milliamps")? },
        "HELLO" => {
            let firmware = f.word("fw-version")?;
            if firmware.len() > 32 {
                return Err(PanelError::Bad { field: "fw-version", value: firmware.to_owned() });
            }
            BoardMessage::Hello { firmware: firmware.to_owned() }
        }
        other => return Err(PanelError::UnknownVerb(other.to_owned())),
    };
    f.end()?;
    Ok(msg)
}

/// Parses one line from the host (what the board, or [`super::SimBoard`],
/// does). Total, like [`parse_board_line`].
pub fn parse_host_line(line: &str) -> Result<HostCommand, PanelError> {
    let mut f = Fields::new(line)?;
    let verb = f.word("command")?;
    let seq = f.num("seq")?;
    let cmd = match verb {
        "HELLO" => HostCommand::Hello { seq },
        "PING" => HostCommand::Ping { seq },
        "TALLY" => HostCommand::Tally { seq, tally: f.enumerated("tally", Tally::from_wire)? },
        "LED" => {
            let led = f.enumerated("led", Led::from_wire)?;
            let mode = f.enumerated("mode", LedMode::from_wire)?;
            let color = match f.peek() {
                Some(_) => Some(f.enumerated("colour", LedColor::from_wire)?),
                None => None,
            };
            HostCommand::Led { seq, led, state: LedState { mode, color } }
        }
        other => return Err(PanelError::UnknownVerb(other.to_owned())),
    };
    f.end()?;
    Ok(cmd)
}

/// The `<seq>` of a host line, if it has a parseable one: lets the board
/// answer `ERR <seq>` to a command it cannot parse.
pub fn host_line_seq(line: &str) -> Option<u16> {
    let mut f = Fields::new(line).ok()?;
    f.word("command").ok()?;
    f.num("seq").ok()
}

fn is_printable(c: char) -> bool {
    matches!(c, ' '..='~')
}

/// A validated line split into space-separated words.
struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn new(line: &'a str) -> Result<Self, PanelError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        // The limit counts the '\n', present or not.
        if line.len() >= MAX_LINE {
            return Err(PanelError::TooLong);
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.chars().all(is_printable) {
            return Err(PanelError::NotPrintable);
        }
        if line.trim().is_empty() {
            return Err(PanelError::Empty);
        }
        Ok(Fields { rest: line })
    }

    fn peek(&self) -> Option<&'a str> {
        self.rest.split(' ').find(|w| !w.is_empty())
    }

    fn word(&mut self, what: &'static str) -> Result<&'a str, PanelError> {
        let trimmed = self.rest.trim_start_matches(' ');
        let (word, rest) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        if word.is_empty() {
            return Err(PanelError::Missing(what));
        }
        self.rest = rest;
        Ok(word)
    }

    fn num<T: std::str::FromStr>(&mut self, what: &'static str) -> Result<T, PanelError> {
        let w = self.word(what)?;
        // FromStr accepts a leading '+'; the protocol does not.
        let digits = w.strip_prefix('-').unwrap_or(w);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PanelError::Bad { field: what, value: w.to_owned() });
        }
        w.parse().map_err(|_| PanelError::Bad { field: what, value: w.to_owned() })
    }

    fn enumerated<T>(&mut self, what: &'static str, from: fn(&str) -> Option<T>) -> Result<T, PanelError> {
        let w = self.word(what)?;
        from(w).ok_or_else(|| PanelError::Bad { field: what, value: w.to_owned() })
    }

    fn name(&mut self) -> Result<String, PanelError> {
        let w = self.word("name")?;
        let ok =
            (1..=16).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(w.to_owned())
        } else {
            Err(PanelError::Bad { field: "name", value: w.to_owned() })
        }
    }

    fn rest(&mut self) -> &'a str {
        std::mem::take(&mut self.rest).trim()
    }

    fn end(&self) -> Result<(), PanelError> {
        match self.rest.trim() {
            "" => Ok(()),
            extra => Err(PanelError::Trailing(extra.to_owned())),
        }
    }
}

/// Splits a byte stream into lines. Lines longer than [`MAX_LINE`] are
/// reported once as [`PanelError::TooLong`] and skipped up to the next
/// `\n`, so one burst of noise costs one line, not the stream. The buffer
/// never holds more than [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    discarding: bool,
}

impl LineBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds received bytes; returns the complete lines (without `\n`).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<String, PanelError>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                } else {
                    let line = std::mem::take(&mut self.buf);
                    out.push(String::from_utf8(line).map_err(|_| PanelError::NotPrintable));
                }
            } else if !self.discarding {
                // The limit counts the '\n' too.
                if self.buf.len() + 1 >= MAX_LINE {
                    self.buf.clear();
                    self.discarding = true;
                    out.push(Err(PanelError::TooLong));
                } else {
                    self.buf.push(b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_host_command() {
        let led = HostCommand::Led { seq: 7, led: Led::Primary, state: LedState::new(LedMode::Blink, Some(LedColor::Amber)) };
        assert_eq!(encode(&led), "LED 7 primary blink amber\n");
        let plain = HostCommand::Led { seq: 8, led: Led::Power, state: LedState::new(LedMode::On, None) };
        assert_eq!(encode(&plain), "LED 8 power on\n");
        assert_eq!(encode(&HostCommand::Tally { seq: 9, tally: Tally::Red }), "TALLY 9 red\n");
        assert_eq!(encode(&HostCommand::Ping { seq: 65535 }), "PING 65535\n");
        assert_eq!(encode(&HostCommand::Hello { seq: 0 }), "HELLO 0\n");
    }

    #[test]
    fn parses_every_board_message() {
        let cases = [
            ("OK 12\n", BoardMessage::Ok { seq: 12 }),
            ("ERR 3 no blue on power\r\n", BoardMessage::Err { seq: 3, reason: "no blue on power".into() }),
            ("BTN front long", BoardMessage::Button { name: "front".into(), press: Press::Long }),
            ("TEMP -5250", BoardMessage::Temp { millicelsius: -5250 }),
            ("FAN 3200", BoardMessage::Fan { rpm: 3200 }),
            ("PSU 12040 850", BoardMessage::Psu { millivolts: 12040, milliamps: 850 }),
            ("HELLO panel-1.4.2", BoardMessage::Hello { firmware: "panel-1.4.2".into() }),
        ];
        for (line, want) in cases {
            assert_eq!(parse_board_line(line).unwrap(), want, "{line:?}");
            if !line.contains('\r') {
                assert_eq!(encode_board(&want).trim_end(), line.trim_end(), "round trip {line:?}");
            }
        }
    }

    #[test]
    fn rejects_malformed_board_lines() {
        let bad = [
            ("", "empty"),
            ("OK", "missing"),
            ("OK 70000", "out of range"),
            ("OK +5", "plus sign"),
            ("OK 5 6", "trailing"),
            ("ERR 5", "no reason"),
            ("BTN Front long", "upper case name"),
            ("BTN front medium", "unknown press"),
            ("FAN -1", "negative rpm"),
            ("ok 1", "lower-case verb"),
            ("OK 1\u{7f}", "control char"),
            ("OK é", "non-ASCII"),
        ];
        for (line, why) in bad {
            assert!(parse_board_line(line).is_err(), "{why}: {line:?}");
        }
        assert!(matches!(parse_board_line(&"X".repeat(65)), Err(PanelError::TooLong)));
    }

    #[test]
    fn host_lines_round_trip_and_unknown_seq_is_recoverable() {
        let cmd = HostCommand::Led { seq: 1, led: Led::Backup, state: LedState::new(LedMode::Fast, Some(LedColor::Red)) };
        assert_eq!(parse_host_line(&encode(&cmd)).unwrap(), cmd);
        assert!(parse_host_line("LED 4 power purple").is_err());
        assert_eq!(host_line_seq("LED 4 power purple"), Some(4));
        assert_eq!(host_line_seq("garbage"), None);
    }

    #[test]
    fn line_buffer_splits_and_resyncs_after_overlong_lines() {
        let mut lb = LineBuffer::new();
        assert!(lb.push(b"OK 1\nOK").len() == 1);
        let got = lb.push(b" 2\n");
        assert_eq!(got.into_iter().map(|r| r.unwrap()).collect::<Vec<_>>(), ["OK 2"]);
        let mut noise = vec![b'x'; 200];
        noise.extend_from_slice(b"\nFAN 1\n");
        let got = lb.push(&noise);
        assert!(matches!(got[0], Err(PanelError::TooLong)));
        assert_eq!(got[1].as_deref().ok(), Some("FAN 1"));
        assert_eq!(got.len(), 2);
        // Exactly 63 bytes + '\n' is allowed.
        let max = format!("ERR 1 {}\n", "r".repeat(MAX_LINE - 7));
        assert_eq!(max.len(), MAX_LINE);
        let got = lb.push(max.as_bytes());
        assert!(parse_board_line(got[0].as_deref().unwrap()).is_ok());
    }
}
