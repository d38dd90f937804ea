//! A door's own face limit: faces over the `max_face_jpeg_bytes` a door declares in INFO
//! (PROTOCOL.md §6) are re-normalised within the profile to fit that door before the plan is made
//! ([`crate::faces::fit_to_door`]), so a door with a smaller limit than its profile gets a face it can
//! take. A face that cannot fit stays as it is and the door's `put_face` fails that user with the
//! reason; a door that cannot answer INFO is planned with the stored faces (its pushes fail on their own).

use crate::domain::UserEntry;
use crate::faces::{self, FaceError};
use crate::store::{Store, StoreError};

use super::apply::DoorTarget;

/// Replaces each face in `entries` that is larger than `target`'s INFO limit by its fit for that door
/// (stored content-addressed like any face). True when any entry changed, so the caller re-plans.
pub(crate) async fn fit_entries(
    store: &Store,
    target: &DoorTarget<'_>,
    entries: &mut [UserEntry],
) -> Result<bool, StoreError> {
    let max_bytes = match target.door.info().await {
        Ok(info) => info.max_face_jpeg_bytes,
        Err(e) => {
            tracing::debug!(door = target.name, error = %e, "door INFO unavailable; faces as stored");
            return Ok(false);
        }
    };
    // One face at a time: a door whose limit is below its profile's would otherwise have every face
    // of the roster read into memory at once (BENCHMARKS.md, memory budget).
    let profile = target.profile.image;
    let mut changed = false;
    for entry in entries.iter_mut() {
        let Some(face) = entry.face.filter(|f| f.len_bytes > max_bytes) else {
            continue;
        };
        let Some(jpeg) = store.get_face(&face)? else {
            continue;
        };
        let fitted = tokio::task::spawn_blocking(move || faces::fit_to_door(&jpeg, &profile, max_bytes)).await;
        match fitted {
            Ok(Ok(n)) => {
                let fitted = store.put_face(&n.jpeg)?;
                tracing::debug!(door = target.name, user = %entry.key, from = face.len_bytes,
                    to = fitted.len_bytes, max_bytes, "face re-normalised for the door's limit");
                entry.face = Some(fitted);
                changed = true;
            }
            Ok(Err(e @ FaceError::TooLarge { .. })) => {
                tracing::warn!(door = target.name, error = %e, "face cannot fit the door's limit");
            }
            Ok(Err(e)) => tracing::warn!(door = target.name, error = %e, "face could not be re-normalised"),
            Err(e) => tracing::warn!(door = target.name, error = %e, "face re-normalisation did not finish"),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::domain::FaceRef;
    use crate::door::Door;
    use crate::door::db::DoorDbLimits;
    use crate::door::memory::MemoryDoor;
    use crate::sync::apply::apply_door;
    use crate::sync::testutil::{add_user_with_face, now, profile};

    /// A stored user whose face is a real photo-like JPEG (from the simulated cloud) of `len` bytes.
    fn user_with_real_face(store: &Store, id: &str) -> FaceRef {
        let jpeg = faces::normalise(&crate::cloud::sim::face_jpeg(id), &profile().image)
            .unwrap()
            .jpeg;
        add_user_with_face(store, id, &jpeg)
    }

    fn door_with_face_limit(max_face_jpeg_bytes: u32) -> MemoryDoor {
        MemoryDoor::new(DoorDbLimits {
            capacity_users: 100,
            max_record_file_bytes: 64 * 1024,
            max_face_jpeg_bytes,
        })
    }

    #[tokio::test]
    async fn a_face_over_the_door_limit_is_refitted_delivered_and_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stored = user_with_real_face(&store, "u1");
        let limit = stored.len_bytes * 2 / 3;
        let door = door_with_face_limit(limit);
        let profile = profile();
        let target = DoorTarget {
            name: "door0",
            profile: &profile,
            door: &door,
        };
        let generation = AtomicU64::new(0);
        let first = apply_door(&store, &target, now(), &generation).await.unwrap();
        assert!(first.converged() && first.failed.is_empty(), "{first:?}");
        assert_eq!(first.faces_sent, 1);
        let applied = store.applied("door0").unwrap();
        let sent = applied.values().next().unwrap().face.unwrap();
        assert!(sent.len_bytes <= limit, "{} > {limit}", sent.len_bytes);
        assert_ne!(sent, stored);
        assert_eq!(door.digest().await.unwrap().user_count, 1);
        let second = apply_door(&store, &target, now(), &generation).await.unwrap();
        assert_eq!((second.upserted, second.faces_sent), (0, 0), "{second:?}");
    }

    #[tokio::test]
    async fn a_face_that_cannot_fit_fails_that_user_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        user_with_real_face(&store, "u1");
        let door = door_with_face_limit(200);
        let profile = profile();
        let target = DoorTarget {
            name: "door0",
            profile: &profile,
            door: &door,
        };
        let report = apply_door(&store, &target, now(), &AtomicU64::new(0)).await.unwrap();
        assert_eq!(report.faces_sent, 0);
        let reason = report.failed.get("IDENTITY:u1").or(report.failed.values().next());
        assert!(reason.is_some_and(|r| !r.is_empty()), "{report:?}");
        assert!(store.applied("door0").unwrap().values().all(|e| e.face.is_none()));
    }

    #[tokio::test]
    async fn faces_within_the_limit_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stored = user_with_real_face(&store, "u1");
        let door = door_with_face_limit(stored.len_bytes);
        let profile = profile();
        let target = DoorTarget {
            name: "door0",
            profile: &profile,
            door: &door,
        };
        let mut entries = crate::sync::desired::user_entries(&store, &profile.name).unwrap();
        assert!(!fit_entries(&store, &target, &mut entries).await.unwrap());
        assert_eq!(entries[0].face, Some(stored));
    }
}
