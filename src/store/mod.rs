//! The local database: the only user of sled. Users, per-door applied state, tombstones, the cloud
//! outbox and meta in sled; faces as content-addressed files beside it (`faces`).
//!
//! sled is beta and has reports of lost writes without `flush`, so every write that acknowledges
//! something the hardware or the cloud already did is flushed before the call returns. Multi-key
//! updates are atomic (a sled transaction or an atomic batch). Values are JSON; a corrupt value is
//! reported with its tree and key and never hides the other entries. A schema-version key guards the
//! on-disk layout so a migration or a swap of sled stays inside this module.

mod clock_mark;
mod codec;
mod faces;
mod migrate;
mod plan_reads;
#[cfg(test)]
mod record_size_tests;
mod records;
mod roster_state;
#[cfg(test)]
mod tests;
mod tombstone;
mod writeahead;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Transactional, Tree};

pub(crate) use faces::FaceGcReport;
pub use records::{DoorStatus, OutboxItem, PassSummary, StoredUser, Tombstone};
pub(crate) use roster_state::{HeldRemovals, HeldUser};
pub(crate) use tombstone::TombstoneChange;

use crate::domain::{AppliedEntry, DoorUserId, UserKey};
use codec::{
    StoredDoorId, by_door_id, decode, decode_user, each_by_door_id, encode, id_bytes, key_is_in_tree_key,
    user_key_bytes, user_key_from_bytes,
};

/// The on-disk layout this build reads and writes (2: faces as files; 3: compact records, see
/// `migrate`, which upgrades 1 and 2).
pub(crate) const SCHEMA_VERSION: u32 = 3;

const META_SCHEMA: &str = "schema_version";
const META_LAST_PASS: &str = "last_pass";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "the store at {path} is open in another doorsync process (probably the daemon): use the daemon's \
         commands, or stop it first"
    )]
    Locked { path: PathBuf },
    #[error("store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sled(#[from] sled::Error),
    #[error("store tree {tree}, key {key}: corrupt value ({reason})")]
    Corrupt { tree: String, key: String, reason: String },
    #[error(
        "the store uses schema version {found}, newer than this doorsync understands ({supported}); upgrade doorsync"
    )]
    SchemaTooNew { found: u32, supported: u32 },
}

/// What a door acknowledged holding, as counts (`Store::applied_counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AppliedCounts {
    /// Entries with a record on the door.
    pub users: u64,
    /// Entries with a face on the door.
    pub faces: u64,
}

/// The agent's database. One process at a time (sled's file lock); cheap to clone.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    db: Db,
    users: Tree,
    faces: faces::FaceFiles,
    tombstones: Tree,
    outbox: Tree,
    meta: Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Ids saved per sled batch by `Store::save_ids`. One sled transaction for a first pass's thousands of
/// new ids, or for each chunk of them, left the ids tree holding ≈ 0.5 KB of heap per id
/// (BENCHMARKS.md, heap profile at 10 000 users); plain batches ≈ 0.1 KB.
const SAVE_IDS_CHUNK: usize = 64;

/// How long `open` waits for a lock that a store just dropped in this process may still hold: sled
/// releases its file lock only when its background flusher thread has exited, which can take a
/// flush period (longer on a loaded machine). A lock held by another live process outlasts this.
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// sled's page cache. Its default (1 GiB) lets the cache grow with every face stored, which on a
/// gateway with a few hundred MiB of RAM is most of the machine; faces are read once per door push,
/// so a small cache costs little.
const CACHE_CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_RELEASE_WAIT;
    loop {
        let config = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(CACHE_CAPACITY_BYTES);
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Locked {
                        path: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Store {
    /// Opens (creating if needed, owner-only) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let db = open_db(dir)?;
        let store = Self {
            path: dir.to_path_buf(),
            users: db.open_tree("users")?,
            faces: faces::FaceFiles::open(dir)?,
            tombstones: db.open_tree("tombstones")?,
            outbox: db.open_tree("outbox")?,
            meta: db.open_tree("meta")?,
            db,
        };
        migrate::upgrade(&store)?;
        Ok(store)
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    // ---- users -------------------------------------------------------------------------------

    pub fn get_user(&self, key: &UserKey) -> Result<Option<StoredUser>, StoreError> {
        let k = user_key_bytes(key);
        self.users
            .get(&k)?
            .map(|v| decode_user(&self.users, &k, &v))
            .transpose()
    }

    pub fn put_user(&self, user: &StoredUser) -> Result<(), StoreError> {
        self.users.insert(user_key_bytes(&user.key), encode(user)?)?;
        Ok(())
    }

    /// Every readable user, plus an error for each corrupt entry (which the caller reports). Holds the
    /// whole roster: the daemon's paths stream with [`Store::each_user_record`] instead.
    pub fn users(&self) -> Result<(Vec<StoredUser>, Vec<StoreError>), StoreError> {
        let mut users = Vec::new();
        let mut corrupt = Vec::new();
        self.each_user_record(|u| match u {
            Ok(u) => users.push(u),
            Err(e) => corrupt.push(e),
        })?;
        Ok((users, corrupt))
    }

    /// Streams every user record through `visit`, a corrupt one as its error (for the caller to
    /// report), holding one record at a time (BENCHMARKS.md, memory budget). A read error of the
    /// database itself ends the walk.
    pub(crate) fn each_user_record(
        &self,
        mut visit: impl FnMut(Result<StoredUser, StoreError>),
    ) -> Result<(), StoreError> {
        for item in self.users.iter() {
            let (k, v) = item?;
            visit(decode_user(&self.users, &k, &v));
        }
        Ok(())
    }

    /// Writes raw bytes as a user record, for tests of how readers report a corrupt one.
    #[cfg(test)]
    pub(crate) fn put_raw_user(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.users.insert(key, value)?;
        Ok(())
    }

    // ---- per-door state ----------------------------------------------------------------------

    fn applied_tree(&self, door: &str) -> Result<Tree, StoreError> {
        Ok(self.db.open_tree(format!("applied/{door}"))?)
    }

    fn ids_tree(&self, door: &str) -> Result<Tree, StoreError> {
        Ok(self.db.open_tree(format!("ids/{door}"))?)
    }

    /// What the door acknowledged holding, by door-local id.
    pub fn applied(&self, door: &str) -> Result<BTreeMap<DoorUserId, AppliedEntry>, StoreError> {
        by_door_id(&self.applied_tree(door)?)
    }

    /// How many users and faces the door acknowledged holding, counted one entry at a time.
    pub(crate) fn applied_counts(&self, door: &str) -> Result<AppliedCounts, StoreError> {
        let tree = self.applied_tree(door)?;
        let mut counts = AppliedCounts::default();
        for item in tree.iter() {
            let (k, v) = item?;
            let entry: AppliedEntry = decode(&tree, &k, &v)?;
            counts.users += u64::from(entry.record.is_some());
            counts.faces += u64::from(entry.face.is_some());
        }
        Ok(counts)
    }

    /// Records an op the door acknowledged. Durable on return (invariant 3).
    pub(crate) fn record_applied(&self, door: &str, id: DoorUserId, entry: &AppliedEntry) -> Result<(), StoreError> {
        self.applied_tree(door)?.insert(id_bytes(id), encode(entry)?)?;
        self.flush()
    }

    /// Records a delete the door acknowledged: the applied entry goes, and so does the user's id
    /// mapping if it still points at this id (one transaction). Durable on return.
    pub(crate) fn record_deleted(&self, door: &str, id: DoorUserId) -> Result<(), StoreError> {
        let applied = self.applied_tree(door)?;
        let ids = self.ids_tree(door)?;
        (&applied, &ids)
            .transaction(|(applied, ids)| {
                if let Some(old) = applied.remove(&id_bytes(id))? {
                    let entry: AppliedEntry = serde_json::from_slice(&old).map_err(|e| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt {
                            tree: format!("applied/{door}"),
                            key: id.0.to_string(),
                            reason: e.to_string(),
                        })
                    })?;
                    let k = user_key_bytes(&entry.key);
                    let maps_here = ids
                        .get(&k)?
                        .and_then(|v| serde_json::from_slice::<StoredDoorId>(&v).ok())
                        .is_some_and(|mapped| mapped.id() == id.0);
                    if maps_here {
                        ids.remove(k)?;
                    }
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    /// Forgets one applied entry but keeps the user's id, so the next plan re-sends that user under
    /// the same id (reconciliation found the door does not hold what was recorded).
    pub(crate) fn forget_applied(&self, door: &str, id: DoorUserId) -> Result<(), StoreError> {
        self.applied_tree(door)?.remove(id_bytes(id))?;
        self.flush()
    }

    /// The door-local id of each user on this door.
    pub fn door_ids(&self, door: &str) -> Result<BTreeMap<UserKey, DoorUserId>, StoreError> {
        let tree = self.ids_tree(door)?;
        let mut out = BTreeMap::new();
        for item in tree.iter() {
            let (k, v) = item?;
            let id = match decode(&tree, &k, &v)? {
                StoredDoorId::Id(id) => id,
                StoredDoorId::WithKey(key, id) => {
                    out.insert(key, DoorUserId(id));
                    continue;
                }
            };
            out.insert(user_key_from_bytes(&tree, &k)?, DoorUserId(id));
        }
        Ok(out)
    }

    /// Saves newly allocated ids and the allocator's next value, durably, before any op using them is
    /// sent. The next value (above every new id) is durable first and the ids follow in atomic
    /// batches, so a crash part-way leaves saved ids below the saved next value and unsaved ones never
    /// used: the next plan allocates those users anew and no id is handed out twice.
    pub(crate) fn save_ids(
        &self,
        door: &str,
        new_ids: &[(UserKey, DoorUserId)],
        next_id: u32,
    ) -> Result<(), StoreError> {
        let ids = self.ids_tree(door)?;
        let next_key = format!("next_id/{door}");
        let next = encode(&next_id)?;
        self.meta.insert(next_key.as_bytes(), next)?;
        self.flush()?;
        for chunk in new_ids.chunks(SAVE_IDS_CHUNK) {
            let mut batch = sled::Batch::default();
            for (key, id) in chunk {
                let value = if key_is_in_tree_key(key) {
                    encode(&id.0)?
                } else {
                    encode(&(key, id.0))?
                };
                batch.insert(user_key_bytes(key), value);
            }
            ids.apply_batch(batch)?;
        }
        self.flush()
    }

    /// The next door-local id to hand out on this door (1 for a new door).
    pub(crate) fn next_id(&self, door: &str) -> Result<u32, StoreError> {
        Ok(self.get_meta::<u32>(&format!("next_id/{door}"))?.unwrap_or(1))
    }

    pub fn door_status(&self, door: &str) -> Result<DoorStatus, StoreError> {
        Ok(self.get_meta(&format!("door_status/{door}"))?.unwrap_or_default())
    }

    pub(crate) fn put_door_status(&self, door: &str, status: &DoorStatus) -> Result<(), StoreError> {
        self.put_meta(&format!("door_status/{door}"), status)
    }

    /// Changes a door's status atomically (read-modify-write as one sled update), so two tasks
    /// recording different fields of one door never lose each other's update. A corrupt stored
    /// status is replaced by the default before `change` runs.
    pub(crate) fn update_door_status(
        &self,
        door: &str,
        mut change: impl FnMut(&mut DoorStatus),
    ) -> Result<DoorStatus, StoreError> {
        let name = format!("door_status/{door}");
        let mut encode_failure = None;
        let updated = self.meta.update_and_fetch(name.as_bytes(), |old| {
            let mut status: DoorStatus = old.and_then(|v| serde_json::from_slice(v).ok()).unwrap_or_default();
            change(&mut status);
            match serde_json::to_vec(&status) {
                Ok(v) => Some(v),
                Err(e) => {
                    encode_failure = Some(e.to_string());
                    old.map(<[u8]>::to_vec)
                }
            }
        })?;
        if let Some(reason) = encode_failure {
            return Err(StoreError::Corrupt {
                tree: "meta".into(),
                key: name,
                reason: format!("cannot encode: {reason}"),
            });
        }
        match updated {
            Some(v) => decode(&self.meta, name.as_bytes(), &v),
            None => Ok(DoorStatus::default()),
        }
    }

    // ---- tombstones --------------------------------------------------------------------------

    /// Records a local revocation. Durable on return: it must survive a crash right after `revoke`.
    #[cfg(test)]
    pub(crate) fn put_tombstone(&self, t: &Tombstone) -> Result<(), StoreError> {
        self.tombstones.insert(user_key_bytes(&t.key), encode(t)?)?;
        self.flush()
    }

    pub(crate) fn get_tombstone(&self, key: &UserKey) -> Result<Option<Tombstone>, StoreError> {
        let k = user_key_bytes(key);
        self.tombstones
            .get(&k)?
            .map(|v| decode(&self.tombstones, &k, &v))
            .transpose()
    }

    pub(crate) fn tombstones(&self) -> Result<Vec<Tombstone>, StoreError> {
        self.tombstones
            .iter()
            .map(|item| {
                let (k, v) = item?;
                decode(&self.tombstones, &k, &v)
            })
            .collect()
    }

    /// Records a local revocation and queues its cloud call in one transaction, so a crash can never
    /// leave one without the other. Durable on return; returns the outbox sequence number.
    pub(crate) fn put_tombstone_and_queue(&self, t: &Tombstone, item: &OutboxItem) -> Result<u64, StoreError> {
        let seq = self.db.generate_id()?;
        let (tk, tv) = (user_key_bytes(&t.key), encode(t)?);
        let ov = encode(item)?;
        (&self.tombstones, &self.outbox)
            .transaction(|(tombstones, outbox)| {
                tombstones.insert(tk.as_slice(), tv.as_slice())?;
                outbox.insert(&seq.to_be_bytes(), ov.as_slice())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(seq)
    }

    // ---- outbox ------------------------------------------------------------------------------

    /// Queues a cloud call; durable on return. Sequence numbers only grow, so order is kept.
    pub(crate) fn outbox_push(&self, item: &OutboxItem) -> Result<u64, StoreError> {
        let seq = self.db.generate_id()?;
        self.outbox.insert(seq.to_be_bytes(), encode(item)?)?;
        self.flush()?;
        Ok(seq)
    }

    /// The oldest queued call, if any.
    pub(crate) fn outbox_peek(&self) -> Result<Option<(u64, OutboxItem)>, StoreError> {
        let Some((k, v)) = self.outbox.first()? else {
            return Ok(None);
        };
        let seq = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
        Ok(Some((seq, decode(&self.outbox, &k, &v)?)))
    }

    /// Removes a call the cloud accepted; durable on return.
    pub(crate) fn outbox_ack(&self, seq: u64) -> Result<(), StoreError> {
        self.outbox.remove(seq.to_be_bytes())?;
        self.flush()
    }

    /// Removes the oldest queued call whatever it holds (an unreadable entry would otherwise block the
    /// queue forever); returns its sequence number and raw bytes, for the caller to report.
    pub(crate) fn outbox_discard_first(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let Some((k, v)) = self.outbox.pop_min()? else {
            return Ok(None);
        };
        self.flush()?;
        let seq = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
        Ok(Some((seq, v.to_vec())))
    }

    /// Every queued call, oldest first.
    pub(crate) fn outbox_items(&self) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
        self.outbox
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let seq = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
                Ok((seq, decode(&self.outbox, &k, &v)?))
            })
            .collect()
    }

    pub(crate) fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    // ---- meta --------------------------------------------------------------------------------

    pub fn last_pass(&self) -> Result<Option<PassSummary>, StoreError> {
        self.get_meta(META_LAST_PASS)
    }

    pub(crate) fn put_last_pass(&self, summary: &PassSummary) -> Result<(), StoreError> {
        self.put_meta(META_LAST_PASS, summary)?;
        self.flush()
    }

    pub(crate) fn get_meta<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.meta
            .get(name)?
            .map(|v| decode(&self.meta, name.as_bytes(), &v))
            .transpose()
    }

    pub(crate) fn put_meta<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.meta.insert(name, encode(value)?)?;
        Ok(())
    }
}
