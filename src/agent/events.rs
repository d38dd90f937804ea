//! What the daemon reports as it works: for tests, the demo and benchmarks (logs carry the same).

use std::path::PathBuf;

use crate::sync::engine::{DoorSyncReport, OutboxReport, Removal, RemovalCause};
use crate::sync::pull::PullReport;

/// One thing the daemon did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonEvent {
    /// The control socket listens; every task runs.
    Ready {
        socket: PathBuf,
    },
    Pulled {
        report: PullReport,
    },
    PullFailed {
        error: String,
    },
    /// A door worker finished one sync.
    DoorSynced {
        report: DoorSyncReport,
    },
    /// Users were deleted from a door (or could not be: `removal.error`) outside its normal plan.
    Removed {
        cause: RemovalCause,
        removal: Removal,
    },
    OutboxFlushed {
        report: OutboxReport,
    },
    /// Every task stopped; the store is flushed.
    Stopped,
}

/// A sender that may be absent (no one listens).
#[derive(Debug, Clone, Default)]
pub(crate) struct Events(Option<tokio::sync::broadcast::Sender<DaemonEvent>>);

impl Events {
    pub(crate) fn new(tx: Option<tokio::sync::broadcast::Sender<DaemonEvent>>) -> Self {
        Self(tx)
    }

    pub(crate) fn emit(&self, event: DaemonEvent) {
        if let Some(tx) = &self.0 {
            // No receiver is fine: events are for whoever cares to watch.
            let _ = tx.send(event);
        }
    }

    pub(crate) fn removals(&self, cause: RemovalCause, removals: &[Removal]) {
        for r in removals.iter().filter(|r| !r.removed.is_empty() || r.error.is_some()) {
            self.emit(DaemonEvent::Removed {
                cause,
                removal: r.clone(),
            });
        }
    }
}
