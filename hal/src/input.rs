//! Capture inputs offered by the box.
//!
//! For now only the built-in test pattern: SMPTE colour bars with a burnt-in
//! running clock and a 1 kHz line-up tone. It needs no hardware and is what
//! the demo and the tests stream.

use serde::Serialize;

/// Whether an input currently delivers a usable signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalState {
    /// A picture is present and locked.
    Locked,
    /// Nothing connected, or the source sends nothing.
    NoSignal,
}

/// One capture input as the inventory reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputInfo {
    /// Stable identifier used in configuration and telemetry.
    pub id: String,
    /// Which kind of input this is (`test-pattern`, later `v4l2`, `decklink`).
    pub kind: &'static str,
    /// Human-readable description for `probe` and fleet inventory.
    pub description: String,
    pub signal: SignalState,
}

/// The inputs present on this machine. The test pattern is always there.
pub fn discover() -> Vec<InputInfo> {
    vec![InputInfo {
        id: "test-pattern".to_owned(),
        kind: "test-pattern",
        description: "SMPTE bars, running clock, 1 kHz tone (built in)".to_owned(),
        signal: SignalState::Locked,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pattern_is_always_present_and_locked() {
        let inputs = discover();
        assert_eq!(inputs[0].kind, "test-pattern");
        assert_eq!(inputs[0].signal, SignalState::Locked);
    }
}
