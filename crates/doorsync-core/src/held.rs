//! The planner's compact view of what a door may hold and of its id table: per door-local id a digest
//! of whose it is and of the acknowledged record, plus the face ref, instead of the full
//! [`AppliedEntry`] with its key strings and display name; per user a key digest and an id instead of
//! a map of key strings (BENCHMARKS.md, memory budget).
//!
//! The digests are SHA-256: the planner only ever asks "same user?" and "same record?", and a
//! collision could skip a delete or an upsert, so a non-cryptographic hash would not do.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

use crate::domain::{AppliedEntry, DoorRecord, DoorUserId, FaceRef, Policy, UserKey};

/// SHA-256 of a user key (type and id, each length-prefixed so no two keys encode alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &UserKey) -> Self {
        let mut h = Sha256::new();
        h.update(b"doorsync user key v1\0");
        for part in [&key.user_type, &key.user_id] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        Self(h.finalize().into())
    }
}

/// SHA-256 of every field of a [`DoorRecord`], in a fixed encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordDigest(pub [u8; 32]);

impl RecordDigest {
    pub fn of(record: &DoorRecord) -> Self {
        Self::of_fields(
            record.id,
            record.policy,
            record.expire_at,
            record.face,
            &record.display_name,
        )
    }

    /// The digest of the record these fields make, without building it.
    pub fn of_fields(
        id: DoorUserId,
        policy: Policy,
        expire_at: Option<Timestamp>,
        face: FaceRef,
        display_name: &str,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(b"doorsync door record v1\0");
        h.update(id.0.to_be_bytes());
        h.update([match policy {
            Policy::Permission => 0u8,
            Policy::Deny => 1,
        }]);
        match expire_at {
            None => h.update([0u8]),
            Some(at) => {
                h.update([1u8]);
                h.update(at.as_second().to_be_bytes());
                h.update(at.subsec_nanosecond().to_be_bytes());
            }
        }
        h.update(face.sha256);
        h.update(face.len_bytes.to_be_bytes());
        h.update((display_name.len() as u64).to_be_bytes());
        h.update(display_name.as_bytes());
        Self(h.finalize().into())
    }
}

/// What the door may hold under one id, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Whose entry it is.
    pub key: KeyDigest,
    /// The record the door acknowledged, if any.
    pub record: Option<RecordDigest>,
    /// The face file the door acknowledged, if any.
    pub face: Option<FaceRef>,
}

impl Held {
    pub fn of(entry: &AppliedEntry) -> Self {
        Self {
            key: KeyDigest::of(&entry.key),
            record: entry.record.as_ref().map(RecordDigest::of),
            face: entry.face,
        }
    }

    /// Whether this entry is `key`'s.
    pub fn is(&self, key: &UserKey) -> bool {
        self.key == KeyDigest::of(key)
    }
}

/// A door's id table (which door-local id each user has) as the planner reads it: per user the
/// digest of their key and their id, sorted by digest, 36 bytes per user instead of a map of key
/// strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdTable(Vec<(KeyDigest, DoorUserId)>);

impl IdTable {
    /// The table of `ids`, a map so each key appears once.
    pub fn from_map(ids: &BTreeMap<UserKey, DoorUserId>) -> Self {
        let mut pairs: Vec<(KeyDigest, DoorUserId)> = ids.iter().map(|(k, id)| (KeyDigest::of(k), *id)).collect();
        pairs.sort_by_key(|(k, _)| *k);
        Self(pairs)
    }

    /// `key`'s id, if the table has one.
    pub fn get(&self, key: &UserKey) -> Option<DoorUserId> {
        let digest = KeyDigest::of(key);
        self.0
            .binary_search_by_key(&digest, |(k, _)| *k)
            .ok()
            .map(|i| self.0[i].1)
    }

    /// Every id in the table (some may be mapped from two keys).
    pub fn ids(&self) -> impl Iterator<Item = DoorUserId> + '_ {
        self.0.iter().map(|(_, id)| *id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DoorRecord {
        DoorRecord {
            id: DoorUserId(7),
            policy: Policy::Permission,
            expire_at: None,
            face: FaceRef {
                sha256: [1; 32],
                len_bytes: 10,
            },
            display_name: "A".into(),
        }
    }

    #[test]
    fn keys_that_concatenate_alike_digest_differently() {
        assert_ne!(
            KeyDigest::of(&UserKey::new("AB", "C")),
            KeyDigest::of(&UserKey::new("A", "BC"))
        );
        assert_eq!(
            KeyDigest::of(&UserKey::new("A", "B")),
            KeyDigest::of(&UserKey::new("A", "B"))
        );
    }

    #[test]
    fn every_record_field_changes_the_digest() {
        let base = RecordDigest::of(&record());
        let changes: [fn(&mut DoorRecord); 6] = [
            |r| r.id = DoorUserId(8),
            |r| r.policy = Policy::Deny,
            |r| r.expire_at = Some(Timestamp::UNIX_EPOCH),
            |r| r.face.sha256[0] = 2,
            |r| r.face.len_bytes = 11,
            |r| r.display_name = "B".into(),
        ];
        for change in changes {
            let mut r = record();
            change(&mut r);
            assert_ne!(RecordDigest::of(&r), base, "{r:?}");
        }
        assert_eq!(RecordDigest::of(&record()), base);
    }

    #[test]
    fn the_id_table_finds_each_key_and_only_those() {
        let map = BTreeMap::from([
            (UserKey::new("IDENTITY", "a"), DoorUserId(3)),
            (UserKey::new("IDENTITY", "b"), DoorUserId(3)),
            (UserKey::new("PHONE", "c"), DoorUserId(9)),
        ]);
        let table = IdTable::from_map(&map);
        assert_eq!(table.len(), 3);
        for (key, id) in &map {
            assert_eq!(table.get(key), Some(*id), "{key}");
        }
        assert_eq!(table.get(&UserKey::new("IDENTITY", "c")), None);
        let mut ids: Vec<_> = table.ids().collect();
        ids.sort();
        assert_eq!(ids, [DoorUserId(3), DoorUserId(3), DoorUserId(9)]);
        assert!(IdTable::default().is_empty());
    }
}
