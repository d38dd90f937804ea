//! A clock that follows tokio's timer, so paused-time tests (and simulations) move the daemon's notion
//! of "now" together with its sleeps.

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use crate::clock::Clock;

/// `base` plus the tokio time elapsed since construction. Under `tokio::time::pause()` it advances
/// exactly as far as the runtime's timers do.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: Instant,
}

impl TokioClock {
    pub fn new(base: Timestamp) -> Self {
        Self {
            base,
            start: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.start.elapsed()).unwrap_or(SignedDuration::MAX);
        self.base.saturating_add(elapsed).unwrap_or(Timestamp::MAX)
    }
}

/// How long from `now` until `at`, zero when it has passed, at most `cap` (so a jump of the wall
/// clock is noticed within `cap`).
pub(crate) fn until(now: Timestamp, at: Timestamp, cap: std::time::Duration) -> std::time::Duration {
    let left = at.duration_since(now);
    if left.is_negative() {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::try_from(left).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_moves_with_paused_tokio_time() {
        let base = Timestamp::from_second(1_767_225_600).unwrap();
        let clock = TokioClock::new(base);
        tokio::time::sleep(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now().as_second(), base.as_second() + 90);
        let cap = std::time::Duration::from_secs(30);
        assert_eq!(until(clock.now(), base, cap), std::time::Duration::ZERO);
        let soon = base + SignedDuration::from_secs(100);
        assert_eq!(until(clock.now(), soon, cap), std::time::Duration::from_secs(10));
        assert_eq!(until(clock.now(), base + SignedDuration::from_secs(1000), cap), cap);
    }
}
