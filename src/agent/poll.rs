//! The pull loop: the roster and faces every `poll_interval`. A failed pull changes nothing; the
//! doors keep being corrected from the cached desired state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::events::{DaemonEvent, Events};
use super::shutdown::CancellationToken;
use crate::sync::engine::{Engine, RemovalCause};
use crate::sync::pull::PullError;

pub(super) async fn pull_loop(
    engine: Arc<Engine>,
    interval: Duration,
    force_first: bool,
    outbox_wake: Arc<Notify>,
    token: CancellationToken,
    events: Events,
) {
    let mut force = force_first;
    loop {
        let pulled = tokio::select! {
            () = token.cancelled() => break,
            pulled = engine.pull(force) => pulled,
        };
        match pulled {
            Ok((report, removals)) => {
                tracing::info!(
                    users = report.users_total,
                    downloaded = report.images_downloaded,
                    changed = report.changed,
                    "pull done"
                );
                events.removals(RemovalCause::RosterChange, &removals);
                events.emit(DaemonEvent::Pulled { report });
                // The cloud answers again: whatever waited in the outbox can go now.
                outbox_wake.notify_one();
            }
            Err(e) => {
                match &e {
                    PullError::MassUserGone { .. } => tracing::error!(error = %e, "pull refused; nobody purged"),
                    _ => tracing::warn!(error = %e, "pull failed; doors keep the cached desired state"),
                }
                events.emit(DaemonEvent::PullFailed { error: e.to_string() });
            }
        }
        force = false;
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    tracing::debug!("pull loop stopped");
}
