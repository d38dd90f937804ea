//! Fixtures shared by the sync layer's unit tests.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::domain::{FaceRef, ImageLimits, OsdpLimits, Policy, Profile, UserKey};
use crate::door::db::DoorDbLimits;
use crate::door::memory::MemoryDoor;
use crate::store::{Store, StoredUser};

pub fn profile() -> Profile {
    Profile {
        name: "generic-face-v1".into(),
        description: String::new(),
        image: ImageLimits {
            max_width_px: 480,
            max_height_px: 640,
            max_bytes: 40_960,
            jpeg_quality: 85,
        },
        osdp: OsdpLimits {
            max_packet_bytes: 1024,
            max_mfg_data_bytes: 64,
        },
        capacity_users: 100,
        vendor_code: [0x02, 0x44, 0x53],
    }
}

pub fn now() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

pub fn memory_door() -> MemoryDoor {
    MemoryDoor::new(DoorDbLimits {
        capacity_users: 100,
        max_record_file_bytes: 64 * 1024,
        max_face_jpeg_bytes: 64 * 1024,
    })
}

/// Stores a permitted user `id` with a face (fake JPEG bytes: the door only checks the hash).
pub fn add_user(store: &Store, id: &str) -> FaceRef {
    let face = store.put_face(format!("jpeg of {id}").as_bytes()).unwrap();
    let mut faces = BTreeMap::new();
    faces.insert("generic-face-v1".to_string(), face);
    store
        .put_user(&StoredUser {
            key: UserKey::new("IDENTITY", id),
            display_name: id.into(),
            policy: Policy::Permission,
            expire_at: None,
            cloud_face_id: None,
            image_fingerprint: None,
            faces,
            failure: None,
            roster_revoked: false,
            updated_at: now(),
        })
        .unwrap();
    face
}
