//! Sans-IO impairment core: decides, per packet, "drop" or "deliver at T".
//!
//! Nothing here touches a socket or reads the clock: the caller passes `now`,
//! so the model can be driven by a fake clock in unit tests and stays
//! deterministic for a given seed. The decision never depends on the packet
//! bytes, so [`Impairer::decide`] takes only the arrival time and the shell
//! keeps ownership of the payload (no copy on the zero-delay path).

use std::time::{Duration, Instant};

/// Extra hold applied to a packet picked for reordering, on top of its normal
/// release time (plus the configured jitter). 5 ms is about ten packets at the
/// ~2000 packets/s of a 20 Mbit/s MPEG-TS stream: the packet lands a few
/// neighbours late, the way a multipath/bonded venue uplink misorders, rather
/// than seconds late (which a receiver would treat as loss anyway).
pub const REORDER_HOLD: Duration = Duration::from_millis(5);

/// Longest delay/jitter the core accepts. Guards `Instant + Duration` against
/// overflow and catches unit mistakes (seconds typed as milliseconds).
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Packet loss model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    /// No loss.
    #[default]
    None,
    /// Independent (Bernoulli) loss with the given probability per packet.
    Random {
        /// Per-packet loss probability in `[0, 1]`.
        probability: f64,
    },
    /// Gilbert–Elliott two-state burst loss. Per packet: lose it with the
    /// current state's loss probability, then make the state transition.
    /// With `loss_in_bad = 1` and `loss_in_good = 0` (see [`Loss::gilbert`])
    /// loss runs are exactly the Bad sojourns: geometric with mean
    /// `1 / p_bad_to_good` packets.
    Burst {
        /// Probability of moving Good → Bad after a packet.
        p_good_to_bad: f64,
        /// Probability of moving Bad → Good after a packet.
        p_bad_to_good: f64,
        /// Loss probability while in the Bad state.
        loss_in_bad: f64,
        /// Loss probability while in the Good state (usually 0).
        loss_in_good: f64,
    },
}

impl Loss {
    /// Classic Gilbert model from the two numbers people actually quote:
    /// long-run loss rate and mean burst length (in packets). Bad always
    /// loses, Good never does, so `r = 1/mean_burst_len` and the stationary
    /// `P(Bad) = p/(p+r) = mean_loss` gives `p = r·mean_loss/(1-mean_loss)`.
    /// Combinations that need `p > 1` (very high loss with very short bursts)
    /// are not representable and get `p = 1`.
    #[must_use]
    pub fn gilbert(mean_loss: f64, mean_burst_len: f64) -> Loss {
        let r = if mean_burst_len >= 1.0 { 1.0 / mean_burst_len } else { 1.0 };
        let m = sanitize_probability(mean_loss).min(0.999_999);
        Loss::Burst { p_good_to_bad: (r * m / (1.0 - m)).min(1.0), p_bad_to_good: r, loss_in_bad: 1.0, loss_in_good: 0.0 }
    }

    /// Long-run fraction of packets this model drops.
    #[must_use]
    pub fn expected_rate(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random { probability } => sanitize_probability(probability),
            Loss::Burst { p_good_to_bad, p_bad_to_good, loss_in_bad, loss_in_good } => {
                let p = sanitize_probability(p_good_to_bad);
                let r = sanitize_probability(p_bad_to_good);
                // p = r = 0 never leaves the initial Good state.
                let bad = if p + r > 0.0 { p / (p + r) } else { 0.0 };
                bad * sanitize_probability(loss_in_bad) + (1.0 - bad) * sanitize_probability(loss_in_good)
            }
        }
    }

    fn probabilities(&self) -> Vec<(&'static str, f64)> {
        match *self {
            Loss::None => Vec::new(),
            Loss::Random { probability } => vec![("loss.probability", probability)],
            Loss::Burst { p_good_to_bad, p_bad_to_good, loss_in_bad, loss_in_good } => vec![
                ("loss.p_good_to_bad", p_good_to_bad),
                ("loss.p_bad_to_good", p_bad_to_good),
                ("loss.loss_in_bad", loss_in_bad),
                ("loss.loss_in_good", loss_in_good),
            ],
        }
    }
}

/// Impairments for one direction of a relay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImpairmentConfig {
    /// Loss model.
    pub loss: Loss,
    /// Fixed one-way delay added to every delivered packet.
    pub delay: Duration,
    /// Uniform jitter in `[-jitter, +jitter]` around `delay` (never before
    /// arrival). Without reordering, release times are clamped to be
    /// non-decreasing, so jitter alone never reorders.
    pub jitter: Duration,
    /// Probability a packet is held back by [`REORDER_HOLD`] + `jitter` so
    /// later packets overtake it.
    pub reorder_probability: f64,
    /// Probability a packet is delivered twice (back to back).
    pub duplicate_probability: f64,
    /// PRNG seed; same seed + same arrival times ⇒ same decisions.
    pub seed: u64,
}

impl Default for ImpairmentConfig {
    fn default() -> Self {
        Self::NONE
    }
}

impl ImpairmentConfig {
    /// Transparent: every packet delivered immediately, once, in order.
    pub const NONE: ImpairmentConfig = ImpairmentConfig {
        loss: Loss::None,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        reorder_probability: 0.0,
        duplicate_probability: 0.0,
        seed: 0,
    };

    /// Same as [`ImpairmentConfig::NONE`].
    #[must_use]
    pub const fn none() -> Self {
        Self::NONE
    }

    /// Builder: set the loss model.
    #[must_use]
    pub const fn with_loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Builder: set the fixed delay.
    #[must_use]
    pub const fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Builder: set the jitter.
    #[must_use]
    pub const fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Builder: set the reorder probability.
    #[must_use]
    pub const fn with_reorder(mut self, probability: f64) -> Self {
        self.reorder_probability = probability;
        self
    }

    /// Builder: set the duplicate probability.
    #[must_use]
    pub const fn with_duplicate(mut self, probability: f64) -> Self {
        self.duplicate_probability = probability;
        self
    }

    /// Builder: set the seed.
    #[must_use]
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks probabilities are in `[0, 1]` (a typo such as `5.0` for 5 % is
    /// otherwise silently "always") and delays are at most [`MAX_DELAY`].
    ///
    /// # Errors
    /// A human-readable description of the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        let mut probs = self.loss.probabilities();
        probs.push(("reorder_probability", self.reorder_probability));
        probs.push(("duplicate_probability", self.duplicate_probability));
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} = {p} is not a probability in [0, 1]"));
            }
        }
        for (name, d) in [("delay", self.delay), ("jitter", self.jitter)] {
            if d > MAX_DELAY {
                return Err(format!("{name} = {d:?} exceeds {MAX_DELAY:?}"));
            }
        }
        Ok(())
    }
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The loss model dropped it.
    Loss,
    /// The outage switch is on.
    Outage,
}

/// A packet to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Release time (≥ arrival time).
    pub at: Instant,
    /// Deliver a second copy right after the first (same release time).
    pub duplicate: bool,
    /// Held back so that later packets overtake it. Such packets are outside
    /// the in-order stream: the non-decreasing clamp does not apply to them
    /// and later packets are not clamped behind them.
    pub reordered: bool,
}

/// The verdict for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Do not deliver.
    Drop(DropReason),
    /// Deliver at the given time.
    Deliver(Delivery),
}

/// Per-direction impairment state machine. Feed it every arriving packet's
/// time, in arrival order.
#[derive(Debug, Clone)]
pub struct Impairer {
    cfg: ImpairmentConfig,
    rng: SplitMix64,
    /// Gilbert–Elliott state; starts Good.
    bad: bool,
    outage: bool,
    /// Release time of the last in-order (non-reordered) packet: later
    /// in-order packets are clamped to be no earlier, so delay/jitter (and
    /// run-time config changes) never reorder.
    last_in_order: Option<Instant>,
}

impl Impairer {
    /// A fresh impairer. Out-of-range values are clamped (probabilities to
    /// `[0, 1]`, NaN to 0, delays to [`MAX_DELAY`]); use
    /// [`ImpairmentConfig::validate`] to reject them instead.
    #[must_use]
    pub fn new(cfg: ImpairmentConfig) -> Self {
        Impairer { cfg: sanitize(cfg), rng: SplitMix64(cfg.seed), bad: false, outage: false, last_in_order: None }
    }

    /// The (sanitized) configuration in use.
    #[must_use]
    pub fn config(&self) -> &ImpairmentConfig {
        &self.cfg
    }

    /// Switch to a new configuration at run time: PRNG reseeded and loss
    /// state reset (so the new config is deterministic on its own), but the
    /// ordering clamp and the outage switch are kept, so lowering the delay
    /// mid-stream does not let new packets overtake ones still in flight.
    pub fn reconfigure(&mut self, cfg: ImpairmentConfig) {
        let last = self.last_in_order;
        let outage = self.outage;
        *self = Impairer::new(cfg);
        self.last_in_order = last;
        self.outage = outage;
    }

    /// Outage switch: while on, every packet is dropped.
    pub fn set_outage(&mut self, on: bool) {
        self.outage = on;
    }

    /// Whether the outage switch is on.
    #[must_use]
    pub fn outage(&self) -> bool {
        self.outage
    }

    /// Decide the fate of a packet arriving at `now`.
    pub fn decide(&mut self, now: Instant) -> Decision {
        if self.outage {
            // The PRNG and loss state are not advanced: an outage is
            // orthogonal to the configured model.
            return Decision::Drop(DropReason::Outage);
        }
        if self.lose() {
            return Decision::Drop(DropReason::Loss);
        }
        let mut at = self.jittered(now);
        let reordered = self.rng.chance(self.cfg.reorder_probability);
        if reordered {
            // Hold it past where the in-order stream is now, so neighbours
            // arriving within REORDER_HOLD overtake it.
            let floor = self.last_in_order.map_or(at, |prev| at.max(prev));
            at = floor + REORDER_HOLD + self.cfg.jitter;
        } else {
            if let Some(prev) = self.last_in_order {
                at = at.max(prev);
            }
            self.last_in_order = Some(at);
        }
        let duplicate = self.rng.chance(self.cfg.duplicate_probability);
        Decision::Deliver(Delivery { at, duplicate, reordered })
    }

    fn lose(&mut self) -> bool {
        match self.cfg.loss {
            Loss::None => false,
            Loss::Random { probability } => self.rng.chance(probability),
            Loss::Burst { p_good_to_bad, p_bad_to_good, loss_in_bad, loss_in_good } => {
                let lost = self.rng.chance(if self.bad { loss_in_bad } else { loss_in_good });
                let flip = if self.bad { p_bad_to_good } else { p_good_to_bad };
                if self.rng.chance(flip) {
                    self.bad = !self.bad;
                }
                lost
            }
        }
    }

    /// `now + delay ± jitter`, never before `now`.
    fn jittered(&mut self, now: Instant) -> Instant {
        let base = now + self.cfg.delay;
        let j = nanos(self.cfg.jitter);
        if j == 0 {
            return base;
        }
        // Uniform over [0, 2j]; modulo bias is < 2^-20 for j ≤ MAX_DELAY.
        let off = self.rng.next_u64() % (2 * j + 1);
        if off >= j {
            base + Duration::from_nanos(off - j)
        } else {
            base.checked_sub(Duration::from_nanos(j - off)).map_or(now, |t| t.max(now))
        }
    }
}

/// Duration → whole nanoseconds, saturating (avoids an `as` truncation).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn sanitize_probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

fn sanitize(mut cfg: ImpairmentConfig) -> ImpairmentConfig {
    let p = sanitize_probability;
    cfg.loss = match cfg.loss {
        Loss::None => Loss::None,
        Loss::Random { probability } => Loss::Random { probability: p(probability) },
        Loss::Burst { p_good_to_bad, p_bad_to_good, loss_in_bad, loss_in_good } => Loss::Burst {
            p_good_to_bad: p(p_good_to_bad),
            p_bad_to_good: p(p_bad_to_good),
            loss_in_bad: p(loss_in_bad),
            loss_in_good: p(loss_in_good),
        },
    };
    cfg.reorder_probability = p(cfg.reorder_probability);
    cfg.duplicate_probability = p(cfg.duplicate_probability);
    cfg.delay = cfg.delay.min(MAX_DELAY);
    cfg.jitter = cfg.jitter.min(MAX_DELAY);
    cfg
}

/// SplitMix64: tiny, fast, statistically fine for fault injection, and keeps
/// the crate free of an RNG dependency. Any seed (including 0) is valid.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Bernoulli trial. Certain outcomes (p ≤ 0, p ≥ 1) draw nothing, so a
    /// disabled impairment does not perturb the stream of the others.
    fn chance(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.next_f64() < p
        }
    }
}

/// Derive an independent seed (for sibling relays) from a base seed.
pub(crate) fn derive_seed(seed: u64, index: u64) -> u64 {
    let mut rng = SplitMix64(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 100_000;
    /// Fake clock: one packet every 500 µs (2000 packets/s, the 20 Mbit/s case).
    const SPACING: Duration = Duration::from_micros(500);

    fn run(cfg: ImpairmentConfig, n: usize) -> (Instant, Vec<Decision>) {
        let t0 = Instant::now();
        let mut imp = Impairer::new(cfg);
        let out = (0..n).map(|i| imp.decide(t0 + SPACING * u32::try_from(i).unwrap())).collect();
        (t0, out)
    }

    fn lost(d: &Decision) -> bool {
        matches!(d, Decision::Drop(DropReason::Loss))
    }

    fn rate(ds: &[Decision], f: impl Fn(&Decision) -> bool) -> f64 {
        ds.iter().filter(|d| f(d)).count() as f64 / ds.len() as f64
    }

    #[test]
    fn transparent_config_delivers_immediately_in_order() {
        let (t0, ds) = run(ImpairmentConfig::NONE, 1000);
        for (i, d) in ds.iter().enumerate() {
            let now = t0 + SPACING * u32::try_from(i).unwrap();
            assert_eq!(*d, Decision::Deliver(Delivery { at: now, duplicate: false, reordered: false }));
        }
    }

    #[test]
    fn random_loss_rate_within_tolerance() {
        for seed in [0, 1, 0xDEAD_BEEF] {
            let cfg = ImpairmentConfig::NONE.with_loss(Loss::Random { probability: 0.05 }).with_seed(seed);
            let (_, ds) = run(cfg, N);
            let r = rate(&ds, lost);
            // σ = sqrt(0.05·0.95/1e5) ≈ 0.0007; allow ~4σ.
            assert!((r - 0.05).abs() < 0.003, "seed {seed}: loss rate {r}");
        }
    }

    /// Lengths of consecutive-loss runs.
    fn loss_runs(ds: &[Decision]) -> Vec<usize> {
        let mut runs = Vec::new();
        let mut cur = 0;
        for d in ds {
            if lost(d) {
                cur += 1;
            } else if cur > 0 {
                runs.push(cur);
                cur = 0;
            }
        }
        if cur > 0 {
            runs.push(cur);
        }
        runs
    }

    #[test]
    fn gilbert_elliott_burst_lengths_have_expected_mean() {
        let loss = Loss::gilbert(0.03, 4.0);
        assert!((loss.expected_rate() - 0.03).abs() < 1e-9);
        let (_, ds) = run(ImpairmentConfig::NONE.with_loss(loss).with_seed(7), N);
        let r = rate(&ds, lost);
        // Bursty loss has fewer independent samples (~N/burst): wider band.
        assert!((r - 0.03).abs() < 0.006, "loss rate {r}");
        let runs = loss_runs(&ds);
        let mean = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
        // ~750 bursts, geometric sd ≈ 3.5 ⇒ σ(mean) ≈ 0.13.
        assert!((mean - 4.0).abs() < 0.5, "mean burst {mean} over {} runs", runs.len());
        // Genuinely bursty: long runs exist, unlike Bernoulli loss at 3 %.
        assert!(runs.iter().any(|&l| l >= 10));
    }

    #[test]
    fn gilbert_elliott_general_rate_matches_stationary_formula() {
        let loss = Loss::Burst { p_good_to_bad: 0.02, p_bad_to_good: 0.2, loss_in_bad: 0.8, loss_in_good: 0.01 };
        let expected = loss.expected_rate();
        assert!((expected - (0.02 / 0.22 * 0.8 + 0.2 / 0.22 * 0.01)).abs() < 1e-12);
        let (_, ds) = run(ImpairmentConfig::NONE.with_loss(loss).with_seed(3), N);
        let r = rate(&ds, lost);
        assert!((r - expected).abs() < 0.01, "loss rate {r}, expected {expected}");
    }

    #[test]
    fn duplicate_rate_within_tolerance() {
        let (_, ds) = run(ImpairmentConfig::NONE.with_duplicate(0.1).with_seed(11), N);
        let r = rate(&ds, |d| matches!(d, Decision::Deliver(x) if x.duplicate));
        assert!((r - 0.1).abs() < 0.005, "dup rate {r}");
    }

    #[test]
    fn reorder_rate_and_reordered_packets_are_overtaken() {
        let cfg = ImpairmentConfig::NONE.with_delay(Duration::from_millis(20)).with_reorder(0.05).with_seed(5);
        let (_, ds) = run(cfg, N);
        let del: Vec<Delivery> = ds
            .iter()
            .map(|d| match d {
                Decision::Deliver(x) => *x,
                Decision::Drop(_) => panic!("no loss configured"),
            })
            .collect();
        let r = del.iter().filter(|d| d.reordered).count() as f64 / N as f64;
        assert!((r - 0.05).abs() < 0.003, "reorder rate {r}");
        // Every reordered packet is overtaken by its next in-order neighbour
        // (5 ms hold vs 0.5 ms spacing), and the in-order stream is monotonic.
        let mut prev_in_order: Option<Instant> = None;
        for (i, d) in del.iter().enumerate() {
            if d.reordered {
                if let Some(next) = del[i + 1..].iter().find(|x| !x.reordered) {
                    assert!(next.at < d.at, "packet {i} not overtaken");
                }
            } else {
                if let Some(p) = prev_in_order {
                    assert!(d.at >= p);
                }
                prev_in_order = Some(d.at);
            }
        }
    }

    #[test]
    fn delay_and_jitter_never_reorder_when_reorder_off() {
        let delay = Duration::from_millis(20);
        let jitter = Duration::from_millis(15);
        let cfg = ImpairmentConfig::NONE.with_delay(delay).with_jitter(jitter).with_seed(9);
        // Tighter spacing than the jitter span, so unclamped jitter would
        // reorder constantly.
        let t0 = Instant::now();
        let mut imp = Impairer::new(cfg);
        let mut prev = t0;
        let mut distinct_offsets = std::collections::HashSet::new();
        for i in 0..N {
            let now = t0 + Duration::from_micros(100) * u32::try_from(i).unwrap();
            let Decision::Deliver(d) = imp.decide(now) else { panic!("no loss configured") };
            assert!(!d.reordered && !d.duplicate);
            assert!(d.at >= prev, "packet {i} released before its predecessor");
            assert!(d.at >= now + delay - jitter && d.at <= now + delay + jitter);
            distinct_offsets.insert(d.at - now);
            prev = d.at;
        }
        assert!(distinct_offsets.len() > 1000, "jitter had no effect");
    }

    #[test]
    fn jitter_larger_than_delay_never_releases_before_arrival() {
        let cfg = ImpairmentConfig::NONE.with_jitter(Duration::from_millis(5)).with_seed(1);
        let (t0, ds) = run(cfg, 10_000);
        for (i, d) in ds.iter().enumerate() {
            let now = t0 + SPACING * u32::try_from(i).unwrap();
            let Decision::Deliver(d) = d else { panic!() };
            assert!(d.at >= now);
        }
    }

    #[test]
    fn same_seed_same_decisions_different_seed_differs() {
        let cfg = ImpairmentConfig::NONE
            .with_loss(Loss::gilbert(0.05, 3.0))
            .with_delay(Duration::from_millis(10))
            .with_jitter(Duration::from_millis(3))
            .with_reorder(0.02)
            .with_duplicate(0.02);
        let t0 = Instant::now();
        let go = |seed| {
            let mut imp = Impairer::new(cfg.with_seed(seed));
            (0..10_000u32).map(|i| imp.decide(t0 + SPACING * i)).collect::<Vec<_>>()
        };
        assert_eq!(go(42), go(42));
        assert_ne!(go(42), go(43));
    }

    #[test]
    fn outage_drops_everything_then_recovers() {
        let mut imp = Impairer::new(ImpairmentConfig::NONE);
        let t0 = Instant::now();
        imp.set_outage(true);
        for i in 0..100u32 {
            assert_eq!(imp.decide(t0 + SPACING * i), Decision::Drop(DropReason::Outage));
        }
        imp.set_outage(false);
        assert!(matches!(imp.decide(t0 + SPACING * 100), Decision::Deliver(_)));
    }

    #[test]
    fn reconfigure_keeps_order_across_delay_decrease() {
        let t0 = Instant::now();
        let mut imp = Impairer::new(ImpairmentConfig::NONE.with_delay(Duration::from_millis(100)));
        let Decision::Deliver(a) = imp.decide(t0) else { panic!() };
        imp.reconfigure(ImpairmentConfig::NONE);
        let Decision::Deliver(b) = imp.decide(t0 + Duration::from_millis(1)) else { panic!() };
        assert!(b.at >= a.at, "new packet overtook one still in flight");
    }

    #[test]
    fn validate_rejects_out_of_range_and_core_clamps() {
        let bad = ImpairmentConfig::NONE.with_loss(Loss::Random { probability: 5.0 });
        assert!(bad.validate().is_err());
        assert!(ImpairmentConfig::NONE.with_duplicate(-0.1).validate().is_err());
        assert!(ImpairmentConfig::NONE.with_reorder(f64::NAN).validate().is_err());
        assert!(ImpairmentConfig::NONE.with_delay(Duration::from_secs(7200)).validate().is_err());
        assert!(Loss::gilbert(0.1, 5.0).probabilities().iter().all(|(_, p)| (0.0..=1.0).contains(p)));
        // Clamped to "always lose".
        let (_, ds) = run(bad, 100);
        assert!(ds.iter().all(lost));
    }

    #[test]
    fn derived_seeds_differ() {
        let s: std::collections::HashSet<u64> = (0..3).map(|i| derive_seed(42, i)).collect();
        assert_eq!(s.len(), 3);
    }
}
