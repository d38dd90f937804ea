//! Seeded fault injection: what a noisy RS-485 line and an overloaded door do to the traffic.
//!
//! Every decision draws from one `StdRng` seeded at start, in the order bytes and commands arrive, so a
//! run is reproducible from its seed. A rate of 0 draws nothing.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Fractions (0.0..=1.0) of received bytes dropped or corrupted, and of commands answered osdp_BUSY.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultRates {
    pub drop_rate: f64,
    pub corrupt_rate: f64,
    pub busy_rate: f64,
}

impl FaultRates {
    /// Names the first rate outside 0..=1 (NaN included).
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("drop rate", self.drop_rate),
            ("corrupt rate", self.corrupt_rate),
            ("busy rate", self.busy_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} {v} is not in 0..=1"));
            }
        }
        Ok(())
    }
}

/// What the line did to one chunk of received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LineDamage {
    pub dropped: u64,
    pub corrupted: u64,
}

/// The seeded source of every injected fault.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    rates: FaultRates,
    rng: StdRng,
}

impl FaultInjector {
    /// Rates outside 0..=1 behave like the nearest bound (validate them first to report them).
    pub(crate) fn new(rates: FaultRates, seed: u64) -> Self {
        Self {
            rates,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    #[cfg(test)]
    pub(crate) fn rates(&self) -> FaultRates {
        self.rates
    }

    /// New rates from now on; the RNG continues (no reseed).
    #[cfg(test)]
    pub(crate) fn set_rates(&mut self, rates: FaultRates) {
        self.rates = rates;
    }

    fn chance(&mut self, rate: f64) -> bool {
        // `random::<f64>()` is in [0, 1): rate 1.0 always hits, 0.0 (or NaN) never, without a panic path.
        rate > 0.0 && self.rng.random::<f64>() < rate
    }

    /// The bytes that reach the door's receiver: some dropped, some with one bit flipped.
    pub(crate) fn on_received(&mut self, bytes: &[u8]) -> (Vec<u8>, LineDamage) {
        let mut damage = LineDamage::default();
        if self.rates.drop_rate <= 0.0 && self.rates.corrupt_rate <= 0.0 {
            return (bytes.to_vec(), damage);
        }
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.chance(self.rates.drop_rate) {
                damage.dropped += 1;
                continue;
            }
            if self.chance(self.rates.corrupt_rate) {
                damage.corrupted += 1;
                out.push(b ^ (1 << self.rng.random_range(0..8u8)));
            } else {
                out.push(b);
            }
        }
        (out, damage)
    }

    /// Whether to answer this command with osdp_BUSY instead of executing it.
    pub(crate) fn answer_busy(&mut self) -> bool {
        let rate = self.rates.busy_rate;
        self.chance(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_faults_pass_bytes_through_untouched() {
        let mut f = FaultInjector::new(FaultRates::default(), 7);
        let (out, damage) = f.on_received(&[1, 2, 3]);
        assert_eq!((out, damage), (vec![1, 2, 3], LineDamage::default()));
        assert!(!f.answer_busy());
    }

    #[test]
    fn same_seed_gives_the_same_damage_and_rates_are_roughly_honoured() {
        let rates = FaultRates {
            drop_rate: 0.1,
            corrupt_rate: 0.1,
            busy_rate: 0.5,
        };
        let input: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut a = FaultInjector::new(rates, 42);
        let mut b = FaultInjector::new(rates, 42);
        let (out_a, dmg_a) = a.on_received(&input);
        assert_eq!(b.on_received(&input), (out_a.clone(), dmg_a));
        assert!((800..1200).contains(&dmg_a.dropped), "{dmg_a:?}");
        assert!((700..1100).contains(&dmg_a.corrupted), "{dmg_a:?}");
        assert_eq!(out_a.len() as u64, 10_000 - dmg_a.dropped);
        let busy = (0..1000).filter(|_| a.answer_busy()).count();
        assert!((400..600).contains(&busy), "{busy}");
    }

    #[test]
    fn rates_outside_zero_to_one_are_named() {
        let bad = FaultRates {
            corrupt_rate: 1.5,
            ..FaultRates::default()
        };
        assert!(bad.validate().unwrap_err().contains("corrupt rate 1.5"));
        let nan = FaultRates {
            busy_rate: f64::NAN,
            ..FaultRates::default()
        };
        assert!(nan.validate().is_err());
        // Even unvalidated, a silly rate never panics.
        let mut f = FaultInjector::new(nan, 1);
        assert!(!f.answer_busy());
    }
}
