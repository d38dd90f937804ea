//! The tombstone lifting rule: a local revocation stays in force until evidence that postdates it
//! shows a genuinely new grant (README "Local revocation: when a tombstone is lifted").
//!
//! A tombstone is lifted only when both hold:
//! (a) the cloud acknowledged the queued face delete for the user (and no other delete for them is
//!     still queued), and
//! (b) a pull that started after that acknowledgement shows the user with a usable face the agent
//!     never saw before — not at the revocation, nor in any pull that did not start after the
//!     acknowledgement.
//!
//! A user the store did not know at revoke time has nothing recorded; the first pull that lists them
//! records their face as seen and never lifts. Faces are compared by the cloud's faceId when it gives
//! one, else by the stored image hashes, so a rename or a new expiry is not a new grant.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::UserKey;
use crate::store::{OutboxItem, Store, StoreError, StoredUser, Tombstone, TombstoneChange};

/// The tokens naming the face `user` shows: its cloud faceId and its stored image hashes.
pub(crate) fn face_tokens(user: &StoredUser) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = user
        .faces
        .values()
        .map(|f| format!("image:{}", f.sha256_hex()))
        .collect();
    if let Some(id) = user.cloud_face_id.as_deref().filter(|id| !id.is_empty()) {
        out.insert(format!("face:{id}"));
    }
    out
}

/// Whether `user` shows a usable face none of whose names is in `seen`.
fn shows_a_new_face(user: &StoredUser, seen: &BTreeSet<String>) -> bool {
    if user.failure.is_some() || user.faces.is_empty() {
        return false;
    }
    match user.cloud_face_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => !seen.contains(&format!("face:{id}")),
        None => user
            .faces
            .values()
            .all(|f| !seen.contains(&format!("image:{}", f.sha256_hex()))),
    }
}

/// The decision for one tombstone, given the user as a pull started at `pull_mark` shows them.
/// Pure: changes `t` (faces newly seen) and says whether to keep, update or lift it.
pub(crate) fn judge(t: &mut Tombstone, user: &StoredUser, pull_mark: u64, delete_queued: bool) -> TombstoneChange {
    let acked_before_pull = !delete_queued && t.delete_acked_mark.is_some_and(|acked| pull_mark > acked);
    if acked_before_pull && !t.seen_faces.is_empty() && shows_a_new_face(user, &t.seen_faces) {
        return TombstoneChange::Lift;
    }
    let before = t.seen_faces.len();
    t.seen_faces.extend(face_tokens(user));
    if t.seen_faces.len() == before {
        TombstoneChange::Keep
    } else {
        TombstoneChange::Update
    }
}

/// Applies [`judge`] to every tombstone whose user is in `users` (the roster a pull that started at
/// `pull_mark` just completed). Returns how many were lifted.
pub(crate) fn review(store: &Store, users: &[StoredUser], pull_mark: u64) -> Result<u64, StoreError> {
    // The outbox is small (an offline-time backlog); reading it whole is fine.
    let queued: BTreeSet<UserKey> = store
        .outbox_items()?
        .into_iter()
        .filter_map(|(_, item)| match item {
            OutboxItem::DeleteFace { key } => Some(key),
            OutboxItem::ModifyUser { .. } => None,
        })
        .collect();
    let by_key: BTreeMap<&UserKey, &StoredUser> = users.iter().map(|u| (&u.key, u)).collect();
    let mut lifted = 0;
    for t in store.tombstones()? {
        let Some(user) = by_key.get(&t.key) else {
            continue;
        };
        let delete_queued = queued.contains(&t.key);
        match store.change_tombstone(&t.key, |t| judge(t, user, pull_mark, delete_queued))? {
            TombstoneChange::Lift => {
                tracing::info!(
                    user = %t.key,
                    "the cloud acknowledged the face delete and a later pull shows a new face; lifting the tombstone"
                );
                lifted += 1;
            }
            TombstoneChange::Update => {
                tracing::debug!(user = %t.key, "revoked user still listed by the cloud; their face is recorded as seen");
            }
            TombstoneChange::Keep => {}
        }
    }
    Ok(lifted)
}

#[cfg(test)]
mod tests;
