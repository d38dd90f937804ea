//! How a pull's changes reach the doors while the pull still runs: removals at once (urgent deletes
//! around the apply locks), additions by waking the door workers at most once per
//! [`ADDITIONS_NOTICE`], so a first pass of thousands of users does not make every door re-plan per user.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Engine, Removal, RemovalCause};
use crate::store::StoreError;
use crate::sync::pull::PullSink;

/// Shortest time between two wake-ups of the door workers for additions during one pull. A door
/// applying when it is woken re-plans before its next upload, so this bounds the re-plans per second.
pub(super) const ADDITIONS_NOTICE: Duration = Duration::from_secs(1);

pub(super) struct PassSink<'a> {
    engine: &'a Engine,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the door workers were last told of a change.
    last_notice: Option<Instant>,
    /// Additions written since then that no door worker was told of.
    unannounced: bool,
    /// What the urgent deletes of this pull removed, door by door.
    removals: Vec<Removal>,
}

impl<'a> PassSink<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            state: Mutex::new(State::default()),
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
            self.engine.bump();
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
            if state
                .last_notice
                .is_some_and(|t| now.duration_since(t) < ADDITIONS_NOTICE)
            {
                state.unannounced = true;
                return Ok(());
            }
            state.last_notice = Some(now);
            state.unannounced = false;
            drop(state);
            self.engine.bump();
            return Ok(());
        }
        // Applies in flight stop before their next upload, so a plan made before this change never
        // re-adds the person being removed; the deletes then go around the apply locks.
        self.engine.bump();
        {
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
