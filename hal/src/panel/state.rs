//! Reconciling the desired panel state with what the board acknowledged.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{HostCommand, Led, LedState, Tally};

/// What the panel should show, derived by the agent from stream and output
/// state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PanelDesired {
    /// Indexed by [`Led::index`].
    pub leds: [LedState; 4],
    pub tally: Tally,
}

impl PanelDesired {
    pub fn led(&self, led: Led) -> LedState {
        self.leds[led.index()]
    }

    pub fn set_led(&mut self, led: Led, state: LedState) {
        self.leds[led.index()] = state;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Led(Led, LedState),
    Tally(Tally),
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u16,
    value: Value,
    sent: Instant,
}

/// One LED or the tally.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Last value the board confirmed with `OK`.
    acked: Option<Value>,
    in_flight: Option<InFlight>,
    /// A value the board refused with `ERR`: not re-sent until the desired
    /// value changes or the board resets, so a board without a blue LED is
    /// not asked for blue every tick.
    rejected: Option<Value>,
}

/// Four LEDs, then the tally.
const SLOTS: usize = 5;

/// Sans-IO reconciler: call [`Self::poll`] whenever something changed or
/// time passed, send what it returns, feed replies to [`Self::on_ok`] /
/// [`Self::on_err`], and call [`Self::board_reset`] after a reopen or an
/// unsolicited `HELLO`.
///
/// Each LED and the tally has at most one command in flight. A command not
/// acknowledged within the timeout is sent again with a new sequence
/// number; a late `OK` for the old number is ignored, which is safe because
/// the board applies commands in order and the newer one carries the same
/// or a newer value.
#[derive(Debug, Clone)]
pub struct PanelState {
    desired: PanelDesired,
    slots: [Slot; SLOTS],
    next_seq: u16,
    ack_timeout: Duration,
}

impl PanelState {
    pub fn new(ack_timeout: Duration) -> Self {
        PanelState { desired: PanelDesired::default(), slots: [Slot::default(); SLOTS], next_seq: 0, ack_timeout }
    }

    pub fn desired(&self) -> &PanelDesired {
        &self.desired
    }

    pub fn set_desired(&mut self, desired: PanelDesired) {
        self.desired = desired;
    }

    /// A fresh sequence number (for `HELLO` and `PING`, whose replies the
    /// reconciler does not track).
    pub fn next_seq(&mut self) -> u16 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// The board's outputs are unknown (reopened) or blank (it said
    /// `HELLO`): forget everything, so the next poll sends the full state.
    pub fn board_reset(&mut self) {
        self.slots = [Slot::default(); SLOTS];
    }

    /// Commands to send now: every LED/tally whose desired value is neither
    /// acknowledged, nor in flight and younger than the timeout, nor refused.
    pub fn poll(&mut self, now: Instant) -> Vec<HostCommand> {
        let mut out = Vec::new();
        for i in 0..SLOTS {
            let want = self.want(i);
            let slot = self.slots[i];
            let waiting = slot.in_flight.is_some_and(|f| f.value == want && now.saturating_duration_since(f.sent) < self.ack_timeout);
            if slot.acked == Some(want) || slot.rejected == Some(want) || waiting {
                continue;
            }
            let seq = self.next_seq();
            self.slots[i].in_flight = Some(InFlight { seq, value: want, sent: now });
            self.slots[i].rejected = None;
            out.push(match want {
                Value::Led(led, state) => HostCommand::Led { seq, led, state },
                Value::Tally(tally) => HostCommand::Tally { seq, tally },
            });
        }
        out
    }

    /// `OK <seq>`: true if it acknowledged a command in flight.
    pub fn on_ok(&mut self, seq: u16) -> bool {
        let Some(slot) = self.slot_in_flight(seq) else { return false };
        slot.acked = slot.in_flight.take().map(|f| f.value);
        true
    }

    /// `ERR <seq> <reason>`: true if it refused a command in flight.
    pub fn on_err(&mut self, seq: u16) -> bool {
        let Some(slot) = self.slot_in_flight(seq) else { return false };
        slot.rejected = slot.in_flight.take().map(|f| f.value);
        true
    }

    /// Whether the board confirmed the whole desired state.
    pub fn in_sync(&self) -> bool {
        (0..SLOTS).all(|i| self.slots[i].acked == Some(self.want(i)))
    }

    fn slot_in_flight(&mut self, seq: u16) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.in_flight.is_some_and(|f| f.seq == seq))
    }

    fn want(&self, slot: usize) -> Value {
        match Led::ALL.get(slot) {
            Some(&led) => Value::Led(led, self.desired.led(led)),
            // The slot after the LEDs.
            None => Value::Tally(self.desired.tally),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LedColor, LedMode};
    use super::*;

    const ACK: Duration = Duration::from_millis(500);

    fn ack_all(state: &mut PanelState, cmds: &[HostCommand]) {
        for c in cmds {
            assert!(state.on_ok(c.seq()));
        }
    }

    #[test]
    fn sends_full_state_once_then_only_changes() {
        let t0 = Instant::now();
        let mut s = PanelState::new(ACK);
        let first = s.poll(t0);
        assert_eq!(first.len(), 5, "four LEDs and the tally: {first:?}");
        assert!(s.poll(t0).is_empty(), "in flight, not yet timed out");
        ack_all(&mut s, &first);
        assert!(s.in_sync());
        let mut d = *s.desired();
        d.set_led(Led::Primary, LedState::new(LedMode::On, Some(LedColor::Green)));
        s.set_desired(d);
        assert!(!s.in_sync());
        let cmds = s.poll(t0);
        assert!(matches!(cmds.as_slice(), [HostCommand::Led { led: Led::Primary, .. }]), "{cmds:?}");
        ack_all(&mut s, &cmds);
        assert!(s.in_sync() && s.poll(t0).is_empty());
    }

    #[test]
    fn resends_after_timeout_and_ignores_the_stale_ok() {
        let t0 = Instant::now();
        let mut s = PanelState::new(ACK);
        let first = s.poll(t0);
        let again = s.poll(t0 + ACK);
        assert_eq!(again.len(), 5);
        assert!(!s.on_ok(first[0].seq()), "the old sequence number no longer counts");
        ack_all(&mut s, &again);
        assert!(s.in_sync());
    }

    #[test]
    fn board_reset_resends_everything() {
        let t0 = Instant::now();
        let mut s = PanelState::new(ACK);
        let first = s.poll(t0);
        ack_all(&mut s, &first);
        s.board_reset();
        assert!(!s.in_sync());
        assert_eq!(s.poll(t0).len(), 5);
    }

    #[test]
    fn a_refused_value_is_not_repeated_until_it_changes() {
        let t0 = Instant::now();
        let mut s = PanelState::new(ACK);
        let mut d = PanelDesired::default();
        d.set_led(Led::Power, LedState::new(LedMode::On, Some(LedColor::Blue)));
        s.set_desired(d);
        let cmds = s.poll(t0);
        let power = cmds.iter().find(|c| matches!(c, HostCommand::Led { led: Led::Power, .. })).unwrap();
        assert!(s.on_err(power.seq()));
        ack_all(&mut s, &cmds.iter().filter(|c| c.seq() != power.seq()).cloned().collect::<Vec<_>>());
        assert!(s.poll(t0 + ACK * 10).is_empty());
        d.set_led(Led::Power, LedState::new(LedMode::On, Some(LedColor::Green)));
        s.set_desired(d);
        assert_eq!(s.poll(t0).len(), 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = PanelState::new(ACK);
        s.next_seq = u16::MAX;
        assert_eq!((s.next_seq(), s.next_seq()), (u16::MAX, 0));
    }
}
