//! Reads for planning and applying at gateway scale: a door's may-hold state and id table in the
//! planner's compact forms (`Held`, `IdTable`: digests, no key strings or records), and one applied
//! entry by id for the apply to complete when it records an acknowledgement (BENCHMARKS.md, memory
//! budget).

use std::collections::BTreeMap;

use doorsync_core::held::{Held, IdTable};

use super::{Store, StoreError, decode, id_bytes};
use crate::domain::{AppliedEntry, DoorUserId};

impl Store {
    /// What the door may hold ([`Store::each_may_hold`]) as the planner needs it: per id a digest
    /// of whose entry it is and of the acknowledged record, and the face, read one entry at a time.
    pub(crate) fn may_hold_compact(&self, door: &str) -> Result<BTreeMap<DoorUserId, Held>, StoreError> {
        // Collected first and built in one go: a map filled by ascending inserts leaves its nodes
        // about half full (≈ 150 B per id against ≈ 112 B bulk-built, heap profile in BENCHMARKS.md).
        // The vector is gone before the planner's other inputs are read.
        let mut held = Vec::new();
        self.each_may_hold(door, |id, entry| {
            held.push((id, Held::of(&entry)));
            Ok(())
        })?;
        Ok(held.into_iter().collect())
    }

    /// [`Store::door_ids`] as the planner reads it (key digests, 36 bytes per user). The full map
    /// exists only during this call: read it before the planner's other inputs so it is never on
    /// top of them.
    pub(crate) fn door_id_table(&self, door: &str) -> Result<IdTable, StoreError> {
        Ok(IdTable::from_map(&self.door_ids(door)?))
    }

    /// What `door` acknowledged holding under `id`, if anything.
    pub(crate) fn applied_entry(&self, door: &str, id: DoorUserId) -> Result<Option<AppliedEntry>, StoreError> {
        let tree = self.applied_tree(door)?;
        let k = id_bytes(id);
        tree.get(k)?.map(|v| decode(&tree, &k, &v)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FaceRef, UserKey};

    #[test]
    fn the_compact_view_matches_may_hold_and_entries_read_back_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let acked = AppliedEntry {
            key: UserKey::new("IDENTITY", "a"),
            record: None,
            face: Some(FaceRef {
                sha256: [3; 32],
                len_bytes: 9,
            }),
        };
        store.record_applied("lobby", DoorUserId(2), &acked).unwrap();
        store
            .write_ahead("lobby", &[(DoorUserId(5), UserKey::new("IDENTITY", "b"))])
            .unwrap();
        let full = store.may_hold("lobby").unwrap();
        let compact = store.may_hold_compact("lobby").unwrap();
        assert_eq!(compact, full.iter().map(|(id, e)| (*id, Held::of(e))).collect());
        assert_eq!(compact.len(), 2);
        assert_eq!(store.applied_entry("lobby", DoorUserId(2)).unwrap(), Some(acked));
        assert_eq!(
            store.applied_entry("lobby", DoorUserId(5)).unwrap(),
            None,
            "written ahead only"
        );
    }
}
