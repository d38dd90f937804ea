//! Bench people: a record and a generated face JPEG each (shared by the door-link benches).

use bytes::Bytes;
use doorsync::cloud::sim::face_jpeg;
use doorsync::domain::{DoorRecord, DoorUserId, FaceRef, Policy};
use doorsync::door::vendor;

/// `n` people with ids 1..=n; faces are seeded by `seed-<i>`, so every bench run pushes the same bytes.
pub fn people(seed: &str, n: usize) -> Vec<(DoorRecord, Bytes)> {
    (0..n)
        .map(|i| {
            let jpeg = face_jpeg(&format!("{seed}-{i}"));
            let record = DoorRecord {
                id: DoorUserId(i as u32 + 1),
                policy: Policy::Permission,
                expire_at: None,
                face: FaceRef {
                    sha256: vendor::sha256(&jpeg),
                    len_bytes: jpeg.len() as u32,
                },
                display_name: format!("Bench {i}"),
            };
            (record, Bytes::from(jpeg))
        })
        .collect()
}
