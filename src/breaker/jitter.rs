//! Jitter for the open period, so that breakers which opened together (every endpoint of a
//! dead upstream, every sidecar in front of one shared database) do not probe in lockstep.
//!
//! Deterministic: the same seed gives the same sequence of delays, so tests are exact, and
//! [`Jitter::none`] turns it off.

use std::time::Duration;

/// Scales each backoff by a factor drawn uniformly from `[1 - p, 1 + p]` (`p` = the percent),
/// from a SplitMix64 sequence started at the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    percent: u8,
    state: u64,
}

// === impl Jitter ===

impl Jitter {
    /// ±10%: enough to spread a fleet's probes across a tenth of `open_for` either way,
    /// small enough that `open_for` still means what the operator wrote.
    pub(crate) const DEFAULT_PERCENT: u8 = 10;

    /// Backoffs are used as they are.
    pub const fn none() -> Self {
        Jitter {
            percent: 0,
            state: 0,
        }
    }

    /// ±[`Self::DEFAULT_PERCENT`], from `seed`. Give each breaker its own seed (a hash of the
    /// upstream name and endpoint index, or a random number), or they jitter alike.
    pub const fn seeded(seed: u64) -> Self {
        Self::with_percent(seed, Self::DEFAULT_PERCENT)
    }

    /// ±`percent` (at most 100), from `seed`.
    pub(crate) const fn with_percent(seed: u64, percent: u8) -> Self {
        Jitter {
            percent: if percent > 100 { 100 } else { percent },
            state: seed,
        }
    }

    /// The next jittered delay for `backoff`, computed in whole nanoseconds without floating
    /// point. Saturates at `u64::MAX` nanoseconds (584 years).
    pub(crate) fn apply(&mut self, backoff: Duration) -> Duration {
        let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
        if self.percent == 0 {
            return Duration::from_nanos(nanos);
        }
        const PPM: u64 = 1_000_000;
        let spread = u64::from(self.percent) * (PPM / 100);
        let factor = PPM - spread + self.next() % (2 * spread + 1);
        let scaled = u128::from(nanos) * u128::from(factor) / u128::from(PPM);
        Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): one add and three mix steps, well distributed
    /// from any seed including 0.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_keeps_the_backoff() {
        let mut jitter = Jitter::none();
        for secs in [0, 1, 30, 300] {
            let backoff = Duration::from_secs(secs);
            assert_eq!(jitter.apply(backoff), backoff);
        }
    }

    #[test]
    fn seeded_stays_within_ten_percent_and_spreads() {
        let mut jitter = Jitter::seeded(42);
        let backoff = Duration::from_secs(30);
        let delays: Vec<Duration> = (0..1000).map(|_| jitter.apply(backoff)).collect();
        let (min, max) = (Duration::from_secs(27), Duration::from_secs(33));
        assert!(delays.iter().all(|d| (min..=max).contains(d)));
        // Spread over the range, not stuck at one end.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(28_500)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(31_500)));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let (mut a, mut b, mut c) = (Jitter::seeded(7), Jitter::seeded(7), Jitter::seeded(8));
        let backoff = Duration::from_secs(30);
        let from = |j: &mut Jitter| (0..5).map(|_| j.apply(backoff)).collect::<Vec<_>>();
        let (da, db, dc) = (from(&mut a), from(&mut b), from(&mut c));
        assert_eq!(da, db);
        assert_ne!(da, dc);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut jitter = Jitter::with_percent(1, 255);
        assert_eq!(jitter, Jitter::with_percent(1, 100));
        assert!(jitter.apply(Duration::MAX) <= Duration::from_nanos(u64::MAX));
        assert_eq!(jitter.apply(Duration::ZERO), Duration::ZERO);
    }
}
