//! The mass-removal guard: when one consistent pull would implicitly remove many people at once
//! (they simply vanished from the roster), hold those removals until pulls agree for a while or a
//! technician confirms — the "prevent accidental deletes" threshold of directory-sync tools (README,
//! "Roster integrity"). Sans-IO: the pull feeds it sets and the time, it answers who goes now.
//!
//! Explicit revocations (roster delete status, DENY, expiry, a per-user "gone", `doorsync revoke`)
//! never pass through here.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::domain::UserKey;
use crate::store::{HeldRemovals, HeldUser};

/// The smallest default limit, and the default share of the roster (in percent) above it.
const DEFAULT_MIN_LIMIT: u64 = 10;
const DEFAULT_LIMIT_PERCENT: u64 = 25;

/// `sync.max_implicit_removals` and `sync.removal_hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardSettings {
    /// More implicit removals than this in one pull are held; `None`: the larger of 10 and 25% of the
    /// users on the roster before the pull.
    pub max_implicit_removals: Option<u64>,
    /// How long pulls must keep agreeing before held removals are applied.
    pub removal_hold: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            max_implicit_removals: None,
            removal_hold: Duration::from_secs(600),
        }
    }
}

impl GuardSettings {
    pub(crate) fn from_config(c: &crate::config::SyncConfig) -> Self {
        Self {
            max_implicit_removals: c.max_implicit_removals,
            removal_hold: c.removal_hold,
        }
    }

    /// The limit for a roster that held `roster_before` users before the pull.
    pub(crate) fn limit(&self, roster_before: u64) -> u64 {
        self.max_implicit_removals
            .unwrap_or_else(|| DEFAULT_MIN_LIMIT.max(roster_before.saturating_mul(DEFAULT_LIMIT_PERCENT) / 100))
    }
}

/// What the guard decided for one consistent pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Implicit removals to apply now.
    pub remove: BTreeSet<UserKey>,
    /// The removals held from now on (kept in the store).
    pub held: HeldRemovals,
    /// The hold started with this pull (warn once).
    pub started: bool,
}

/// `implicit`: users stored before the pull that the consistent roster no longer lists (explicitly
/// gone users excluded). `confirm`: a technician confirmed held removals (`sync --confirm-removals`).
pub(crate) fn decide(
    settings: &GuardSettings,
    roster_before: u64,
    implicit: &BTreeSet<UserKey>,
    held_before: &HeldRemovals,
    now: Timestamp,
    confirm: bool,
) -> Decision {
    let limit = settings.limit(roster_before);
    if confirm || implicit.len() as u64 <= limit {
        // Small enough to be a decision, or confirmed: everyone still gone goes now.
        return Decision {
            remove: implicit.clone(),
            ..Default::default()
        };
    }
    let hold = SignedDuration::try_from(settings.removal_hold).unwrap_or(SignedDuration::MAX);
    let mut decision = Decision {
        started: held_before.is_empty(),
        ..Default::default()
    };
    for key in implicit {
        // A user who came back since is simply not in `implicit` any more: their hold is forgotten.
        let first_seen_at = held_before.users.get(&key.to_string()).map_or(now, |h| h.first_seen_at);
        let until = first_seen_at.saturating_add(hold).unwrap_or(Timestamp::MAX);
        if until <= now {
            decision.remove.insert(key.clone());
        } else {
            decision.held.users.insert(
                key.to_string(),
                HeldUser {
                    key: key.clone(),
                    first_seen_at,
                    until,
                },
            );
        }
    }
    decision
}

/// What `status` and `sync --json` show as `removals_held`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSummary {
    pub count: u64,
    pub first_seen_at: Timestamp,
    /// When the earliest held removal is applied if pulls keep agreeing.
    pub until: Timestamp,
    /// The users held (key strings), for a technician to check before `sync --confirm-removals`.
    pub users: Vec<String>,
}

/// The summary of `held`, `None` when nothing is held.
pub(crate) fn summary(held: &HeldRemovals) -> Option<HeldSummary> {
    Some(HeldSummary {
        count: held.users.len() as u64,
        first_seen_at: held.first_seen_at()?,
        until: held.until()?,
        users: held.users.keys().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> BTreeSet<UserKey> {
        (0..n).map(|i| UserKey::new("IDENTITY", format!("u-{i:04}"))).collect()
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn the_default_limit_is_the_larger_of_ten_and_a_quarter() {
        let g = GuardSettings::default();
        assert_eq!(g.limit(0), 10);
        assert_eq!(g.limit(30), 10);
        assert_eq!(g.limit(400), 100);
        let fixed = GuardSettings {
            max_implicit_removals: Some(3),
            ..g
        };
        assert_eq!(fixed.limit(400), 3);
    }

    #[test]
    fn a_few_removals_go_at_once() {
        let d = decide(
            &GuardSettings::default(),
            30,
            &keys(10),
            &HeldRemovals::default(),
            t(0),
            false,
        );
        assert_eq!(d.remove.len(), 10);
        assert!(d.held.is_empty());
    }

    #[test]
    fn a_mass_removal_is_held_until_pulls_agree_for_the_hold_time() {
        let g = GuardSettings::default();
        let gone = keys(30);
        let d = decide(&g, 30, &gone, &HeldRemovals::default(), t(0), false);
        assert!(d.remove.is_empty() && d.started);
        assert_eq!(d.held.users.len(), 30);
        let later = decide(&g, 30, &gone, &d.held, t(599), false);
        assert!(later.remove.is_empty() && !later.started);
        assert_eq!(later.held, d.held, "the first sighting is kept");
        let due = decide(&g, 30, &gone, &later.held, t(600), false);
        assert_eq!((due.remove.len(), due.held.users.len()), (30, 0));
        let s = summary(&d.held).unwrap();
        assert_eq!((s.count, s.first_seen_at, s.until), (30, t(0), t(600)));
    }

    #[test]
    fn users_who_come_back_are_released_and_confirm_applies_at_once() {
        let g = GuardSettings::default();
        let d = decide(&g, 30, &keys(30), &HeldRemovals::default(), t(0), false);
        let back = decide(&g, 30, &keys(12), &d.held, t(60), false);
        assert_eq!(back.held.users.len(), 12, "the 18 who came back are no longer held");
        let confirmed = decide(&g, 30, &keys(12), &back.held, t(61), true);
        assert_eq!((confirmed.remove.len(), confirmed.held.users.len()), (12, 0));
    }
}
