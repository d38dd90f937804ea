//! Exponential backoff with full jitter for the daemon's retry loops (door reconnects, cloud outbox).

use std::time::Duration;

use rand::Rng as _;

/// Delays grow from `min` doubling up to `max`; each delay is drawn uniformly from
/// `[min/2, ceiling]` so many gateways retrying after one outage do not hit the cloud in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let floor = self.min / 2;
        let (lo, hi) = (
            floor.as_millis() as u64,
            (ceiling.as_millis() as u64).max(floor.as_millis() as u64),
        );
        Duration::from_millis(rand::rng().random_range(lo..=hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_up_to_the_cap_and_reset() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(min, max);
        let mut ceilings = Vec::new();
        for n in 0..10u32 {
            let d = b.next_delay();
            let ceiling = (min * 2u32.pow(n)).min(max);
            assert!(
                d >= min / 2 && d <= ceiling,
                "retry {n}: {d:?} outside [{:?}, {ceiling:?}]",
                min / 2
            );
            ceilings.push(ceiling);
        }
        assert_eq!(ceilings.last(), Some(&max));
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
