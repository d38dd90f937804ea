//! The two files carried by osdp_FILETRANSFER: the user-record file (FtType 0x81) and the face file (0x82).

use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

use super::{PROTOCOL_VERSION, Reader, VendorError, sha256};
use crate::domain::{DoorRecord, DoorUserId, FaceRef, Policy};

/// Magic of a user-record file: ASCII `DSRF`.
pub const RECORD_FILE_MAGIC: [u8; 4] = *b"DSRF";
/// Magic of a face file: ASCII `DSFF`.
pub const FACE_FILE_MAGIC: [u8; 4] = *b"DSFF";
/// Display names are cut to this many UTF-8 bytes, at a character boundary.
pub const MAX_DISPLAY_NAME_BYTES: usize = 48;
/// Fixed part of an encoded record: id 4, policy 1, expire_at 8, face sha256 32, name length 1.
const RECORD_FIXED_BYTES: usize = 46;
/// Largest encoded record.
pub const MAX_RECORD_BYTES: usize = RECORD_FIXED_BYTES + MAX_DISPLAY_NAME_BYTES;
/// Face file bytes before the JPEG: magic 4, version 1, id 4, sha256 32, JPEG length 4.
pub const FACE_FILE_HEADER_BYTES: usize = 45;
const RECORD_FILE_HEADER_BYTES: usize = 7;
const SHA_BYTES: usize = 32;
/// The smallest record file limit that holds one record of any display name.
pub const MIN_RECORD_FILE_BYTES: usize = RECORD_FILE_HEADER_BYTES + MAX_RECORD_BYTES + SHA_BYTES;

/// The longest prefix of `name` that fits [`MAX_DISPLAY_NAME_BYTES`] without splitting a character.
pub fn truncate_display_name(name: &str) -> &str {
    if name.len() <= MAX_DISPLAY_NAME_BYTES {
        return name;
    }
    let mut end = MAX_DISPLAY_NAME_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).unwrap_or_default()
}

fn encode_expire_at(expire_at: Option<Timestamp>) -> i64 {
    // 0 means "never expires", so an instant at or before the epoch becomes 1 (long expired), never 0.
    // Sub-second parts are dropped toward the past, so the door never admits someone later than asked.
    match expire_at {
        None => 0,
        Some(t) => t.as_second().max(1),
    }
}

/// A record as it appears in a record file; its sha256 is the record hash.
pub fn encode_record(record: &DoorRecord) -> Vec<u8> {
    let name = truncate_display_name(&record.display_name);
    let mut out = Vec::with_capacity(RECORD_FIXED_BYTES + name.len());
    out.extend_from_slice(&record.id.0.to_le_bytes());
    out.push(match record.policy {
        Policy::Permission => 0,
        Policy::Deny => 1,
    });
    out.extend_from_slice(&encode_expire_at(record.expire_at).to_le_bytes());
    out.extend_from_slice(&record.face.sha256);
    // truncate_display_name keeps the name within 48 bytes, so the length fits a u8.
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out
}

fn read_record(r: &mut Reader<'_>) -> Result<DoorRecord, VendorError> {
    let id = DoorUserId(r.u32()?);
    let policy = match r.u8()? {
        0 => Policy::Permission,
        1 => Policy::Deny,
        v => {
            return Err(VendorError::BadValue {
                field: "policy",
                value: u64::from(v),
            });
        }
    };
    let expire_s = r.i64()?;
    let expire_at = match expire_s {
        0 => None,
        s if s < 0 => {
            return Err(VendorError::BadValue {
                field: "expire_at",
                value: s as u64,
            });
        }
        s => Some(Timestamp::from_second(s).map_err(|_| VendorError::BadValue {
            field: "expire_at",
            value: s as u64,
        })?),
    };
    let sha = r.array::<32>()?;
    let name_len = usize::from(r.u8()?);
    if name_len > MAX_DISPLAY_NAME_BYTES {
        return Err(VendorError::TooLong {
            what: "display name",
            got: name_len,
            max: MAX_DISPLAY_NAME_BYTES,
        });
    }
    let name = std::str::from_utf8(r.take(name_len)?).map_err(|_| VendorError::BadUtf8)?;
    Ok(DoorRecord {
        id,
        policy,
        expire_at,
        // The record file does not carry the JPEG length; the face file does.
        face: FaceRef {
            sha256: sha,
            len_bytes: 0,
        },
        display_name: name.to_owned(),
    })
}

/// Decodes one encoded record (exactly, no trailing bytes). The returned `face.len_bytes` is 0.
pub fn decode_record(bytes: &[u8]) -> Result<DoorRecord, VendorError> {
    let mut r = Reader::new("record", bytes);
    let rec = read_record(&mut r)?;
    r.finish()?;
    Ok(rec)
}

/// A record file: magic, version, count u16, records, then sha256 of everything before it.
pub fn encode_record_file(records: &[DoorRecord]) -> Result<Vec<u8>, VendorError> {
    let count = u16::try_from(records.len()).map_err(|_| VendorError::TooLong {
        what: "record file",
        got: records.len(),
        max: usize::from(u16::MAX),
    })?;
    let mut out = Vec::with_capacity(RECORD_FILE_HEADER_BYTES + records.len() * MAX_RECORD_BYTES + SHA_BYTES);
    out.extend_from_slice(&RECORD_FILE_MAGIC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&count.to_le_bytes());
    for rec in records {
        out.extend_from_slice(&encode_record(rec));
    }
    let trailer = sha256(&out);
    out.extend_from_slice(&trailer);
    Ok(out)
}

/// Record files covering `records` in order, each at most `max_file_bytes` (the door's INFO limit), so
/// `upsert_users` can send any number of records. Empty input gives no file.
pub fn encode_record_files(records: &[DoorRecord], max_file_bytes: u32) -> Result<Vec<Vec<u8>>, VendorError> {
    let max = max_file_bytes as usize;
    if max < MIN_RECORD_FILE_BYTES {
        return Err(VendorError::BadValue {
            field: "max record file bytes (below one full record)",
            value: u64::from(max_file_bytes),
        });
    }
    let mut files = Vec::new();
    let mut start = 0;
    let mut size = RECORD_FILE_HEADER_BYTES + SHA_BYTES;
    for (i, rec) in records.iter().enumerate() {
        let len = RECORD_FIXED_BYTES + truncate_display_name(&rec.display_name).len();
        if size + len > max || i - start == usize::from(u16::MAX) {
            files.push(encode_record_file(records.get(start..i).unwrap_or_default())?);
            start = i;
            size = RECORD_FILE_HEADER_BYTES + SHA_BYTES;
        }
        size += len;
    }
    if start < records.len() {
        files.push(encode_record_file(records.get(start..).unwrap_or_default())?);
    }
    Ok(files)
}

fn check_magic(what: &'static str, r: &mut Reader<'_>, want: [u8; 4]) -> Result<(), VendorError> {
    let got = r.array::<4>()?;
    if got != want {
        return Err(VendorError::BadMagic { what, got });
    }
    let version = r.u8()?;
    if version != PROTOCOL_VERSION {
        return Err(VendorError::BadVersion { what, got: version });
    }
    Ok(())
}

/// Decodes a complete record file, checking magic, version, every record, the count and the trailer.
/// Each record is returned with its encoded bytes (whose sha256 is its record hash).
pub fn decode_record_file(bytes: &[u8]) -> Result<Vec<(DoorRecord, [u8; 32])>, VendorError> {
    const WHAT: &str = "record file";
    let body_len = bytes.len().checked_sub(SHA_BYTES).ok_or(VendorError::TooShort {
        what: WHAT,
        need: RECORD_FILE_HEADER_BYTES + SHA_BYTES,
        got: bytes.len(),
    })?;
    let (body, trailer) = bytes.split_at(body_len);
    let mut r = Reader::new(WHAT, body);
    check_magic(WHAT, &mut r, RECORD_FILE_MAGIC)?;
    let count = r.u16()?;
    if Sha256::digest(body).as_slice() != trailer {
        return Err(VendorError::ShaMismatch { what: WHAT });
    }
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let start = r.pos();
        let rec = read_record(&mut r)?;
        let hash = sha256(body.get(start..r.pos()).unwrap_or_default());
        out.push((rec, hash));
    }
    r.finish()?;
    Ok(out)
}

/// A decoded face file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceFile {
    pub id: DoorUserId,
    pub sha256: [u8; 32],
    pub jpeg: Vec<u8>,
}

/// A face file: magic, version, id u32, sha256 of the JPEG, JPEG length u32, JPEG.
pub fn encode_face_file(id: DoorUserId, jpeg: &[u8]) -> Result<Vec<u8>, VendorError> {
    let len = u32::try_from(jpeg.len()).map_err(|_| VendorError::TooLong {
        what: "face JPEG",
        got: jpeg.len(),
        max: u32::MAX as usize,
    })?;
    let mut out = Vec::with_capacity(FACE_FILE_HEADER_BYTES + jpeg.len());
    out.extend_from_slice(&FACE_FILE_MAGIC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&id.0.to_le_bytes());
    out.extend_from_slice(&sha256(jpeg));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(jpeg);
    Ok(out)
}

/// Decodes a complete face file; the JPEG length must match the file exactly and its sha256 must match.
pub fn decode_face_file(bytes: &[u8]) -> Result<FaceFile, VendorError> {
    const WHAT: &str = "face file";
    let mut r = Reader::new(WHAT, bytes);
    check_magic(WHAT, &mut r, FACE_FILE_MAGIC)?;
    let id = DoorUserId(r.u32()?);
    let sha = r.array::<32>()?;
    let len = r.u32()? as usize;
    if r.remaining() > len {
        return Err(VendorError::TrailingBytes {
            what: WHAT,
            extra: r.remaining() - len,
        });
    }
    let jpeg = r.take(len)?;
    if sha256(jpeg) != sha {
        return Err(VendorError::ShaMismatch { what: "face JPEG" });
    }
    Ok(FaceFile {
        id,
        sha256: sha,
        jpeg: jpeg.to_vec(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn arb_record() -> impl Strategy<Value = DoorRecord> {
        (
            any::<u32>(),
            any::<bool>(),
            prop_oneof![Just(0i64), 1i64..4_102_444_800],
            any::<[u8; 32]>(),
            ".{0,20}",
        )
            .prop_map(|(id, deny, exp, sha, name)| DoorRecord {
                id: DoorUserId(id),
                policy: if deny { Policy::Deny } else { Policy::Permission },
                expire_at: (exp != 0).then(|| Timestamp::from_second(exp).unwrap()),
                face: FaceRef {
                    sha256: sha,
                    len_bytes: 0,
                },
                display_name: name,
            })
    }

    fn normalised(r: &DoorRecord) -> DoorRecord {
        DoorRecord {
            display_name: truncate_display_name(&r.display_name).to_owned(),
            face: FaceRef {
                sha256: r.face.sha256,
                len_bytes: 0,
            },
            ..r.clone()
        }
    }

    proptest! {
        #[test]
        fn record_file_round_trips(records in proptest::collection::vec(arb_record(), 0..20)) {
            let file = encode_record_file(&records).unwrap();
            let back = decode_record_file(&file).unwrap();
            prop_assert_eq!(back.len(), records.len());
            for (rec, (got, hash)) in records.iter().zip(back) {
                prop_assert_eq!(&got, &normalised(rec));
                prop_assert_eq!(hash, super::super::record_hash(rec));
            }
        }

        #[test]
        fn face_file_round_trips(id in any::<u32>(), jpeg in proptest::collection::vec(any::<u8>(), 0..600)) {
            let file = encode_face_file(DoorUserId(id), &jpeg).unwrap();
            prop_assert_eq!(file.len(), FACE_FILE_HEADER_BYTES + jpeg.len());
            let back = decode_face_file(&file).unwrap();
            prop_assert_eq!(back.id, DoorUserId(id));
            prop_assert_eq!(back.jpeg, jpeg);
        }

        #[test]
        fn file_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_record_file(&bytes);
            let _ = decode_face_file(&bytes);
            let _ = decode_record(&bytes);
        }

        #[test]
        fn any_single_flipped_byte_is_detected(records in proptest::collection::vec(arb_record(), 1..4), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut file = encode_record_file(&records).unwrap();
            let i = pos.index(file.len());
            file[i] ^= 1 << bit;
            prop_assert!(decode_record_file(&file).is_err());
        }
    }

    proptest! {
        #[test]
        fn record_files_split_within_the_limit_and_keep_every_record(
            records in proptest::collection::vec(arb_record(), 0..40),
            max in 133u32..2000,
        ) {
            let files = encode_record_files(&records, max).unwrap();
            let mut back = Vec::new();
            for f in &files {
                prop_assert!(f.len() <= max as usize);
                back.extend(decode_record_file(f).unwrap().into_iter().map(|(r, _)| r));
            }
            prop_assert_eq!(back, records.iter().map(normalised).collect::<Vec<_>>());
        }
    }

    #[test]
    fn record_file_limit_below_one_record_is_an_error() {
        assert!(encode_record_files(&[], 132).is_err());
        assert_eq!(encode_record_files(&[], 133).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn display_name_is_cut_at_a_char_boundary() {
        let name = "张".repeat(20); // 60 bytes, 3 per char
        let cut = truncate_display_name(&name);
        assert_eq!(cut.len(), 48);
        let name = format!("a{}", "张".repeat(20));
        assert_eq!(truncate_display_name(&name).len(), 46);
        assert_eq!(truncate_display_name("short"), "short");
    }

    #[test]
    fn expiry_before_the_epoch_still_expires() {
        let rec = DoorRecord {
            id: DoorUserId(1),
            policy: Policy::Permission,
            expire_at: Some(Timestamp::from_second(-5).unwrap()),
            face: FaceRef {
                sha256: [0; 32],
                len_bytes: 0,
            },
            display_name: String::new(),
        };
        let back = decode_record(&encode_record(&rec)).unwrap();
        assert_eq!(back.expire_at, Some(Timestamp::from_second(1).unwrap()));
    }

    #[test]
    fn face_file_with_wrong_sha_or_length_is_rejected() {
        let mut file = encode_face_file(DoorUserId(7), b"\xff\xd8jpeg\xff\xd9").unwrap();
        assert_eq!(
            decode_face_file(&file[..file.len() - 1]).unwrap_err(),
            VendorError::TooShort {
                what: "face file",
                need: file.len(),
                got: file.len() - 1
            }
        );
        file.push(0);
        assert!(matches!(
            decode_face_file(&file),
            Err(VendorError::TrailingBytes { extra: 1, .. })
        ));
        file.pop();
        let last = file.len() - 1;
        file[last] ^= 1;
        assert_eq!(
            decode_face_file(&file),
            Err(VendorError::ShaMismatch { what: "face JPEG" })
        );
    }
}
