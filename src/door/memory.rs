//! An in-process door: the door-side database behind the `Door` trait with no OSDP link, so sync
//! logic is tested against real door semantics (files applied whole, hashes checked, idempotent
//! deletes) rather than scripted mocks. Knobs for tests: offline, a per-face transfer delay (a slow
//! serial line, during which deletes still get through), and a log of the ops the door applied, in order.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::db::{DoorDb, DoorDbLimits};
use super::vendor::{self, FileResult};
use super::{BucketDigest, Door, DoorDigest, DoorError, DoorInfo, DoorListEntry, FaceStatus};
use crate::domain::{DoorRecord, DoorUserId, FaceRef};

/// One operation the door applied, as logged by [`MemoryDoor::calls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorCall {
    Upsert(Vec<DoorUserId>),
    PutFace(DoorUserId),
    Delete(Vec<DoorUserId>),
    Clear,
}

/// A door held in memory. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MemoryDoor {
    db: Mutex<DoorDb>,
    offline: AtomicBool,
    image_bytes_received: AtomicU64,
    face_delay: Mutex<Duration>,
    calls: Mutex<Vec<DoorCall>>,
}

impl MemoryDoor {
    pub fn new(limits: DoorDbLimits) -> Self {
        Self {
            db: Mutex::new(DoorDb::new(limits)),
            offline: AtomicBool::new(false),
            image_bytes_received: AtomicU64::new(0),
            face_delay: Mutex::new(Duration::ZERO),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every face file takes this long to arrive (a slow line). The database is not locked meanwhile,
    /// so a delete sent during the transfer is applied at once, as real hardware must do.
    pub fn set_face_delay(&self, delay: Duration) {
        *self.face_delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// The ops the door applied (refused and offline calls are not logged), oldest first.
    pub fn calls(&self) -> Vec<DoorCall> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every user id the door holds, ascending.
    pub fn user_ids(&self) -> Vec<DoorUserId> {
        let db = self.lock();
        let mut ids: Vec<DoorUserId> = (0..vendor::BUCKET_COUNT)
            .flat_map(|b| db.list(b))
            .map(|e| e.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Forgets every user and face, as a factory reset or a replaced unit would.
    pub fn factory_reset(&self) {
        self.lock().clear();
    }

    fn log(&self, call: DoorCall) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call);
    }

    /// While offline every call fails with `DoorError::Offline`, as an unplugged door would.
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
    }

    /// A copy of what the door holds.
    pub fn snapshot(&self) -> DoorDb {
        self.lock().clone()
    }

    /// Runs `f` on the door's database, e.g. to simulate a technician's manual change or a reset.
    pub fn tamper<R>(&self, f: impl FnOnce(&mut DoorDb) -> R) -> R {
        f(&mut self.lock())
    }

    /// JPEG bytes received in face files so far.
    pub fn image_bytes_received(&self) -> u64 {
        self.image_bytes_received.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DoorDb> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn online(&self) -> Result<std::sync::MutexGuard<'_, DoorDb>, DoorError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(DoorError::Offline {
                reason: "memory door switched offline".into(),
            });
        }
        Ok(self.lock())
    }
}

fn file_result(result: FileResult) -> Result<(), DoorError> {
    match result {
        FileResult::Applied => Ok(()),
        other => Err(DoorError::FileRejected { result: other }),
    }
}

#[async_trait]
impl Door for MemoryDoor {
    async fn upsert_users(&self, records: &[DoorRecord]) -> Result<(), DoorError> {
        let mut db = self.online()?;
        for file in vendor::encode_record_files(records, db.max_file_bytes())? {
            file_result(db.apply_file(vendor::FT_TYPE_RECORDS, &file))?;
        }
        // Logged with the database still locked, so the log order is the order ops took effect.
        self.log(DoorCall::Upsert(records.iter().map(|r| r.id).collect()));
        drop(db);
        Ok(())
    }

    async fn put_face(&self, id: DoorUserId, _face: FaceRef, jpeg: Bytes) -> Result<(), DoorError> {
        let delay = *self.face_delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            drop(self.online()?);
            tokio::time::sleep(delay).await;
        }
        let mut db = self.online()?;
        let file = vendor::encode_face_file(id, &jpeg)?;
        file_result(db.apply_file(vendor::FT_TYPE_FACE, &file))?;
        self.image_bytes_received.fetch_add(jpeg.len() as u64, Ordering::SeqCst);
        self.log(DoorCall::PutFace(id));
        drop(db);
        Ok(())
    }

    async fn delete_users(&self, ids: &[DoorUserId]) -> Result<(), DoorError> {
        let mut db = self.online()?;
        db.delete(ids);
        self.log(DoorCall::Delete(ids.to_vec()));
        drop(db);
        Ok(())
    }

    async fn digest(&self) -> Result<DoorDigest, DoorError> {
        Ok(self.online()?.digest())
    }

    async fn bucket_digests(&self) -> Result<Vec<BucketDigest>, DoorError> {
        Ok(self.online()?.bucket_digests())
    }

    async fn list(&self, bucket: u8) -> Result<Vec<DoorListEntry>, DoorError> {
        Ok(self.online()?.list(bucket))
    }

    async fn face_status(&self, id: DoorUserId) -> Result<FaceStatus, DoorError> {
        Ok(self.online()?.face_status(id))
    }

    async fn clear(&self) -> Result<(), DoorError> {
        let mut db = self.online()?;
        db.clear();
        self.log(DoorCall::Clear);
        drop(db);
        Ok(())
    }

    async fn info(&self) -> Result<DoorInfo, DoorError> {
        Ok(self.online()?.info())
    }
}
