//! The write-ahead of door-local ids: which ids a record or face file about to go out may create or
//! change on a door, recorded (durable, flushed) before it is sent and settled once the door's
//! acknowledgement is recorded. An id written ahead counts as held by the door for every delete, so
//! a crash between "the door applied a file" and "the agent recorded it" hides nobody.

use std::collections::BTreeMap;

use super::{Store, StoreError, by_door_id, each_by_door_id, encode, id_bytes};
use crate::domain::{AppliedEntry, DoorUserId, UserKey};

impl Store {
    fn writeahead_tree(&self, door: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(format!("writeahead/{door}"))?)
    }

    /// Records that files about to go to `door` may create or change these ids. Durable on return,
    /// before any byte of those files leaves.
    pub(crate) fn write_ahead(&self, door: &str, ids: &[(DoorUserId, UserKey)]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let tree = self.writeahead_tree(door)?;
        let mut batch = sled::Batch::default();
        for (id, key) in ids {
            batch.insert(&id_bytes(*id), encode(key)?);
        }
        tree.apply_batch(batch)?;
        self.flush()
    }

    /// Ids written ahead and not yet settled: the door may hold them whatever the applied state says.
    pub(crate) fn written_ahead(&self, door: &str) -> Result<BTreeMap<DoorUserId, UserKey>, StoreError> {
        by_door_id(&self.writeahead_tree(door)?)
    }

    /// Settles ids whose outcome is recorded (applied or deleted) or proven absent by a read-back.
    /// Not flushed on its own: an entry that survives a crash only costs one harmless delete.
    pub(crate) fn settle_write_ahead(&self, door: &str, ids: &[DoorUserId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let tree = self.writeahead_tree(door)?;
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(&id_bytes(*id));
        }
        tree.apply_batch(batch)?;
        Ok(())
    }

    /// Everything the door may hold: the applied state, plus an entry with neither record nor face
    /// for each id written ahead but not acknowledged. Plans and urgent deletes start from this, so
    /// such an id is deleted when its user must not pass and re-sent when they may. The daemon's
    /// paths read it one entry at a time or in compact form (`Store::may_hold_compact`).
    #[cfg(test)]
    pub(crate) fn may_hold(&self, door: &str) -> Result<BTreeMap<DoorUserId, AppliedEntry>, StoreError> {
        let mut out = BTreeMap::new();
        self.each_may_hold(door, |id, entry| {
            out.insert(id, entry);
            Ok(())
        })?;
        Ok(out)
    }

    /// `Store::may_hold` one entry at a time (acknowledged ones in id order, then the ids only
    /// written ahead), for callers that keep a few of them rather than the door's whole state. The
    /// first error (a corrupt entry, or `visit`'s) ends the walk.
    pub(crate) fn each_may_hold(
        &self,
        door: &str,
        mut visit: impl FnMut(DoorUserId, AppliedEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let applied = self.applied_tree(door)?;
        each_by_door_id(&applied, &mut visit)?;
        each_by_door_id(&self.writeahead_tree(door)?, |id, key: UserKey| {
            if applied.contains_key(id_bytes(id))? {
                return Ok(());
            }
            let entry = AppliedEntry {
                key,
                record: None,
                face: None,
            };
            visit(id, entry)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_written_ahead_survive_a_reopen_and_count_as_held_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let key = UserKey::new("IDENTITY", "a");
        {
            let store = Store::open(dir.path()).unwrap();
            store.write_ahead("lobby", &[(DoorUserId(7), key.clone())]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let held = store.may_hold("lobby").unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[&DoorUserId(7)].key, key);
        assert!(held[&DoorUserId(7)].record.is_none());
        assert!(store.applied("lobby").unwrap().is_empty(), "nothing acknowledged");
        assert!(store.may_hold("hall").unwrap().is_empty(), "per door");
        store.settle_write_ahead("lobby", &[DoorUserId(7)]).unwrap();
        assert!(store.may_hold("lobby").unwrap().is_empty());
    }
}
