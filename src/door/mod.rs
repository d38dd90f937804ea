//! The door boundary: the `Door` trait, the vendor extension codec, and the door-side database semantics.
//!
//! Everything that talks to hardware implements [`Door`]; reconciliation compares a door's answers with
//! [`expected_digest`] / [`expected_bucket_digests`], which use the same hash functions as the door.

#[cfg(any(test, feature = "sim"))]
pub mod db;
pub(crate) mod failure;
#[cfg(any(test, feature = "sim"))]
pub mod memory;
pub(crate) mod osdp_door;
#[cfg(feature = "sim")]
pub mod sim;
pub mod vendor;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{AppliedEntry, DoorRecord, DoorUserId, FaceRef};
use crate::osdp::NakCode;
pub use failure::{FailureClass, Misconfig};
pub use osdp_door::{LinkStats, OsdpDoor, OsdpDoorOptions, ResumePolicy};
pub(crate) use vendor::{FileResult, Status, VendorError};

/// A door's answer to DIGEST: how many users it holds and the digest over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorDigest {
    pub user_count: u32,
    pub digest: [u8; 32],
}

/// One reconciliation bucket as reported: user count and the first 8 bytes of the bucket's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDigest {
    pub bucket: u8,
    pub user_count: u16,
    pub digest: [u8; vendor::BUCKET_DIGEST_BYTES],
}

/// One user in a LIST reply: enough to tell which ids differ from what the agent expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorListEntry {
    pub id: DoorUserId,
    pub record_hash_prefix: [u8; vendor::LIST_PREFIX_BYTES],
    /// Zeros when the door holds no face for the user.
    pub face_hash_prefix: [u8; vendor::LIST_PREFIX_BYTES],
}

/// What a door holds under one id: the record hash prefix and the face sha256, each if present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceStatus {
    pub id: DoorUserId,
    pub record_hash_prefix: Option<[u8; vendor::STATUS_RECORD_PREFIX_BYTES]>,
    pub face_sha256: Option<[u8; 32]>,
}

/// A door's answer to INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorInfo {
    pub protocol_version: u8,
    pub bucket_count: u8,
    pub capacity_users: u32,
    pub user_count: u32,
    pub face_count: u32,
    pub max_record_file_bytes: u32,
    pub max_face_jpeg_bytes: u32,
    /// FtType of the last complete file (0: none yet).
    pub last_file_type: u8,
    pub last_file_result: FileResult,
}

/// Why a door operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DoorError {
    #[error("door is offline: {reason}")]
    Offline { reason: String },
    #[error("door answered {code}")]
    Nak { code: NakCode },
    #[error("door configuration error: {0}")]
    Misconfigured(Misconfig),
    #[error("door refused the command: {status:?}")]
    Rejected { status: Status },
    #[error("door discarded the file: {result:?}")]
    FileRejected { result: FileResult },
    /// A face larger than the door's INFO `max_face_jpeg_bytes`: not sent.
    #[error("face of {bytes} bytes exceeds the door's limit of {max_bytes} bytes (INFO max face JPEG bytes)")]
    FaceTooLarge { bytes: usize, max_bytes: u32 },
    #[error("door did not answer in time")]
    Timeout,
    #[error("protocol error: {0}")]
    Protocol(#[from] VendorError),
    /// What the door reports holding after an operation differs from what was sent (e.g. a face file
    /// that did not land); sending it again is the cure.
    #[error("door holds something else than was sent: {detail}")]
    Corrupt { detail: String },
}

/// A door unit. `&self` methods: an implementation must accept a delete while a face transfer is in
/// flight, so revocations never wait behind image bytes. Every method is idempotent.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Door: Send + Sync {
    /// Create or replace these records (one or more record files).
    async fn upsert_users(&self, records: &[DoorRecord]) -> Result<(), DoorError>;
    /// Send the face file for a user the door holds a record for; `face.sha256` must match `jpeg`.
    async fn put_face(&self, id: DoorUserId, face: FaceRef, jpeg: Bytes) -> Result<(), DoorError>;
    /// Remove these users and their faces; absent ids are fine. Any number of ids: the door splits
    /// them into as many messages as its link needs (the caller records them only after `Ok`).
    async fn delete_users(&self, ids: &[DoorUserId]) -> Result<(), DoorError>;
    async fn digest(&self) -> Result<DoorDigest, DoorError>;
    /// All buckets, in bucket order.
    async fn bucket_digests(&self) -> Result<Vec<BucketDigest>, DoorError>;
    /// Every user of one bucket, ascending id.
    async fn list(&self, bucket: u8) -> Result<Vec<DoorListEntry>, DoorError>;
    async fn face_status(&self, id: DoorUserId) -> Result<FaceStatus, DoorError>;
    /// Remove every user and face.
    async fn clear(&self) -> Result<(), DoorError>;
    async fn info(&self) -> Result<DoorInfo, DoorError>;
    /// The live state of the door's link, for `status` (`None`: the door has no link of its own).
    fn link_snapshot(&self) -> Option<LinkSnapshot> {
        None
    }
}

/// What `status` shows of a door's live OSDP link (only a running daemon has one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkSnapshot {
    /// `init`, `id-discovery`, `cap-discovery`, `online` or `offline`.
    pub state: String,
    /// A Secure Channel session is established right now.
    pub secure_channel: bool,
    /// Why the last Secure Channel handshake failed, until one succeeds.
    pub secure_error: Option<String>,
    /// PDs sharing this door's line (1 on a point-to-point line).
    pub pds_on_line: usize,
}

/// What the door should report for one applied entry, or `None` when the door should not hold it
/// (no acknowledged record: a door refuses faces without a record).
pub(crate) fn expected_entry(id: DoorUserId, entry: &AppliedEntry) -> Option<vendor::DigestEntry> {
    let record = entry.record.as_ref()?;
    Some(vendor::DigestEntry {
        id,
        record_hash: vendor::record_hash(record),
        face_hash: entry.face.map_or(vendor::NO_FACE, |f| f.sha256),
    })
}

/// The DIGEST a door holding exactly `applied` answers.
pub fn expected_digest(applied: &BTreeMap<DoorUserId, AppliedEntry>) -> DoorDigest {
    let entries: Vec<_> = applied.iter().filter_map(|(id, e)| expected_entry(*id, e)).collect();
    DoorDigest {
        user_count: entries.len() as u32,
        digest: vendor::digest(entries),
    }
}

/// The BUCKET_DIGESTS a door holding exactly `applied` answers (all buckets, in order).
pub(crate) fn expected_bucket_digests(applied: &BTreeMap<DoorUserId, AppliedEntry>) -> Vec<BucketDigest> {
    let mut buckets: Vec<Vec<vendor::DigestEntry>> = vec![Vec::new(); usize::from(vendor::BUCKET_COUNT)];
    for e in applied.iter().filter_map(|(id, e)| expected_entry(*id, e)) {
        if let Some(b) = buckets.get_mut(usize::from(vendor::bucket_of(e.id))) {
            b.push(e);
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, entries)| BucketDigest {
            bucket: i as u8,
            user_count: u16::try_from(entries.len()).unwrap_or(u16::MAX),
            digest: vendor::bucket_digest(entries),
        })
        .collect()
}

/// Buckets whose count or digest differ, including buckets missing from either side, ascending.
pub(crate) fn diff_buckets(expected: &[BucketDigest], reported: &[BucketDigest]) -> Vec<u8> {
    let index = |list: &[BucketDigest]| -> BTreeMap<u8, (u16, [u8; 8])> {
        list.iter().map(|b| (b.bucket, (b.user_count, b.digest))).collect()
    };
    let (e, r) = (index(expected), index(reported));
    let mut out: Vec<u8> = e
        .keys()
        .chain(r.keys())
        .copied()
        .filter(|b| e.get(b) != r.get(b))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
