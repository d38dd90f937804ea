//! Doors in the daemon: the factory seam that turns `[[door]]` config into `Door`s (with the driver
//! futures that run their links), and the per-door worker that keeps each door converged.
//!
//! A worker applies its door's plan whenever desired state changes, verifies at start-up and every
//! `verify_interval`, and retries with backoff while the door is unreachable. Deletes need no queue
//! of their own: the plan is level-triggered and always puts them first, so the first thing a door
//! that comes back receives is every delete it missed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::clock::until;
use super::events::{DaemonEvent, Events};
use super::shutdown::CancellationToken;
use bytes::Bytes;

use crate::config::{DoorConfig, LineConfig};
use crate::domain::{DoorRecord, DoorUserId, FaceRef, Profile};
use crate::door::{
    BucketDigest, Door, DoorDigest, DoorError, DoorInfo, DoorListEntry, FaceStatus, OsdpDoor, OsdpDoorOptions,
};
use crate::retry::{Backoff, RetryPolicy};
use crate::sync::engine::Engine;

/// A door ready for the daemon, with the future that drives its link (spawned by the daemon).
pub struct DaemonDoor {
    pub name: String,
    pub profile: Profile,
    pub door: Arc<dyn Door>,
    pub driver: Option<BoxFuture<'static, ()>>,
}

/// Why a configured door could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("door {door}: {reason}")]
pub struct DoorOpenError {
    pub door: String,
    pub reason: String,
}

/// Builds doors from configuration: the OSDP driver in production, in-memory doors in tests.
#[async_trait]
pub trait DoorFactory: Send + Sync {
    /// Opens the doors of one line (all on `line.port`, in configuration order): one result per door,
    /// in order. The line's driver future comes with the first door that opened.
    async fn open_line(&self, doors: &[DoorConfig], line: &LineConfig) -> Vec<Result<DaemonDoor, DoorOpenError>>;
}

/// Real doors: [`OsdpDoor`]s on each line's serial port, one bus driver per port.
#[derive(Debug, Default)]
pub(crate) struct OsdpDoorFactory;

#[async_trait]
impl DoorFactory for OsdpDoorFactory {
    async fn open_line(&self, doors: &[DoorConfig], line: &LineConfig) -> Vec<Result<DaemonDoor, DoorOpenError>> {
        let fail = |door: &DoorConfig, reason: String| DoorOpenError {
            door: door.name.clone(),
            reason,
        };
        let mut results: Vec<Option<Result<DaemonDoor, DoorOpenError>>> = Vec::with_capacity(doors.len());
        let mut sessions = Vec::new();
        let mut on_line = Vec::new();
        for door in doors {
            match session_config(door) {
                Ok(session) => {
                    sessions.push(session);
                    on_line.push(door);
                    results.push(None);
                }
                Err(reason) => results.push(Some(Err(fail(door, reason)))),
            }
        }
        let Some(first) = on_line.first() else {
            return results.into_iter().flatten().collect();
        };
        let rs485 = line.rs485.map(|m| crate::serial::Rs485Mode {
            rts_low_on_send: m.rts == crate::config::Rs485Rts::LowOnSend,
            delay_before_send: m.delay_before_send,
            delay_after_send: m.delay_after_send,
        });
        let stream = match crate::serial::open_line(&line.port, first.baud, rs485.as_ref()) {
            Ok(stream) => stream,
            Err(e) => {
                let reason = e.to_string();
                return doors
                    .iter()
                    .zip(results)
                    .map(|(door, r)| r.unwrap_or_else(|| Err(fail(door, reason.clone()))))
                    .collect();
            }
        };
        let options = crate::serial::link::LineOptions {
            discard_echo: line.discard_echo,
        };
        let (handles, driver) = crate::serial::link::bus(stream, sessions, options);
        let mut reports = Vec::new();
        let mut opened = Vec::new();
        for (door, handle) in on_line.iter().zip(handles) {
            let osdp = OsdpDoor::on_link(handle, &door.profile, OsdpDoorOptions::default());
            reports.push((door.name.clone(), osdp.watch_link()));
            opened.push(DaemonDoor {
                name: door.name.clone(),
                profile: door.profile.clone(),
                door: Arc::new(osdp),
                driver: None,
            });
        }
        let port = line.port.display().to_string();
        let driver: BoxFuture<'static, ()> = Box::pin(async move {
            let reports = futures::future::join_all(
                reports
                    .into_iter()
                    .map(|(name, mut status)| async move { report_secure_channel(&name, &mut status).await }),
            );
            tokio::select! {
                ended = driver.run() => if let Err(e) = ended {
                    tracing::error!(port, error = %e, "door line stopped");
                },
                _ = reports => {}
            }
        });
        if let Some(first) = opened.first_mut() {
            first.driver = Some(driver);
        }
        let mut opened = opened.into_iter();
        results
            .into_iter()
            .filter_map(|r| r.or_else(|| opened.next().map(Ok)))
            .collect()
    }
}

/// A door's session settings; a door with scbk_file speaks only Secure Channel (its key was read,
/// 0600, with the config).
fn session_config(door: &DoorConfig) -> Result<crate::osdp::SessionConfig, String> {
    let secure = match (&door.scbk, &door.scbk_file) {
        (Some(key), _) => Some(crate::osdp::SecureConfig::new(
            crate::osdp::sc::Scbk::from_slice(key.expose()).ok_or("scbk_file does not hold a 16-byte key")?,
        )),
        (None, Some(_)) => return Err("scbk_file is set but the key was not read".into()),
        (None, None) => None,
    };
    let mut session = OsdpDoor::session_config(door.osdp_address, &door.profile);
    session.reply_timeout = door.reply_timeout;
    session.secure = secure;
    Ok(session)
}

/// Logs each change of a door's Secure Channel failure once (a wrong key is retried every second; the
/// log says it when it starts and when it ends). Returns when the link driver is gone.
async fn report_secure_channel(name: &str, status: &mut tokio::sync::watch::Receiver<crate::serial::link::LinkStatus>) {
    let mut last: Option<String> = None;
    while status.changed().await.is_ok() {
        let now = status.borrow_and_update().secure_error.clone();
        if now != last {
            match &now {
                Some(e) => tracing::error!("door {name}: secure channel handshake failed: {e}"),
                None => tracing::info!("door {name}: secure channel established"),
            }
            last = now;
        }
    }
}

/// The factory `doorsync run`, `sync` and `revoke` use.
pub(crate) fn default_factory() -> Box<dyn DoorFactory> {
    Box::new(OsdpDoorFactory)
}

/// Opens every configured door, the doors of one port together on one line (with that port's
/// `[[line]]` settings from `lines`). A door that fails to open is still returned, as an
/// [`UnopenedDoor`] that answers every call with the reason (so `status` and reports show it), and its
/// error is listed. Doors come back in configuration order.
pub(crate) async fn open_all(
    factory: &dyn DoorFactory,
    doors: &[DoorConfig],
    lines: &[LineConfig],
) -> (Vec<DaemonDoor>, Vec<DoorOpenError>) {
    let mut ports: Vec<&std::path::Path> = Vec::new();
    for d in doors {
        if !ports.contains(&d.port.as_path()) {
            ports.push(&d.port);
        }
    }
    let mut by_name: Vec<(String, DaemonDoor)> = Vec::with_capacity(doors.len());
    let mut failed = Vec::new();
    for port in ports {
        let on_port: Vec<DoorConfig> = doors.iter().filter(|d| d.port == port).cloned().collect();
        let line = LineConfig::of_port(lines, port);
        for (d, result) in on_port.iter().zip(factory.open_line(&on_port, &line).await) {
            let door = result.unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot open door");
                let unopened = DaemonDoor {
                    name: d.name.clone(),
                    profile: d.profile.clone(),
                    door: Arc::new(UnopenedDoor {
                        reason: e.reason.clone(),
                    }),
                    driver: None,
                };
                failed.push(e);
                unopened
            });
            by_name.push((d.name.clone(), door));
        }
    }
    let opened = doors
        .iter()
        .filter_map(|d| {
            let i = by_name.iter().position(|(n, _)| *n == d.name)?;
            Some(by_name.swap_remove(i).1)
        })
        .collect();
    (opened, failed)
}

/// A configured door that could not be opened: every call fails with the reason, as an offline door.
#[derive(Debug, Clone)]
pub struct UnopenedDoor {
    pub reason: String,
}

impl UnopenedDoor {
    fn err(&self) -> DoorError {
        DoorError::Offline {
            reason: self.reason.clone(),
        }
    }
}

#[async_trait]
impl Door for UnopenedDoor {
    async fn upsert_users(&self, _: &[DoorRecord]) -> Result<(), DoorError> {
        Err(self.err())
    }
    async fn put_face(&self, _: DoorUserId, _: FaceRef, _: Bytes) -> Result<(), DoorError> {
        Err(self.err())
    }
    async fn delete_users(&self, _: &[DoorUserId]) -> Result<(), DoorError> {
        Err(self.err())
    }
    async fn digest(&self) -> Result<DoorDigest, DoorError> {
        Err(self.err())
    }
    async fn bucket_digests(&self) -> Result<Vec<BucketDigest>, DoorError> {
        Err(self.err())
    }
    async fn list(&self, _: u8) -> Result<Vec<DoorListEntry>, DoorError> {
        Err(self.err())
    }
    async fn face_status(&self, _: DoorUserId) -> Result<FaceStatus, DoorError> {
        Err(self.err())
    }
    async fn clear(&self) -> Result<(), DoorError> {
        Err(self.err())
    }
    async fn info(&self) -> Result<DoorInfo, DoorError> {
        Err(self.err())
    }
}

/// Runs `work` while the doors' drivers run, without spawning (for CLI commands that work without
/// the daemon). A driver that ends first does not end `work`: its door just stops answering.
pub(crate) async fn with_drivers<T>(work: impl Future<Output = T>, drivers: Vec<BoxFuture<'static, ()>>) -> T {
    let drivers = futures::future::join_all(drivers);
    tokio::pin!(work, drivers);
    let mut drivers_done = false;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = &mut drivers, if !drivers_done => drivers_done = true,
        }
    }
}

/// Timing of a door worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerTiming {
    /// First retry delay after a door stopped answering; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Longest sleep between checks, so a changed wall clock or a due verification is noticed.
    pub idle_max: Duration,
}

/// Keeps one door converged until `token` is cancelled.
pub(super) async fn door_worker(
    engine: Arc<Engine>,
    name: String,
    timing: WorkerTiming,
    token: CancellationToken,
    events: Events,
) {
    let mut changes = engine.subscribe();
    let mut retry = Backoff::new(RetryPolicy::unbounded(timing.retry_min, timing.retry_max));
    // Start-up verification: the door may have been replaced or reset while the daemon was down.
    let mut verify = true;
    loop {
        if token.is_cancelled() {
            break;
        }
        changes.borrow_and_update();
        let verify_now = verify || engine.verify_due(&name).unwrap_or(false);
        let wait = match engine.sync_door(&name, verify_now, &|_| {}).await {
            Ok(report) => {
                if verify_now && report.verify_error.is_none() {
                    verify = false;
                }
                // Users the door refused for good (a face it cannot take, a full door) are reported
                // in `status`; re-sending them every few seconds would only waste the line, so they
                // wait for a change of desired state like a converged door does.
                let unreachable =
                    report.apply.error.is_some() || report.verify_error.is_some() || report.confirmed == Some(false);
                let wait = if report.apply.interrupted {
                    Some(Duration::ZERO)
                } else if unreachable {
                    Some(retry.next_delay())
                } else {
                    retry.reset();
                    None
                };
                if !report.converged {
                    tracing::info!(door = name, error = ?report.apply.error, pending = report.apply.pending, ?wait, "door not converged; retrying");
                }
                events.emit(DaemonEvent::DoorSynced { report });
                wait
            }
            Err(e) => {
                tracing::error!(door = name, error = %e, "door sync failed");
                Some(retry.next_delay())
            }
        };
        let next_verify = engine
            .store()
            .door_status(&name)
            .ok()
            .and_then(|s| s.last_verified_at)
            .and_then(|t| {
                let interval = jiff::SignedDuration::try_from(engine.settings().verify_interval).ok()?;
                t.checked_add(interval).ok()
            });
        let idle = next_verify.map_or(timing.idle_max, |at| until(engine.now(), at, timing.idle_max));
        let sleep = wait.map_or(idle, |w| w.min(idle));
        tokio::select! {
            () = token.cancelled() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::debug!(door = name, "door worker stopped");
}
