//! osdp_MFG commands (`[op][request id u16][args]`) and osdp_MFGREP replies
//! (`[op|0x80][request id u16][status][payload]`), as vendor data after the 3-byte vendor code.

use super::FileResult;
use super::{
    BUCKET_COUNT, BUCKET_DIGEST_BYTES, LIST_PREFIX_BYTES, MAX_MFG_DATA_BYTES, Reader, STATUS_RECORD_PREFIX_BYTES,
    VendorError,
};
use crate::domain::DoorUserId;
use crate::door::{BucketDigest, DoorDigest, DoorInfo, DoorListEntry, FaceStatus};

/// The 8 bytes a CLEAR must carry, so that a stray byte can never wipe a door: ASCII `CLEARALL`.
pub const CLEAR_CONFIRM: [u8; 8] = *b"CLEARALL";
/// Ids per DELETE: `3 + 1 + 4 × 15 = 64` bytes of vendor data.
pub const MAX_DELETE_IDS: usize = 15;
/// Bucket digests per BUCKET_DIGESTS reply: `4 + 3 + 5 × 10 = 57` bytes.
pub const MAX_BUCKETS_PER_REPLY: usize = 5;
/// Entries per LIST reply: `4 + 7 + 4 × 12 = 59` bytes.
pub const MAX_LIST_ENTRIES_PER_REPLY: usize = 4;
const REPLY_FLAG: u8 = 0x80;

/// Operation codes (the first byte of the vendor data; a reply sets bit 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    Info = 0x01,
    Digest = 0x02,
    BucketDigests = 0x03,
    List = 0x04,
    FaceStatus = 0x05,
    Delete = 0x10,
    Clear = 0x11,
}

impl Op {
    pub(crate) fn from_u8(v: u8) -> Result<Op, VendorError> {
        Ok(match v {
            0x01 => Op::Info,
            0x02 => Op::Digest,
            0x03 => Op::BucketDigests,
            0x04 => Op::List,
            0x05 => Op::FaceStatus,
            0x10 => Op::Delete,
            0x11 => Op::Clear,
            other => return Err(VendorError::UnknownOp(other)),
        })
    }
}

/// The status byte of a reply. Anything but `Ok` carries no payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Status {
    Ok = 0x00,
    /// The arguments had the wrong length or an invalid value.
    Malformed = 0x01,
    UnknownOp = 0x02,
    /// CLEAR without [`CLEAR_CONFIRM`]; nothing was cleared.
    BadConfirm = 0x03,
    /// A bucket number at or above the bucket count.
    OutOfRange = 0x04,
    /// The door could not persist the change; nothing was changed.
    StorageFailure = 0x05,
}

impl Status {
    pub(crate) fn from_u8(v: u8) -> Result<Status, VendorError> {
        Ok(match v {
            0x00 => Status::Ok,
            0x01 => Status::Malformed,
            0x02 => Status::UnknownOp,
            0x03 => Status::BadConfirm,
            0x04 => Status::OutOfRange,
            0x05 => Status::StorageFailure,
            other => return Err(VendorError::UnknownStatus(other)),
        })
    }

    /// The status a door answers for a command it could not decode.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn for_error(e: &VendorError) -> Status {
        match e {
            VendorError::UnknownOp(_) => Status::UnknownOp,
            VendorError::BadConfirm => Status::BadConfirm,
            _ => Status::Malformed,
        }
    }
}

/// A command's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Info,
    Digest,
    BucketDigests {
        first_bucket: u8,
    },
    List {
        bucket: u8,
        cursor: u32,
    },
    FaceStatus(DoorUserId),
    /// 1 to [`MAX_DELETE_IDS`] ids.
    Delete(Vec<DoorUserId>),
    Clear,
}

impl Command {
    pub(crate) fn op(&self) -> Op {
        match self {
            Command::Info => Op::Info,
            Command::Digest => Op::Digest,
            Command::BucketDigests { .. } => Op::BucketDigests,
            Command::List { .. } => Op::List,
            Command::FaceStatus(_) => Op::FaceStatus,
            Command::Delete(_) => Op::Delete,
            Command::Clear => Op::Clear,
        }
    }
}

/// One osdp_MFG command's vendor data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfgCommand {
    pub request_id: u16,
    pub command: Command,
}

impl MfgCommand {
    pub fn encode(&self) -> Result<Vec<u8>, VendorError> {
        let mut out = vec![self.command.op() as u8];
        out.extend_from_slice(&self.request_id.to_le_bytes());
        match &self.command {
            Command::Info | Command::Digest => {}
            Command::BucketDigests { first_bucket } => out.push(*first_bucket),
            Command::List { bucket, cursor } => {
                out.push(*bucket);
                out.extend_from_slice(&cursor.to_le_bytes());
            }
            Command::FaceStatus(id) => out.extend_from_slice(&id.0.to_le_bytes()),
            Command::Delete(ids) => {
                if ids.is_empty() || ids.len() > MAX_DELETE_IDS {
                    return Err(VendorError::BadValue {
                        field: "DELETE id count",
                        value: ids.len() as u64,
                    });
                }
                out.push(ids.len() as u8);
                for id in ids {
                    out.extend_from_slice(&id.0.to_le_bytes());
                }
            }
            Command::Clear => out.extend_from_slice(&CLEAR_CONFIRM),
        }
        Ok(out)
    }

    /// The op byte and request id, when at least the 3-byte header is there (so a door can answer an
    /// error to the right request).
    pub fn peek_header(data: &[u8]) -> Option<(u8, u16)> {
        match data {
            [op, lo, hi, ..] => Some((*op, u16::from_le_bytes([*lo, *hi]))),
            _ => None,
        }
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn decode(data: &[u8]) -> Result<MfgCommand, VendorError> {
        if data.len() > MAX_MFG_DATA_BYTES {
            return Err(VendorError::TooLong {
                what: "osdp_MFG vendor data",
                got: data.len(),
                max: MAX_MFG_DATA_BYTES,
            });
        }
        let mut r = Reader::new("osdp_MFG vendor data", data);
        let op = Op::from_u8(r.u8()?)?;
        let request_id = r.u16()?;
        let command = match op {
            Op::Info => Command::Info,
            Op::Digest => Command::Digest,
            Op::BucketDigests => Command::BucketDigests { first_bucket: r.u8()? },
            Op::List => Command::List {
                bucket: r.u8()?,
                cursor: r.u32()?,
            },
            Op::FaceStatus => Command::FaceStatus(DoorUserId(r.u32()?)),
            Op::Delete => {
                let n = usize::from(r.u8()?);
                if n == 0 || n > MAX_DELETE_IDS {
                    return Err(VendorError::BadValue {
                        field: "DELETE id count",
                        value: n as u64,
                    });
                }
                let ids = (0..n).map(|_| r.u32().map(DoorUserId)).collect::<Result<Vec<_>, _>>()?;
                Command::Delete(ids)
            }
            Op::Clear => {
                if r.take(CLEAR_CONFIRM.len()).ok() != Some(&CLEAR_CONFIRM[..]) {
                    return Err(VendorError::BadConfirm);
                }
                Command::Clear
            }
        };
        r.finish()?;
        Ok(MfgCommand { request_id, command })
    }
}

/// Ids per DELETE that fit a profile's osdp_MFG limit (0 when not even one fits).
pub fn delete_batch_size(max_mfg_data_bytes: u16) -> usize {
    (usize::from(max_mfg_data_bytes).saturating_sub(4) / 4).min(MAX_DELETE_IDS)
}

/// One page of BUCKET_DIGESTS: buckets `first_bucket ..` of `bucket_count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPage {
    pub bucket_count: u8,
    pub first_bucket: u8,
    /// At most [`MAX_BUCKETS_PER_REPLY`]; `buckets[i].bucket == first_bucket + i`.
    pub buckets: Vec<BucketDigest>,
}

/// One page of LIST: entries of `bucket` with id ≥ the requested cursor, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub bucket: u8,
    /// The cursor for the next LIST of this bucket, or `None` when this page is the last.
    pub next_cursor: Option<u32>,
    /// At most [`MAX_LIST_ENTRIES_PER_REPLY`].
    pub entries: Vec<DoorListEntry>,
}

/// A reply's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Info(DoorInfo),
    Digest(DoorDigest),
    BucketDigests(BucketPage),
    List(ListPage),
    FaceStatus(FaceStatus),
    Deleted,
    Cleared,
    /// Any status but `Ok`; `op_code` echoes the command's op byte even when it was unknown.
    Failed {
        op_code: u8,
        status: Status,
    },
}

impl Reply {
    fn op_code(&self) -> u8 {
        match self {
            Reply::Info(_) => Op::Info as u8,
            Reply::Digest(_) => Op::Digest as u8,
            Reply::BucketDigests(_) => Op::BucketDigests as u8,
            Reply::List(_) => Op::List as u8,
            Reply::FaceStatus(_) => Op::FaceStatus as u8,
            Reply::Deleted => Op::Delete as u8,
            Reply::Cleared => Op::Clear as u8,
            Reply::Failed { op_code, .. } => *op_code,
        }
    }
}

/// One osdp_MFGREP's vendor data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfgReply {
    pub request_id: u16,
    pub reply: Reply,
}

fn too_many(what: &'static str, got: usize, max: usize) -> Result<(), VendorError> {
    if got > max {
        return Err(VendorError::TooLong { what, got, max });
    }
    Ok(())
}

impl MfgReply {
    /// Whether this reply answers `cmd` (same request id and op); a CP drops replies that do not.
    pub(crate) fn answers(&self, cmd: &MfgCommand) -> bool {
        self.request_id == cmd.request_id && self.reply.op_code() == cmd.command.op() as u8
    }

    pub fn encode(&self) -> Result<Vec<u8>, VendorError> {
        let mut out = vec![self.reply.op_code() | REPLY_FLAG];
        out.extend_from_slice(&self.request_id.to_le_bytes());
        let status = match &self.reply {
            Reply::Failed { status, .. } => *status,
            _ => Status::Ok,
        };
        out.push(status as u8);
        match &self.reply {
            Reply::Info(i) => {
                out.push(i.protocol_version);
                out.push(i.bucket_count);
                for v in [
                    i.capacity_users,
                    i.user_count,
                    i.face_count,
                    i.max_record_file_bytes,
                    i.max_face_jpeg_bytes,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.push(i.last_file_type);
                out.push(i.last_file_result as u8);
            }
            Reply::Digest(d) => {
                out.extend_from_slice(&d.user_count.to_le_bytes());
                out.extend_from_slice(&d.digest);
            }
            Reply::BucketDigests(p) => {
                too_many("BUCKET_DIGESTS reply", p.buckets.len(), MAX_BUCKETS_PER_REPLY)?;
                out.extend_from_slice(&[p.bucket_count, p.first_bucket, p.buckets.len() as u8]);
                for b in &p.buckets {
                    out.extend_from_slice(&b.user_count.to_le_bytes());
                    out.extend_from_slice(&b.digest);
                }
            }
            Reply::List(p) => {
                too_many("LIST reply", p.entries.len(), MAX_LIST_ENTRIES_PER_REPLY)?;
                out.push(p.bucket);
                out.push(u8::from(p.next_cursor.is_some()));
                out.extend_from_slice(&p.next_cursor.unwrap_or(0).to_le_bytes());
                out.push(p.entries.len() as u8);
                for e in &p.entries {
                    out.extend_from_slice(&e.id.0.to_le_bytes());
                    out.extend_from_slice(&e.record_hash_prefix);
                    out.extend_from_slice(&e.face_hash_prefix);
                }
            }
            Reply::FaceStatus(s) => {
                out.extend_from_slice(&s.id.0.to_le_bytes());
                out.push(u8::from(s.record_hash_prefix.is_some()) | (u8::from(s.face_sha256.is_some()) << 1));
                out.extend_from_slice(&s.record_hash_prefix.unwrap_or_default());
                out.extend_from_slice(&s.face_sha256.unwrap_or_default());
            }
            Reply::Deleted | Reply::Cleared | Reply::Failed { .. } => {}
        }
        Ok(out)
    }

    pub fn decode(data: &[u8]) -> Result<MfgReply, VendorError> {
        const WHAT: &str = "osdp_MFGREP vendor data";
        too_many(WHAT, data.len(), MAX_MFG_DATA_BYTES)?;
        let mut r = Reader::new(WHAT, data);
        let op_byte = r.u8()?;
        if op_byte & REPLY_FLAG == 0 {
            return Err(VendorError::BadValue {
                field: "reply op (bit 7 clear)",
                value: u64::from(op_byte),
            });
        }
        let op_code = op_byte & !REPLY_FLAG;
        let request_id = r.u16()?;
        let status = Status::from_u8(r.u8()?)?;
        if status != Status::Ok {
            r.finish()?;
            return Ok(MfgReply {
                request_id,
                reply: Reply::Failed { op_code, status },
            });
        }
        let reply = match Op::from_u8(op_code)? {
            Op::Info => Reply::Info(DoorInfo {
                protocol_version: r.u8()?,
                bucket_count: r.u8()?,
                capacity_users: r.u32()?,
                user_count: r.u32()?,
                face_count: r.u32()?,
                max_record_file_bytes: r.u32()?,
                max_face_jpeg_bytes: r.u32()?,
                last_file_type: r.u8()?,
                last_file_result: FileResult::from_u8(r.u8()?)?,
            }),
            Op::Digest => Reply::Digest(DoorDigest {
                user_count: r.u32()?,
                digest: r.array()?,
            }),
            Op::BucketDigests => {
                let bucket_count = r.u8()?;
                if bucket_count != BUCKET_COUNT {
                    return Err(VendorError::BadValue {
                        field: "bucket count",
                        value: u64::from(bucket_count),
                    });
                }
                let first_bucket = r.u8()?;
                let n = usize::from(r.u8()?);
                too_many("BUCKET_DIGESTS reply", n, MAX_BUCKETS_PER_REPLY)?;
                let mut buckets = Vec::with_capacity(n);
                for i in 0..n {
                    let bucket = first_bucket.checked_add(i as u8).filter(|b| *b < BUCKET_COUNT).ok_or(
                        VendorError::BadValue {
                            field: "bucket",
                            value: u64::from(first_bucket) + i as u64,
                        },
                    )?;
                    buckets.push(BucketDigest {
                        bucket,
                        user_count: r.u16()?,
                        digest: r.array::<BUCKET_DIGEST_BYTES>()?,
                    });
                }
                Reply::BucketDigests(BucketPage {
                    bucket_count,
                    first_bucket,
                    buckets,
                })
            }
            Op::List => {
                let bucket = r.u8()?;
                let more = r.u8()?;
                let cursor = r.u32()?;
                let next_cursor = match more {
                    0 => None,
                    1 => Some(cursor),
                    v => {
                        return Err(VendorError::BadValue {
                            field: "LIST more flag",
                            value: u64::from(v),
                        });
                    }
                };
                let n = usize::from(r.u8()?);
                too_many("LIST reply", n, MAX_LIST_ENTRIES_PER_REPLY)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(DoorListEntry {
                        id: DoorUserId(r.u32()?),
                        record_hash_prefix: r.array::<LIST_PREFIX_BYTES>()?,
                        face_hash_prefix: r.array::<LIST_PREFIX_BYTES>()?,
                    });
                }
                Reply::List(ListPage {
                    bucket,
                    next_cursor,
                    entries,
                })
            }
            Op::FaceStatus => {
                let id = DoorUserId(r.u32()?);
                let flags = r.u8()?;
                if flags & !0b11 != 0 {
                    return Err(VendorError::BadValue {
                        field: "FACE_STATUS flags",
                        value: u64::from(flags),
                    });
                }
                let rec = r.array::<STATUS_RECORD_PREFIX_BYTES>()?;
                let face = r.array::<32>()?;
                Reply::FaceStatus(FaceStatus {
                    id,
                    record_hash_prefix: (flags & 1 != 0).then_some(rec),
                    face_sha256: (flags & 2 != 0).then_some(face),
                })
            }
            Op::Delete => Reply::Deleted,
            Op::Clear => Reply::Cleared,
        };
        r.finish()?;
        Ok(MfgReply { request_id, reply })
    }
}

/// The full osdp_MFG / osdp_MFGREP data: the profile's 3-byte vendor code, then the vendor data.
pub fn with_vendor_code(vendor_code: [u8; 3], vendor_data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + vendor_data.len());
    out.extend_from_slice(&vendor_code);
    out.extend_from_slice(vendor_data);
    out
}

/// The vendor data of an osdp_MFG / osdp_MFGREP, after checking its vendor code against the profile's.
pub fn split_vendor_code(data: &[u8], want: [u8; 3]) -> Result<&[u8], VendorError> {
    match data {
        [a, b, c, rest @ ..] if [*a, *b, *c] == want => Ok(rest),
        [a, b, c, ..] => Err(VendorError::WrongVendorCode {
            got: [*a, *b, *c],
            want,
        }),
        _ => Err(VendorError::TooShort {
            what: "osdp_MFG data",
            need: 3,
            got: data.len(),
        }),
    }
}

#[cfg(test)]
mod tests;
