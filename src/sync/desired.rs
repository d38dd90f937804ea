//! The desired state as the store holds it: every stored user as one door profile sees them (its face
//! for that profile, tombstones and pending cloud-side deletes applied), the input of the planner.

use std::collections::BTreeSet;

use crate::domain::{Policy, UserEntry};
use crate::store::{Store, StoreError, StoredUser};

/// How each stored user looks from a door with `profile_name`, with tombstones applied.
pub(crate) fn user_entries(store: &Store, profile_name: &str) -> Result<Vec<UserEntry>, StoreError> {
    let tombstoned: BTreeSet<_> = store.tombstones()?.into_iter().map(|t| t.key).collect();
    // One record at a time: only the compact entries are kept (BENCHMARKS.md, memory budget).
    let mut entries = Vec::new();
    store.each_user(|u| entries.push(user_entry(&u, profile_name, tombstoned.contains(&u.key))))?;
    Ok(entries)
}

fn user_entry(u: &StoredUser, profile_name: &str, tombstoned: bool) -> UserEntry {
    UserEntry {
        key: u.key.clone(),
        display_name: u.display_name.clone(),
        // A roster entry with a pending cloud-side delete must not pass, whatever its policy says.
        policy: if u.roster_revoked { Policy::Deny } else { u.policy },
        expire_at: u.expire_at,
        face: u.faces.get(profile_name).copied(),
        revoked_locally: tombstoned,
    }
}
