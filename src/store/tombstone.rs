//! Tombstone bookkeeping for the lifting rule (README "Local revocation"): store marks that order a
//! pull against the cloud's acknowledgement of a face delete, and the atomic updates of both.

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{Store, StoreError, Tombstone, decode, encode, tx_err, user_key_bytes};
use crate::domain::UserKey;

impl Store {
    /// A number greater than every mark handed out before, also across restarts and crashes (sled's
    /// persistent id generator). Orders "pull started" against "delete acknowledged" without trusting
    /// the wall clock, which a gateway may have wrong.
    pub(crate) fn mark(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Removes the acknowledged face delete `seq` from the outbox and, in the same transaction,
    /// marks `key`'s tombstone (if any) as acknowledged by the cloud. Durable on return.
    pub(crate) fn outbox_ack_face_delete(&self, seq: u64, key: &UserKey) -> Result<(), StoreError> {
        let mark = self.mark()?;
        let k = user_key_bytes(key);
        (&self.outbox, &self.tombstones)
            .transaction(|(outbox, tombstones)| {
                outbox.remove(&seq.to_be_bytes())?;
                if let Some(v) = tombstones.get(&k)? {
                    let mut t: Tombstone = serde_json::from_slice(&v).map_err(|e| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt {
                            tree: "tombstones".into(),
                            key: key.to_string(),
                            reason: e.to_string(),
                        })
                    })?;
                    t.delete_acked_mark = Some(mark);
                    let v = serde_json::to_vec(&t).map_err(|e| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt {
                            tree: "tombstones".into(),
                            key: key.to_string(),
                            reason: format!("cannot encode: {e}"),
                        })
                    })?;
                    tombstones.insert(k.as_slice(), v)?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    /// Changes or removes `key`'s tombstone atomically: a concurrent acknowledgement or a newer
    /// revocation is never overwritten by a decision taken on a stale copy. Durable on return.
    /// Returns what was done (`Keep` also when there is no tombstone).
    pub(crate) fn change_tombstone(
        &self,
        key: &UserKey,
        mut decide: impl FnMut(&mut Tombstone) -> TombstoneChange,
    ) -> Result<TombstoneChange, StoreError> {
        // Each retry means another writer changed this tombstone meanwhile; a handful is plenty.
        const MAX_ATTEMPTS: usize = 64;
        let k = user_key_bytes(key);
        for _ in 0..MAX_ATTEMPTS {
            let Some(old) = self.tombstones.get(&k)? else {
                return Ok(TombstoneChange::Keep);
            };
            let mut t: Tombstone = decode(&self.tombstones, &k, &old)?;
            let change = decide(&mut t);
            let new = match change {
                TombstoneChange::Keep => return Ok(change),
                TombstoneChange::Update => Some(encode(&t)?),
                TombstoneChange::Lift => None,
            };
            if self.tombstones.compare_and_swap(&k, Some(old), new)?.is_ok() {
                self.flush()?;
                return Ok(change);
            }
        }
        Err(StoreError::Corrupt {
            tree: "tombstones".into(),
            key: key.to_string(),
            reason: format!("changed by another writer {MAX_ATTEMPTS} times in a row; not updated"),
        })
    }
}

/// What [`Store::change_tombstone`]'s decision does with the tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TombstoneChange {
    Keep,
    /// Write the changed tombstone back.
    Update,
    /// Remove it: the revocation is over.
    Lift,
}
