//! One user's detail call: the cloud's face record, the image downloaded only when it changed, and
//! its normalisation per hardware profile into the face store.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::UserOutcome;
use crate::cloud::{CloudFace, ErrorClass, FaceCloud, RosterEntry};
use crate::domain::Profile;
use crate::faces;
use crate::store::{Store, StoredUser};
use crate::sync::pull::PullError;

pub(super) async fn pull_user(
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
