//! Pulling desired state from the cloud in three phases, each written to the store as soon as it is
//! known so the caller can act on it before the pull ends (a [`PullSink`]):
//!
//! 1. **Roster.** The walk; once it is complete and consistent, users it no longer lists are removed
//!    through the mass-removal guard (`guard`) and roster-revoked users are flagged, in the store, at
//!    once. A walk that does not add up flags the revocations of users it listed and removes nobody.
//!    A cloud failure during the walk writes nothing, so doors keep working from the cache.
//! 2. **Details.** Each listed user's face record (image downloaded only when it changed, normalised
//!    per hardware profile), at most `max_concurrency` at a time; each answer is written as it arrives
//!    (DENY, `expireTime`, face), so one slow user delays nobody else. A per-user failure marks that
//!    user failed and keeps their previous face.
//! 3. **Gone.** Users the cloud said no longer exist are removed last, unless most users came back
//!    "gone": that is refused as a likely cloud-side configuration problem rather than wiping every door.

mod user;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::{BoxFuture, OptionFuture};
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, FaceCloud, RosterEntry};
use crate::domain::{Policy, Profile, UserKey};
use crate::store::{PassSummary, Store, StoreError, StoredUser};
use crate::sync::guard::{self, GuardSettings};

/// What one pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReport {
    pub users_total: u64,
    pub users_failed: u64,
    pub users_gone: u64,
    pub images_downloaded: u64,
    pub image_bytes_downloaded: u64,
    /// Users whose face was unchanged, so no image was fetched.
    pub images_skipped: u64,
    /// Tombstones lifted because the cloud shows a newer grant.
    pub tombstones_lifted: u64,
    /// Whether desired state differs from before the pull.
    pub changed: bool,
    /// Users no longer listed by the (consistent) roster whose removal went ahead in this pull.
    #[serde(default)]
    pub removed_implicitly: u64,
    /// Implicit removals the mass-removal guard holds after this pull.
    #[serde(default)]
    pub removals_held: u64,
    /// Users that failed in this pull (bad image, bad record), by key, with the reason.
    #[serde(default)]
    pub failed: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(
        "{gone} of {total} users came back as no longer existing; refusing to purge them (a cloud-side \
         configuration problem is more likely: check app key, tenant and device_iot_id)"
    )]
    MassUserGone { gone: u64, total: u64 },
    /// The roster walk did not add up: the listed users were updated (explicit revocations applied),
    /// nobody else was removed. `changed`: desired state changed all the same.
    #[error("{reason}")]
    Incomplete { reason: String, changed: bool },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How the pull treats faces.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullOptions {
    /// Re-fetch and re-normalise every image, ignoring fingerprints.
    pub force_refresh: bool,
    /// Users fetched at once (`cloud.max_concurrency`).
    pub max_concurrency: usize,
    /// The mass-removal guard's settings.
    pub guard: GuardSettings,
    /// Apply the removals the guard holds (`sync --confirm-removals`), if this pull agrees.
    pub confirm_removals: bool,
    /// Walk the roster again this long after the previous walk ended while detail calls are still
    /// running (the daemon's `cloud.poll_interval`); `None`: one walk per pull.
    pub roster_interval: Option<Duration>,
}

enum UserOutcome {
    Keep {
        user: StoredUser,
        downloaded_bytes: Option<u64>,
        failed: bool,
    },
    Gone(UserKey),
}

/// Where a pull reports each change of desired state as soon as it is in the store.
#[async_trait::async_trait]
pub(crate) trait PullSink: Send + Sync {
    /// Desired state changed. `removal`: someone may have to leave the doors now (a roster removal,
    /// a roster revocation, DENY, an expiry in the past, a user gone); otherwise only additions or
    /// updates (a new user, a new face, a rename) wait for the doors.
    async fn changed(&self, removal: bool) -> Result<(), StoreError>;

    /// The time for decisions taken after the pull started (the guard's, on a roster walked again).
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A sink that does nothing: the caller acts on the store after the pull.
pub(crate) struct NoSink;

#[async_trait::async_trait]
impl PullSink for NoSink {
    async fn changed(&self, _removal: bool) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One pull pass. `profiles` are the distinct profiles of the configured doors.
pub async fn pull(
    cloud: &dyn FaceCloud,
    store: &Store,
    profiles: &[Profile],
    now: Timestamp,
    options: PullOptions,
) -> Result<PullReport, PullError> {
    pull_into(cloud, store, profiles, now, options, &NoSink).await
}

/// [`pull`], telling `sink` of each change as soon as it is in the store.
pub(crate) async fn pull_into(
    cloud: &dyn FaceCloud,
    store: &Store,
    profiles: &[Profile],
    now: Timestamp,
    options: PullOptions,
    sink: &dyn PullSink,
) -> Result<PullReport, PullError> {
    let started_at = now;
    // Taken before the roster is read: only a pull that starts after a face delete's ack may lift.
    let tombstone_mark = store.mark()?;
    let (roster, incomplete) = match cloud.roster().await {
        Ok(r) => (r, None),
        Err(CloudError::RosterIncomplete { reason, walks, listed }) => {
            let message = CloudError::RosterIncomplete {
                reason,
                walks,
                listed: Vec::new(),
            }
            .to_string();
            (listed, Some(message))
        }
        Err(e) => {
            record_failed_pass(store, started_at, &e.to_string());
            return Err(e.into());
        }
    };
    let mut report = PullReport::default();

    // Phase 1: the roster's own news, before any detail call.
    let roster = match apply_roster(store, roster, incomplete.is_some(), now, &options, &mut report) {
        Ok((r, _)) => r,
        Err(e) => {
            record_failed_pass(store, started_at, &e.to_string());
            return Err(e);
        }
    };
    if report.changed {
        sink.changed(true).await?;
    }

    // Phase 2: each user's details, written as they arrive, at most `max_concurrency` at a time; the
    // roster is walked again every `roster_interval` meanwhile, so a removal made in the cloud during
    // a long detail phase does not wait for its end.
    let limit = options.max_concurrency.max(1);
    let mut listed = Listed::new(roster.iter().map(|e| e.key.clone()).collect());
    let mut queue: VecDeque<RosterEntry> = roster.into();
    let mut in_flight = FuturesUnordered::new();
    let mut walk: Option<BoxFuture<'_, Result<Vec<RosterEntry>, CloudError>>> = None;
    let mut next_walk = options.roster_interval.map(|i| tokio::time::Instant::now() + i);
    let mut gone = BTreeSet::new();
    loop {
        while in_flight.len() < limit {
            let Some(entry) = queue.pop_front() else { break };
            // The queue gives its memory back as it empties instead of holding the whole roster's
            // entries to the end of the pull, while the doors' plans grow (BENCHMARKS.md).
            if queue.capacity() > 64 && queue.len() < queue.capacity() / 4 {
                queue.shrink_to_fit();
            }
            if listed.current(&entry.key) {
                in_flight.push(user::pull_user(
                    cloud,
                    store,
                    profiles,
                    entry,
                    now,
                    options.force_refresh,
                ));
            }
        }
        if in_flight.is_empty() && walk.is_none() {
            break;
        }
        let walk_due = next_walk.filter(|_| walk.is_none());
        let outcome = tokio::select! {
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => outcome,
            () = tokio::time::sleep_until(walk_due.unwrap_or_else(tokio::time::Instant::now)), if walk_due.is_some() => {
                walk = Some(cloud.roster());
                continue;
            }
            Some(walked) = OptionFuture::from(walk.as_mut()), if walk.is_some() => {
                walk = None;
                next_walk = options.roster_interval.map(|i| tokio::time::Instant::now() + i);
                let walked = match walked {
                    Ok(walked) => walked,
                    Err(e) => {
                        tracing::warn!(error = %e, "roster walk during the detail calls failed; it removes nobody");
                        continue;
                    }
                };
                let (walked, changed) = apply_roster(store, walked, false, sink.now(), &options, &mut report)?;
                if changed {
                    sink.changed(true).await?;
                }
                listed.walked(walked.iter().map(|e| e.key.clone()).collect());
                for entry in walked {
                    if listed.schedule(&entry.key) {
                        queue.push_back(entry);
                    }
                }
                continue;
            }
        };
        let (user, downloaded_bytes, failed) = match outcome {
            Ok(UserOutcome::Keep {
                user,
                downloaded_bytes,
                failed,
            }) => (user, downloaded_bytes, failed),
            Ok(UserOutcome::Gone(key)) => {
                gone.insert(key);
                continue;
            }
            Err(e) => {
                record_failed_pass(store, started_at, &e.to_string());
                return Err(e);
            }
        };
        // A later walk no longer lists this user: their answer must not bring them back.
        if !listed.current(&user.key) {
            continue;
        }
        match downloaded_bytes {
            Some(n) => {
                report.images_downloaded += 1;
                report.image_bytes_downloaded += n;
            }
            None if !failed => report.images_skipped += 1,
            None => {}
        }
        report.users_failed += u64::from(failed);
        if let Some(why) = &user.failure {
            report.failed.insert(user.key.to_string(), why.clone());
        }
        if let Some(removal) = record_user(store, &user, now, tombstone_mark, &mut report)? {
            report.changed = true;
            sink.changed(removal).await?;
        }
    }
    let total = listed.scheduled();
    report.users_total = total;
    gone.retain(|k| listed.current(k));

    // Phase 3: users the cloud says no longer exist.
    report.users_gone = gone.len() as u64;
    if report.users_gone >= 2 && report.users_gone * 2 > total {
        let e = PullError::MassUserGone {
            gone: report.users_gone,
            total,
        };
        record_failed_pass(store, started_at, &e.to_string());
        return Err(e);
    }
    for key in &gone {
        tracing::info!(user = %key, "the cloud says this user no longer exists; removing them");
    }
    if !gone.is_empty() {
        store.remove_users(&gone)?;
        report.changed = true;
        sink.changed(true).await?;
    }
    store.flush()?;
    if let Some(reason) = incomplete {
        record_failed_pass(store, started_at, &reason);
        return Err(PullError::Incomplete {
            reason,
            changed: report.changed,
        });
    }
    store.mark_roster_complete()?;
    store.put_last_pass(&PassSummary {
        started_at,
        finished_at: Timestamp::now(),
        users_total: total,
        users_failed: report.users_failed,
        images_downloaded: report.images_downloaded,
        error: None,
    })?;
    Ok(report)
}

/// The keys of a pull's detail phase: the first walk's, those later walks added, and the latest
/// walk's. Until a later walk the latest is the first, so a pull holds each key once, not twice.
struct Listed {
    first: BTreeSet<UserKey>,
    added: BTreeSet<UserKey>,
    latest: Option<BTreeSet<UserKey>>,
}

impl Listed {
    fn new(first: BTreeSet<UserKey>) -> Self {
        Self {
            first,
            added: BTreeSet::new(),
            latest: None,
        }
    }

    /// Whether the latest walk lists `key`.
    fn current(&self, key: &UserKey) -> bool {
        self.latest.as_ref().unwrap_or(&self.first).contains(key)
    }

    /// A later walk listed these keys.
    fn walked(&mut self, keys: BTreeSet<UserKey>) {
        self.latest = Some(keys);
    }

    /// True the first time `key` is scheduled for a detail call in this pull.
    fn schedule(&mut self, key: &UserKey) -> bool {
        !self.first.contains(key) && self.added.insert(key.clone())
    }

    /// Users scheduled in this pull.
    fn scheduled(&self) -> u64 {
        (self.first.len() + self.added.len()) as u64
    }
}

/// Phase 1: writes what the roster walk alone tells — users a consistent roster no longer lists leave
/// the store (as far as the guard lets them), and roster revocations are flagged — and returns the
/// entries whose details are to be fetched. An incomplete walk is trusted for nothing but explicit
/// news about users already known.
fn apply_roster(
    store: &Store,
    roster: Vec<RosterEntry>,
    incomplete: bool,
    now: Timestamp,
    options: &PullOptions,
    report: &mut PullReport,
) -> Result<(Vec<RosterEntry>, bool), PullError> {
    let before = store.user_keys()?;
    let mut seen = BTreeSet::new();
    let roster: Vec<RosterEntry> = roster
        .into_iter()
        .filter(|e| seen.insert(e.key.clone()))
        .filter(|e| !incomplete || before.contains(&e.key))
        .collect();
    drop(seen);
    let listed: BTreeSet<&UserKey> = roster.iter().map(|e| &e.key).collect();
    // Stored users not listed: kept as they were (incomplete walk, or held by the guard), or removed.
    let unlisted: BTreeSet<UserKey> = before.iter().filter(|k| !listed.contains(k)).cloned().collect();
    drop(listed);
    let mut changed = false;
    if !incomplete {
        let decision = guard::decide(
            &options.guard,
            before.len() as u64,
            &unlisted,
            &store.held_removals()?,
            now,
            options.confirm_removals,
        );
        if decision.started {
            tracing::warn!(
                held = decision.held.users.len(),
                roster_before = before.len(),
                hold = ?options.guard.removal_hold,
                "the roster dropped many users at once; holding their removal (confirm with `doorsync sync \
                 --confirm-removals`)"
            );
        }
        report.removed_implicitly += decision.remove.len() as u64;
        report.removals_held = decision.held.users.len() as u64;
        store.put_held_removals(&decision.held)?;
        store.remove_users(&decision.remove)?;
        changed |= !decision.remove.is_empty();
    }
    // A revocation the roster shows applies now, not after this user's detail call.
    for entry in &roster {
        if let Some(mut user) = store.get_user(&entry.key)?
            && user.roster_revoked != entry.revoked
        {
            user.roster_revoked = entry.revoked;
            store.put_user(&user)?;
            changed = true;
        }
    }
    report.changed |= changed;
    Ok((roster, changed))
}

/// Phase 2 for one user: writes the user if anything about them changed and reviews their tombstone.
/// Returns `None` when desired state did not change, else whether the change may remove them.
fn record_user(
    store: &Store,
    user: &StoredUser,
    now: Timestamp,
    tombstone_mark: u64,
    report: &mut PullReport,
) -> Result<Option<bool>, PullError> {
    let before = store.get_user(&user.key).unwrap_or_else(|e| {
        tracing::warn!(user = %user.key, error = %e, "cached record unreadable; replacing it");
        None
    });
    let changed = before.as_ref().is_none_or(|b| desired_fields_differ(b, user));
    let differs = changed || before.as_ref().is_some_and(|b| bookkeeping_differs(b, user));
    if differs {
        store.put_user(user)?;
    }
    let mut lifted = false;
    if store.get_tombstone(&user.key)?.is_some() {
        let n = super::tombstone::review(store, std::slice::from_ref(user), tombstone_mark)?;
        report.tombstones_lifted += n;
        lifted = n > 0;
    }
    if !changed && !lifted {
        return Ok(None);
    }
    let may_not_pass =
        user.policy != Policy::Permission || user.roster_revoked || user.expire_at.is_some_and(|at| at <= now);
    Ok(Some(may_not_pass))
}

/// Fields that change no door but are kept: the fingerprint that saves the next download, the
/// failure `status` shows, the cloud's faceId.
fn bookkeeping_differs(a: &StoredUser, b: &StoredUser) -> bool {
    a.image_fingerprint != b.image_fingerprint || a.failure != b.failure || a.cloud_face_id != b.cloud_face_id
}

fn desired_fields_differ(a: &StoredUser, b: &StoredUser) -> bool {
    a.policy != b.policy
        || a.expire_at != b.expire_at
        || a.faces != b.faces
        || a.display_name != b.display_name
        || a.roster_revoked != b.roster_revoked
}

fn record_failed_pass(store: &Store, started_at: Timestamp, error: &str) {
    let previous = store.last_pass().ok().flatten();
    let summary = PassSummary {
        started_at,
        finished_at: Timestamp::now(),
        users_total: previous.as_ref().map_or(0, |p| p.users_total),
        users_failed: previous.as_ref().map_or(0, |p| p.users_failed),
        images_downloaded: 0,
        error: Some(error.to_string()),
    };
    if let Err(e) = store.put_last_pass(&summary) {
        tracing::error!(error = %e, "cannot record the failed pass");
    }
}
