//! The cloud outbox sender: queued face deletes and user modifies go to the cloud in order once it
//! answers, retried with backoff and jitter while it does not.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::events::{DaemonEvent, Events};
use super::shutdown::CancellationToken;
use crate::retry::{Backoff, RetryPolicy};
use crate::sync::engine::Engine;

pub(super) async fn outbox_sender(
    engine: Arc<Engine>,
    wake: Arc<Notify>,
    retry: (Duration, Duration),
    token: CancellationToken,
    events: Events,
) {
    let mut backoff = Backoff::new(RetryPolicy::unbounded(retry.0, retry.1));
    loop {
        let wait = if engine.store().outbox_len() == 0 {
            None
        } else {
            match engine.flush_outbox().await {
                Ok(report) => {
                    let failed = report.error.is_some();
                    events.emit(DaemonEvent::OutboxFlushed { report });
                    if failed {
                        Some(backoff.next_delay())
                    } else {
                        backoff.reset();
                        None
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox: store error");
                    Some(backoff.next_delay())
                }
            }
        };
        tokio::select! {
            () = token.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait.unwrap_or(Duration::MAX)), if wait.is_some() => {}
        }
    }
    tracing::debug!("outbox sender stopped");
}
