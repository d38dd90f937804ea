//! Local actions: a technician's revocation, user modifications, and the cloud outbox that carries
//! both to the cloud in order once it is reachable.

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, Removal, RemovalCause};
use crate::cloud::ErrorClass;
use crate::domain::UserKey;
use crate::store::{OutboxItem, StoreError, Tombstone};
use crate::sync::tombstone;

/// Refused outbox calls kept in the store for `status` and post-mortems (newest last).
const DROPPED_KEPT: usize = 100;
const META_OUTBOX_DROPPED: &str = "outbox_dropped";

/// What `doorsync revoke` did. `--json` prints this object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeReport {
    pub user: UserKey,
    /// The user was in the local store (else the tombstone still keeps them off every door).
    pub known: bool,
    /// Every configured door acknowledged the delete or held nothing to delete.
    pub all_doors_reached: bool,
    pub doors: Vec<Removal>,
    /// The cloud delete, if the caller flushed the outbox right away (the daemon sends it in the background).
    pub outbox: Option<OutboxReport>,
}

/// What `doorsync user modify` did. `--json` prints this object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModifyReport {
    pub identity_id: String,
    /// The cloud accepted the call.
    pub sent: bool,
    /// The call waits in the outbox (cloud unreachable, or older calls ahead of it failing).
    pub queued: bool,
    /// Why the cloud refused it (a permanent refusal: the call was dropped), or why it is still queued.
    pub error: Option<String>,
}

/// A queued call the cloud refused for good; removed from the outbox so it cannot block the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedCall {
    pub seq: u64,
    pub call: String,
    pub error: String,
}

/// What one outbox flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxReport {
    pub sent: u64,
    pub dropped: Vec<DroppedCall>,
    pub remaining: u64,
    /// Why the flush stopped with calls still queued (the cloud is unreachable or refusing for now).
    pub error: Option<String>,
}

fn describe(item: &OutboxItem) -> String {
    match item {
        OutboxItem::DeleteFace { key } => format!("face delete of {key}"),
        OutboxItem::ModifyUser { identity_id, .. } => format!("user modify of {identity_id}"),
    }
}

impl Engine {
    /// Revokes a user locally (invariant 4): tombstone and queued cloud delete in one durable step,
    /// then the user is deleted from every reachable door at once — without waiting for a transfer in
    /// progress, which stops before its next upload and re-plans.
    pub(crate) async fn revoke(&self, key: &UserKey, reason: &str) -> Result<RevokeReport, EngineError> {
        let since = self.now();
        let user = self.store.get_user(key)?;
        // A repeated revoke keeps what the earlier one saw: those faces can never lift it either.
        let mut seen_faces = self.store.get_tombstone(key)?.map(|t| t.seen_faces).unwrap_or_default();
        seen_faces.extend(user.iter().flat_map(tombstone::face_tokens));
        let tombstone = Tombstone {
            key: key.clone(),
            revoked_at: since,
            reason: reason.to_string(),
            fingerprint: user.as_ref().and_then(|u| u.image_fingerprint.clone()),
            seen_faces,
            delete_acked_mark: None,
        };
        self.store
            .put_tombstone_and_queue(&tombstone, &OutboxItem::DeleteFace { key: key.clone() })?;
        tracing::info!(user = %key, "revoked locally");
        self.bump();
        let doors = self.remove_undesired(RemovalCause::Revoked, since).await?;
        Ok(RevokeReport {
            user: key.clone(),
            known: user.is_some(),
            all_doors_reached: doors.iter().all(|d| d.error.is_none()),
            doors,
            outbox: None,
        })
    }

    /// Queues `/entrance/paas/user/modify` behind any older calls and tries to send the queue now.
    pub(crate) async fn modify_user(
        &self,
        identity_id: &str,
        name: Option<&str>,
        ext_info: Option<&str>,
    ) -> Result<ModifyReport, StoreError> {
        let seq = self.store.outbox_push(&OutboxItem::ModifyUser {
            identity_id: identity_id.to_string(),
            name: name.map(str::to_string),
            ext_info: ext_info.map(str::to_string),
        })?;
        let flushed = self.flush_outbox().await?;
        let still_queued = self.store.outbox_items()?.iter().any(|(s, _)| *s == seq);
        let dropped = flushed.dropped.iter().find(|d| d.seq == seq);
        Ok(ModifyReport {
            identity_id: identity_id.to_string(),
            sent: !still_queued && dropped.is_none(),
            queued: still_queued,
            error: match dropped {
                Some(d) => Some(d.error.clone()),
                None if still_queued => flushed.error,
                None => None,
            },
        })
    }

    /// Sends queued cloud calls oldest first, stopping at the first that may succeed later (the rest
    /// wait behind it, so order is kept). A call the cloud refuses for good is dropped and reported.
    pub(crate) async fn flush_outbox(&self) -> Result<OutboxReport, StoreError> {
        let _in_order = self.outbox_lock.lock().await;
        let mut report = OutboxReport::default();
        loop {
            let (seq, item) = match self.store.outbox_peek() {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(StoreError::Corrupt { reason, .. }) => {
                    if let Some((seq, raw)) = self.store.outbox_discard_first()? {
                        let call = String::from_utf8_lossy(&raw).into_owned();
                        tracing::error!(seq, %call, %reason, "unreadable outbox entry dropped");
                        self.note_dropped(&mut report, seq, call, format!("unreadable: {reason}"))?;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let result = match &item {
                OutboxItem::DeleteFace { key } => self.cloud.delete_face(key).await,
                OutboxItem::ModifyUser {
                    identity_id,
                    name,
                    ext_info,
                } => {
                    self.cloud
                        .modify_user(identity_id, name.as_deref(), ext_info.as_deref())
                        .await
                }
            };
            let delete_of = match &item {
                OutboxItem::DeleteFace { key } => Some(key),
                OutboxItem::ModifyUser { .. } => None,
            };
            match (result, delete_of) {
                // The cloud acknowledged a face delete (or no longer has the face): the tombstone
                // learns it in the same step, so a later pull may judge a re-grant.
                (Ok(()), Some(key)) => {
                    self.store.outbox_ack_face_delete(seq, key)?;
                    report.sent += 1;
                }
                (Err(e), Some(key)) if e.class() == ErrorClass::UserGone => {
                    self.store.outbox_ack_face_delete(seq, key)?;
                    report.sent += 1;
                }
                (Ok(()), None) => {
                    self.store.outbox_ack(seq)?;
                    report.sent += 1;
                }
                (Err(e), _) if matches!(e.class(), ErrorClass::BadRequest | ErrorClass::UserGone) => {
                    tracing::error!(seq, call = %describe(&item), error = %e, "the cloud refused a queued call; dropping it");
                    self.store.outbox_ack(seq)?;
                    self.note_dropped(&mut report, seq, describe(&item), e.to_string())?;
                }
                (Err(e), _) => {
                    tracing::warn!(seq, call = %describe(&item), error = %e, "cloud call stays queued");
                    report.error = Some(e.to_string());
                    break;
                }
            }
        }
        report.remaining = self.store.outbox_len() as u64;
        Ok(report)
    }

    fn note_dropped(&self, report: &mut OutboxReport, seq: u64, call: String, error: String) -> Result<(), StoreError> {
        let dropped = DroppedCall { seq, call, error };
        let mut kept: Vec<DroppedCall> = self
            .store
            .get_meta(META_OUTBOX_DROPPED)
            .ok()
            .flatten()
            .unwrap_or_default();
        kept.push(dropped.clone());
        let excess = kept.len().saturating_sub(DROPPED_KEPT);
        kept.drain(..excess);
        self.store.put_meta(META_OUTBOX_DROPPED, &kept)?;
        self.store.flush()?;
        report.dropped.push(dropped);
        Ok(())
    }
}
