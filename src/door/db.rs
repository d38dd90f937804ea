//! Door-side database semantics of the vendor extension: what a conforming door does with each complete
//! file and each osdp_MFG command. Pure and in-memory; the simulated door wraps it, and a hardware vendor
//! can read it as the reference for `firmware-config/PROTOCOL.md`.
//!
//! Invariants: a file is applied whole or not at all; a rejected file leaves every stored record and face
//! as it was; every command is idempotent (executing it twice equals executing it once).

mod assembler;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use assembler::{FileAssembler, FragmentProgress};

use super::vendor::{
    self, BUCKET_COUNT, BucketPage, Command, DigestEntry, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult, ListPage,
    MAX_BUCKETS_PER_REPLY, MAX_LIST_ENTRIES_PER_REPLY, MfgCommand, MfgReply, PROTOCOL_VERSION, Reply, Status,
};
use super::{BucketDigest, DoorDigest, DoorInfo, DoorListEntry, FaceStatus};
use crate::domain::{DoorRecord, DoorUserId};

/// NAK code a door sends for osdp_MFG data too short to hold the 3-byte header.
pub(crate) const NAK_RECORD: u8 = 0x09;

/// Limits of one door model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorDbLimits {
    pub capacity_users: u32,
    pub max_record_file_bytes: u32,
    pub max_face_jpeg_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredFace {
    sha256: [u8; 32],
    jpeg: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredUser {
    record: DoorRecord,
    record_hash: [u8; 32],
    face: Option<StoredFace>,
}

/// How a door answers one osdp_MFG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DoorAnswer {
    /// osdp_ACK: DELETE and CLEAR done.
    Ack,
    /// osdp_MFGREP with this vendor data (at once, or queued for the next osdp_POLL).
    Reply(MfgReply),
    /// osdp_NAK with this code.
    Nak(u8),
}

/// The users and faces one door holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorDb {
    limits: DoorDbLimits,
    users: BTreeMap<u32, StoredUser>,
    last_file_type: u8,
    last_file_result: FileResult,
}

impl DoorDb {
    pub fn new(limits: DoorDbLimits) -> Self {
        Self {
            limits,
            users: BTreeMap::new(),
            last_file_type: 0,
            last_file_result: FileResult::None,
        }
    }

    pub fn limits(&self) -> DoorDbLimits {
        self.limits
    }

    /// The largest file (header included) this door accepts, for sizing a [`FileAssembler`].
    pub(crate) fn max_file_bytes(&self) -> u32 {
        let face = self
            .limits
            .max_face_jpeg_bytes
            .saturating_add(vendor::FACE_FILE_HEADER_BYTES as u32);
        face.max(self.limits.max_record_file_bytes)
    }

    #[cfg(test)]
    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn record(&self, id: DoorUserId) -> Option<&DoorRecord> {
        self.users.get(&id.0).map(|u| &u.record)
    }

    pub fn face_jpeg(&self, id: DoorUserId) -> Option<&[u8]> {
        self.users.get(&id.0)?.face.as_ref().map(|f| f.jpeg.as_slice())
    }

    /// Every id the door holds a record for, ascending.
    pub fn user_ids(&self) -> impl Iterator<Item = DoorUserId> + '_ {
        self.users.keys().map(|id| DoorUserId(*id))
    }

    /// Forgets INFO's last-file fields, as a door does at start-up ("none yet" until the next file).
    pub(crate) fn reset_last_file(&mut self) {
        self.last_file_type = 0;
        self.last_file_result = FileResult::None;
    }

    /// Applies one complete file by FtType and remembers the result for INFO.
    pub fn apply_file(&mut self, ft_type: u8, bytes: &[u8]) -> FileResult {
        let result = match ft_type {
            FT_TYPE_RECORDS => self.apply_record_file(bytes),
            FT_TYPE_FACE => self.apply_face_file(bytes),
            _ => FileResult::UnknownType,
        };
        self.last_file_type = ft_type;
        self.last_file_result = result;
        result
    }

    fn apply_record_file(&mut self, bytes: &[u8]) -> FileResult {
        if bytes.len() > self.limits.max_record_file_bytes as usize {
            return FileResult::TooLarge;
        }
        let Ok(records) = vendor::decode_record_file(bytes) else {
            return FileResult::Corrupt;
        };
        let mut new_ids: Vec<u32> = records
            .iter()
            .map(|(r, _)| r.id.0)
            .filter(|id| !self.users.contains_key(id))
            .collect();
        new_ids.sort_unstable();
        new_ids.dedup();
        if self.users.len() + new_ids.len() > self.limits.capacity_users as usize {
            return FileResult::Capacity;
        }
        for (record, record_hash) in records {
            // Upsert replaces the record only: the face held stays until a face file or a delete changes it.
            let face = self.users.remove(&record.id.0).and_then(|u| u.face);
            self.users.insert(
                record.id.0,
                StoredUser {
                    record,
                    record_hash,
                    face,
                },
            );
        }
        FileResult::Applied
    }

    fn apply_face_file(&mut self, bytes: &[u8]) -> FileResult {
        let max = (self.limits.max_face_jpeg_bytes as usize).saturating_add(vendor::FACE_FILE_HEADER_BYTES);
        if bytes.len() > max {
            return FileResult::TooLarge;
        }
        let Ok(file) = vendor::decode_face_file(bytes) else {
            return FileResult::Corrupt;
        };
        let Some(user) = self.users.get_mut(&file.id.0) else {
            return FileResult::UnknownUser;
        };
        if user.record.face.sha256 != file.sha256 {
            return FileResult::FaceMismatch;
        }
        user.face = Some(StoredFace {
            sha256: file.sha256,
            jpeg: file.jpeg,
        });
        FileResult::Applied
    }

    /// Removes these users and their faces; absent ids are ignored.
    pub fn delete(&mut self, ids: &[DoorUserId]) {
        for id in ids {
            self.users.remove(&id.0);
        }
    }

    pub fn clear(&mut self) {
        self.users.clear();
    }

    fn entries(&self) -> impl Iterator<Item = DigestEntry> + '_ {
        self.users.iter().map(|(id, u)| DigestEntry {
            id: DoorUserId(*id),
            record_hash: u.record_hash,
            face_hash: u.face.as_ref().map_or(vendor::NO_FACE, |f| f.sha256),
        })
    }

    pub fn digest(&self) -> DoorDigest {
        DoorDigest {
            user_count: self.users.len() as u32,
            digest: vendor::digest(self.entries()),
        }
    }

    /// Every bucket, in order.
    pub fn bucket_digests(&self) -> Vec<BucketDigest> {
        let mut buckets: Vec<Vec<DigestEntry>> = vec![Vec::new(); usize::from(BUCKET_COUNT)];
        for e in self.entries() {
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

    /// The BUCKET_DIGESTS answer: up to 5 buckets from `first_bucket`.
    pub(crate) fn bucket_page(&self, first_bucket: u8) -> Result<BucketPage, Status> {
        if first_bucket >= BUCKET_COUNT {
            return Err(Status::OutOfRange);
        }
        let buckets = self
            .bucket_digests()
            .into_iter()
            .skip(usize::from(first_bucket))
            .take(MAX_BUCKETS_PER_REPLY)
            .collect();
        Ok(BucketPage {
            bucket_count: BUCKET_COUNT,
            first_bucket,
            buckets,
        })
    }

    /// The LIST answer: up to 4 users of `bucket` with id ≥ `cursor`, ascending.
    pub(crate) fn list_page(&self, bucket: u8, cursor: u32) -> Result<ListPage, Status> {
        if bucket >= BUCKET_COUNT {
            return Err(Status::OutOfRange);
        }
        let mut matching = self
            .entries()
            .filter(|e| e.id.0 >= cursor && vendor::bucket_of(e.id) == bucket)
            .map(|e| DoorListEntry {
                id: e.id,
                record_hash_prefix: vendor::prefix(&e.record_hash),
                face_hash_prefix: vendor::prefix(&e.face_hash),
            });
        let entries: Vec<DoorListEntry> = matching.by_ref().take(MAX_LIST_ENTRIES_PER_REPLY).collect();
        let more = matching.next().is_some();
        let next_cursor = match entries.last() {
            // An id after the last one exists, so last + 1 cannot overflow.
            Some(last) if more => Some(last.id.0.saturating_add(1)),
            _ => None,
        };
        Ok(ListPage {
            bucket,
            next_cursor,
            entries,
        })
    }

    /// Every user of one bucket (all LIST pages joined).
    pub fn list(&self, bucket: u8) -> Vec<DoorListEntry> {
        let mut out = Vec::new();
        let mut cursor = 0;
        while let Ok(page) = self.list_page(bucket, cursor) {
            out.extend(page.entries);
            match page.next_cursor {
                Some(c) => cursor = c,
                None => break,
            }
        }
        out
    }

    pub fn face_status(&self, id: DoorUserId) -> FaceStatus {
        let user = self.users.get(&id.0);
        FaceStatus {
            id,
            record_hash_prefix: user.map(|u| vendor::prefix(&u.record_hash)),
            face_sha256: user.and_then(|u| u.face.as_ref()).map(|f| f.sha256),
        }
    }

    pub fn info(&self) -> DoorInfo {
        DoorInfo {
            protocol_version: PROTOCOL_VERSION,
            bucket_count: BUCKET_COUNT,
            capacity_users: self.limits.capacity_users,
            user_count: self.users.len() as u32,
            face_count: self.users.values().filter(|u| u.face.is_some()).count() as u32,
            max_record_file_bytes: self.limits.max_record_file_bytes,
            max_face_jpeg_bytes: self.limits.max_face_jpeg_bytes,
            last_file_type: self.last_file_type,
            last_file_result: self.last_file_result,
        }
    }

    /// Executes one osdp_MFG's vendor data (after the vendor code) and says how to answer.
    pub(crate) fn handle_mfg(&mut self, vendor_data: &[u8]) -> DoorAnswer {
        let Some((op_code, request_id)) = MfgCommand::peek_header(vendor_data) else {
            return DoorAnswer::Nak(NAK_RECORD);
        };
        let failed = |status| {
            DoorAnswer::Reply(MfgReply {
                request_id,
                reply: Reply::Failed { op_code, status },
            })
        };
        let cmd = match MfgCommand::decode(vendor_data) {
            Ok(cmd) => cmd,
            Err(e) => return failed(Status::for_error(&e)),
        };
        let reply = match cmd.command {
            Command::Info => Reply::Info(self.info()),
            Command::Digest => Reply::Digest(self.digest()),
            Command::BucketDigests { first_bucket } => match self.bucket_page(first_bucket) {
                Ok(page) => Reply::BucketDigests(page),
                Err(status) => return failed(status),
            },
            Command::List { bucket, cursor } => match self.list_page(bucket, cursor) {
                Ok(page) => Reply::List(page),
                Err(status) => return failed(status),
            },
            Command::FaceStatus(id) => Reply::FaceStatus(self.face_status(id)),
            Command::Delete(ids) => {
                self.delete(&ids);
                return DoorAnswer::Ack;
            }
            Command::Clear => {
                self.clear();
                return DoorAnswer::Ack;
            }
        };
        DoorAnswer::Reply(MfgReply { request_id, reply })
    }
}

#[cfg(test)]
mod tests;
