//! The expiry timer: wakes at the nearest `expire_at` and deletes that person from every reachable
//! door at once (invariant 2), from the store alone — no cloud needed.

use std::sync::Arc;
use std::time::Duration;

use super::clock::until;
use super::events::Events;
use super::shutdown::CancellationToken;
use crate::sync::engine::{Engine, RemovalCause};

/// Longest sleep: a wall clock changed by NTP is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub(super) async fn expiry_timer(engine: Arc<Engine>, token: CancellationToken, events: Events) {
    let mut changes = engine.subscribe();
    loop {
        changes.borrow_and_update();
        let next = match engine.next_expiry() {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "cannot read expiries from the store");
                None
            }
        };
        let sleep = next.map_or(MAX_SLEEP, |at| until(engine.now(), at, MAX_SLEEP));
        tokio::select! {
            () = token.cancelled() => break,
            // Desired state changed (a pull, a revoke): the nearest expiry may have moved.
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            () = tokio::time::sleep(sleep) => {}
        }
        let Some(at) = next.filter(|at| *at <= engine.now()) else {
            continue;
        };
        // Applies in flight may hold a plan made before the expiry: make them re-plan too.
        engine.bump();
        match engine.remove_undesired(RemovalCause::Expired, at).await {
            Ok(removals) => events.removals(RemovalCause::Expired, &removals),
            Err(e) => tracing::error!(error = %e, "expiry: cannot record the deletes"),
        }
    }
    tracing::debug!("expiry timer stopped");
}
