//! Overheat alarm with hysteresis.

/// A change of the overheat alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverheatTransition {
    /// The temperature reached the high threshold.
    Raise,
    /// The temperature fell back to the high threshold minus the hysteresis.
    Clear,
}

/// Raises at `temp >= high`, clears at `temp <= high - hysteresis`; in
/// between the alarm keeps its state, so a sensor hovering around the
/// threshold does not flap the alarm (and the front-panel LED). Sans-IO:
/// feed it readings, act on the transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverheatMonitor {
    high_mc: i32,
    hysteresis_mc: i32,
    raised: bool,
}

impl OverheatMonitor {
    /// 85 °C: below the throttling point (TjMax ≈ 100 °C on Intel, 95 °C
    /// on AMD), high enough that a box in a warm room does not alarm.
    pub const DEFAULT_HIGH_MC: i32 = 85_000;
    /// 5 °C: more than the noise of a CPU sensor under a steady load.
    pub const DEFAULT_HYSTERESIS_MC: i32 = 5_000;

    /// Thresholds in millidegrees Celsius; a negative hysteresis is taken
    /// as zero.
    pub fn new(high_mc: i32, hysteresis_mc: i32) -> Self {
        OverheatMonitor { high_mc, hysteresis_mc: hysteresis_mc.max(0), raised: false }
    }

    /// Feeds one reading (typically [`super::SensorSnapshot::hottest_millicelsius`]).
    pub fn update(&mut self, temp_mc: i32) -> Option<OverheatTransition> {
        if !self.raised && temp_mc >= self.high_mc {
            self.raised = true;
            Some(OverheatTransition::Raise)
        } else if self.raised && temp_mc <= self.high_mc.saturating_sub(self.hysteresis_mc) {
            self.raised = false;
            Some(OverheatTransition::Clear)
        } else {
            None
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised
    }
}

impl Default for OverheatMonitor {
    fn default() -> Self {
        Self::new(Self::DEFAULT_HIGH_MC, Self::DEFAULT_HYSTERESIS_MC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OverheatTransition::{Clear, Raise};

    #[test]
    fn raises_at_threshold_and_clears_below_hysteresis() {
        let mut m = OverheatMonitor::new(85_000, 5_000);
        let seq = [70_000, 84_999, 85_000, 90_000, 84_000, 80_001, 80_000, 82_000, 85_000];
        let got: Vec<_> = seq.iter().map(|&t| m.update(t)).collect();
        assert_eq!(got, [None, None, Some(Raise), None, None, None, Some(Clear), None, Some(Raise)]);
        assert!(m.is_raised());
    }

    #[test]
    fn hovering_at_the_threshold_does_not_flap() {
        let mut m = OverheatMonitor::default();
        let transitions = [84_900, 85_100, 84_900, 85_100, 84_900].iter().filter_map(|&t| m.update(t)).count();
        assert_eq!(transitions, 1);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut m = OverheatMonitor::new(i32::MIN, i32::MAX);
        assert_eq!(m.update(i32::MIN), Some(Raise));
        assert_eq!(m.update(i32::MIN), Some(Clear), "i32::MIN - MAX saturates to MIN");
        let mut n = OverheatMonitor::new(0, -5);
        assert_eq!((n.update(0), n.update(0)), (Some(Raise), Some(Clear)), "negative hysteresis = 0");
    }
}
