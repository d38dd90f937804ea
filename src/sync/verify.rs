//! Verified convergence: read back what a door holds and correct the record of what it holds.
//!
//! The door's DIGEST is compared with the digest of the applied state. On a mismatch (door replaced,
//! factory reset, manual change) the bucket digests narrow it down and LIST names the differing ids,
//! without reading the whole door. Users the door lacks or holds differently are forgotten from the
//! applied state (keeping their ids), so the next plan re-sends just those; ids the door holds that
//! the agent never recorded are deleted at once — an unknown person on a door is stale access.
//!
//! Ids written ahead (a file about to go out when the agent stopped) are not strangers: a door that
//! lists one applied that file before the agent could record it. Such an id stays "may hold", so the
//! next plan deletes it (user must not pass) or re-sends it; an expected recovery, logged at info.
//! A read-back that proves the door does not hold a written-ahead id settles it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::apply::DoorTarget;
use super::delete::{DeleteFailed, delete_and_record};
use crate::domain::{AppliedEntry, DoorUserId, UserKey};
use crate::door::{self, DoorError, vendor};
use crate::store::{Store, StoreError};

/// What a verification found and corrected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The door's digest equalled the applied state's: nothing to repair.
    pub matched: bool,
    pub buckets_differing: u64,
    /// Ids on the door the agent never recorded: deleted from the door.
    pub unknown_deleted: u64,
    /// Recorded users the door does not hold: forgotten, so the next plan re-sends them.
    pub missing: u64,
    /// Recorded users the door holds with another record or face: forgotten likewise.
    pub mismatched: u64,
    /// Ids written ahead that the door holds (an interrupted transfer applied them): re-planned.
    #[serde(default)]
    pub recovered: u64,
    /// Ids on the door the agent never recorded, left in place because the store holds no complete
    /// roster yet (a new store must not wipe a door it cannot vouch for); `status` lists them.
    #[serde(default)]
    pub unknown_kept: u64,
}

impl VerifyReport {
    #[cfg(test)]
    pub(crate) fn repairs(&self) -> u64 {
        self.unknown_deleted + self.missing + self.mismatched
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum VerifyError {
    #[error(transparent)]
    Door(#[from] DoorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads back `target` and corrects the store's record of it. Run `apply_door` afterwards to repair.
pub(crate) async fn verify_door(
    store: &Store,
    target: &DoorTarget<'_>,
    now: Timestamp,
) -> Result<VerifyReport, VerifyError> {
    let applied = store.applied(target.name)?;
    let ahead: BTreeMap<DoorUserId, UserKey> = store
        .written_ahead(target.name)?
        .into_iter()
        .filter(|(id, _)| !applied.contains_key(id))
        .collect();
    let expected = door::expected_digest(&applied);
    let reported = target.door.digest().await?;
    let mut report = VerifyReport::default();
    if reported.user_count == expected.user_count && reported.digest == expected.digest {
        report.matched = true;
        // The door holds exactly the applied state: no written-ahead id reached it.
        let absent: Vec<DoorUserId> = ahead.keys().copied().collect();
        store.settle_write_ahead(target.name, &absent)?;
        store.put_unknown_on_door(target.name, &[])?;
        let mut status = store.door_status(target.name)?;
        status.last_verified_at = Some(now);
        store.put_door_status(target.name, &status)?;
        return Ok(report);
    }
    if ahead.is_empty() {
        tracing::warn!(
            door = target.name,
            expected = expected.user_count,
            reported = reported.user_count,
            "door differs from the record; narrowing down"
        );
    } else {
        tracing::info!(
            door = target.name,
            expected = expected.user_count,
            reported = reported.user_count,
            written_ahead = ahead.len(),
            "recovering from an interrupted transfer: reading back the ids it may have created"
        );
    }
    let reported_buckets = target.door.bucket_digests().await?;
    let differing = door::diff_buckets(&door::expected_bucket_digests(&applied), &reported_buckets);
    report.buckets_differing = differing.len() as u64;
    // Written-ahead ids in a bucket that matches the record are proven absent.
    let differing_set: std::collections::BTreeSet<u8> = differing.iter().copied().collect();
    let mut absent: Vec<DoorUserId> = ahead
        .keys()
        .filter(|id| !differing_set.contains(&vendor::bucket_of(**id)))
        .copied()
        .collect();
    let mut unknown = Vec::new();
    for bucket in differing {
        let mut ahead_here: std::collections::BTreeSet<DoorUserId> = ahead
            .keys()
            .filter(|id| vendor::bucket_of(**id) == bucket)
            .copied()
            .collect();
        let listed = target.door.list(bucket).await?;
        let mut expected_here: BTreeMap<DoorUserId, (&AppliedEntry, vendor::DigestEntry)> = applied
            .iter()
            .filter(|(id, _)| vendor::bucket_of(**id) == bucket)
            .filter_map(|(id, e)| door::expected_entry(*id, e).map(|d| (*id, (e, d))))
            .collect();
        for entry in listed {
            match expected_here.remove(&entry.id) {
                None if ahead_here.remove(&entry.id) => {
                    report.recovered += 1;
                    tracing::info!(
                        door = target.name,
                        id = entry.id.0,
                        user = %ahead[&entry.id],
                        "the door applied a file the agent had not recorded; re-planning that id"
                    );
                }
                None => unknown.push(entry.id),
                Some((applied_entry, want)) => {
                    let record_ok = vendor::prefix(&want.record_hash) == entry.record_hash_prefix;
                    let face_ok = vendor::prefix(&want.face_hash) == entry.face_hash_prefix;
                    if record_ok && face_ok {
                        continue;
                    }
                    report.mismatched += 1;
                    let mut corrected = applied_entry.clone();
                    if !record_ok {
                        corrected.record = None;
                    }
                    if !face_ok {
                        corrected.face = None;
                    }
                    store.record_applied(target.name, entry.id, &corrected)?;
                }
            }
        }
        for id in expected_here.into_keys() {
            report.missing += 1;
            store.forget_applied(target.name, id)?;
        }
        absent.extend(ahead_here);
    }
    store.settle_write_ahead(target.name, &absent)?;
    // Entries recorded without an acknowledged record are not expected on the door either; a door
    // that still lists such an id holds something the agent cannot vouch for.
    store.put_unknown_on_door(target.name, &[])?;
    if !unknown.is_empty() && !store.has_complete_roster()? {
        tracing::warn!(
            door = target.name,
            unknown = unknown.len(),
            "no complete roster yet: the door's unknown users are listed, not removed"
        );
        report.unknown_kept = unknown.len() as u64;
        store.put_unknown_on_door(target.name, &unknown)?;
        return Ok(report);
    }
    delete_and_record(store, target.name, target.door, &unknown)
        .await
        .map_err(|e| match e {
            DeleteFailed::Door(e) => VerifyError::Door(e),
            DeleteFailed::Store(e) => VerifyError::Store(e),
        })?;
    report.unknown_deleted += unknown.len() as u64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::domain::{DoorRecord, Policy};
    use crate::door::Door as _;
    use crate::sync::apply::apply_door;
    use crate::sync::testutil::{add_user, memory_door, now, profile};

    async fn converged_door(store: &Store, users: &[&str]) -> crate::door::memory::MemoryDoor {
        for u in users {
            add_user(store, u);
        }
        store.mark_roster_complete().unwrap();
        let door = memory_door();
        let p = profile();
        let report = apply_door(
            store,
            &DoorTarget {
                name: "lobby",
                profile: &p,
                door: &door,
            },
            now(),
            &AtomicU64::new(0),
        )
        .await
        .unwrap();
        assert!(report.converged());
        door
    }

    #[tokio::test]
    async fn a_door_that_holds_what_was_recorded_verifies_without_reading_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let door = converged_door(&store, &["a", "b", "c"]).await;
        let p = profile();
        let report = verify_door(
            &store,
            &DoorTarget {
                name: "lobby",
                profile: &p,
                door: &door,
            },
            now(),
        )
        .await
        .unwrap();
        assert!(report.matched);
        assert_eq!(store.door_status("lobby").unwrap().last_verified_at, Some(now()));
    }

    #[tokio::test]
    async fn without_a_complete_roster_unknown_users_are_listed_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let door = memory_door();
        let p = profile();
        let target = DoorTarget {
            name: "lobby",
            profile: &p,
            door: &door,
        };
        // Another store (a replaced gateway) filled the door; this store has never pulled a roster.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path()).unwrap();
        for u in ["a", "b", "c"] {
            add_user(&other, u);
        }
        apply_door(&other, &target, now(), &AtomicU64::new(0)).await.unwrap();
        let report = verify_door(&store, &target, now()).await.unwrap();
        assert_eq!((report.unknown_kept, report.unknown_deleted), (3, 0), "{report:?}");
        assert_eq!(door.digest().await.unwrap().user_count, 3, "nobody removed");
        assert_eq!(store.unknown_on_door("lobby").unwrap().len(), 3);
        store.mark_roster_complete().unwrap();
        let report = verify_door(&store, &target, now()).await.unwrap();
        assert_eq!(report.unknown_deleted, 3, "with a roster, strangers go");
        assert!(store.unknown_on_door("lobby").unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_factory_reset_door_is_refilled_with_every_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let door = converged_door(&store, &["a", "b", "c"]).await;
        door.tamper(|db| db.clear());
        let p = profile();
        let target = DoorTarget {
            name: "lobby",
            profile: &p,
            door: &door,
        };
        let report = verify_door(&store, &target, now()).await.unwrap();
        assert_eq!((report.matched, report.missing), (false, 3));
        let repair = apply_door(&store, &target, now(), &AtomicU64::new(0)).await.unwrap();
        assert_eq!((repair.upserted, repair.faces_sent), (3, 3));
        assert!(verify_door(&store, &target, now()).await.unwrap().matched);
    }

    #[tokio::test]
    async fn a_changed_face_is_resent_alone_and_an_unknown_person_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let door = converged_door(&store, &["a", "b", "c", "d"]).await;
        let ids = store.door_ids("lobby").unwrap();
        let b = ids[&crate::domain::UserKey::new("IDENTITY", "b")];
        // A technician enrols a stranger by hand, and user b's face gets swapped on the unit.
        let stranger_face = crate::domain::FaceRef {
            sha256: vendor::sha256(b"stranger"),
            len_bytes: 8,
        };
        door.tamper(|db| {
            let stranger = DoorRecord {
                id: DoorUserId(900),
                policy: Policy::Permission,
                expire_at: None,
                face: stranger_face,
                display_name: "stranger".into(),
            };
            let file = vendor::encode_record_file(&[stranger]).unwrap();
            assert_eq!(
                db.apply_file(vendor::FT_TYPE_RECORDS, &file),
                vendor::FileResult::Applied
            );
            let mut record = db.record(b).unwrap().clone();
            record.face = crate::domain::FaceRef {
                sha256: vendor::sha256(b"other face"),
                len_bytes: 10,
            };
            let file = vendor::encode_record_file(&[record]).unwrap();
            assert_eq!(
                db.apply_file(vendor::FT_TYPE_RECORDS, &file),
                vendor::FileResult::Applied
            );
            let face = vendor::encode_face_file(b, b"other face").unwrap();
            assert_eq!(db.apply_file(vendor::FT_TYPE_FACE, &face), vendor::FileResult::Applied);
        });
        let p = profile();
        let target = DoorTarget {
            name: "lobby",
            profile: &p,
            door: &door,
        };
        let report = verify_door(&store, &target, now()).await.unwrap();
        assert_eq!(
            (report.unknown_deleted, report.mismatched, report.missing),
            (1, 1, 0),
            "{report:?}"
        );
        assert!(
            door.snapshot().record(DoorUserId(900)).is_none(),
            "the stranger is gone at once"
        );
        let bytes_before = door.image_bytes_received();
        let repair = apply_door(&store, &target, now(), &AtomicU64::new(0)).await.unwrap();
        assert_eq!(
            (repair.upserted, repair.faces_sent),
            (1, 1),
            "only user b is re-sent: {repair:?}"
        );
        assert_eq!(door.image_bytes_received() - bytes_before, "jpeg of b".len() as u64);
        assert!(verify_door(&store, &target, now()).await.unwrap().matched);
        assert_eq!(door.digest().await.unwrap().user_count, 4);
    }
}
