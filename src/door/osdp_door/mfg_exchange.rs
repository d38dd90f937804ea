//! The schedule of one osdp_MFG query as a sans-IO state machine: when to send it (again, with the same
//! request id), when to fetch a queued osdp_MFGREP with osdp_POLL, and when to give up (PROTOCOL.md §6,
//! §8). Replies are matched to requests by `mfg::Waiters`; this only decides what happens next. Resends
//! are spaced by the crate's one retry policy ([`crate::retry`]): each comes between half and all of
//! `resend_after` after the previous send.

use std::time::{Duration, Instant};

use crate::retry::{Backoff, RetryPolicy};

/// The bounds of one query (from `OsdpDoorOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExchangeTimes {
    pub timeout: Duration,
    pub resend_after: Duration,
    pub poll_interval: Duration,
}

/// What the shell does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MfgAction {
    /// Send the osdp_MFG (first time, or again with the same request id).
    Send,
    /// Send an osdp_POLL to fetch an osdp_MFGREP the PD queued after ACKing.
    Poll,
    /// Wait for the reply until this instant, then ask again.
    WaitUntil(Instant),
    /// No reply within the query timeout.
    GiveUp,
}

/// One query's timers.
#[derive(Debug)]
pub(super) struct MfgExchange {
    times: ExchangeTimes,
    resends: Backoff,
    deadline: Instant,
    resend_at: Instant,
    next_poll: Instant,
    sent: bool,
}

impl MfgExchange {
    /// `seed` draws the resend jitter (the shell passes a random one, tests a fixed one).
    pub(super) fn new(times: ExchangeTimes, now: Instant, seed: u64) -> Self {
        // Unbounded: the query timeout, not an attempt count, ends the exchange. The ceiling stays at
        // `resend_after` so a resend never comes later than the option says.
        let mut resends = Backoff::seeded(RetryPolicy::unbounded(times.resend_after, times.resend_after), seed);
        MfgExchange {
            times,
            deadline: now + times.timeout,
            resend_at: now + resends.next_delay(),
            resends,
            // First fetch at once: a PD that ACKed usually has the answer queued already.
            next_poll: now,
            sent: false,
        }
    }

    /// The next thing to do at `now` (the shell checks for a matched reply before calling this).
    pub(super) fn poll(&mut self, now: Instant) -> MfgAction {
        if !self.sent {
            self.sent = true;
            return MfgAction::Send;
        }
        if now >= self.deadline {
            return MfgAction::GiveUp;
        }
        if now >= self.resend_at {
            self.resend_at = now + self.resends.next_delay();
            return MfgAction::Send;
        }
        if now >= self.next_poll {
            self.next_poll = now + self.times.poll_interval;
            return MfgAction::Poll;
        }
        MfgAction::WaitUntil(self.next_poll.min(self.deadline).min(self.resend_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn times() -> ExchangeTimes {
        ExchangeTimes {
            timeout: 3000 * MS,
            resend_after: 1000 * MS,
            poll_interval: 20 * MS,
        }
    }

    #[test]
    fn send_then_poll_at_once_then_poll_every_interval() {
        let t = Instant::now();
        let mut x = MfgExchange::new(times(), t, 0);
        assert_eq!(x.poll(t), MfgAction::Send);
        assert_eq!(x.poll(t), MfgAction::Poll);
        assert_eq!(x.poll(t), MfgAction::WaitUntil(t + 20 * MS));
        assert_eq!(x.poll(t + 20 * MS), MfgAction::Poll);
    }

    #[test]
    fn an_unanswered_query_is_resent_within_each_second_and_given_up_after_the_timeout() {
        for seed in 0..20 {
            let t = Instant::now();
            let mut x = MfgExchange::new(times(), t, seed);
            let mut now = t;
            let mut sends = Vec::new();
            loop {
                match x.poll(now) {
                    MfgAction::Send => sends.push(now - t),
                    MfgAction::Poll => {}
                    MfgAction::WaitUntil(at) => {
                        assert!(at > now);
                        now = at;
                    }
                    MfgAction::GiveUp => break,
                }
            }
            assert_eq!(now, t + 3000 * MS, "given up exactly at the query timeout");
            assert_eq!(sends[0], Duration::ZERO);
            for gap in sends.windows(2).map(|w| w[1] - w[0]) {
                assert!(gap >= 500 * MS && gap <= 1000 * MS, "seed {seed}: resend after {gap:?}");
            }
            assert!((3..=6).contains(&sends.len()), "seed {seed}: {sends:?}");
        }
    }

    #[test]
    fn a_late_reply_after_give_up_finds_nothing_to_do() {
        let t = Instant::now();
        let mut x = MfgExchange::new(times(), t, 0);
        assert_eq!(x.poll(t), MfgAction::Send);
        assert_eq!(x.poll(t + 3000 * MS), MfgAction::GiveUp);
        assert_eq!(x.poll(t + 9000 * MS), MfgAction::GiveUp);
    }
}
