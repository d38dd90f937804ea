use std::collections::BTreeMap;

use proptest::prelude::*;

use super::db::{DoorDb, DoorDbLimits};
use super::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS};
use super::*;
use crate::domain::{DoorRecord, FaceRef, Policy, UserKey};

fn jpeg(n: u32) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

fn record(id: u32, face_n: u32, name: String, deny: bool) -> DoorRecord {
    let j = jpeg(face_n);
    DoorRecord {
        id: DoorUserId(id),
        policy: if deny { Policy::Deny } else { Policy::Permission },
        expire_at: None,
        face: FaceRef {
            sha256: vendor::sha256(&j),
            len_bytes: j.len() as u32,
        },
        display_name: name,
    }
}

proptest! {
    #[test]
    fn expected_digest_equals_the_door_digest_after_the_same_ops(
        users in proptest::collection::btree_map(0u32..500, (0u32..5, ".{0,60}", any::<bool>(), any::<bool>()), 0..40),
    ) {
        let mut db = DoorDb::new(DoorDbLimits { capacity_users: 1000, max_record_file_bytes: 1 << 20, max_face_jpeg_bytes: 100 });
        let mut applied = BTreeMap::new();
        let records: Vec<_> = users.iter().map(|(id, (f, name, deny, _))| record(*id, *f, name.clone(), *deny)).collect();
        for chunk in records.chunks(7) {
            prop_assert_eq!(db.apply_file(FT_TYPE_RECORDS, &vendor::encode_record_file(chunk).unwrap()), FileResult::Applied);
        }
        for (rec, (_, (f, _, _, with_face))) in records.iter().zip(&users) {
            let mut face = None;
            if *with_face {
                let file = vendor::encode_face_file(rec.id, &jpeg(*f)).unwrap();
                prop_assert_eq!(db.apply_file(FT_TYPE_FACE, &file), FileResult::Applied);
                face = Some(rec.face);
            }
            applied.insert(rec.id, AppliedEntry { key: UserKey::new("IDENTITY", rec.id.to_string()), record: Some(rec.clone()), face });
        }
        prop_assert_eq!(expected_digest(&applied), db.digest());
        prop_assert_eq!(expected_bucket_digests(&applied), db.bucket_digests());
        prop_assert!(diff_buckets(&expected_bucket_digests(&applied), &db.bucket_digests()).is_empty());
    }
}

#[test]
fn entries_without_an_acknowledged_record_are_not_expected_on_the_door() {
    let mut applied = BTreeMap::new();
    let r = record(1, 1, "a".into(), false);
    applied.insert(
        DoorUserId(2),
        AppliedEntry {
            key: UserKey::new("IDENTITY", "b"),
            record: None,
            face: Some(r.face),
        },
    );
    assert_eq!(
        expected_digest(&applied),
        DoorDb::new(DoorDbLimits {
            capacity_users: 1,
            max_record_file_bytes: 1,
            max_face_jpeg_bytes: 1
        })
        .digest()
    );
}

#[test]
fn diff_buckets_names_buckets_that_differ_or_are_missing() {
    let mut applied = BTreeMap::new();
    for id in [1u32, 2, 66] {
        applied.insert(
            DoorUserId(id),
            AppliedEntry {
                key: UserKey::new("IDENTITY", id.to_string()),
                record: Some(record(id, id, "x".into(), false)),
                face: None,
            },
        );
    }
    let expected = expected_bucket_digests(&applied);
    let mut reported = expected.clone();
    assert!(diff_buckets(&expected, &reported).is_empty());
    reported[2].digest[0] ^= 1; // bucket 2 (ids 2 and 66) differs
    reported.retain(|b| b.bucket != 9); // bucket 9 missing from the report
    assert_eq!(diff_buckets(&expected, &reported), vec![2, 9]);
}

#[test]
fn a_door_holding_an_extra_user_shows_up_in_its_bucket() {
    let mut db = DoorDb::new(DoorDbLimits {
        capacity_users: 10,
        max_record_file_bytes: 4096,
        max_face_jpeg_bytes: 100,
    });
    let kept = record(1, 1, "kept".into(), false);
    let revoked = record(129, 2, "revoked".into(), false);
    db.apply_file(
        FT_TYPE_RECORDS,
        &vendor::encode_record_file(&[kept.clone(), revoked]).unwrap(),
    );
    let mut applied = BTreeMap::new();
    applied.insert(
        kept.id,
        AppliedEntry {
            key: UserKey::new("IDENTITY", "k"),
            record: Some(kept),
            face: None,
        },
    );
    let diff = diff_buckets(&expected_bucket_digests(&applied), &db.bucket_digests());
    assert_eq!(diff, vec![1]);
    let listed: Vec<u32> = db.list(1).iter().map(|e| e.id.0).collect();
    assert_eq!(listed, vec![1, 129]);
}

#[test]
fn each_door_failure_has_one_class() {
    use crate::door::{FailureClass as C, Misconfig};
    use crate::osdp::NakCode;
    let offline = DoorError::Offline {
        reason: "no reply".into(),
    };
    assert_eq!(offline.class(), C::Reconnect);
    assert_eq!(DoorError::Timeout.class(), C::Reconnect);
    assert_eq!(
        DoorError::Nak {
            code: NakCode::MessageCheck
        }
        .class(),
        C::Resend
    );
    for code in [0x02, 0x03, 0x05, 0x06, 0x09] {
        let e = DoorError::Nak {
            code: NakCode::from(code),
        };
        assert_eq!(e.class(), C::DoorMisconfigured, "NAK {code:#04x}");
        assert!(e.class().stops_pass());
    }
    assert_eq!(
        DoorError::Misconfigured(Misconfig::ProtocolVersion { door: 9 }).class(),
        C::DoorMisconfigured
    );
    let refused = DoorError::Rejected {
        status: Status::BadConfirm,
    };
    assert_eq!(refused.class(), C::FailUser);
    assert!(!refused.class().stops_pass());
    let corrupt = DoorError::FileRejected {
        result: FileResult::Corrupt,
    };
    assert_eq!(corrupt.class(), C::Resend);
    let capacity = DoorError::FileRejected {
        result: FileResult::Capacity,
    };
    assert_eq!(capacity.class(), C::FailUser);
    let too_large = DoorError::FaceTooLarge { bytes: 2, max_bytes: 1 };
    assert_eq!(too_large.class(), C::FailUser);
    assert_eq!(DoorError::Protocol(VendorError::UnknownOp(9)).class(), C::FailUser);
}

#[tokio::test]
async fn the_door_trait_can_be_mocked() {
    let mut door = MockDoor::new();
    door.expect_delete_users()
        .withf(|ids| ids == [DoorUserId(3)])
        .times(1)
        .returning(|_| Ok(()));
    door.expect_digest().returning(|| Err(DoorError::Timeout));
    let door: &dyn Door = &door;
    door.delete_users(&[DoorUserId(3)]).await.unwrap();
    assert_eq!(
        door.digest().await.unwrap_err().class(),
        crate::door::FailureClass::Reconnect
    );
}
