//! The clock trust rule (sans-IO): from the wall clock, the persisted high-water mark and the cloud's
//! `Date`, the "now" that expiry decisions use, and the alarms `status` shows (README "Clock trust").

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The wall clock may differ from the cloud's `Date` by this much before the clock-skew alarm.
pub(crate) const MAX_SKEW: SignedDuration = SignedDuration::from_mins(5);
/// The wall clock may fall behind the mark by this much (NTP steps, the mark's persistence lag)
/// before the clock-went-back alarm; it is still never used below the mark.
pub(crate) const WENT_BACK_TOLERANCE: SignedDuration = SignedDuration::from_secs(60);
/// A wall clock further ahead of the mark than this, with no cloud to confirm it, is a forward jump:
/// it does not advance the mark (a 2030 RTC must not become the trusted past once NTP fixes it).
pub(crate) const MAX_FORWARD_JUMP: SignedDuration = SignedDuration::from_hours(24);
/// The cloud's `Date` counts as "the cloud answers" for this long after the response arrived.
pub(crate) const CLOUD_FRESH_FOR: SignedDuration = SignedDuration::from_mins(30);

/// A trusted time reading taken `age` ago, measured on the monotonic clock (which no RTC loss or
/// NTP step moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    pub at: Timestamp,
    pub age: SignedDuration,
}

impl Reading {
    /// The reading carried forward to the present by the monotonic clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.at
            .saturating_add(self.age.max(SignedDuration::ZERO))
            .unwrap_or(self.at)
    }
}

/// Where the effective "now" came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    #[default]
    Wall,
    Mark,
    Cloud,
}

/// The rule's answer for one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The time expiry decisions use.
    pub now: Timestamp,
    pub source: TimeSource,
    /// The new high-water mark (the caller persists it).
    pub mark: Timestamp,
    /// The wall clock is this far behind the mark (beyond the tolerance): `clock_went_back`.
    pub went_back: Option<SignedDuration>,
    /// The wall clock minus the cloud's time, when beyond [`MAX_SKEW`]: `clock_skew`.
    pub skew: Option<SignedDuration>,
    /// The wall clock is this far ahead of the mark with no cloud to confirm it.
    pub forward_jump: Option<SignedDuration>,
}

/// Decides the effective time. With a fresh cloud reading the cloud is the reference: the wall clock is
/// used while within [`MAX_SKEW`] of it, else the cloud's time, and the mark is re-based on the result
/// (a mark pushed into the future by a wrong RTC is corrected by the cloud, never kept). Without one,
/// the effective time is never below the mark, and never more than [`MAX_FORWARD_JUMP`] above it: a
/// wall clock further ahead neither advances the mark (which then moves by monotonic time) nor expires
/// anyone beyond a day past the mark.
pub(crate) fn decide(wall: Timestamp, mark: Option<Reading>, cloud: Option<Reading>) -> Verdict {
    let fresh = cloud.filter(|c| c.age >= SignedDuration::ZERO && c.age <= CLOUD_FRESH_FOR);
    if let Some(c) = fresh {
        let cloud_now = c.now();
        let diff = wall.duration_since(cloud_now);
        let (now, source, skew) = if diff.abs() > MAX_SKEW {
            (cloud_now, TimeSource::Cloud, Some(diff))
        } else {
            (wall, TimeSource::Wall, None)
        };
        return Verdict {
            now,
            source,
            mark: now,
            went_back: None,
            skew,
            forward_jump: None,
        };
    }
    let Some(m) = mark.map(|m| m.now()) else {
        return Verdict {
            now: wall,
            source: TimeSource::Wall,
            mark: wall,
            went_back: None,
            skew: None,
            forward_jump: None,
        };
    };
    let ahead = wall.duration_since(m);
    if ahead < SignedDuration::ZERO {
        let went_back = (-ahead > WENT_BACK_TOLERANCE).then_some(-ahead);
        return Verdict {
            now: m,
            source: TimeSource::Mark,
            mark: m,
            went_back,
            skew: None,
            forward_jump: None,
        };
    }
    if ahead > MAX_FORWARD_JUMP {
        // Expiries the jump alone would cause (beyond a day past the mark) are held until the cloud
        // confirms the wall clock or the mark catches up; `status` reports the jump.
        let held_at = m.saturating_add(MAX_FORWARD_JUMP).unwrap_or(m);
        return Verdict {
            now: held_at,
            source: TimeSource::Mark,
            mark: m,
            went_back: None,
            skew: None,
            forward_jump: Some(ahead),
        };
    }
    Verdict {
        now: wall,
        source: TimeSource::Wall,
        mark: wall,
        went_back: None,
        skew: None,
        forward_jump: None,
    }
}

/// Parses an HTTP `Date` header (RFC 1123, always GMT); `None` for anything else.
pub(crate) fn parse_http_date(value: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::parse(value.trim()).ok().map(|z| z.timestamp())
}

/// What `status` shows about the clock (`status --json` key `clock`; stable field names, see README).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// The persisted high-water mark: the latest trustworthy time seen.
    pub mark: Option<Timestamp>,
    /// Where expiry decisions take "now" from.
    pub source: TimeSource,
    /// The wall clock is behind the mark (RTC lost); expiry uses the mark.
    pub clock_went_back: bool,
    pub went_back_secs: Option<i64>,
    /// The wall clock is more than 5 minutes from the cloud's `Date`; expiry uses the cloud's time.
    pub clock_skew: bool,
    /// Wall clock minus cloud time, seconds.
    pub skew_secs: Option<i64>,
    /// The wall clock is more than a day ahead of the mark with no cloud to confirm it; expiry uses
    /// the mark plus one day (expiries beyond that are held).
    pub clock_jumped_forward: bool,
    pub forward_jump_secs: Option<i64>,
}

impl From<&Verdict> for ClockStatus {
    fn from(v: &Verdict) -> Self {
        Self {
            mark: Some(v.mark),
            source: v.source,
            clock_went_back: v.went_back.is_some(),
            went_back_secs: v.went_back.map(|d| d.as_secs()),
            clock_skew: v.skew.is_some(),
            skew_secs: v.skew.map(|d| d.as_secs()),
            clock_jumped_forward: v.forward_jump.is_some(),
            forward_jump_secs: v.forward_jump.map(|d| d.as_secs()),
        }
    }
}

impl std::fmt::Display for ClockStatus {
    /// One `status` line: the source of "now", the mark, and each raised alarm.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match self.source {
            TimeSource::Wall => "wall clock",
            TimeSource::Mark => "high-water mark",
            TimeSource::Cloud => "cloud Date",
        };
        let mark = self.mark.map_or_else(|| "none".to_string(), |m| m.to_string());
        write!(f, "clock: expiry uses the {source}; mark {mark}")?;
        if let Some(s) = self.went_back_secs.filter(|_| self.clock_went_back) {
            write!(f, "; ALARM clock_went_back: wall clock {s} s behind the mark")?;
        }
        if let Some(s) = self.skew_secs.filter(|_| self.clock_skew) {
            write!(f, "; ALARM clock_skew: wall clock {s} s from the cloud's Date")?;
        }
        if let Some(s) = self.forward_jump_secs.filter(|_| self.clock_jumped_forward) {
            write!(
                f,
                "; ALARM clock_jumped_forward: wall clock {s} s ahead of the mark, expiries beyond a day past it held"
            )?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn t0() -> Timestamp {
        Timestamp::from_second(1_767_225_600).unwrap()
    }

    fn fresh(at: Timestamp) -> Option<Reading> {
        Some(Reading {
            at,
            age: SignedDuration::ZERO,
        })
    }

    #[test]
    fn a_consistent_wall_clock_is_used_and_advances_the_mark() {
        let wall = ManualClock::new(t0());
        let v = decide(wall.now(), fresh(t0() - SignedDuration::from_hours(1)), None);
        assert_eq!((v.now, v.mark, v.source), (t0(), t0(), TimeSource::Wall));
        assert_eq!((v.went_back, v.skew, v.forward_jump), (None, None, None));
        let first = decide(wall.now(), None, None);
        assert_eq!((first.now, first.mark), (t0(), t0()));
    }

    #[test]
    fn a_wall_clock_behind_the_mark_uses_the_mark_and_raises_clock_went_back() {
        // Power cut without an RTC battery: the wall clock comes up in 1970.
        let wall = ManualClock::new(Timestamp::UNIX_EPOCH);
        let v = decide(wall.now(), fresh(t0()), None);
        assert_eq!((v.now, v.mark, v.source), (t0(), t0(), TimeSource::Mark));
        assert_eq!(v.went_back, Some(t0().duration_since(Timestamp::UNIX_EPOCH)));
        // The mark keeps moving with monotonic time while the wall clock stays wrong.
        let later = Some(Reading {
            at: t0(),
            age: SignedDuration::from_secs(90),
        });
        wall.advance(SignedDuration::from_secs(90));
        let v = decide(wall.now(), later, None);
        assert_eq!(v.now, t0() + SignedDuration::from_secs(90));
        assert_eq!(v.mark, v.now);
    }

    #[test]
    fn a_small_step_back_uses_the_mark_without_an_alarm() {
        let v = decide(t0() - SignedDuration::from_secs(30), fresh(t0()), None);
        assert_eq!((v.now, v.went_back), (t0(), None));
    }

    #[test]
    fn a_wall_clock_far_from_the_cloud_raises_clock_skew_and_uses_the_cloud() {
        let cloud = Some(Reading {
            at: t0(),
            age: SignedDuration::from_secs(10),
        });
        let cloud_now = t0() + SignedDuration::from_secs(10);
        for wall in [
            cloud_now + SignedDuration::from_hours(48),
            cloud_now - SignedDuration::from_mins(6),
        ] {
            let v = decide(wall, fresh(t0() - SignedDuration::from_hours(1)), cloud);
            assert_eq!((v.now, v.mark, v.source), (cloud_now, cloud_now, TimeSource::Cloud));
            assert_eq!(v.skew, Some(wall.duration_since(cloud_now)));
            assert_eq!(v.went_back, None);
        }
    }

    #[test]
    fn a_wall_clock_within_five_minutes_of_the_cloud_is_used_and_rebases_a_wrong_mark() {
        let wall = t0() + SignedDuration::from_mins(4);
        let wrong_future_mark = fresh(t0() + SignedDuration::from_hours(24 * 365));
        let v = decide(wall, wrong_future_mark, fresh(t0()));
        assert_eq!((v.now, v.mark, v.source, v.skew), (wall, wall, TimeSource::Wall, None));
    }

    #[test]
    fn a_stale_cloud_reading_is_ignored() {
        let stale = Some(Reading {
            at: t0() - SignedDuration::from_hours(3),
            age: CLOUD_FRESH_FOR + SignedDuration::from_secs(1),
        });
        let v = decide(t0(), fresh(t0() - SignedDuration::from_mins(1)), stale);
        assert_eq!((v.now, v.source, v.skew), (t0(), TimeSource::Wall, None));
    }

    #[test]
    fn a_forward_jump_without_the_cloud_holds_expiry_a_day_past_the_mark() {
        let wall = t0() + SignedDuration::from_hours(24 * 400);
        let v = decide(wall, fresh(t0()), None);
        assert_eq!(
            (v.now, v.mark, v.source),
            (t0() + MAX_FORWARD_JUMP, t0(), TimeSource::Mark)
        );
        assert_eq!(v.forward_jump, Some(SignedDuration::from_hours(24 * 400)));
        let status = ClockStatus::from(&v);
        assert!(status.clock_jumped_forward && !status.clock_went_back && !status.clock_skew);
    }

    #[test]
    fn http_dates_parse_and_garbage_does_not() {
        assert_eq!(parse_http_date("Thu, 01 Jan 2026 00:00:00 GMT"), Some(t0()));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date(""), None);
    }
}
