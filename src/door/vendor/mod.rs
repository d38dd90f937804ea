//! The doorsync vendor extension over OSDP: byte codec for the user/face files and the osdp_MFG
//! commands and replies, plus the hash functions both sides must share (see `firmware-config/PROTOCOL.md`).
//!
//! Pure: no I/O, no async. Every decoder is total (bad input gives a [`VendorError`], never a panic).

mod files;
mod mfg;

#[cfg(test)]
mod doc_examples;

use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::domain::{DoorRecord, DoorUserId};

pub use files::{
    FACE_FILE_HEADER_BYTES, FACE_FILE_MAGIC, FaceFile, MAX_DISPLAY_NAME_BYTES, MAX_RECORD_BYTES, MIN_RECORD_FILE_BYTES,
    RECORD_FILE_MAGIC, decode_face_file, decode_record, decode_record_file, encode_face_file, encode_record,
    encode_record_file, encode_record_files, truncate_display_name,
};
pub use mfg::{
    BucketPage, CLEAR_CONFIRM, Command, ListPage, MAX_BUCKETS_PER_REPLY, MAX_DELETE_IDS, MAX_LIST_ENTRIES_PER_REPLY,
    MfgCommand, MfgReply, Op, Reply, Status, delete_batch_size, split_vendor_code, with_vendor_code,
};

/// Version of this extension, carried in files and in the INFO reply.
pub(crate) const PROTOCOL_VERSION: u8 = 1;
/// FtType of a user-record file (osdp_FILETRANSFER private-use range).
pub const FT_TYPE_RECORDS: u8 = 0x81;
/// FtType of a face file.
pub const FT_TYPE_FACE: u8 = 0x82;
/// Largest vendor data (after the 3-byte vendor code) of any osdp_MFG or osdp_MFGREP we send or expect.
/// LibOSDP 3.2.9 NAKs an osdp_MFG with more than 64 bytes after the vendor code.
pub(crate) const MAX_MFG_DATA_BYTES: usize = 64;
/// Number of reconciliation buckets; `bucket_of(id) = id % BUCKET_COUNT`.
pub const BUCKET_COUNT: u8 = 64;
/// Bytes of a bucket digest on the wire (the first bytes of the sha256 digest of that bucket).
pub(crate) const BUCKET_DIGEST_BYTES: usize = 8;
/// Bytes of the record-hash and face-hash prefixes in a LIST entry.
pub(crate) const LIST_PREFIX_BYTES: usize = 4;
/// Bytes of the record-hash prefix in a FACE_STATUS reply.
pub(crate) const STATUS_RECORD_PREFIX_BYTES: usize = 16;

/// Why bytes of the vendor extension could not be decoded (or a value could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VendorError {
    #[error("{what}: need {need} bytes, got {got}")]
    TooShort {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("{what}: {extra} unexpected trailing bytes")]
    TrailingBytes { what: &'static str, extra: usize },
    #[error("{what}: {got} bytes exceed the limit of {max}")]
    TooLong { what: &'static str, got: usize, max: usize },
    #[error("{what}: bad magic {got:02x?}")]
    BadMagic { what: &'static str, got: [u8; 4] },
    #[error("{what}: unsupported version {got} (this side speaks {PROTOCOL_VERSION})")]
    BadVersion { what: &'static str, got: u8 },
    #[error("unknown op code 0x{0:02x}")]
    UnknownOp(u8),
    #[error("unknown status code 0x{0:02x}")]
    UnknownStatus(u8),
    #[error("bad value for {field}: {value}")]
    BadValue { field: &'static str, value: u64 },
    #[error("display name is not valid UTF-8")]
    BadUtf8,
    #[error("CLEAR without the confirm magic")]
    BadConfirm,
    #[error("{what}: sha256 mismatch")]
    ShaMismatch { what: &'static str },
    #[error("vendor code {got:02x?} does not match the profile's {want:02x?}")]
    WrongVendorCode { got: [u8; 3], want: [u8; 3] },
}

/// What became of the last complete file a door received (INFO reports it; FTSTAT carries its sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum FileResult {
    /// No file received since start-up.
    None = 0,
    Applied = 1,
    /// Bad magic/version/lengths/trailer or JPEG sha256: discarded whole.
    Corrupt = 2,
    /// FtSizeTotal above the door's limit.
    TooLarge = 3,
    /// An FtType this extension does not define.
    UnknownType = 4,
    /// Applying the record file would exceed the door's capacity: nothing applied.
    Capacity = 5,
    /// A face file for an id the door holds no record for.
    UnknownUser = 6,
    /// A face file whose sha256 differs from the face sha256 in the user's record.
    FaceMismatch = 7,
    /// A well-formed face file whose image the door could not enrol (no usable face); the previous face stays.
    Unusable = 8,
}

impl FileResult {
    pub(crate) fn from_u8(v: u8) -> Result<FileResult, VendorError> {
        Ok(match v {
            0 => FileResult::None,
            1 => FileResult::Applied,
            2 => FileResult::Corrupt,
            3 => FileResult::TooLarge,
            4 => FileResult::UnknownType,
            5 => FileResult::Capacity,
            6 => FileResult::UnknownUser,
            7 => FileResult::FaceMismatch,
            8 => FileResult::Unusable,
            other => {
                return Err(VendorError::BadValue {
                    field: "file result",
                    value: u64::from(other),
                });
            }
        })
    }

    /// The FtStatusDetail a PD that can report it sends after the last fragment.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn ftstat_status(self) -> i16 {
        match self {
            FileResult::None => 0,
            FileResult::Applied => 1,
            FileResult::Corrupt | FileResult::TooLarge => -3,
            FileResult::UnknownType | FileResult::Unusable => -2,
            FileResult::Capacity | FileResult::UnknownUser | FileResult::FaceMismatch => -1,
        }
    }
}

/// Which reconciliation bucket a door-local id belongs to.
pub(crate) fn bucket_of(id: DoorUserId) -> u8 {
    // BUCKET_COUNT is 64, so the remainder always fits a u8.
    (id.0 % u32::from(BUCKET_COUNT)) as u8
}

/// sha256 of arbitrary bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The record hash: sha256 of the record's encoding in a record file (name already truncated).
pub fn record_hash(record: &DoorRecord) -> [u8; 32] {
    sha256(&encode_record(record))
}

/// One user as reconciliation sees it: the face hash is the sha256 of the face held, zeros if none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DigestEntry {
    pub id: DoorUserId,
    pub record_hash: [u8; 32],
    pub face_hash: [u8; 32],
}

/// The face hash of a user without a face.
pub(crate) const NO_FACE: [u8; 32] = [0; 32];

/// sha256 over `id u32 LE ‖ record_hash ‖ face_hash` of every entry, in ascending id order.
/// The order of `entries` does not matter; an empty set gives sha256 of nothing.
pub(crate) fn digest(entries: impl IntoIterator<Item = DigestEntry>) -> [u8; 32] {
    let mut sorted: Vec<DigestEntry> = entries.into_iter().collect();
    sorted.sort_unstable_by_key(|e| e.id);
    let mut h = Sha256::new();
    for e in &sorted {
        h.update(e.id.0.to_le_bytes());
        h.update(e.record_hash);
        h.update(e.face_hash);
    }
    h.finalize().into()
}

/// The wire bucket digest: the first [`BUCKET_DIGEST_BYTES`] of [`digest`] over one bucket's entries.
pub(crate) fn bucket_digest(entries: impl IntoIterator<Item = DigestEntry>) -> [u8; BUCKET_DIGEST_BYTES] {
    prefix(&digest(entries))
}

/// The first N bytes of a 32-byte hash.
pub(crate) fn prefix<const N: usize>(hash: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(32);
    out[..n].copy_from_slice(&hash[..n]);
    out
}

/// A little cursor over input bytes whose reads fail with a typed error instead of panicking.
pub(crate) struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Self { what, buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], VendorError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(VendorError::TooShort {
                what: self.what,
                need: self.pos.saturating_add(n),
                got: self.buf.len(),
            }),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], VendorError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, VendorError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, VendorError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, VendorError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, VendorError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn finish(self) -> Result<(), VendorError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(VendorError::TrailingBytes { what: self.what, extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32, r: u8, f: u8) -> DigestEntry {
        DigestEntry {
            id: DoorUserId(id),
            record_hash: [r; 32],
            face_hash: [f; 32],
        }
    }

    #[test]
    fn digest_ignores_input_order_but_not_content() {
        let a = digest([entry(2, 1, 1), entry(1, 2, 0)]);
        let b = digest([entry(1, 2, 0), entry(2, 1, 1)]);
        assert_eq!(a, b);
        assert_ne!(a, digest([entry(1, 2, 0), entry(2, 1, 2)]));
        assert_ne!(a, digest([entry(1, 2, 0)]));
    }

    #[test]
    fn digest_of_nothing_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(digest([])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn bucket_of_is_id_mod_64() {
        assert_eq!(bucket_of(DoorUserId(0)), 0);
        assert_eq!(bucket_of(DoorUserId(65)), 1);
        assert_eq!(bucket_of(DoorUserId(u32::MAX)), 63);
    }

    #[test]
    fn reader_reports_short_input_without_panicking() {
        let mut r = Reader::new("x", &[1, 2]);
        assert_eq!(r.u16(), Ok(0x0201));
        assert!(matches!(r.u32(), Err(VendorError::TooShort { need: 6, got: 2, .. })));
        let mut r = Reader::new("x", &[1]);
        assert!(r.take(usize::MAX).is_err());
    }
}
