//! An in-process door: the door-side database behind the `Door` trait with no OSDP link, so sync
//! logic is tested against real door semantics (files applied whole, hashes checked, idempotent
//! deletes) rather than scripted mocks. Offline-ness can be switched on to test queued work.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::db::{DoorDb, DoorDbLimits};
use super::vendor::{self, FileResult};
use super::{BucketDigest, Door, DoorDigest, DoorError, DoorInfo, DoorListEntry, FaceStatus};
use crate::domain::{DoorRecord, DoorUserId, FaceRef};

/// A door held in memory. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MemoryDoor {
    db: Mutex<DoorDb>,
    offline: AtomicBool,
    image_bytes_received: AtomicU64,
}

impl MemoryDoor {
    pub fn new(limits: DoorDbLimits) -> Self {
        Self {
            db: Mutex::new(DoorDb::new(limits)),
            offline: AtomicBool::new(false),
            image_bytes_received: AtomicU64::new(0),
        }
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
        Ok(())
    }

    async fn put_face(&self, id: DoorUserId, _face: FaceRef, jpeg: Bytes) -> Result<(), DoorError> {
        let mut db = self.online()?;
        let file = vendor::encode_face_file(id, &jpeg)?;
        file_result(db.apply_file(vendor::FT_TYPE_FACE, &file))?;
        self.image_bytes_received.fetch_add(jpeg.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    async fn delete_users(&self, ids: &[DoorUserId]) -> Result<(), DoorError> {
        self.online()?.delete(ids);
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
        self.online()?.clear();
        Ok(())
    }

    async fn info(&self) -> Result<DoorInfo, DoorError> {
        Ok(self.online()?.info())
    }
}
