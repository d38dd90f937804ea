//! What the store knows about the roster as a whole: whether one complete, consistent walk was ever
//! installed, the implicit removals the mass-removal guard holds, and the strangers verification found
//! on a door but may not remove yet (README, "Roster integrity").

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::domain::{DoorUserId, UserKey};

const META_ROSTER_COMPLETE: &str = "roster_complete";
const META_HELD_REMOVALS: &str = "held_removals";

/// One user the guard keeps although a consistent roster no longer lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldUser {
    pub key: UserKey,
    /// The first pull that found them gone; they are removed once pulls agree for `sync.removal_hold`.
    pub first_seen_at: Timestamp,
    /// When they are removed if pulls keep agreeing (`first_seen_at` + `sync.removal_hold`).
    pub until: Timestamp,
}

/// The implicit removals on hold, by user key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldRemovals {
    pub users: BTreeMap<String, HeldUser>,
}

impl HeldRemovals {
    pub(crate) fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &UserKey) -> bool {
        self.users.contains_key(&key.to_string())
    }

    /// The earliest first sighting of the users held.
    pub(crate) fn first_seen_at(&self) -> Option<Timestamp> {
        self.users.values().map(|u| u.first_seen_at).min()
    }

    /// When the first held removal is due.
    pub(crate) fn until(&self) -> Option<Timestamp> {
        self.users.values().map(|u| u.until).min()
    }
}

impl Store {
    /// The key of every readable stored user (a corrupt entry is reported by `users`), without keeping
    /// the records: the roster phase of a pull needs only who is there.
    pub(crate) fn user_keys(&self) -> Result<BTreeSet<UserKey>, StoreError> {
        let mut keys = BTreeSet::new();
        for item in self.users.iter() {
            let (k, v) = item?;
            if let Ok(u) = super::decode_user(&self.users, &k, &v) {
                keys.insert(u.key);
            }
        }
        Ok(keys)
    }

    /// Removes these users in one atomic batch; durable on return. Called with the removals of a
    /// complete, consistent roster walk only (and the users the cloud said are gone).
    pub(crate) fn remove_users(&self, keys: &BTreeSet<UserKey>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for key in keys {
            batch.remove(super::user_key_bytes(key));
        }
        self.users.apply_batch(batch)?;
        self.flush()
    }

    /// Whether the store ever held one complete, consistent roster walk. Until then verification must
    /// not remove people from a door that the agent did not put there. A store written before this
    /// flag existed counts when its last pull succeeded.
    pub(crate) fn has_complete_roster(&self) -> Result<bool, StoreError> {
        if self.get_meta::<bool>(META_ROSTER_COMPLETE)?.unwrap_or(false) {
            return Ok(true);
        }
        Ok(self.last_pass()?.is_some_and(|p| p.error.is_none()))
    }

    /// Records that a complete, consistent roster was installed. Durable on return.
    pub(crate) fn mark_roster_complete(&self) -> Result<(), StoreError> {
        self.put_meta(META_ROSTER_COMPLETE, &true)?;
        self.flush()
    }

    pub(crate) fn held_removals(&self) -> Result<HeldRemovals, StoreError> {
        Ok(self.get_meta(META_HELD_REMOVALS)?.unwrap_or_default())
    }

    /// Replaces the held removals. Durable on return.
    pub(crate) fn put_held_removals(&self, held: &HeldRemovals) -> Result<(), StoreError> {
        self.put_meta(META_HELD_REMOVALS, held)?;
        self.flush()
    }

    /// Ids on `door` the agent did not put there and has not removed (no roster yet).
    pub(crate) fn unknown_on_door(&self, door: &str) -> Result<Vec<DoorUserId>, StoreError> {
        let ids: Vec<u32> = self.get_meta(&format!("unknown/{door}"))?.unwrap_or_default();
        Ok(ids.into_iter().map(DoorUserId).collect())
    }

    pub(crate) fn put_unknown_on_door(&self, door: &str, ids: &[DoorUserId]) -> Result<(), StoreError> {
        let raw: Vec<u32> = ids.iter().map(|id| id.0).collect();
        self.put_meta(&format!("unknown/{door}"), &raw)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_flags_and_held_removals_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(!store.has_complete_roster().unwrap());
            store.mark_roster_complete().unwrap();
            let mut held = HeldRemovals::default();
            let key = UserKey::new("IDENTITY", "u-1");
            held.users.insert(
                key.to_string(),
                HeldUser {
                    key: key.clone(),
                    first_seen_at: Timestamp::UNIX_EPOCH,
                    until: Timestamp::UNIX_EPOCH,
                },
            );
            store.put_held_removals(&held).unwrap();
            store.put_unknown_on_door("lobby", &[DoorUserId(7)]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(store.has_complete_roster().unwrap());
        assert!(
            store
                .held_removals()
                .unwrap()
                .contains(&UserKey::new("IDENTITY", "u-1"))
        );
        assert_eq!(store.unknown_on_door("lobby").unwrap(), vec![DoorUserId(7)]);
    }
}
