//! Pulling desired state from the cloud: the roster walk, each user's face (downloaded only when it
//! changed), normalisation per hardware profile, and one atomic roster install.
//!
//! A cloud failure leaves the cached state in force: nothing is written until the walk is complete,
//! so doors keep working from the cache. A per-user failure marks that user failed and keeps their
//! previous face. A pass in which most users come back "gone" is refused as a likely cloud-side
//! configuration problem, rather than wiping every door. A roster walk that does not add up updates
//! the users it listed (so their explicit revocations apply) and removes nobody else; users who
//! simply vanish from a consistent roster go through the mass-removal guard (`guard`).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::cloud::{CloudError, CloudFace, ErrorClass, FaceCloud, RosterEntry};
use crate::domain::{Profile, UserKey};
use crate::faces;
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
}

enum UserOutcome {
    Keep {
        user: StoredUser,
        downloaded_bytes: Option<u64>,
        failed: bool,
    },
    Gone(UserKey),
}

/// One pull pass. `profiles` are the distinct profiles of the configured doors.
pub async fn pull(
    cloud: &dyn FaceCloud,
    store: &Store,
    profiles: &[Profile],
    now: Timestamp,
    options: PullOptions,
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
    let before: BTreeMap<UserKey, StoredUser> = store.users()?.0.into_iter().map(|u| (u.key.clone(), u)).collect();
    let mut seen = BTreeSet::new();
    let roster: Vec<RosterEntry> = roster
        .into_iter()
        .filter(|e| seen.insert(e.key.clone()))
        // A broken walk is trusted for nothing but explicit news about users already known.
        .filter(|e| incomplete.is_none() || before.contains_key(&e.key))
        .collect();
    let total = roster.len() as u64;

    let outcomes: Vec<Result<UserOutcome, PullError>> = futures::stream::iter(roster)
        .map(|entry| pull_user(cloud, store, profiles, entry, now, options.force_refresh))
        .buffer_unordered(options.max_concurrency.max(1))
        .collect()
        .await;

    let mut report = PullReport {
        users_total: total,
        ..Default::default()
    };
    let mut users = Vec::with_capacity(outcomes.len());
    let mut gone = BTreeSet::new();
    for outcome in outcomes {
        match outcome {
            Ok(UserOutcome::Keep {
                user,
                downloaded_bytes,
                failed,
            }) => {
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
                users.push(user);
            }
            Ok(UserOutcome::Gone(key)) => {
                gone.insert(key);
            }
            Err(e) => {
                record_failed_pass(store, started_at, &e.to_string());
                return Err(e);
            }
        }
    }
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

    let listed: BTreeSet<UserKey> = users.iter().map(|u| u.key.clone()).collect();
    // Stored users neither listed nor explicitly gone: kept as they were (incomplete pull, or held by
    // the guard), or removed implicitly.
    let unlisted: BTreeSet<UserKey> = before
        .keys()
        .filter(|k| !listed.contains(*k) && !gone.contains(*k))
        .cloned()
        .collect();
    let keep: BTreeSet<UserKey> = match &incomplete {
        Some(_) => unlisted,
        None => {
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
            report.removed_implicitly = decision.remove.len() as u64;
            report.removals_held = decision.held.users.len() as u64;
            store.put_held_removals(&decision.held)?;
            decision.held.users.into_values().map(|h| h.key).collect()
        }
    };
    users.extend(keep.iter().filter_map(|k| before.get(k).cloned()));

    report.tombstones_lifted = super::tombstone::review(store, &users, tombstone_mark)?;
    users.sort_by(|a, b| a.key.cmp(&b.key));
    report.changed = report.tombstones_lifted > 0
        || before.len() != users.len()
        || users
            .iter()
            .any(|u| before.get(&u.key).is_none_or(|b| desired_fields_differ(b, u)));
    store.replace_roster(&users)?;
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

async fn pull_user(
    cloud: &dyn FaceCloud,
    store: &Store,
    profiles: &[Profile],
    entry: RosterEntry,
    now: Timestamp,
    force_refresh: bool,
) -> Result<UserOutcome, PullError> {
    let existing = store.get_user(&entry.key).unwrap_or_else(|e| {
        tracing::warn!(user = %entry.key, error = %e, "cached record unreadable; fetching afresh");
        None
    });
    let face = match cloud.get_face(&entry.key).await {
        Ok(face) => face,
        Err(e) if e.class() == ErrorClass::UserGone => return Ok(UserOutcome::Gone(entry.key)),
        // Credentials or configuration: every other call would fail the same way; stop the pass.
        Err(e) if matches!(e.class(), ErrorClass::Auth | ErrorClass::Config | ErrorClass::WrongApi) => {
            return Err(e.into());
        }
        Err(e) => {
            let reason = format!("user {}: cloud record: {e}", entry.key);
            tracing::warn!(%reason, "user failed; keeping what was known of them");
            return Ok(failed_user(existing, &entry, now, reason));
        }
    };
    let fingerprint = face.fingerprint();
    let mut user = StoredUser {
        key: entry.key.clone(),
        display_name: display_name(&face, &entry),
        policy: face.policy,
        expire_at: face.expire_at,
        cloud_face_id: face.face_id.clone(),
        image_fingerprint: existing.as_ref().and_then(|u| u.image_fingerprint.clone()),
        faces: existing.as_ref().map(|u| u.faces.clone()).unwrap_or_default(),
        failure: None,
        roster_revoked: entry.revoked,
        updated_at: now,
    };
    let unchanged = existing.as_ref().is_some_and(|u| {
        u.image_fingerprint.as_deref() == Some(fingerprint.as_str())
            && u.failure.is_none()
            && profiles.iter().all(|p| u.faces.contains_key(&p.name))
    });
    if unchanged && !force_refresh {
        return Ok(UserOutcome::Keep {
            user,
            downloaded_bytes: None,
            failed: false,
        });
    }
    let bytes = match cloud.fetch_image(&face.image).await {
        Ok(b) => b,
        // Everything about one user's image fails that user only (README, "Roster integrity").
        Err(e) => {
            let reason = format!("user {}: {e}", entry.key);
            tracing::warn!(%reason, "face image not fetched; keeping the previous face");
            user.failure = Some(reason);
            return Ok(UserOutcome::Keep {
                user,
                downloaded_bytes: None,
                failed: true,
            });
        }
    };
    let downloaded = bytes.len() as u64;
    match normalise_all(store, profiles, bytes).await {
        Ok(faces) => {
            user.faces = faces;
            user.image_fingerprint = Some(fingerprint);
            Ok(UserOutcome::Keep {
                user,
                downloaded_bytes: Some(downloaded),
                failed: false,
            })
        }
        Err(reason) => {
            let reason = format!("user {}: {reason}", entry.key);
            tracing::warn!(%reason, "face image rejected; keeping the previous face");
            user.failure = Some(reason);
            Ok(UserOutcome::Keep {
                user,
                downloaded_bytes: Some(downloaded),
                failed: true,
            })
        }
    }
}

/// Longest display name kept (characters); doors keep fewer, terminals need no more.
const DISPLAY_NAME_MAX_CHARS: usize = 64;

fn display_name(face: &CloudFace, entry: &RosterEntry) -> String {
    [face.name.as_deref(), entry.name.as_deref()]
        .into_iter()
        .flatten()
        .map(clean_name)
        .find(|n| !n.trim().is_empty())
        .unwrap_or_else(|| clean_name(&entry.key.user_id))
}

/// A name as the cloud sent it, without control characters (NUL included), which must reach neither
/// a door nor a terminal, and cut to [`DISPLAY_NAME_MAX_CHARS`].
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(DISPLAY_NAME_MAX_CHARS)
        .collect()
}

fn failed_user(existing: Option<StoredUser>, entry: &RosterEntry, now: Timestamp, reason: String) -> UserOutcome {
    let user = match existing {
        // Keep what we knew (still on the roster), but flag it.
        Some(mut u) => {
            u.failure = Some(reason);
            u.roster_revoked = entry.revoked;
            u
        }
        None => StoredUser {
            key: entry.key.clone(),
            display_name: clean_name(entry.name.as_deref().unwrap_or(&entry.key.user_id)),
            policy: crate::domain::Policy::Permission,
            expire_at: None,
            cloud_face_id: None,
            image_fingerprint: None,
            faces: BTreeMap::new(),
            failure: Some(reason),
            roster_revoked: entry.revoked,
            updated_at: now,
        },
    };
    UserOutcome::Keep {
        user,
        downloaded_bytes: None,
        failed: true,
    }
}

/// Normalises one image for every profile, off the async threads (it is CPU work), and stores the
/// results by content hash.
async fn normalise_all(
    store: &Store,
    profiles: &[Profile],
    bytes: Vec<u8>,
) -> Result<BTreeMap<String, crate::domain::FaceRef>, String> {
    let limits: Vec<(String, crate::domain::ImageLimits)> =
        profiles.iter().map(|p| (p.name.clone(), p.image)).collect();
    let normalised = tokio::task::spawn_blocking(move || {
        limits
            .into_iter()
            .map(|(name, limits)| faces::normalise(&bytes, &limits).map(|n| (name, n.jpeg)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| format!("image worker failed: {e}"))?
    .map_err(|e| format!("face image: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, jpeg) in normalised {
        let face = store.put_face(&jpeg).map_err(|e| e.to_string())?;
        out.insert(name, face);
    }
    Ok(out)
}
