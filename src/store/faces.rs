//! Face images as content-addressed files, `<store>/faces/<aa>/<sha256>.jpg` (fan-out by the first
//! byte of the hash), so sled keeps only small records and no face sits in its page cache.
//!
//! A face is written to a temporary file in its fan-out directory, fsynced, renamed into place and the
//! directory fsynced: it is durable before any record that refers to it is written. Reading checks
//! the length and sha256; a corrupt file is deleted and reported, and a user whose face file is
//! missing is re-fetched on the next pull ([`Store::refetch_missing_faces`]), so a door is never sent
//! wrong bytes. Files no user and no door's applied state refers to are collected after each pass
//! ([`Store::collect_faces`]).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AppliedEntry, Store, StoreError, StoredUser, decode};
use crate::domain::FaceRef;

/// Prefix of a face file still being written; a crash can leave one behind, which the next
/// collection removes.
const TEMP_PREFIX: &str = ".tmp-";

/// Distinguishes temporary files of concurrent writers of the same face in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The face files of one store.
#[derive(Debug, Clone)]
pub(super) struct FaceFiles {
    root: PathBuf,
}

/// How many face files a store holds and their size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FaceUsage {
    pub files: u64,
    /// Sum of the files' lengths (what `status --json` reports as `faces_bytes_on_disk`).
    pub bytes: u64,
}

/// What one face collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FaceGcReport {
    pub removed_files: u64,
    pub removed_bytes: u64,
    /// Left-over temporary files of interrupted writes, removed.
    pub removed_temp_files: u64,
    pub kept: FaceUsage,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn make_dir(dir: &Path) -> std::io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// The hash named by a face file's name (`<64 hex>.jpg`), if it is one.
fn hash_of_name(name: &str) -> Option<[u8; 32]> {
    let hex = name.strip_suffix(".jpg")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

impl FaceFiles {
    /// The face directory of the store in `store_dir`, created (and made durable) if missing.
    pub(super) fn open(store_dir: &Path) -> Result<Self, StoreError> {
        let root = store_dir.join("faces");
        if !root.is_dir() {
            let io = |source| StoreError::Io {
                path: root.clone(),
                source,
            };
            make_dir(&root).map_err(io)?;
            sync_dir(store_dir).map_err(io)?;
        }
        Ok(Self { root })
    }

    #[cfg(test)]
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, sha256: &[u8; 32]) -> PathBuf {
        self.root.join(hex::encode(&sha256[..1]))
    }

    pub(super) fn path_of(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir_of(sha256).join(format!("{}.jpg", hex::encode(sha256)))
    }

    /// Writes `jpeg` under its hash, durably; a file already there with the right length is kept.
    pub(super) fn put(&self, jpeg: &[u8]) -> Result<FaceRef, StoreError> {
        let face = FaceRef {
            sha256: Sha256::digest(jpeg).into(),
            len_bytes: u32::try_from(jpeg.len()).map_err(|_| StoreError::Corrupt {
                tree: "faces".into(),
                key: "-".into(),
                reason: format!("a face of {} bytes is too large to store", jpeg.len()),
            })?,
        };
        let path = self.path_of(&face.sha256);
        if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == u64::from(face.len_bytes)) {
            return Ok(face);
        }
        let dir = self.dir_of(&face.sha256);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        if !dir.is_dir() {
            make_dir(&dir).map_err(io(&dir))?;
            sync_dir(&self.root).map_err(io(&self.root))?;
        }
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}-{}",
            face.sha256_hex(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(jpeg)?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            sync_dir(&dir)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io(&path)(e));
        }
        Ok(face)
    }

    /// The face's bytes if its file exists and matches its length and hash. A file that does not
    /// match is deleted (so the user is re-fetched) and reported as corrupt.
    pub(super) fn get(&self, face: &FaceRef) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(&face.sha256);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        // Read one byte past the expected length at most: a grown file is corrupt, not a reason to
        // read it whole.
        let mut bytes = Vec::with_capacity(face.len_bytes as usize);
        file.take(u64::from(face.len_bytes) + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let got: [u8; 32] = Sha256::digest(&bytes).into();
        if bytes.len() != face.len_bytes as usize || got != face.sha256 {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a corrupt face file");
            }
            return Err(StoreError::Corrupt {
                tree: "faces".into(),
                key: face.sha256_hex(),
                reason: format!(
                    "file {} holds {} bytes hashing to {} (deleted; the user is fetched again)",
                    path.display(),
                    bytes.len(),
                    hex::encode(got)
                ),
            });
        }
        Ok(Some(bytes))
    }

    /// Whether the face's file exists with the right length (the hash is checked when it is read).
    pub(super) fn has(&self, face: &FaceRef) -> bool {
        fs::metadata(self.path_of(&face.sha256)).is_ok_and(|m| m.is_file() && m.len() == u64::from(face.len_bytes))
    }

    /// Walks every fan-out directory; `visit` gets each face file's hash and length, or `None` for a
    /// left-over temporary file. Other files are left alone.
    fn walk(&self, mut visit: impl FnMut(&Path, Option<[u8; 32]>, u64)) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let top = match fs::read_dir(&self.root) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&self.root)(e)),
        };
        for sub in top {
            let sub = sub.map_err(io(&self.root))?;
            let name = sub.file_name();
            let is_fanout = name.len() == 2 && name.to_str().is_some_and(|n| hex::decode(n).is_ok());
            if !is_fanout || !sub.file_type().map_err(io(&sub.path()))?.is_dir() {
                continue;
            }
            let dir = sub.path();
            for entry in fs::read_dir(&dir).map_err(io(&dir))? {
                let entry = entry.map_err(io(&dir))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let kind = if name.starts_with(TEMP_PREFIX) {
                    None
                } else if let Some(hash) = hash_of_name(name) {
                    Some(hash)
                } else {
                    continue;
                };
                let meta = entry.metadata().map_err(io(&entry.path()))?;
                if meta.is_file() {
                    visit(&entry.path(), kind, meta.len());
                }
            }
        }
        Ok(())
    }

    pub(super) fn usage(&self) -> Result<FaceUsage, StoreError> {
        let mut usage = FaceUsage::default();
        self.walk(|_, hash, len| {
            if hash.is_some() {
                usage.files += 1;
                usage.bytes += len;
            }
        })?;
        Ok(usage)
    }

    /// Deletes every face file not in `live`, and every temporary file.
    fn collect(&self, live: &BTreeSet<[u8; 32]>) -> Result<FaceGcReport, StoreError> {
        let mut report = FaceGcReport::default();
        let mut doomed = Vec::new();
        self.walk(|path, hash, len| match hash {
            Some(h) if live.contains(&h) => {
                report.kept.files += 1;
                report.kept.bytes += len;
            }
            Some(_) => {
                report.removed_files += 1;
                report.removed_bytes += len;
                doomed.push(path.to_path_buf());
            }
            None => {
                report.removed_temp_files += 1;
                doomed.push(path.to_path_buf());
            }
        })?;
        for path in doomed {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Io { path, source: e });
                }
                _ => {}
            }
        }
        Ok(report)
    }
}

impl Store {
    /// Stores a normalised face as a file named by the sha256 of its bytes (idempotent); durable on
    /// return, so a record written afterwards never refers to a face that a crash lost.
    pub(crate) fn put_face(&self, jpeg: &[u8]) -> Result<FaceRef, StoreError> {
        self.faces.put(jpeg)
    }

    /// The face's bytes, verified against its length and hash; `None` if its file is missing. A file
    /// whose bytes do not match is deleted and reported as corrupt.
    pub fn get_face(&self, face: &FaceRef) -> Result<Option<Vec<u8>>, StoreError> {
        self.faces.get(face)
    }

    /// Face files and their bytes on disk.
    pub(crate) fn face_usage(&self) -> Result<FaceUsage, StoreError> {
        self.faces.usage()
    }

    /// Streams every user record through `visit` without collecting them; false if any record was
    /// unreadable (each is logged).
    pub(crate) fn each_user(&self, mut visit: impl FnMut(StoredUser)) -> Result<bool, StoreError> {
        let mut all_readable = true;
        self.each_user_record(|u| match u {
            Ok(u) => visit(u),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable user record");
                all_readable = false;
            }
        })?;
        Ok(all_readable)
    }

    /// Deletes face files that no user refers to and no configured door's applied state still
    /// needs, and left-over temporary files. Must not run while a pull stores faces (the engine holds
    /// its pull lock). If any record is unreadable nothing is deleted, since the faces it refers to
    /// are unknown; the next pull rewrites such a record.
    pub(crate) fn collect_faces(&self, doors: &[&str]) -> Result<FaceGcReport, StoreError> {
        let mut live: BTreeSet<[u8; 32]> = BTreeSet::new();
        let mut all_readable = self.each_user(|u| live.extend(u.faces.values().map(|f| f.sha256)))?;
        for door in doors {
            let tree = self.db.open_tree(format!("applied/{door}"))?;
            for item in tree.iter() {
                let (k, v) = item?;
                match decode::<AppliedEntry>(&tree, &k, &v) {
                    Ok(e) => {
                        live.extend(e.face.iter().map(|f| f.sha256));
                        live.extend(e.record.iter().map(|r| r.face.sha256));
                    }
                    Err(e) => {
                        tracing::warn!(door, error = %e, "unreadable applied entry");
                        all_readable = false;
                    }
                }
            }
        }
        if !all_readable {
            tracing::warn!("face collection skipped: some records are unreadable");
            return Ok(FaceGcReport {
                kept: self.faces.usage()?,
                ..Default::default()
            });
        }
        self.faces.collect(&live)
    }

    /// Marks for re-fetching every user one of whose faces has no intact file (lost, deleted as
    /// corrupt, or not carried over by a migration): their image fingerprint is cleared, so the next
    /// pull downloads and stores the face again. Their records stay, so doors keep what they hold.
    /// Returns how many users were marked. Run under the engine's pull lock, before a pull.
    pub(crate) fn refetch_missing_faces(&self) -> Result<u64, StoreError> {
        let mut marked = Vec::new();
        self.each_user(|u| {
            if u.image_fingerprint.is_some() && !u.faces.values().all(|f| self.faces.has(f)) {
                marked.push(u);
            }
        })?;
        let n = marked.len() as u64;
        for mut u in marked {
            tracing::warn!(user = %u.key, "a face file is missing or corrupt; fetching the face again");
            u.image_fingerprint = None;
            self.put_user(&u)?;
        }
        if n > 0 {
            self.flush()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
#[path = "faces_tests.rs"]
mod tests;
