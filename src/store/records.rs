//! The records the store keeps, as plain serde data (JSON on disk, so a technician can read them).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::{FaceRef, Policy, UserKey};

/// A person as the last complete roster pass left them, with their normalised faces.
///
/// Absent and false fields are left out of the JSON, and so is the key when the record's sled key
/// holds it (`Store::put_user`; schema 2 wrote them all out, which still reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    #[serde(default, skip_serializing_if = "super::key_is_in_tree_key")]
    pub key: UserKey,
    pub display_name: String,
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<Timestamp>,
    /// The cloud's faceId, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_face_id: Option<String>,
    /// What the cloud said about the face last time; unchanged means the image need not be fetched again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_fingerprint: Option<String>,
    /// The face normalised for each hardware profile, by profile name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub faces: BTreeMap<String, FaceRef>,
    /// Why this user is failed (bad image, bad record), shown by `status`; `None` when healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The roster lists the user with a pending delete (`transferDeleted`/`deleteTimeout`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub roster_revoked: bool,
    pub updated_at: Timestamp,
}

/// A technician's local revocation (invariant 4). It outlives stale rosters; only a newer cloud
/// grant clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub key: UserKey,
    pub revoked_at: Timestamp,
    pub reason: String,
    /// The cloud's face fingerprint when revoked (kept for older readers; `seen_faces` decides).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Faces (cloud faceIds and stored image hashes, see `sync::tombstone`) the agent saw for this
    /// user at the revocation or in any pull that did not start after the cloud acknowledged the
    /// face delete. None of them can lift the tombstone.
    #[serde(default)]
    pub seen_faces: BTreeSet<String>,
    /// The store mark (`Store::mark`) taken when the cloud acknowledged the queued face delete;
    /// `None` while it has not. Only a pull whose own mark is greater started after that.
    #[serde(default)]
    pub delete_acked_mark: Option<u64>,
}

/// A cloud call to make when the cloud is reachable, kept in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxItem {
    DeleteFace {
        key: UserKey,
    },
    ModifyUser {
        identity_id: String,
        name: Option<String>,
        ext_info: Option<String>,
    },
}

/// What `status` shows for one door.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorStatus {
    pub last_verified_at: Option<Timestamp>,
    /// Revocation or roster change → door acknowledgement, as last measured.
    pub last_revocation_latency_ms: Option<u64>,
    /// `expire_at` → door acknowledgement of the delete, as last measured.
    #[serde(default)]
    pub last_expiry_latency_ms: Option<u64>,
    /// When the door last acknowledged everything the agent planned for it.
    #[serde(default)]
    pub last_converged_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Operations planned but not yet acknowledged.
    pub pending: u64,
    /// Users the door could not take, with the reason.
    pub failed: BTreeMap<String, String>,
}

/// The outcome of the last pull pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassSummary {
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub users_total: u64,
    pub users_failed: u64,
    pub images_downloaded: u64,
    pub error: Option<String>,
}
