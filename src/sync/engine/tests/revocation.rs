//! Revocation truth at the engine level: write-ahead ids count as held, `revoke` reports a door it
//! did not reach within its bound, and a door back from an outage is read back before anything else.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::domain::{DoorRecord, DoorUserId, FaceRef};
use crate::door::{BucketDigest, DoorDigest, DoorError, DoorInfo, DoorListEntry, FaceStatus};

/// A door that applies a record file and then "loses" the acknowledgement (as when the agent is
/// killed between the door's ACK and its own record), or never answers a DELETE at all.
struct Faulty {
    inner: Arc<MemoryDoor>,
    lose_upsert_acks: AtomicBool,
    hang_deletes: AtomicBool,
}

impl Faulty {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(memory_door()),
            lose_upsert_acks: AtomicBool::new(false),
            hang_deletes: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl Door for Faulty {
    async fn upsert_users(&self, records: &[DoorRecord]) -> Result<(), DoorError> {
        self.inner.upsert_users(records).await?;
        if self.lose_upsert_acks.load(Ordering::SeqCst) {
            return Err(DoorError::Offline {
                reason: "the acknowledgement was lost".into(),
            });
        }
        Ok(())
    }
    async fn put_face(&self, id: DoorUserId, face: FaceRef, jpeg: Bytes) -> Result<(), DoorError> {
        self.inner.put_face(id, face, jpeg).await
    }
    async fn delete_users(&self, ids: &[DoorUserId]) -> Result<(), DoorError> {
        if self.hang_deletes.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.delete_users(ids).await
    }
    async fn digest(&self) -> Result<DoorDigest, DoorError> {
        self.inner.digest().await
    }
    async fn bucket_digests(&self) -> Result<Vec<BucketDigest>, DoorError> {
        self.inner.bucket_digests().await
    }
    async fn list(&self, bucket: u8) -> Result<Vec<DoorListEntry>, DoorError> {
        self.inner.list(bucket).await
    }
    async fn face_status(&self, id: DoorUserId) -> Result<FaceStatus, DoorError> {
        self.inner.face_status(id).await
    }
    async fn clear(&self) -> Result<(), DoorError> {
        self.inner.clear().await
    }
    async fn info(&self) -> Result<DoorInfo, DoorError> {
        self.inner.info().await
    }
}

struct FaultyRig {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    cloud: Arc<FakeCloud>,
    doors: Vec<Arc<Faulty>>,
}

fn faulty_rig(users: usize, doors: usize, urgent_delete_wait: Duration) -> FaultyRig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cloud = Arc::new(FakeCloud::with_users(users));
    let faulty: Vec<Arc<Faulty>> = (0..doors).map(|_| Faulty::new()).collect();
    let engine_doors = engine_doors(&faulty);
    let settings = EngineSettings {
        urgent_delete_wait,
        ..EngineSettings::default()
    };
    let clock = Arc::new(ManualClock::new(now()));
    let engine = Engine::new(store, cloud.clone(), clock, engine_doors, settings);
    FaultyRig {
        _dir: dir,
        engine: Arc::new(engine),
        cloud,
        doors: faulty,
    }
}

/// The id a door holds for the record named `name`, read from the door itself.
fn door_id_named(door: &MemoryDoor, name: &str) -> Option<DoorUserId> {
    let db = door.snapshot();
    door.user_ids()
        .into_iter()
        .find(|id| db.record(*id).is_some_and(|r| r.display_name == name))
}

#[tokio::test]
async fn a_record_the_door_applied_but_the_agent_never_recorded_is_still_revoked_everywhere() {
    let r = faulty_rig(2, 1, DEFAULT_URGENT_DELETE_WAIT);
    let door = r.doors[0].clone();
    assert!(r.engine.pass(&PassOptions::default(), &quiet).await.unwrap().converged);
    r.cloud.add("x", None);
    r.engine.pull(false).await.unwrap();
    door.lose_upsert_acks.store(true, Ordering::SeqCst);
    let sync = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert!(sync.apply.error.is_some(), "{sync:?}");
    let x_id = door_id_named(&door.inner, "User x").expect("the door applied x's record");
    assert!(
        !r.engine.store().applied("door0").unwrap().contains_key(&x_id),
        "the agent never recorded it"
    );
    assert!(r.engine.store().written_ahead("door0").unwrap().contains_key(&x_id));

    // The door goes away; revoking x must not claim the door was reached.
    door.inner.set_offline(true);
    let revoked = r.engine.revoke(&key("x"), "test").await.unwrap();
    assert!(!revoked.all_doors_reached, "{revoked:?}");
    assert!(revoked.doors[0].error.as_deref().is_some_and(|e| e.contains("offline")));

    // Back online: the door is read back first and x is deleted before anything is uploaded.
    door.inner.set_offline(false);
    door.lose_upsert_acks.store(false, Ordering::SeqCst);
    let calls_before = door.inner.calls().len();
    let back = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert!(back.converged, "{back:?}");
    let verify = back.verify.expect("a door back from an outage is verified first");
    assert_eq!(
        verify.recovered, 1,
        "x's id is a crash leftover, not a stranger: {verify:?}"
    );
    assert_eq!(
        door.inner.calls()[calls_before..].first(),
        Some(&DoorCall::Delete(vec![x_id]))
    );
    assert!(door_id_named(&door.inner, "User x").is_none());
    assert!(r.engine.store().written_ahead("door0").unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn revoke_returns_within_its_bound_with_every_unanswering_door_named() {
    let bound = Duration::from_millis(2600);
    let r = faulty_rig(3, 3, bound);
    assert!(r.engine.pass(&PassOptions::default(), &quiet).await.unwrap().converged);
    // Two doors stop answering (not even an error); the third is fine.
    r.doors[0].hang_deletes.store(true, Ordering::SeqCst);
    r.doors[1].hang_deletes.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let revoked = r.engine.revoke(&key("u1"), "test").await.unwrap();
    assert_eq!(
        started.elapsed(),
        bound,
        "doors are tried in parallel: one bound in all, not one per door"
    );
    assert!(!revoked.all_doors_reached);
    let unreached: Vec<&str> = revoked
        .doors
        .iter()
        .filter(|d| d.error.is_some())
        .map(|d| d.door.as_str())
        .collect();
    assert_eq!(unreached, ["door0", "door1"]);
    assert_eq!(revoked.doors[2].removed, vec![key("u1")]);
    // The delete is not lost: it is the first thing the door's next plan sends.
    r.doors[0].hang_deletes.store(false, Ordering::SeqCst);
    let calls_before = r.doors[0].inner.calls().len();
    let back = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert!(back.converged && back.verify.is_some(), "{back:?}");
    assert!(matches!(
        r.doors[0].inner.calls()[calls_before..].first(),
        Some(DoorCall::Delete(_))
    ));
    assert_eq!(r.doors[0].inner.user_ids().len(), 2);
}

#[tokio::test]
async fn a_door_back_from_an_outage_is_read_back_and_cleaned_before_any_upload() {
    let r = rig(2, 1);
    let door = r.doors[0].clone();
    assert!(r.engine.pass(&PassOptions::default(), &quiet).await.unwrap().converged);
    door.set_offline(true);
    r.cloud.add("new", None);
    r.engine.pull(false).await.unwrap();
    let offline = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert!(!offline.converged);
    // While away, someone enrols a stranger on the unit by hand.
    door.tamper(|db| {
        let stranger = DoorRecord {
            id: DoorUserId(900),
            policy: crate::domain::Policy::Permission,
            expire_at: None,
            face: FaceRef {
                sha256: crate::door::vendor::sha256(b"stranger"),
                len_bytes: 8,
            },
            display_name: "stranger".into(),
        };
        let file = crate::door::vendor::encode_record_file(&[stranger]).unwrap();
        assert_eq!(
            db.apply_file(crate::door::vendor::FT_TYPE_RECORDS, &file),
            crate::door::vendor::FileResult::Applied
        );
    });
    door.set_offline(false);
    let calls_before = door.calls().len();
    // No verification asked for: the outage alone makes the engine read the door back first.
    let back = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert!(back.converged, "{back:?}");
    assert_eq!(back.verify.as_ref().map(|v| v.unknown_deleted), Some(1), "{back:?}");
    let calls = door.calls()[calls_before..].to_vec();
    assert_eq!(
        calls.first(),
        Some(&DoorCall::Delete(vec![DoorUserId(900)])),
        "{calls:?}"
    );
    assert!(calls.iter().any(|c| matches!(c, DoorCall::Upsert(_))));
    // Once verified, the next sync does not read it back again.
    let again = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert!(again.verify.is_none());
}
