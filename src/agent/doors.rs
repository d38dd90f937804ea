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

use crate::config::DoorConfig;
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
    async fn open(&self, door: &DoorConfig) -> Result<DaemonDoor, DoorOpenError>;
}

/// Real doors: [`OsdpDoor`] on each `[[door]]`'s serial port.
#[derive(Debug, Default)]
pub struct OsdpDoorFactory {
    /// Ports already opened, by the door that has them.
    ports: std::sync::Mutex<Vec<(std::path::PathBuf, String)>>,
}

#[async_trait]
impl DoorFactory for OsdpDoorFactory {
    async fn open(&self, door: &DoorConfig) -> Result<DaemonDoor, DoorOpenError> {
        let fail = |reason: String| DoorOpenError {
            door: door.name.clone(),
            reason,
        };
        // A door with scbk_file speaks only Secure Channel; its key was read (0600) with the config.
        let secure = match (&door.scbk, &door.scbk_file) {
            (Some(key), _) => Some(crate::osdp::SecureConfig::new(
                crate::osdp::sc::Scbk::from_slice(key.expose())
                    .ok_or_else(|| fail("scbk_file does not hold a 16-byte key".into()))?,
            )),
            (None, Some(_)) => return Err(fail("scbk_file is set but the key was not read".into())),
            (None, None) => None,
        };
        {
            let mut ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, other)) = ports.iter().find(|(p, _)| *p == door.port) {
                return Err(fail(format!(
                    "shares {} with door {other}; several doors on one line are not supported by this build yet",
                    door.port.display()
                )));
            }
            ports.push((door.port.clone(), door.name.clone()));
        }
        let stream = crate::serial::open(&door.port, door.baud).map_err(|e| fail(e.to_string()))?;
        let mut session = OsdpDoor::session_config(door.osdp_address, &door.profile);
        session.reply_timeout = door.reply_timeout;
        session.secure = secure;
        let (osdp, driver) = OsdpDoor::with_session(stream, session, &door.profile, OsdpDoorOptions::default());
        let name = door.name.clone();
        let mut link_status = osdp.watch_link();
        let driver: BoxFuture<'static, ()> = Box::pin(async move {
            tokio::select! {
                ended = driver.run() => if let Err(e) = ended {
                    tracing::error!(door = name, error = %e, "door link stopped");
                },
                () = report_secure_channel(&name, &mut link_status) => {}
            }
        });
        Ok(DaemonDoor {
            name: door.name.clone(),
            profile: door.profile.clone(),
            door: Arc::new(osdp),
            driver: Some(driver),
        })
    }
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
pub fn default_factory() -> Box<dyn DoorFactory> {
    Box::new(OsdpDoorFactory::default())
}

/// Opens every configured door. A door that fails to open is still returned, as an [`UnopenedDoor`]
/// that answers every call with the reason (so `status` and reports show it), and its error is listed.
pub async fn open_all(factory: &dyn DoorFactory, doors: &[DoorConfig]) -> (Vec<DaemonDoor>, Vec<DoorOpenError>) {
    let mut opened = Vec::new();
    let mut failed = Vec::new();
    for d in doors {
        match factory.open(d).await {
            Ok(door) => opened.push(door),
            Err(e) => {
                tracing::error!(error = %e, "cannot open door");
                opened.push(DaemonDoor {
                    name: d.name.clone(),
                    profile: d.profile.clone(),
                    door: Arc::new(UnopenedDoor {
                        reason: e.reason.clone(),
                    }),
                    driver: None,
                });
                failed.push(e);
            }
        }
    }
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
pub async fn with_drivers<T>(work: impl Future<Output = T>, drivers: Vec<BoxFuture<'static, ()>>) -> T {
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
pub struct WorkerTiming {
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
