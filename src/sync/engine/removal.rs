//! Urgent deletes: removing people who must not pass from every reachable door at once, around the
//! doors' apply locks, and measuring how long that took.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{DoorSlot, Engine};
use crate::domain::{DoorUserId, UserKey};
use crate::store::StoreError;
use crate::sync::delete::{DeleteFailed, delete_and_record};
use crate::sync::desired;

/// Why people are being removed; decides which latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalCause {
    /// `doorsync revoke`: measured from the revoke to the door's ack.
    Revoked,
    /// The roster stopped granting someone: measured from the pull that saw it to the door's ack.
    RosterChange,
    /// `expire_at` passed: measured from the expiry instant to the door's ack.
    Expired,
    /// Enforcing the cached desired state (cloud unreachable); no latency recorded.
    Cached,
}

/// What an urgent delete did on one door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub door: String,
    /// Users the door acknowledged deleting.
    pub removed: Vec<UserKey>,
    /// `since` → the door's last ack, when anything was removed.
    pub latency_ms: Option<u64>,
    /// Why the door could not be reached; its deletes stay first in its plan.
    pub error: Option<String>,
}

impl Engine {
    /// Deletes, on every door concurrently, everyone the door may hold (acknowledged or written
    /// ahead) who must not pass now (gone, denied, expired, revoked). Does not wait for a door's
    /// transfer in progress. Each door gets at most `urgent_delete_wait` (one reply timeout plus one
    /// discovery attempt); a door that does not answer within it is reported with its error and keeps
    /// these deletes at the head of its next plan, so nothing is lost by returning.
    pub(crate) async fn remove_undesired(
        &self,
        cause: RemovalCause,
        since: Timestamp,
    ) -> Result<Vec<Removal>, StoreError> {
        let tombstoned = desired::tombstoned(&self.store)?;
        let work = self.doors.iter().map(|slot| {
            let bound = self.settings.urgent_delete_wait;
            let tombstoned = &tombstoned;
            async move {
                match tokio::time::timeout(bound, self.remove_from_door(slot, tombstoned, cause, since)).await {
                    Ok(r) => r,
                    Err(_) => {
                        slot.note_unreachable();
                        let error = format!(
                            "the door did not acknowledge the delete within {} ms (offline or not answering)",
                            bound.as_millis()
                        );
                        self.store
                            .update_door_status(&slot.name, |s| s.last_error = Some(error.clone()))?;
                        tracing::warn!(
                            door = slot.name,
                            ?bound,
                            "door did not answer the urgent delete in time; it stays queued first"
                        );
                        Ok(Removal {
                            door: slot.name.clone(),
                            removed: Vec::new(),
                            latency_ms: None,
                            error: Some(error),
                        })
                    }
                }
            }
        });
        let mut out = Vec::with_capacity(self.doors.len());
        for r in futures::future::join_all(work).await {
            out.push(r?);
        }
        Ok(out)
    }

    async fn remove_from_door(
        &self,
        slot: &DoorSlot,
        tombstoned: &BTreeSet<UserKey>,
        cause: RemovalCause,
        since: Timestamp,
    ) -> Result<Removal, StoreError> {
        // Ids written ahead count as held: the door may have applied a file just before a crash.
        // Only the door's users are looked up and only the ones to delete are kept, so an urgent
        // delete holds no copy of the roster or of the door's state (BENCHMARKS.md, memory budget).
        let now = self.now();
        let mut undesired: Vec<(DoorUserId, UserKey)> = Vec::new();
        self.store.each_may_hold(&slot.name, |id, entry| {
            if desired::must_not_pass(&self.store, &entry.key, &slot.profile.name, tombstoned, now)? {
                undesired.push((id, entry.key));
            }
            Ok(())
        })?;
        // Acknowledged ids came first, then those only written ahead: id order, as the plan sends them.
        undesired.sort_unstable_by_key(|(id, _)| *id);
        let ids: Vec<DoorUserId> = undesired.iter().map(|(id, _)| *id).collect();
        let mut removal = Removal {
            door: slot.name.clone(),
            removed: Vec::new(),
            latency_ms: None,
            error: None,
        };
        if ids.is_empty() {
            return Ok(removal);
        }
        match delete_and_record(&self.store, &slot.name, slot.door.as_ref(), &ids).await {
            Ok(()) => removal.removed.extend(undesired.into_iter().map(|(_, key)| key)),
            Err(DeleteFailed::Store(e)) => return Err(e),
            Err(DeleteFailed::Door(e)) => {
                slot.note_unreachable();
                self.store
                    .update_door_status(&slot.name, |s| s.last_error = Some(e.to_string()))?;
                tracing::warn!(door = slot.name, error = %e, "door unreachable; its deletes stay queued first");
                removal.error = Some(e.to_string());
            }
        }
        if removal.removed.is_empty() {
            return Ok(removal);
        }
        let latency_ms = u64::try_from(self.now().duration_since(since).as_millis()).unwrap_or(0);
        removal.latency_ms = Some(latency_ms);
        for key in &removal.removed {
            tracing::info!(door = slot.name, user = %key, ?cause, latency_ms, "removed from the door");
        }
        self.store.update_door_status(&slot.name, |s| match cause {
            RemovalCause::Revoked | RemovalCause::RosterChange => s.last_revocation_latency_ms = Some(latency_ms),
            RemovalCause::Expired => s.last_expiry_latency_ms = Some(latency_ms),
            RemovalCause::Cached => {}
        })?;
        Ok(removal)
    }
}
