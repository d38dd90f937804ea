//! How a pull's changes reach the doors while the pull still runs: removals at once (urgent deletes
//! around the apply locks, plans in flight invalidated), additions by waking idle door workers without
//! interrupting an apply, first at once and then at intervals doubling from [`ADDITIONS_NOTICE`] to
//! [`ADDITIONS_NOTICE_MAX`]: each wake-up costs a door a re-plan over the whole roster, so a first pass
//! of thousands of users must not cost one per user or per second.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Engine, Removal, RemovalCause};
use crate::store::StoreError;
use crate::sync::pull::PullSink;

/// Time between the first two wake-ups of the door workers for additions during one pull.
pub(super) const ADDITIONS_NOTICE: Duration = Duration::from_secs(1);
/// The longest time an addition waits for its wake-up while a long pull runs.
pub(super) const ADDITIONS_NOTICE_MAX: Duration = Duration::from_secs(30);

pub(super) struct PassSink<'a> {
    engine: &'a Engine,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the door workers were last told of a change.
    last_notice: Option<Instant>,
    /// The wait before the next notice of additions (doubles up to `ADDITIONS_NOTICE_MAX`).
    notice_interval: Duration,
    /// Additions written since then that no door worker was told of.
    unannounced: bool,
    /// What the urgent deletes of this pull removed, door by door.
    removals: Vec<Removal>,
}

impl<'a> PassSink<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            state: Mutex::new(State {
                notice_interval: ADDITIONS_NOTICE,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters behind; they are still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells the door workers of additions not yet announced and returns what was removed.
    pub(super) fn finish(self) -> Vec<Removal> {
        let state = self
            .state
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.unannounced {
            self.engine.notify();
        }
        state.removals
    }
}

#[async_trait::async_trait]
impl PullSink for PassSink<'_> {
    async fn changed(&self, removal: bool) -> Result<(), StoreError> {
        let now = Instant::now();
        if !removal {
            let mut state = self.state();
            if let Some(last) = state.last_notice {
                if now.duration_since(last) < state.notice_interval {
                    state.unannounced = true;
                    return Ok(());
                }
                state.notice_interval = (state.notice_interval * 2).min(ADDITIONS_NOTICE_MAX);
            }
            state.last_notice = Some(now);
            state.unannounced = false;
            drop(state);
            self.engine.notify();
            return Ok(());
        }
        // Applies in flight stop before their next upload, so a plan made before this change never
        // re-adds the person being removed; the deletes then go around the apply locks.
        self.engine.bump();
        {
            // The bump woke every door worker: additions written so far are announced too.
            let mut state = self.state();
            state.last_notice = Some(now);
            state.unannounced = false;
        }
        let removed = self
            .engine
            .remove_undesired(RemovalCause::RosterChange, self.engine.now())
            .await?;
        self.state().removals.extend(
            removed
                .into_iter()
                .filter(|r| !r.removed.is_empty() || r.error.is_some()),
        );
        Ok(())
    }

    fn now(&self) -> jiff::Timestamp {
        self.engine.now()
    }
}
