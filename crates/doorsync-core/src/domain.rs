//! The domain vocabulary every layer shares: who a person is, what a door may hold, and hardware limits.
//!
//! Types here are plain data with no I/O. Units live in field names (`_px`, `_bytes`, `_ms`) or in
//! the type (`jiff::Timestamp` is an absolute UTC instant).

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The cloud's key of a face record: `(userType, userId)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserKey {
    /// `IDENTITY`, `OPEN`, `YUNDUN` or `PHONE`.
    pub user_type: String,
    pub user_id: String,
}

impl UserKey {
    pub fn new(user_type: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            user_type: user_type.into(),
            user_id: user_id.into(),
        }
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.user_type, self.user_id)
    }
}

/// Whether a listed person may pass. `Deny` is treated like absence for doors that admit only listed users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Policy {
    Permission,
    Deny,
}

impl Policy {
    /// Parses the cloud's `policy` string; anything but `DENY` (including absent) is the documented default.
    pub fn from_cloud(s: Option<&str>) -> Self {
        match s.map(str::trim) {
            Some(p) if p.eq_ignore_ascii_case("DENY") => Policy::Deny,
            _ => Policy::Permission,
        }
    }
}

/// A normalised face image, identified by the sha256 of its bytes (invariant 5: content addressing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FaceRef {
    pub sha256: [u8; 32],
    pub len_bytes: u32,
}

impl FaceRef {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A compact per-door user number the agent assigns, so a long cloud userId never has to fit an
/// OSDP command. Stable for the life of the user on that door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DoorUserId(pub u32);

impl fmt::Display for DoorUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the hardware holds for one person: the record fields plus the face it should match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DoorRecord {
    pub id: DoorUserId,
    pub policy: Policy,
    /// Hardware that enforces it refuses the person after this instant even if the gateway dies.
    pub expire_at: Option<Timestamp>,
    pub face: FaceRef,
    pub display_name: String,
}

/// Image limits of a hardware model (from its firmware profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLimits {
    pub max_width_px: u32,
    pub max_height_px: u32,
    pub max_bytes: u32,
    /// Starting JPEG quality (1–100); the encoder lowers it until the image fits `max_bytes`.
    pub jpeg_quality: u8,
}

/// OSDP limits of a hardware model; the smaller of these and what the PD reports wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsdpLimits {
    /// Largest OSDP packet (SOM through CRC) the agent sends to this model.
    pub max_packet_bytes: u16,
    /// Largest osdp_MFG vendor data (after the 3-byte vendor code) the model accepts.
    pub max_mfg_data_bytes: u16,
    /// Longest FtDelay (osdp_FTSTAT) the agent obeys; a longer request is cut to this and reported.
    #[serde(default = "default_max_ft_delay_ms")]
    pub max_ft_delay_ms: u32,
}

/// Profile key `osdp.max_ft_delay` when absent: 2 s.
pub const DEFAULT_MAX_FT_DELAY_MS: u32 = 2_000;

fn default_max_ft_delay_ms() -> u32 {
    DEFAULT_MAX_FT_DELAY_MS
}

/// A hardware model/firmware description from `firmware-config/profiles/*.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub image: ImageLimits,
    pub osdp: OsdpLimits,
    pub capacity_users: u32,
    /// OSDP vendor code (OUI) in wire order, used in osdp_MFG / osdp_MFGREP.
    pub vendor_code: [u8; 3],
}

/// One operation on a door. The planner orders them: every delete before any upsert, upserts before faces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DoorOp {
    /// Remove the user and their face from the door. Idempotent: deleting an absent id succeeds.
    Delete(DoorUserId),
    /// Create or replace a user record. Idempotent.
    Upsert(DoorRecord),
    /// Send the face file for a user whose record the door holds. Idempotent.
    PutFace { id: DoorUserId, face: FaceRef },
}

/// What the agent knows a door holds under one door-local id. Written only after the door acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedEntry {
    pub key: UserKey,
    /// The record the door acknowledged, if any.
    pub record: Option<DoorRecord>,
    /// The face file the door acknowledged (sha256 verified by the door), if any.
    pub face: Option<FaceRef>,
}

/// A person as cached locally, seen from one door (face normalised for that door's profile).
/// The planner decides from this whether the door should hold them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    pub key: UserKey,
    pub display_name: String,
    pub policy: Policy,
    pub expire_at: Option<Timestamp>,
    /// `None` when the user has no usable face (not fetched yet, or the image was bad).
    pub face: Option<FaceRef>,
    /// A technician's `doorsync revoke` tombstone is in force.
    pub revoked_locally: bool,
}

/// A secret read from a file (app secret, OSDP key). Its `Debug` never shows the bytes, and it has no
/// `Display`, so it cannot leak into a log line or an error message by formatting.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The raw bytes, for the one place that needs them (HMAC key, AES key).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}
