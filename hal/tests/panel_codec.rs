//! Property tests: the front-panel codec is total on garbage and
//! round-trips every valid message.

#![cfg(test)]

use hal::panel::codec::{encode_board, parse_host_line};
use hal::panel::{
    encode, parse_board_line, BoardMessage, HostCommand, Led, LedColor, LedMode, LedState, LineBuffer, Press, Tally, MAX_LINE,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn host_command() -> impl Strategy<Value = HostCommand> {
    let led = (any::<u16>(), pick(Led::ALL), pick(LedMode::ALL), proptest::option::of(pick(LedColor::ALL)))
        .prop_map(|(seq, led, mode, color)| HostCommand::Led { seq, led, state: LedState { mode, color } });
    prop_oneof![
        led,
        (any::<u16>(), pick(Tally::ALL)).prop_map(|(seq, tally)| HostCommand::Tally { seq, tally }),
        any::<u16>().prop_map(|seq| HostCommand::Ping { seq }),
        any::<u16>().prop_map(|seq| HostCommand::Hello { seq }),
    ]
}

fn board_message() -> impl Strategy<Value = BoardMessage> {
    prop_oneof![
        any::<u16>().prop_map(|seq| BoardMessage::Ok { seq }),
        (any::<u16>(), "[ -~]{0,40}[!-~]").prop_map(|(seq, reason)| BoardMessage::Err { seq, reason: reason.trim().to_owned() }),
        ("[a-z0-9_-]{1,16}", pick(Press::ALL)).prop_map(|(name, press)| BoardMessage::Button { name, press }),
        any::<i32>().prop_map(|millicelsius| BoardMessage::Temp { millicelsius }),
        any::<u32>().prop_map(|rpm| BoardMessage::Fan { rpm }),
        (any::<u32>(), any::<u32>()).prop_map(|(millivolts, milliamps)| BoardMessage::Psu { millivolts, milliamps }),
        "[!-~]{1,32}".prop_map(|firmware| BoardMessage::Hello { firmware }),
    ]
}

/// Lines that look almost like protocol lines: the interesting garbage.
fn near_miss() -> impl Strategy<Value = String> {
    "(OK|ERR|BTN|TEMP|FAN|PSU|HELLO|LED|ok|X)( {1,2}(-?[0-9]{1,12}|[a-z]{1,8}|[+-]|[\\x00-\\x7f]{1,3})){0,5}\r?\n?"
}

proptest! {
    #[test]
    fn parse_board_line_never_panics(s in ".{0,200}") {
        let _ = parse_board_line(&s);
        let _ = parse_host_line(&s);
    }

    #[test]
    fn near_misses_never_panic_and_errors_are_short(s in near_miss()) {
        if let Err(e) = parse_board_line(&s) {
            prop_assert!(e.to_string().len() < 200);
        }
        let _ = parse_host_line(&s);
    }

    #[test]
    fn host_commands_round_trip(cmd in host_command()) {
        let line = encode(&cmd);
        prop_assert!(line.len() <= MAX_LINE && line.ends_with('\n'));
        prop_assert_eq!(parse_host_line(&line).ok(), Some(cmd));
    }

    #[test]
    fn board_messages_round_trip(msg in board_message()) {
        let line = encode_board(&msg);
        prop_assert!(line.len() <= MAX_LINE, "{:?}", line);
        prop_assert_eq!(parse_board_line(&line).ok(), Some(msg));
    }

    #[test]
    fn line_buffer_is_total_and_bounded(chunks in vec(vec(any::<u8>(), 0..100), 0..20)) {
        let mut lb = LineBuffer::new();
        for chunk in &chunks {
            for line in lb.push(chunk).into_iter().flatten() {
                prop_assert!(line.len() < MAX_LINE);
                prop_assert!(!line.contains('\n'));
                let _ = parse_board_line(&line);
            }
        }
    }

    #[test]
    fn valid_lines_survive_any_split(msgs in vec(board_message(), 1..10), cut in any::<Index>()) {
        let stream: String = msgs.iter().map(encode_board).collect();
        let at = cut.index(stream.len() + 1);
        let (a, b) = stream.as_bytes().split_at(at);
        let mut lb = LineBuffer::new();
        let mut got: Vec<BoardMessage> = Vec::new();
        for part in [a, b] {
            for line in lb.push(part) {
                got.push(parse_board_line(&line.unwrap()).unwrap());
            }
        }
        prop_assert_eq!(got, msgs);
    }
}
