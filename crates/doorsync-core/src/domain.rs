//! The domain vocabulary every layer shares: who a person is, what a door may hold, and hardware limits.
//!
//! Types here are plain data with no I/O. Units live in field names (`_px`, `_bytes`, `_ms`) or in
//! the type (`jiff::Timestamp` is an absolute UTC instant).

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The cloud's key of a face record: `(userType, userId)`. The default (both empty) stands for "not
/// written": a store record keyed by the user leaves its key out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// Written as 64 hex digits; the array of 32 numbers that schema-2 stores hold (twice the bytes)
    /// is still read.
    #[serde(with = "sha256_serde")]
    pub sha256: [u8; 32],
    pub len_bytes: u32,
}

impl FaceRef {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// [`FaceRef::sha256`] as hex text, read back from hex text or from an array of 32 numbers.
mod sha256_serde {
    use std::fmt;

    use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(sha256: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(sha256))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        d.deserialize_any(Sha256Visitor)
    }

    struct Sha256Visitor;

    impl<'de> Visitor<'de> for Sha256Visitor {
        type Value = [u8; 32];

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a sha256 as 64 hex digits or as an array of 32 numbers")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut out = [0u8; 32];
            hex::decode_to_slice(v, &mut out)
                .map_err(|e| E::custom(format_args!("sha256 is not 64 hex digits: {e}")))?;
            Ok(out)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<IgnoredAny>()?.is_some() {
                return Err(de::Error::invalid_length(33, &self));
            }
            Ok(out)
        }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[serde(try_from = "AppliedEntryWire", into = "AppliedEntryWire")]
pub struct AppliedEntry {
    pub key: UserKey,
    /// The record the door acknowledged, if any.
    pub record: Option<DoorRecord>,
    /// The face file the door acknowledged (sha256 verified by the door), if any.
    pub face: Option<FaceRef>,
}

/// [`AppliedEntry`] as serialised: a face that is the record's own (the usual case) is written as a
/// flag instead of a second copy, and absent parts are left out. The older form (`face` written out,
/// `null` for absent parts) reads the same.
#[derive(Serialize, Deserialize)]
struct AppliedEntryWire {
    key: UserKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<DoorRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    face: Option<FaceRef>,
    /// The door holds the face its record names (`face` is then left out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    face_is_record_face: bool,
}

impl From<AppliedEntry> for AppliedEntryWire {
    fn from(e: AppliedEntry) -> Self {
        let face_is_record_face = e.face.is_some() && e.face == e.record.as_ref().map(|r| r.face);
        Self {
            key: e.key,
            record: e.record,
            face: if face_is_record_face { None } else { e.face },
            face_is_record_face,
        }
    }
}

impl TryFrom<AppliedEntryWire> for AppliedEntry {
    type Error = String;

    fn try_from(w: AppliedEntryWire) -> Result<Self, String> {
        let face = match (w.face_is_record_face, w.face, &w.record) {
            (false, face, _) => face,
            (true, None, Some(record)) => Some(record.face),
            (true, Some(_), _) => return Err("both face and face_is_record_face are set".into()),
            (true, None, None) => return Err("face_is_record_face is set but there is no record".into()),
        };
        Ok(Self {
            key: w.key,
            record: w.record,
            face,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn face(n: u8) -> FaceRef {
        FaceRef {
            sha256: [n; 32],
            len_bytes: 1000 + u32::from(n),
        }
    }

    fn entry(record_face: u8, face_held: Option<u8>) -> AppliedEntry {
        AppliedEntry {
            key: UserKey::new("IDENTITY", "a"),
            record: Some(DoorRecord {
                id: DoorUserId(7),
                policy: Policy::Permission,
                expire_at: None,
                face: face(record_face),
                display_name: "A".into(),
            }),
            face: face_held.map(face),
        }
    }

    #[test]
    fn a_face_ref_is_written_with_hex_and_read_from_hex_or_numbers() {
        let f = FaceRef {
            sha256: std::array::from_fn(|i| i as u8),
            len_bytes: 5,
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"sha256":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f","len_bytes":5}"#
        );
        assert_eq!(serde_json::from_str::<FaceRef>(&json).unwrap(), f);
        let numbers: Vec<u8> = (0..32).collect();
        let old = format!(r#"{{"sha256":{numbers:?},"len_bytes":5}}"#);
        assert_eq!(serde_json::from_str::<FaceRef>(&old).unwrap(), f);
    }

    #[test]
    fn a_face_ref_of_the_wrong_length_or_digits_is_refused() {
        for bad in [
            r#"{"sha256":"0001","len_bytes":5}"#,
            &format!(r#"{{"sha256":"{}","len_bytes":5}}"#, "zz".repeat(32)),
            &format!(r#"{{"sha256":{:?},"len_bytes":5}}"#, [1u8; 31]),
            &format!(r#"{{"sha256":{:?},"len_bytes":5}}"#, [1u8; 33]),
            &format!(r#"{{"sha256":{:?},"len_bytes":5}}"#, [300u32; 32]),
        ] {
            assert!(serde_json::from_str::<FaceRef>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_applied_entry_writes_the_record_face_once_and_reads_every_form() {
        for e in [
            entry(1, Some(1)),
            entry(1, Some(2)),
            entry(1, None),
            AppliedEntry {
                key: UserKey::new("IDENTITY", "a"),
                record: None,
                face: None,
            },
        ] {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<AppliedEntry>(&json).unwrap(), e, "{json}");
        }
        let same = serde_json::to_string(&entry(1, Some(1))).unwrap();
        assert_eq!(same.matches("sha256").count(), 1, "{same}");
        assert!(!same.contains("expire_at") && !same.contains("null"), "{same}");

        // The schema-2 form: every field written out, hashes as numbers.
        let numbers = format!("{:?}", [1u8; 32]);
        let old = format!(
            r#"{{"key":{{"user_type":"IDENTITY","user_id":"a"}},"record":{{"id":7,"policy":"Permission","expire_at":null,"face":{{"sha256":{numbers},"len_bytes":1001}},"display_name":"A"}},"face":{{"sha256":{numbers},"len_bytes":1001}}}}"#
        );
        assert_eq!(serde_json::from_str::<AppliedEntry>(&old).unwrap(), entry(1, Some(1)));
        let old = r#"{"key":{"user_type":"IDENTITY","user_id":"a"},"record":null,"face":null}"#;
        assert_eq!(serde_json::from_str::<AppliedEntry>(old).unwrap().record, None);
    }

    #[test]
    fn an_applied_entry_with_a_contradictory_face_flag_is_refused() {
        let no_record = r#"{"key":{"user_type":"IDENTITY","user_id":"a"},"face_is_record_face":true}"#;
        assert!(serde_json::from_str::<AppliedEntry>(no_record).is_err());
        let mut both = serde_json::to_value(entry(1, Some(1))).unwrap();
        both["face"] = serde_json::to_value(face(1)).unwrap();
        assert!(serde_json::from_value::<AppliedEntry>(both).is_err());
    }
}
