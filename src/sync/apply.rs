//! Applying one door's plan: deletes first, and each op recorded in the store only after the door
//! acknowledged it (invariant 3), so a crash at any point leaves a state the next pass converges from.
//!
//! Write-ahead: before a record or face file that may create an id on the door goes out, that id is
//! recorded (durable) as possibly held (`Store::write_ahead`); plans start from `Store::may_hold`, so
//! an id the door may have taken just before a crash is deleted when its user must not pass.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use doorsync_core::held::Held;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::delete::{DeleteFailed, delete_and_record};
use super::desired::user_entries;
use super::plan::{self, MonotonicIds, Plan};
use crate::domain::{AppliedEntry, DoorOp, DoorRecord, DoorUserId, Profile};
use crate::door::{Door, DoorError};
use crate::store::{Store, StoreError};

/// Records per `upsert_users` call: small enough that progress is recorded often, large enough to
/// fill a record file.
const UPSERT_CHUNK: usize = 32;

/// One door as the sync layer sees it.
pub(crate) struct DoorTarget<'a> {
    pub name: &'a str,
    pub profile: &'a Profile,
    pub door: &'a dyn Door,
}

/// What applying a plan did to one door.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub deleted: u64,
    pub upserted: u64,
    pub faces_sent: u64,
    pub image_bytes_sent: u64,
    /// Users the door could not take, by user key, with the reason.
    pub failed: BTreeMap<String, String>,
    pub over_capacity: u64,
    /// Ops still to do when the apply stopped (door offline, or desired state changed).
    pub pending: u64,
    /// Desired state changed mid-apply; the caller re-plans at once.
    pub interrupted: bool,
    /// Why the apply stopped early, if it did.
    pub error: Option<String>,
}

impl ApplyReport {
    /// The door holds exactly the desired state as far as the agent knows.
    pub(crate) fn converged(&self) -> bool {
        self.pending == 0 && self.error.is_none() && !self.interrupted
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many ops `target`'s plan holds at `now`, without sending or recording anything (for a door
/// that is not sent anything yet).
pub(crate) fn pending_ops(store: &Store, target: &DoorTarget<'_>, now: Timestamp) -> Result<u64, StoreError> {
    let ids = store.door_id_table(target.name)?;
    let applied = store.may_hold_compact(target.name)?;
    let entries = user_entries(store, &target.profile.name)?;
    let mut alloc = MonotonicIds {
        next: store.next_id(target.name)?,
    };
    let plan = plan::plan(now, &entries, &applied, &ids, target.profile.capacity_users, &mut alloc);
    Ok(plan.ops.len() as u64)
}

/// [`apply_door_with_progress`] without progress reports: the unit tests' entry point.
#[cfg(test)]
pub(crate) async fn apply_door(
    store: &Store,
    target: &DoorTarget<'_>,
    now: Timestamp,
    generation: &AtomicU64,
) -> Result<ApplyReport, ApplyError> {
    apply_door_with_progress(store, target, now, generation, &|_, _| {}).await
}

/// Ops done so far and ops planned, reported after each acknowledged (or failed) op.
pub(crate) type ApplyProgress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Plans `target` against the store at `now` and applies the plan, calling `progress(done, total)` as
/// ops complete. `generation` counts changes to desired state (revocations, roster changes): if it
/// moves while this runs, the apply stops before its next non-delete op so a stale plan never re-adds
/// someone just revoked.
pub(crate) async fn apply_door_with_progress(
    store: &Store,
    target: &DoorTarget<'_>,
    now: Timestamp,
    generation: &AtomicU64,
    progress: ApplyProgress<'_>,
) -> Result<ApplyReport, ApplyError> {
    let started_generation = generation.load(Ordering::SeqCst);
    // The id table first: its read holds the full map for a moment (`Store::door_id_table`).
    let ids = store.door_id_table(target.name)?;
    let mut applied = store.may_hold_compact(target.name)?;
    let mut entries = user_entries(store, &target.profile.name)?;
    let mut alloc = MonotonicIds {
        next: store.next_id(target.name)?,
    };
    let mut capacity = target.profile.capacity_users;
    // Faces go out: fit them to the door's own INFO limit first (it may be below the profile's). The
    // probe plan's allocator is a copy, so the plan made after the fit hands out the same ids.
    let sends_faces = plan::plan(now, &entries, &applied, &ids, capacity, &mut alloc.clone())
        .faces()
        .next()
        .is_some();
    if sends_faces {
        super::door_faces::fit_entries(store, target, &mut entries).await?;
    }
    let mut plan = plan::plan(now, &entries, &applied, &ids, capacity, &mut alloc);
    if plan.assignments.len() > applied.len() {
        // The door would grow: it must not grow past what it declares it can hold.
        let declared = super::capacity::door_capacity(target.door, capacity, applied.len()).await;
        if declared < capacity {
            capacity = declared;
            alloc = MonotonicIds {
                next: store.next_id(target.name)?,
            };
            plan = plan::plan(now, &entries, &applied, &ids, capacity, &mut alloc);
        }
    }
    // Ids must be durable before any op that uses them reaches the door.
    save_new_ids(store, target.name, &plan, alloc.next)?;
    // The plan borrows the entries (the records it sends are built from them, a chunk at a time), so
    // they stay; the id table would otherwise stay alive through the whole transfer (BENCHMARKS.md,
    // memory budget).
    drop(ids);

    let mut report = ApplyReport {
        over_capacity: plan.over_capacity.len() as u64,
        ..Default::default()
    };
    for key in &plan.over_capacity {
        report.failed.insert(
            key.to_string(),
            format!("door {} is full ({capacity} users)", target.name),
        );
    }
    let total = plan.ops.len() as u64;
    let mut done = Done { n: 0, total, progress };
    let result = run_plan(
        store,
        target,
        &plan,
        &mut applied,
        generation,
        started_generation,
        &mut report,
        &mut done,
    )
    .await;
    let done = done.n;
    report.pending = total - done;
    if let Err(e) = result {
        match e {
            Stop::Door(e) => report.error = Some(e.to_string()),
            Stop::Replan => report.interrupted = true,
            Stop::Store(e) => return Err(e.into()),
        }
    }
    let converged = report.converged();
    store.update_door_status(target.name, |status| {
        status.pending = report.pending;
        status.failed = report.failed.clone();
        status.last_error = report.error.clone();
        if converged {
            status.last_converged_at = Some(now);
        }
    })?;
    Ok(report)
}

/// New ids saved per `Store::save_ids` call: a first pass assigns one per user, and their keys are
/// copied for the store a chunk at a time rather than all at once.
const NEW_IDS_CHUNK: usize = 1024;

/// Records `plan`'s new ids and the allocator's `next_id` durably (`Store::save_ids`, whose order —
/// the next value first, then the ids — holds for each chunk).
fn save_new_ids(store: &Store, door: &str, plan: &Plan<'_>, next_id: u32) -> Result<(), StoreError> {
    if plan.new_ids.is_empty() {
        return store.save_ids(door, &[], next_id);
    }
    for chunk in plan.new_ids.chunks(NEW_IDS_CHUNK) {
        let owned: Vec<_> = chunk.iter().map(|(key, id)| ((*key).clone(), *id)).collect();
        store.save_ids(door, &owned, next_id)?;
    }
    Ok(())
}

/// Counts completed ops and tells the caller's progress callback.
struct Done<'a> {
    n: u64,
    total: u64,
    progress: ApplyProgress<'a>,
}

impl std::ops::AddAssign<u64> for Done<'_> {
    fn add_assign(&mut self, by: u64) {
        self.n += by;
        (self.progress)(self.n, self.total);
    }
}

enum Stop {
    Door(DoorError),
    Replan,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_plan(
    store: &Store,
    target: &DoorTarget<'_>,
    plan: &Plan<'_>,
    applied: &mut BTreeMap<DoorUserId, Held>,
    generation: &AtomicU64,
    started_generation: u64,
    report: &mut ApplyReport,
    done: &mut Done<'_>,
) -> Result<(), Stop> {
    let record = |applied: &mut BTreeMap<DoorUserId, Held>, op: &DoorOp| {
        if let Err(e) = plan::apply_to(applied, op, |id| plan.key_of(id)) {
            tracing::warn!(door = target.name, error = %e, "acknowledged op does not fit the applied model");
        }
    };
    let deletes: Vec<DoorUserId> = plan.deletes().collect();
    delete_and_record(store, target.name, target.door, &deletes)
        .await
        .map_err(|e| match e {
            DeleteFailed::Door(e) => Stop::Door(e),
            DeleteFailed::Store(e) => Stop::Store(e),
        })?;
    for id in &deletes {
        record(applied, &DoorOp::Delete(*id));
    }
    report.deleted += deletes.len() as u64;
    *done += deletes.len() as u64;

    // Records are built one chunk at a time, not the whole plan's at once.
    let mut upserts = plan.upserts().peekable();
    while upserts.peek().is_some() {
        if generation.load(Ordering::SeqCst) != started_generation {
            return Err(Stop::Replan);
        }
        let chunk: Vec<DoorRecord> = upserts.by_ref().take(UPSERT_CHUNK).collect();
        let chunk = chunk.as_slice();
        // Ids the door does not already count as held: this file may create them.
        let creates: Vec<(DoorUserId, crate::domain::UserKey)> = chunk
            .iter()
            .filter(|r| !applied.contains_key(&r.id))
            .filter_map(|r| plan.key_of(r.id).map(|k| (r.id, k.clone())))
            .collect();
        store.write_ahead(target.name, &creates)?;
        match target.door.upsert_users(chunk).await {
            Ok(()) => {
                super::crash_hook::point(super::crash_hook::AFTER_DOOR_ACK);
                for r in chunk {
                    record(applied, &DoorOp::Upsert(r.clone()));
                    // The acknowledged entry in full: this record, and the face the door still
                    // holds for the same user (`apply_to` dropped another user's).
                    if let (Some(held), Some(key)) = (applied.get(&r.id), plan.key_of(r.id)) {
                        let entry = AppliedEntry {
                            key: key.clone(),
                            record: Some(r.clone()),
                            face: held.face,
                        };
                        store.record_applied(target.name, r.id, &entry)?;
                    }
                }
                let settled: Vec<DoorUserId> = chunk.iter().map(|r| r.id).collect();
                store.settle_write_ahead(target.name, &settled)?;
                report.upserted += chunk.len() as u64;
            }
            Err(e) if e.class().stops_pass() => return Err(Stop::Door(e)),
            Err(e) => {
                for r in chunk {
                    let who = plan
                        .key_of(r.id)
                        .map(ToString::to_string)
                        .unwrap_or_else(|| r.id.to_string());
                    report.failed.insert(who, e.to_string());
                }
            }
        }
        *done += chunk.len() as u64;
    }

    for (id, face) in plan.faces() {
        if generation.load(Ordering::SeqCst) != started_generation {
            return Err(Stop::Replan);
        }
        let who = plan
            .key_of(id)
            .map(ToString::to_string)
            .unwrap_or_else(|| id.to_string());
        let jpeg = match store.get_face(&face) {
            Ok(Some(jpeg)) => jpeg,
            // Lost or corrupt (a corrupt file is deleted): the next pull fetches the face again
            // (`Store::refetch_missing_faces`), so the user stays pending and the door never gets
            // wrong bytes.
            unavailable => {
                let reason = unavailable.err().map_or_else(|| "missing".into(), |e| e.to_string());
                tracing::warn!(door = target.name, user = %who, face = %face.sha256_hex(), %reason,
                    "face not in the store; it is fetched again on the next pull");
                continue;
            }
        };
        let len = jpeg.len() as u64;
        if !applied.contains_key(&id)
            && let Some(key) = plan.key_of(id)
        {
            store.write_ahead(target.name, &[(id, key.clone())])?;
        }
        match target.door.put_face(id, face, Bytes::from(jpeg)).await {
            Ok(()) => {
                super::crash_hook::point(super::crash_hook::AFTER_DOOR_ACK);
                record(applied, &DoorOp::PutFace { id, face });
                if let Some(key) = plan.key_of(id)
                    && applied.get(&id).is_some_and(|held| held.is(key))
                {
                    // The record acknowledged for this user, if any, is the stored one.
                    let record = store
                        .applied_entry(target.name, id)?
                        .filter(|e| &e.key == key)
                        .and_then(|e| e.record);
                    let entry = AppliedEntry {
                        key: key.clone(),
                        record,
                        face: Some(face),
                    };
                    store.record_applied(target.name, id, &entry)?;
                    store.settle_write_ahead(target.name, &[id])?;
                }
                report.faces_sent += 1;
                report.image_bytes_sent += len;
            }
            Err(e) if e.class().stops_pass() => return Err(Stop::Door(e)),
            Err(e) => {
                report.failed.insert(who, e.to_string());
            }
        }
        *done += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mockall::Sequence;

    use super::*;
    use crate::domain::UserKey;
    use crate::door::{FileResult, MockDoor};
    use crate::sync::testutil::{add_user, now, profile, record_on_door};

    /// A door that already holds `id` under door id 9 (e.g. someone revoked since the last pass).
    fn seed_applied(store: &Store, id: &str) {
        let face = store.put_face(b"old").unwrap();
        record_on_door(store, "lobby", id, 9, face);
    }

    #[tokio::test]
    async fn deletes_go_first_and_every_acknowledged_op_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let face = add_user(&store, "a");
        seed_applied(&store, "gone");
        let mut door = MockDoor::new();
        door.expect_info().returning(|| Err(DoorError::Timeout)); // INFO capacity: profile wins
        let mut seq = Sequence::new();
        door.expect_delete_users()
            .withf(|ids| ids == [DoorUserId(9)])
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        door.expect_upsert_users()
            .withf(|r| r.len() == 1 && r[0].display_name == "a")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        door.expect_put_face()
            .withf(move |_, f, jpeg| *f == face && jpeg.as_ref() == b"jpeg of a")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(()));
        let p = profile();
        let target = DoorTarget {
            name: "lobby",
            profile: &p,
            door: &door,
        };
        let report = apply_door(&store, &target, now(), &AtomicU64::new(0)).await.unwrap();
        assert!(report.converged(), "{report:?}");
        assert_eq!((report.deleted, report.upserted, report.faces_sent), (1, 1, 1));
        let applied = store.applied("lobby").unwrap();
        assert_eq!(applied.len(), 1);
        let entry = applied.values().next().unwrap();
        assert_eq!(entry.key, UserKey::new("IDENTITY", "a"));
        assert_eq!(entry.face, Some(face));
    }

    #[tokio::test]
    async fn a_second_pass_with_nothing_changed_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        add_user(&store, "a");
        let mut door = MockDoor::new();
        door.expect_info().returning(|| Err(DoorError::Timeout)); // INFO capacity: profile wins
        door.expect_upsert_users().times(1).returning(|_| Ok(()));
        door.expect_put_face().times(1).returning(|_, _, _| Ok(()));
        let p = profile();
        apply_door(
            &store,
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
        let quiet = MockDoor::new(); // any call panics
        let report = apply_door(
            &store,
            &DoorTarget {
                name: "lobby",
                profile: &p,
                door: &quiet,
            },
            now(),
            &AtomicU64::new(0),
        )
        .await
        .unwrap();
        assert_eq!(report, ApplyReport::default());
    }

    #[tokio::test]
    async fn a_door_that_drops_mid_plan_keeps_only_what_it_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        add_user(&store, "a");
        let mut door = MockDoor::new();
        door.expect_info().returning(|| Err(DoorError::Timeout)); // INFO capacity: profile wins
        door.expect_upsert_users().times(1).returning(|_| Ok(()));
        door.expect_put_face().times(1).returning(|_, _, _| {
            Err(DoorError::Offline {
                reason: "silent".into(),
            })
        });
        let p = profile();
        let report = apply_door(
            &store,
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
        assert!(!report.converged());
        assert_eq!(report.pending, 1);
        assert!(report.error.as_deref().is_some_and(|e| e.contains("offline")));
        let entry = store.applied("lobby").unwrap().into_values().next().unwrap();
        assert!(
            entry.record.is_some() && entry.face.is_none(),
            "record acked, face not: {entry:?}"
        );
        assert_eq!(store.door_status("lobby").unwrap().pending, 1);
    }

    #[tokio::test]
    async fn a_face_the_door_refuses_fails_only_that_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bad = add_user(&store, "a");
        add_user(&store, "b");
        let mut door = MockDoor::new();
        door.expect_info().returning(|| Err(DoorError::Timeout)); // INFO capacity: profile wins
        door.expect_upsert_users().returning(|_| Ok(()));
        door.expect_put_face().times(2).returning(move |_, f, _| {
            if f == bad {
                Err(DoorError::FileRejected {
                    result: FileResult::Unusable,
                })
            } else {
                Ok(())
            }
        });
        let p = profile();
        let report = apply_door(
            &store,
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
        assert_eq!(report.faces_sent, 1);
        assert_eq!(report.failed.len(), 1);
        assert!(report.failed.contains_key("IDENTITY:a"), "{:?}", report.failed);
        assert!(report.error.is_none());
    }

    #[tokio::test]
    async fn a_revocation_during_the_apply_stops_it_before_the_next_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        add_user(&store, "a");
        let generation = Arc::new(AtomicU64::new(0));
        let bump = Arc::clone(&generation);
        let mut door = MockDoor::new();
        door.expect_info().returning(|| Err(DoorError::Timeout)); // INFO capacity: profile wins
        door.expect_upsert_users().times(1).returning(move |_| {
            bump.fetch_add(1, Ordering::SeqCst); // e.g. `doorsync revoke` ran meanwhile
            Ok(())
        });
        let p = profile();
        let report = apply_door(
            &store,
            &DoorTarget {
                name: "lobby",
                profile: &p,
                door: &door,
            },
            now(),
            &generation,
        )
        .await
        .unwrap();
        assert!(report.interrupted);
        assert_eq!(report.faces_sent, 0);
    }
}
