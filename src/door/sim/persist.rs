//! The simulated door's file-backed database and its JSON dump (one format for both).
//!
//! `<file>` holds a [`DoorDump`]: every user's record fields, record hash and the face held (sha256 and
//! length). Face JPEGs live beside it as `<file>.faces/<sha256 hex>.jpg`, so a change rewrites the small
//! JSON, not every image. Every write is temp file + fsync + rename + fsync of the directory, and a
//! face blob is durable before the JSON that names it: a power cut leaves the previous or the new
//! state, never a mix. Loading rebuilds the database through the door's own file rules, so a file
//! that a door could not have produced is an error naming the file, never a panic.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{DoorRecord, DoorUserId, FaceRef, Policy};
use crate::door::db::{DoorDb, DoorDbLimits};
use crate::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult};

/// The `format` tag of a dump / db file this version reads and writes.
pub const DUMP_FORMAT: &str = "doorsync-sim-door/1";

/// Why the db file could not be read or written. Every variant names the file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PersistError {
    #[error("cannot read simulated door db file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write simulated door db file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulated door db file {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// The face a door holds for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpFace {
    /// Lower-case hex.
    pub sha256: String,
    pub len_bytes: u32,
}

/// One user as the door holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpUser {
    pub id: u32,
    pub policy: Policy,
    pub expire_at: Option<Timestamp>,
    pub display_name: String,
    /// sha256 of the record's bytes (PROTOCOL.md §5), hex.
    pub record_hash: String,
    /// The face sha256 the record announces (the only face file the door accepts for the user), hex.
    pub record_face_sha256: String,
    /// The face held, if any (it may differ from `record_face_sha256` until the new face file arrives).
    pub face: Option<DumpFace>,
}

/// What a door holds, as JSON: the `--db-file` contents and `SimDoor::dump_json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorDump {
    pub format: String,
    pub user_count: u32,
    pub face_count: u32,
    /// DIGEST of the door (PROTOCOL.md §5), hex.
    pub digest: String,
    /// Ascending id.
    pub users: Vec<DumpUser>,
}

impl DoorDump {
    pub(crate) fn of(db: &DoorDb) -> Self {
        let users: Vec<DumpUser> = db
            .user_ids()
            .filter_map(|id| {
                let record = db.record(id)?;
                let face = db.face_status(id).face_sha256.map(|sha| DumpFace {
                    sha256: hex::encode(sha),
                    len_bytes: db
                        .face_jpeg(id)
                        .map_or(0, |j| u32::try_from(j.len()).unwrap_or(u32::MAX)),
                });
                Some(DumpUser {
                    id: id.0,
                    policy: record.policy,
                    expire_at: record.expire_at,
                    display_name: record.display_name.clone(),
                    record_hash: hex::encode(vendor::record_hash(record)),
                    record_face_sha256: hex::encode(record.face.sha256),
                    face,
                })
            })
            .collect();
        let digest = db.digest();
        Self {
            format: DUMP_FORMAT.to_owned(),
            user_count: digest.user_count,
            face_count: users.iter().filter(|u| u.face.is_some()).count() as u32,
            digest: hex::encode(digest.digest),
            users,
        }
    }

    pub fn user(&self, id: u32) -> Option<&DumpUser> {
        self.users.iter().find(|u| u.id == id)
    }

    /// Reads a dump written by a simulated door (e.g. from another process).
    pub fn read(path: &Path) -> Result<Self, PersistError> {
        let text = std::fs::read_to_string(path).map_err(|source| PersistError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, PersistError> {
        let dump: DoorDump = serde_json::from_str(text).map_err(|e| corrupt(path, e.to_string()))?;
        if dump.format != DUMP_FORMAT {
            return Err(corrupt(
                path,
                format!("format {:?}, expected {DUMP_FORMAT:?}", dump.format),
            ));
        }
        Ok(dump)
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> PersistError {
    PersistError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn hex32(path: &Path, what: &str, id: u32, s: &str) -> Result<[u8; 32], PersistError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| corrupt(path, format!("user {id}: {what} {s:?} is not 32 bytes of hex")))?;
    Ok(out)
}

/// A door database kept in a file.
#[derive(Debug)]
pub struct DbFile {
    path: PathBuf,
    faces_dir: PathBuf,
    /// Face blobs known to be durable in `faces_dir`.
    blobs: HashSet<[u8; 32]>,
}

impl DbFile {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut faces = path.clone().into_os_string();
        faces.push(".faces");
        Self {
            path,
            faces_dir: PathBuf::from(faces),
            blobs: HashSet::new(),
        }
    }

    /// Where the face JPEGs are kept.
    #[cfg(test)]
    pub(crate) fn faces_dir(&self) -> &Path {
        &self.faces_dir
    }

    fn blob_path(&self, sha: &[u8; 32]) -> PathBuf {
        self.faces_dir.join(format!("{}.jpg", hex::encode(sha)))
    }

    /// The database in the file, or an empty one with `limits` if the file does not exist yet.
    pub(crate) fn load(&mut self, limits: DoorDbLimits) -> Result<DoorDb, PersistError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DoorDb::new(limits)),
            Err(source) => {
                return Err(PersistError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let dump = DoorDump::parse(&self.path, &text)?;
        let db = self.rebuild(limits, &dump)?;
        self.blobs = dump
            .users
            .iter()
            .filter_map(|u| u.face.as_ref())
            .filter_map(|f| hex32(&self.path, "face sha256", 0, &f.sha256).ok())
            .collect();
        Ok(db)
    }

    /// Replays the dump through the door's own rules (record files, then face files).
    fn rebuild(&self, limits: DoorDbLimits, dump: &DoorDump) -> Result<DoorDb, PersistError> {
        let path = self.path.as_path();
        let mut db = DoorDb::new(limits);
        let mut records = Vec::with_capacity(dump.users.len());
        let mut faces = Vec::new();
        for u in &dump.users {
            let record = DoorRecord {
                id: DoorUserId(u.id),
                policy: u.policy,
                expire_at: u.expire_at,
                face: FaceRef {
                    sha256: hex32(path, "record_face_sha256", u.id, &u.record_face_sha256)?,
                    len_bytes: 0,
                },
                display_name: u.display_name.clone(),
            };
            let want = hex32(path, "record_hash", u.id, &u.record_hash)?;
            if vendor::record_hash(&record) != want {
                return Err(corrupt(
                    path,
                    format!("user {}: record_hash does not match the record's fields", u.id),
                ));
            }
            if let Some(face) = &u.face {
                let sha = hex32(path, "face sha256", u.id, &face.sha256)?;
                faces.push((record.clone(), sha, face.len_bytes));
            }
            records.push(record);
        }
        // A door may hold a face other than the one its record announces (a record upsert keeps the face
        // until the new face file arrives). To restore that through the door's rules, enrol each face
        // under a record announcing it, then upsert every true record: upserts keep the face held.
        for (record, sha, len) in faces {
            let blob_path = self.blob_path(&sha);
            let jpeg = std::fs::read(&blob_path).map_err(|e| {
                corrupt(
                    path,
                    format!(
                        "user {}: face image {} unreadable: {e}",
                        record.id.0,
                        blob_path.display()
                    ),
                )
            })?;
            if vendor::sha256(&jpeg) != sha || jpeg.len() as u64 != u64::from(len) {
                return Err(corrupt(
                    path,
                    format!(
                        "user {}: face image {} does not match its sha256/length",
                        record.id.0,
                        blob_path.display()
                    ),
                ));
            }
            let announcing = DoorRecord {
                face: FaceRef {
                    sha256: sha,
                    len_bytes: 0,
                },
                ..record.clone()
            };
            apply_records(&mut db, path, std::slice::from_ref(&announcing))?;
            let file = vendor::encode_face_file(record.id, &jpeg).map_err(|e| corrupt(path, e.to_string()))?;
            let result = db.apply_file(FT_TYPE_FACE, &file);
            if result != FileResult::Applied {
                return Err(corrupt(
                    path,
                    format!("user {}: the door refuses its face ({result:?})", record.id.0),
                ));
            }
        }
        apply_records(&mut db, path, &records)?;
        db.reset_last_file();
        Ok(db)
    }

    /// Makes `db` durable: new face blobs first, then the JSON, then unreferenced blobs are removed.
    pub(crate) fn save(&mut self, db: &DoorDb) -> Result<(), PersistError> {
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PersistError::Write { path, source }
        };
        let mut held = HashSet::new();
        for id in db.user_ids() {
            let (Some(sha), Some(jpeg)) = (db.face_status(id).face_sha256, db.face_jpeg(id)) else {
                continue;
            };
            held.insert(sha);
            if self.blobs.contains(&sha) {
                continue;
            }
            std::fs::create_dir_all(&self.faces_dir).map_err(write_err(&self.faces_dir))?;
            let blob = self.blob_path(&sha);
            write_atomically(&blob, jpeg).map_err(write_err(&blob))?;
            self.blobs.insert(sha);
        }
        let json = serde_json::to_vec_pretty(&DoorDump::of(db)).map_err(|e| PersistError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(&self.path, &json).map_err(write_err(&self.path))?;
        let stale: Vec<[u8; 32]> = self.blobs.difference(&held).copied().collect();
        for sha in stale {
            let blob = self.blob_path(&sha);
            // Best effort: a leftover blob wastes space but never changes what the door holds.
            if let Err(e) = std::fs::remove_file(&blob)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::debug!(file = %blob.display(), error = %e, "sim door could not remove a stale face blob");
            }
            self.blobs.remove(&sha);
        }
        Ok(())
    }
}

fn apply_records(db: &mut DoorDb, path: &Path, records: &[DoorRecord]) -> Result<(), PersistError> {
    let max = db.limits().max_record_file_bytes;
    let files = vendor::encode_record_files(records, max).map_err(|e| corrupt(path, e.to_string()))?;
    for file in files {
        let result = db.apply_file(FT_TYPE_RECORDS, &file);
        if result != FileResult::Applied {
            return Err(corrupt(path, format!("the door refuses its records ({result:?})")));
        }
    }
    Ok(())
}

/// Write temp, fsync, rename over `path`, fsync the directory: after a crash `path` holds the old or
/// the new bytes, and once this returns the new bytes survive a power loss.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DoorDbLimits {
        DoorDbLimits {
            capacity_users: 100,
            max_record_file_bytes: 8192,
            max_face_jpeg_bytes: 1000,
        }
    }

    fn record(id: u32, jpeg: &[u8], name: &str) -> DoorRecord {
        DoorRecord {
            policy: if id.is_multiple_of(2) {
                Policy::Deny
            } else {
                Policy::Permission
            },
            expire_at: Some(Timestamp::from_second(1_893_456_000).unwrap()),
            ..crate::testkit::door_record(id, jpeg, name)
        }
    }

    fn db_with_users() -> DoorDb {
        let mut db = DoorDb::new(limits());
        let recs = [
            record(1, b"face one", "Ana"),
            record(2, b"face two", "Bo"),
            record(3, b"x", "Cy"),
        ];
        let file = vendor::encode_record_file(&recs).unwrap();
        assert_eq!(db.apply_file(FT_TYPE_RECORDS, &file), FileResult::Applied);
        for (id, jpeg) in [(1, &b"face one"[..]), (2, b"face two")] {
            let f = vendor::encode_face_file(DoorUserId(id), jpeg).unwrap();
            assert_eq!(db.apply_file(FT_TYPE_FACE, &f), FileResult::Applied);
        }
        // User 1's record now announces a new face; the old one stays held until it arrives.
        let file = vendor::encode_record_file(&[record(1, b"face one v2", "Ana")]).unwrap();
        assert_eq!(db.apply_file(FT_TYPE_RECORDS, &file), FileResult::Applied);
        db
    }

    #[test]
    fn reopened_db_file_holds_exactly_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("door.json");
        let mut file = DbFile::new(&path);
        let mut db = db_with_users();
        file.save(&db).unwrap();

        let back = DbFile::new(&path).load(limits()).unwrap();
        assert_eq!(back.digest(), db.digest());
        assert_eq!(back.face_jpeg(DoorUserId(1)), Some(&b"face one"[..]));
        assert_eq!(DoorDump::of(&back), DoorDump::of(&db));
        assert_eq!(back.info().last_file_result, FileResult::None);

        // A delete is saved too, and the deleted user's face blob goes away.
        db.delete(&[DoorUserId(2)]);
        file.save(&db).unwrap();
        let back = DbFile::new(&path).load(limits()).unwrap();
        assert_eq!(back.user_count(), 2);
        assert!(back.record(DoorUserId(2)).is_none());
        let blobs = std::fs::read_dir(file.faces_dir()).unwrap().count();
        assert_eq!(blobs, 1);

        let dump = DoorDump::read(&path).unwrap();
        let ana = dump.user(1).unwrap();
        assert_eq!(
            ana.face.as_ref().unwrap().sha256,
            hex::encode(vendor::sha256(b"face one"))
        );
        assert_eq!(ana.face.as_ref().unwrap().len_bytes, 8);
        assert_eq!(ana.record_face_sha256, hex::encode(vendor::sha256(b"face one v2")));
        assert_eq!(dump.digest, hex::encode(db.digest().digest));
    }

    #[test]
    fn missing_db_file_is_an_empty_door() {
        let dir = tempfile::tempdir().unwrap();
        let db = DbFile::new(dir.path().join("new.json")).load(limits()).unwrap();
        assert_eq!(db.user_count(), 0);
    }

    #[test]
    fn corrupt_db_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("door.json");
        let mut file = DbFile::new(&path);
        file.save(&db_with_users()).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();

        let cases = [
            good[..good.len() / 2].to_owned(),
            "not json".to_owned(),
            good.replace(DUMP_FORMAT, "doorsync-sim-door/9"),
            good.replace("\"Ana\"", "\"Anna\""),
            good.replacen("\"record_hash\": \"", "\"record_hash\": \"zz", 1),
        ];
        for text in cases {
            std::fs::write(&path, &text).unwrap();
            let err = DbFile::new(&path).load(limits()).unwrap_err();
            assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        }

        // A face blob that went missing or changed is corruption too.
        std::fs::write(&path, &good).unwrap();
        for entry in std::fs::read_dir(file.faces_dir()).unwrap() {
            std::fs::write(entry.unwrap().path(), b"tampered").unwrap();
        }
        let err = DbFile::new(&path).load(limits()).unwrap_err().to_string();
        assert!(err.contains("does not match its sha256"), "{err}");
    }

    #[test]
    fn db_file_over_the_doors_capacity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("door.json");
        DbFile::new(&path).save(&db_with_users()).unwrap();
        let small = DoorDbLimits {
            capacity_users: 2,
            ..limits()
        };
        let err = DbFile::new(&path).load(small).unwrap_err().to_string();
        assert!(err.contains("Capacity"), "{err}");
    }
}
