//! The clock the agent trusts: the wall clock checked against the persisted high-water mark and the
//! cloud's `Date` by [`crate::clock::trust::decide`], behind the same `Clock` boundary, so the engine
//! and the expiry timer take the effective "now" without knowing (README "Clock trust").

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::clock::trust::{ClockStatus, Reading, Verdict, decide};
use crate::cloud::FaceCloud;
use crate::store::Store;

/// The mark is written to the store when it moved this far since the last write (or an alarm
/// changed): a lost write costs at most this much of the mark, in the conservative direction.
const PERSIST_EVERY: SignedDuration = SignedDuration::from_secs(60);

pub(crate) struct TrustedClock {
    wall: Arc<dyn Clock>,
    store: Store,
    cloud: Arc<dyn FaceCloud>,
    state: Mutex<State>,
}

struct State {
    /// The mark and the monotonic instant it was valid at.
    mark: Option<(Timestamp, Instant)>,
    /// What the store holds.
    persisted: ClockStatus,
}

impl TrustedClock {
    /// Starts from the mark persisted in `store` (none on a new store).
    pub(crate) fn new(wall: Arc<dyn Clock>, store: Store, cloud: Arc<dyn FaceCloud>) -> Self {
        let persisted = store.clock_status().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the clock mark from the store; starting without one");
            ClockStatus::default()
        });
        let mark = persisted.mark.map(|m| (m, Instant::now()));
        Self {
            wall,
            store,
            cloud,
            state: Mutex::new(State { mark, persisted }),
        }
    }

    /// Applies the trust rule now; persists the mark and logs an alarm once when it is raised.
    pub(crate) fn verdict(&self) -> Verdict {
        let wall = self.wall.now();
        let age = |at: Instant| SignedDuration::try_from(at.elapsed()).unwrap_or(SignedDuration::MAX);
        let cloud = self
            .cloud
            .last_date()
            .map(|(at, received)| Reading { at, age: age(received) });
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mark = state.mark.map(|(at, since)| Reading { at, age: age(since) });
        let v = decide(wall, mark, cloud);
        state.mark = Some((v.mark, Instant::now()));
        let status = ClockStatus::from(&v);
        let old = &state.persisted;
        if status.clock_went_back && !old.clock_went_back {
            tracing::warn!(wall = %wall, mark = %v.mark, "the wall clock went back behind the latest trusted time (RTC lost?); expiry uses the mark until it catches up");
        }
        if status.clock_skew && !old.clock_skew {
            tracing::warn!(wall = %wall, cloud = %v.now, skew_secs = status.skew_secs, "the wall clock is more than 5 minutes from the cloud's Date; expiry uses the cloud's time while the cloud answers");
        }
        if status.clock_jumped_forward && !old.clock_jumped_forward {
            tracing::warn!(wall = %wall, mark = %v.mark, "the wall clock is more than a day ahead of the latest trusted time; expiries beyond a day past the mark are held until the cloud confirms it");
        }
        let moved = old.mark.is_none_or(|m| v.mark.duration_since(m).abs() >= PERSIST_EVERY);
        let alarms_changed = ClockStatus {
            mark: None,
            ..status.clone()
        } != ClockStatus {
            mark: None,
            ..old.clone()
        };
        if moved || alarms_changed {
            match self.store.put_clock_status(&status) {
                Ok(()) => state.persisted = status,
                Err(e) => tracing::error!(error = %e, "cannot persist the clock mark"),
            }
        }
        v
    }
}

impl Clock for TrustedClock {
    fn now(&self) -> Timestamp {
        self.verdict().now
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::clock::ManualClock;
    use crate::clock::trust::TimeSource;
    use crate::cloud::{CloudError, CloudFace, ImageSource, RosterEntry};
    use crate::domain::UserKey;

    /// A cloud that only reports a `Date`.
    struct DateOnly(Mutex<Option<(Timestamp, Instant)>>);

    #[async_trait]
    impl FaceCloud for DateOnly {
        async fn roster(&self) -> Result<Vec<RosterEntry>, CloudError> {
            Ok(Vec::new())
        }
        async fn get_face(&self, key: &UserKey) -> Result<CloudFace, CloudError> {
            Err(CloudError::Config(format!("no face for {key}")))
        }
        async fn fetch_image(&self, _src: &ImageSource) -> Result<Vec<u8>, CloudError> {
            Ok(Vec::new())
        }
        async fn delete_face(&self, _key: &UserKey) -> Result<(), CloudError> {
            Ok(())
        }
        async fn modify_user(&self, _: &str, _: Option<&str>, _: Option<&str>) -> Result<(), CloudError> {
            Ok(())
        }
        fn last_date(&self) -> Option<(Timestamp, Instant)> {
            *self.0.lock().unwrap()
        }
    }

    fn t0() -> Timestamp {
        Timestamp::from_second(1_767_225_600).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_mark_survives_a_restart_and_a_clock_that_went_back() {
        let dir = tempfile::tempdir().unwrap();
        let wall = Arc::new(ManualClock::new(t0()));
        let cloud = Arc::new(DateOnly(Mutex::new(None)));
        {
            let store = Store::open(dir.path()).unwrap();
            let clock = TrustedClock::new(wall.clone(), store.clone(), cloud.clone());
            assert_eq!(clock.now(), t0());
            assert_eq!(store.clock_status().unwrap().mark, Some(t0()));
        }
        // Power cut, RTC lost: the wall clock restarts in 1970.
        wall.set(Timestamp::UNIX_EPOCH);
        let store = Store::open(dir.path()).unwrap();
        let clock = TrustedClock::new(wall.clone(), store.clone(), cloud.clone());
        assert_eq!(clock.now(), t0());
        let status = store.clock_status().unwrap();
        assert!(status.clock_went_back, "{status:?}");
        assert_eq!(status.source, TimeSource::Mark);
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        assert_eq!(
            clock.now(),
            t0() + SignedDuration::from_secs(120),
            "the mark moves with monotonic time"
        );
        // The cloud answers: its time wins and the alarm turns into a skew alarm.
        *cloud.0.lock().unwrap() = Some((t0() + SignedDuration::from_secs(200), Instant::now()));
        assert_eq!(clock.now(), t0() + SignedDuration::from_secs(200));
        let status = store.clock_status().unwrap();
        assert!(status.clock_skew && !status.clock_went_back, "{status:?}");
        assert_eq!(status.source, TimeSource::Cloud);
    }
}
