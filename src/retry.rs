//! The one retry policy: capped exponential backoff with one jitter rule, sans-IO.
//!
//! Every retry loop uses it — the cloud client (API calls and image downloads), the cloud outbox, the
//! door workers' reconnects and the osdp_MFG resends — so they all wait the same way. The jitter rule
//! ("equal jitter"): retry `n` (0 = the first retry) waits a delay drawn uniformly from
//! `[c/2, c]` where `c = min(max_backoff, base_backoff·2ⁿ)`. Half the ceiling keeps the growth (a
//! retry never comes sooner than half its step), the other half spreads many gateways retrying after
//! one outage so they do not hit the cloud in step.
//!
//! No clock and no sleeping here: [`Backoff`] hands out delays, the caller waits them (tokio in the
//! agent and the cloud client, the caller's `now` in the MFG schedule). The random draw comes from a
//! seeded generator so a sans-IO caller and its tests can fix it.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// How a loop retries: how long between attempts and how many attempts in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; [`RetryPolicy::UNBOUNDED`] retries until the caller stops.
    pub max_attempts: u32,
    /// The ceiling of the first retry's delay; it doubles per retry.
    pub base_backoff: Duration,
    /// The largest ceiling.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// The cloud client's: four attempts, 200 ms doubling up to 5 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// `max_attempts` for a loop that retries until it is cancelled or succeeds.
    pub(crate) const UNBOUNDED: u32 = u32::MAX;

    /// A policy that never gives up (daemon loops: door reconnects, the outbox).
    pub(crate) fn unbounded(base_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            max_attempts: Self::UNBOUNDED,
            base_backoff,
            max_backoff: max_backoff.max(base_backoff),
        }
    }

    /// Whether another attempt may follow `attempts_made` attempts (the first one included).
    pub(crate) fn allows_another(&self, attempts_made: u32) -> bool {
        self.max_attempts == Self::UNBOUNDED || attempts_made < self.max_attempts
    }

    /// The ceiling of retry `retry`'s delay: `min(max_backoff, base_backoff·2^retry)`.
    pub(crate) fn ceiling(&self, retry: u32) -> Duration {
        self.base_backoff
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.max_backoff.max(self.base_backoff))
    }

    /// The jitter rule: a delay uniform in `[ceiling/2, ceiling]`, drawn from `rng`, in whole
    /// milliseconds (the timer's resolution).
    fn delay(&self, retry: u32, rng: &mut StdRng) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(ceiling.div_ceil(2)..=ceiling))
    }
}

/// One retry loop's state: which retry comes next, and the jitter source.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    retry: u32,
    rng: StdRng,
}

impl Backoff {
    /// A loop with jitter from the operating system's random source.
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self::seeded(policy, rand::random())
    }

    /// A loop with a fixed jitter sequence (sans-IO callers' tests).
    pub(crate) fn seeded(policy: RetryPolicy, seed: u64) -> Self {
        Self {
            policy,
            retry: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Back to the first retry's delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.retry = 0;
    }

    /// The delay before the next retry.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.policy.delay(self.retry, &mut self.rng);
        self.retry = self.retry.saturating_add(1);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_backoff: 100 * MS,
            max_backoff: 2000 * MS,
        }
    }

    #[test]
    fn delays_stay_within_half_to_all_of_a_doubling_capped_ceiling() {
        for seed in 0..50 {
            let mut b = Backoff::seeded(policy(), seed);
            for n in 0..30u32 {
                let ceiling = (100 * MS * 2u32.pow(n.min(20))).min(2000 * MS);
                let d = b.next_delay();
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "seed {seed} retry {n}: {d:?} outside [c/2, {ceiling:?}]"
                );
            }
        }
    }

    #[test]
    fn reset_starts_again_from_the_first_ceiling() {
        let mut b = Backoff::seeded(policy(), 7);
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= 100 * MS);
    }

    #[test]
    fn the_same_seed_gives_the_same_delays_and_different_seeds_spread() {
        let run = |seed| {
            let mut b = Backoff::seeded(policy(), seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2), "jitter spreads gateways retrying after one outage");
    }

    #[test]
    fn attempts_are_bounded_unless_unbounded() {
        let p = policy();
        assert!(p.allows_another(3));
        assert!(!p.allows_another(4));
        let u = RetryPolicy::unbounded(MS, 10 * MS);
        assert!(u.allows_another(u32::MAX - 1));
        assert!(u.allows_another(u32::MAX));
    }

    #[test]
    fn a_cap_below_the_base_is_the_base() {
        let p = RetryPolicy {
            max_attempts: 2,
            base_backoff: 500 * MS,
            max_backoff: 100 * MS,
        };
        assert_eq!(p.ceiling(0), 500 * MS);
        assert_eq!(p.ceiling(9), 500 * MS);
    }

    /// A bounded loop on paused time: it sleeps exactly the delays the policy hands out, in total
    /// within the sum of the envelopes, and stops after `max_attempts`.
    #[tokio::test(start_paused = true)]
    async fn a_bounded_loop_waits_the_policys_delays_and_gives_up_after_max_attempts() {
        let p = policy();
        let mut b = Backoff::seeded(p, 3);
        let start = tokio::time::Instant::now();
        let (mut attempts, mut slept) = (0u32, Duration::ZERO);
        loop {
            attempts += 1; // the attempt fails
            if !b.policy().allows_another(attempts) {
                break;
            }
            let d = b.next_delay();
            slept += d;
            tokio::time::sleep(d).await;
        }
        assert_eq!(attempts, 4);
        assert_eq!(start.elapsed(), slept);
        let (lo, hi) = (0..3).fold((Duration::ZERO, Duration::ZERO), |(lo, hi), n| {
            (lo + p.ceiling(n) / 2, hi + p.ceiling(n))
        });
        assert!(slept >= lo && slept <= hi, "{slept:?} outside [{lo:?}, {hi:?}]");
    }

    /// An unbounded loop on paused time reaches the cap and stays there.
    #[tokio::test(start_paused = true)]
    async fn an_unbounded_loop_settles_at_the_cap() {
        let mut b = Backoff::new(RetryPolicy::unbounded(100 * MS, 1000 * MS));
        for _ in 0..6 {
            tokio::time::sleep(b.next_delay()).await;
        }
        for _ in 0..20 {
            let before = tokio::time::Instant::now();
            tokio::time::sleep(b.next_delay()).await;
            let waited = before.elapsed();
            assert!(waited >= 500 * MS && waited <= 1000 * MS, "{waited:?}");
        }
    }
}
