//! The sync engine: owns one pass (pull → store → per-door plan and apply → verify) and the urgent
//! deletes (revocation, expiry, roster removal) that must reach the doors without waiting behind a
//! door's face transfer.
//!
//! One engine serves the daemon and the CLI alike; it spawns nothing. Each door has an apply lock, so
//! only one plan is applied to a door at a time (the daemon's worker, or a `sync` request), while
//! urgent deletes go around the lock — `Door` implementations accept a delete during a transfer.
//! Every change of desired state bumps a generation counter: an apply in flight stops before its next
//! upload and re-plans, so a stale plan never re-adds someone just removed.

mod faces;
mod local;
mod removal;
mod sink;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

pub use local::{DroppedCall, ModifyReport, OutboxReport, RevokeReport};
pub use removal::{Removal, RemovalCause};
use sink::PassSink;

use super::apply::{self, ApplyError, ApplyReport, DoorTarget};
use super::guard::{self, GuardSettings, HeldSummary};
use super::pull::{self, PullError, PullOptions, PullReport};
use super::verify::{self, VerifyError, VerifyReport};
use crate::clock::Clock;
use crate::cloud::FaceCloud;
use crate::domain::Profile;
use crate::door::{Door, FailureClass};
use crate::store::{Store, StoreError};

/// A stale plan is re-planned at most this many times in one door sync; desired state changing faster
/// than that is left to the next sync.
const MAX_REPLANS: usize = 8;

/// [`EngineSettings::urgent_delete_wait`] for the default 200 ms reply timeout: the DELETE's reply
/// timeout, one discovery attempt (osdp_ID and osdp_CAP), and 2 s for the poll schedule.
pub(crate) const DEFAULT_URGENT_DELETE_WAIT: Duration = Duration::from_millis(3 * 200 + 2000);

/// One door as the engine holds it.
pub struct EngineDoor {
    pub name: String,
    pub profile: Profile,
    pub door: Arc<dyn Door>,
}

/// Engine tuning from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Users fetched from the cloud at once (`cloud.max_concurrency`).
    pub max_concurrency: usize,
    /// A door not verified for this long is verified on its next sync (`sync.verify_interval`).
    pub verify_interval: Duration,
    /// How long an urgent delete (revoke, expiry, roster removal) waits for one door before
    /// reporting it unreached: one reply timeout plus one discovery attempt (see
    /// `agent::urgent_delete_wait`).
    pub urgent_delete_wait: Duration,
    /// The mass-removal guard (`sync.max_implicit_removals`, `sync.removal_hold`).
    pub guard: GuardSettings,
    /// Walk the roster again this long after the last walk while a pull's detail calls still run
    /// (the daemon's `cloud.poll_interval`); `None` (one-shot CLI passes): once per pull.
    pub roster_interval: Option<Duration>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_concurrency: 8,
            verify_interval: Duration::from_secs(3600),
            urgent_delete_wait: DEFAULT_URGENT_DELETE_WAIT,
            guard: GuardSettings::default(),
            roster_interval: None,
        }
    }
}

/// What one pass should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOptions {
    /// Re-pull every user and image ignoring caches, read back every door, repair every difference.
    pub force_refresh: bool,
    /// Verify every door even if not due.
    pub verify: bool,
    /// Only this door (the pull still covers the whole roster).
    pub door: Option<String>,
    /// Apply the removals the mass-removal guard holds, if this pull still agrees they are gone.
    pub confirm_removals: bool,
}

/// Progress of a pass, for a CLI bar or log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub message: String,
    pub done: u64,
    pub total: u64,
}

/// Where progress goes; called often, so it must not block.
pub(crate) type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// What a pass did. `doorsync sync --json` prints this object (stable field names; see README).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassReport {
    /// Every door synced in this pass holds exactly the desired state.
    pub converged: bool,
    pub force_refresh: bool,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The pull, when it succeeded.
    pub pull: Option<PullReport>,
    /// Why the pull failed; the doors were then corrected from the cached desired state.
    pub pull_error: Option<String>,
    /// The pull was refused because most users came back "gone": nobody was purged (docs/cloud-api.md §3).
    pub mass_user_gone: bool,
    /// Users removed from doors right after the pull, before any upload.
    pub removed_at_once: u64,
    /// Implicit removals the mass-removal guard holds (README, "Roster integrity").
    #[serde(default)]
    pub removals_held: Option<HeldSummary>,
    /// Users failing now (bad image, bad record), by key, with the reason.
    #[serde(default)]
    pub failed: BTreeMap<String, String>,
    pub doors: Vec<DoorSyncReport>,
}

/// What one door sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorSyncReport {
    pub name: String,
    /// The door acknowledged everything planned for it and no user failed on it.
    pub converged: bool,
    /// The read-back before applying, when the door was verified.
    pub verify: Option<VerifyReport>,
    pub verify_error: Option<String>,
    /// The ops sent (summed over re-plans).
    pub apply: ApplyReport,
    /// After repairs, whether the door's digest matched the record (verified syncs only).
    pub confirmed: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("no door named {0:?} is configured")]
    UnknownDoor(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

struct DoorSlot {
    name: String,
    profile: Profile,
    door: Arc<dyn Door>,
    /// Held while a plan is applied or the door verified; urgent deletes do not take it.
    apply_lock: Mutex<()>,
    /// The door failed to answer since it was last verified: it is read back before anything else is
    /// sent to it (see `sync_door`), so strangers and crash leftovers go first.
    unverified_since_outage: AtomicBool,
}

impl DoorSlot {
    fn note_unreachable(&self) {
        self.unverified_since_outage.store(true, Ordering::SeqCst);
    }

    fn target(&self) -> DoorTarget<'_> {
        DoorTarget {
            name: &self.name,
            profile: &self.profile,
            door: self.door.as_ref(),
        }
    }
}

/// The sync engine over one store, one cloud and the configured doors.
pub struct Engine {
    store: Store,
    cloud: Arc<dyn FaceCloud>,
    clock: Arc<dyn Clock>,
    doors: Vec<DoorSlot>,
    profiles: Vec<Profile>,
    settings: EngineSettings,
    generation: AtomicU64,
    changes: watch::Sender<u64>,
    pull_lock: Mutex<()>,
    outbox_lock: Mutex<()>,
    stopping: AtomicBool,
}

impl Engine {
    pub fn new(
        store: Store,
        cloud: Arc<dyn FaceCloud>,
        clock: Arc<dyn Clock>,
        doors: Vec<EngineDoor>,
        settings: EngineSettings,
    ) -> Self {
        let mut profiles: Vec<Profile> = Vec::new();
        for d in &doors {
            if !profiles.iter().any(|p| p.name == d.profile.name) {
                profiles.push(d.profile.clone());
            }
        }
        let doors = doors
            .into_iter()
            .map(|d| DoorSlot {
                name: d.name,
                profile: d.profile,
                door: d.door,
                apply_lock: Mutex::new(()),
                unverified_since_outage: AtomicBool::new(false),
            })
            .collect();
        Self {
            store,
            cloud,
            clock,
            doors,
            profiles,
            settings,
            generation: AtomicU64::new(0),
            changes: watch::channel(0).0,
            pull_lock: Mutex::new(()),
            outbox_lock: Mutex::new(()),
            stopping: AtomicBool::new(false),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn settings(&self) -> EngineSettings {
        self.settings
    }

    /// Each door's name and profile, in configuration order (for `explain`).
    pub(crate) fn door_profiles(&self) -> Vec<(&str, &Profile)> {
        self.doors.iter().map(|d| (d.name.as_str(), &d.profile)).collect()
    }

    /// Each door's live link state (for the daemon's `status`), by name.
    pub(crate) fn link_snapshots(&self) -> Vec<(&str, Option<crate::door::LinkSnapshot>)> {
        self.doors
            .iter()
            .map(|d| (d.name.as_str(), d.door.link_snapshot()))
            .collect()
    }

    pub(crate) fn door_names(&self) -> Vec<&str> {
        self.doors.iter().map(|d| d.name.as_str()).collect()
    }

    /// Fires (with the new generation) whenever desired state changed; door workers and the expiry
    /// timer wait on it.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Records that desired state changed: applies in flight stop before their next upload.
    pub(crate) fn bump(&self) {
        let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.changes.send_replace(g);
    }

    /// Wakes idle door workers without invalidating plans in flight: for additions (a new user, a new
    /// face), which a stale plan cannot make unsafe — it only sends them one apply later.
    pub(crate) fn notify(&self) {
        self.changes.send_modify(|_| {});
    }

    /// Stops applies in flight at their next op boundary (graceful shutdown); urgent deletes still run.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.bump();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn slot(&self, name: &str) -> Result<&DoorSlot, EngineError> {
        self.doors
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| EngineError::UnknownDoor(name.to_string()))
    }

    /// Pulls the roster and faces into the store. When desired state changed, applies in flight are
    /// told to re-plan and people who must no longer pass are deleted from every door at once.
    pub async fn pull(&self, force_refresh: bool) -> Result<(PullReport, Vec<Removal>), PullError> {
        self.pull_with(force_refresh, false).await
    }

    /// [`Engine::pull`], optionally confirming the removals the guard holds. An incomplete roster
    /// still removes the users it explicitly revoked, at once.
    pub(crate) async fn pull_with(
        &self,
        force_refresh: bool,
        confirm_removals: bool,
    ) -> Result<(PullReport, Vec<Removal>), PullError> {
        let _one_pull_at_a_time = self.pull_lock.lock().await;
        self.mark_missing_faces().await;
        let options = PullOptions {
            force_refresh,
            max_concurrency: self.settings.max_concurrency,
            guard: self.settings.guard,
            confirm_removals,
            roster_interval: self.settings.roster_interval,
        };
        let sink = PassSink::new(self);
        let pulled = pull::pull_into(
            self.cloud.as_ref(),
            &self.store,
            &self.profiles,
            self.now(),
            options,
            &sink,
        )
        .await;
        let removals = sink.finish();
        let report = pulled?;
        self.collect_faces_locked().await;
        Ok((report, removals))
    }

    /// Whether `door` is due for verification: never verified, longer ago than `verify_interval`, or
    /// its last operation failed (a door coming back is read back before anything is sent to it, also
    /// by the next process on this store).
    pub(crate) fn verify_due(&self, door: &str) -> Result<bool, StoreError> {
        let status = self.store.door_status(door)?;
        if status.last_error.is_some() {
            return Ok(true);
        }
        let last = status.last_verified_at;
        let interval =
            jiff::SignedDuration::try_from(self.settings.verify_interval).unwrap_or(jiff::SignedDuration::MAX);
        Ok(last.is_none_or(|t| t.saturating_add(interval).unwrap_or(Timestamp::MAX) <= self.now()))
    }

    /// Brings one door to the desired state: optionally reads it back first (repairing the record of
    /// what it holds), then applies the plan, re-planning when desired state changes meanwhile.
    pub(crate) async fn sync_door(
        &self,
        name: &str,
        verify: bool,
        progress: ProgressFn<'_>,
    ) -> Result<DoorSyncReport, EngineError> {
        let slot = self.slot(name)?;
        let _applying = slot.apply_lock.lock().await;
        let target = slot.target();
        // A door coming back from an outage is read back before anything is sent to it.
        let verify = verify || slot.unverified_since_outage.load(Ordering::SeqCst);
        let mut report = DoorSyncReport {
            name: name.to_string(),
            ..Default::default()
        };
        if verify {
            progress(Progress {
                message: format!("door {name}: reading back"),
                done: 0,
                total: 0,
            });
            match verify::verify_door(&self.store, &target, self.now()).await {
                Ok(v) => {
                    slot.unverified_since_outage.store(false, Ordering::SeqCst);
                    report.verify = Some(v);
                }
                Err(VerifyError::Store(e)) => return Err(e.into()),
                // Nothing but the read-back (and urgent deletes) goes to a door that went away and
                // has not been verified since.
                Err(VerifyError::Door(e)) if matches!(e.class(), FailureClass::Resend | FailureClass::Reconnect) => {
                    slot.note_unreachable();
                    report.apply.pending = apply::pending_ops(&self.store, &target, self.now())?;
                    report.apply.error = Some(e.to_string());
                    report.verify_error = Some(e.to_string());
                    let pending = report.apply.pending;
                    self.store.update_door_status(name, |s| {
                        s.last_error = Some(e.to_string());
                        s.pending = pending;
                    })?;
                    return Ok(report);
                }
                Err(VerifyError::Door(e)) => report.verify_error = Some(e.to_string()),
            }
        }
        let message = format!("door {name}: applying");
        let on_op = |done: u64, total: u64| {
            progress(Progress {
                message: message.clone(),
                done,
                total,
            })
        };
        for _ in 0..MAX_REPLANS {
            let r = apply::apply_door_with_progress(&self.store, &target, self.now(), &self.generation, &on_op).await?;
            if r.error.is_some() {
                slot.note_unreachable();
            }
            merge(&mut report.apply, r);
            if !report.apply.interrupted || self.is_stopping() {
                break;
            }
        }
        let repaired = report.verify.as_ref().is_some_and(|v| !v.matched);
        if report.verify.is_some() && report.apply.converged() {
            report.confirmed = Some(if repaired {
                match verify::verify_door(&self.store, &target, self.now()).await {
                    Ok(v) => v.matched,
                    Err(VerifyError::Store(e)) => return Err(e.into()),
                    Err(VerifyError::Door(e)) => {
                        report.verify_error = Some(e.to_string());
                        false
                    }
                }
            } else {
                true
            });
        }
        report.converged = report.apply.converged()
            && report.apply.failed.is_empty()
            && report.verify_error.is_none()
            && report.confirmed != Some(false);
        Ok(report)
    }

    /// One pass: pull (a cloud failure leaves the cached state in force), then every selected door,
    /// concurrently, verified when forced or due.
    pub async fn pass(&self, options: &PassOptions, progress: ProgressFn<'_>) -> Result<PassReport, EngineError> {
        let names: Vec<String> = match &options.door {
            Some(name) => vec![self.slot(name)?.name.clone()],
            None => self.doors.iter().map(|d| d.name.clone()).collect(),
        };
        let mut report = PassReport {
            force_refresh: options.force_refresh,
            started_at: Some(self.now()),
            ..Default::default()
        };
        progress(Progress {
            message: if options.force_refresh {
                "pulling every user and image from the cloud (force refresh)".into()
            } else {
                "pulling the roster from the cloud".into()
            },
            done: 0,
            total: 0,
        });
        let pulled = self.pull_with(options.force_refresh, options.confirm_removals).await;
        report.removals_held = guard::summary(&self.store.held_removals()?);
        let mut failed = BTreeMap::new();
        self.store.each_user(|u| {
            if let Some(f) = u.failure {
                failed.insert(u.key.to_string(), f);
            }
        })?;
        report.failed = failed;
        match pulled {
            Ok((pulled, removals)) => {
                report.removed_at_once = removals.iter().map(|r| r.removed.len() as u64).sum();
                progress(Progress {
                    message: format!(
                        "pulled {} users ({} images downloaded, {} unchanged, {} failed, {} gone)",
                        pulled.users_total,
                        pulled.images_downloaded,
                        pulled.images_skipped,
                        pulled.users_failed,
                        pulled.users_gone
                    ),
                    done: 0,
                    total: 0,
                });
                report.pull = Some(pulled);
            }
            Err(PullError::Store(e)) => return Err(e.into()),
            Err(e) => {
                report.mass_user_gone = matches!(e, PullError::MassUserGone { .. });
                tracing::warn!(error = %e, "pull failed; the doors keep the cached desired state");
                progress(Progress {
                    message: format!("cloud: {e}; using the cached desired state"),
                    done: 0,
                    total: 0,
                });
                report.pull_error = Some(e.to_string());
                // Expiry and local revocations still hold without the cloud.
                let removals = self.remove_undesired(RemovalCause::Cached, self.now()).await?;
                report.removed_at_once = removals.iter().map(|r| r.removed.len() as u64).sum();
            }
        }
        let mut syncs = Vec::with_capacity(names.len());
        for name in &names {
            let verify = options.force_refresh || options.verify || self.verify_due(name)?;
            syncs.push(self.sync_door(name, verify, progress));
        }
        for r in futures::future::join_all(syncs).await {
            report.doors.push(r?);
        }
        report.converged = report.doors.iter().all(|d| d.converged);
        // The doors now hold the new faces: the ones they replaced are garbage.
        self.collect_faces().await;
        report.finished_at = Some(self.now());
        Ok(report)
    }

    /// The nearest future `expire_at` of anyone a door should hold; the expiry timer sleeps until then.
    pub(crate) fn next_expiry(&self) -> Result<Option<Timestamp>, StoreError> {
        let profiles: Vec<&str> = self.profiles.iter().map(|p| p.name.as_str()).collect();
        super::desired::next_expiry(&self.store, &profiles, self.now())
    }
}

/// Sums what successive applies of one sync did; the last apply's outcome stands.
fn merge(total: &mut ApplyReport, r: ApplyReport) {
    total.deleted += r.deleted;
    total.upserted += r.upserted;
    total.faces_sent += r.faces_sent;
    total.image_bytes_sent += r.image_bytes_sent;
    total.failed = r.failed;
    total.over_capacity = r.over_capacity;
    total.pending = r.pending;
    total.interrupted = r.interrupted;
    total.error = r.error;
}
