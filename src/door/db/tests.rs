use jiff::Timestamp;

use super::*;
use crate::domain::Policy;

fn limits() -> DoorDbLimits {
    DoorDbLimits {
        capacity_users: 10,
        max_record_file_bytes: 4096,
        max_face_jpeg_bytes: 1000,
    }
}

fn jpeg(n: u8) -> Vec<u8> {
    vec![0xFF, 0xD8, n, n, n, 0xFF, 0xD9]
}

fn rec(id: u32, face_jpeg: &[u8]) -> DoorRecord {
    DoorRecord {
        expire_at: Some(Timestamp::from_second(1_900_000_000).unwrap()),
        ..crate::testkit::door_record(id, face_jpeg, &format!("user {id}"))
    }
}

fn records_file(records: &[DoorRecord]) -> Vec<u8> {
    vendor::encode_record_file(records).unwrap()
}

fn face_file(id: u32, jpeg: &[u8]) -> Vec<u8> {
    vendor::encode_face_file(DoorUserId(id), jpeg).unwrap()
}

#[test]
fn every_file_and_command_executed_twice_equals_once() {
    let rf = records_file(&[rec(1, &jpeg(1)), rec(2, &jpeg(2))]);
    let ff = face_file(1, &jpeg(1));
    let del = MfgCommand {
        request_id: 3,
        command: Command::Delete(vec![DoorUserId(2)]),
    }
    .encode()
    .unwrap();
    let clear = MfgCommand {
        request_id: 4,
        command: Command::Clear,
    }
    .encode()
    .unwrap();
    let run = |db: &mut DoorDb, times: usize, with_clear: bool| {
        for _ in 0..times {
            assert_eq!(db.apply_file(FT_TYPE_RECORDS, &rf), FileResult::Applied);
        }
        for _ in 0..times {
            assert_eq!(db.apply_file(FT_TYPE_FACE, &ff), FileResult::Applied);
        }
        for _ in 0..times {
            assert_eq!(db.handle_mfg(&del), DoorAnswer::Ack);
        }
        if with_clear {
            for _ in 0..times {
                assert_eq!(db.handle_mfg(&clear), DoorAnswer::Ack);
            }
        }
    };
    for with_clear in [false, true] {
        let (mut once, mut twice) = (DoorDb::new(limits()), DoorDb::new(limits()));
        run(&mut once, 1, with_clear);
        run(&mut twice, 2, with_clear);
        assert_eq!(once, twice);
    }
    let mut db = DoorDb::new(limits());
    run(&mut db, 1, false);
    assert_eq!(db.user_count(), 1);
    assert_eq!(db.face_jpeg(DoorUserId(1)), Some(jpeg(1).as_slice()));
}

#[test]
fn corrupt_face_file_leaves_the_previous_face() {
    let mut db = DoorDb::new(limits());
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(5, &jpeg(1))]));
    assert_eq!(
        db.apply_file(FT_TYPE_FACE, &face_file(5, &jpeg(1))),
        FileResult::Applied
    );
    let before = db.clone();
    let mut bad = face_file(5, &jpeg(1));
    let last = bad.len() - 2;
    bad[last] ^= 0x40;
    assert_eq!(db.apply_file(FT_TYPE_FACE, &bad), FileResult::Corrupt);
    assert_eq!(db.face_jpeg(DoorUserId(5)), Some(jpeg(1).as_slice()));
    assert_eq!(db.digest(), before.digest());
    assert_eq!(db.info().last_file_result, FileResult::Corrupt);
    assert_eq!(db.info().last_file_type, FT_TYPE_FACE);
}

#[test]
fn face_for_an_unknown_user_or_another_face_is_refused() {
    let mut db = DoorDb::new(limits());
    assert_eq!(
        db.apply_file(FT_TYPE_FACE, &face_file(5, &jpeg(1))),
        FileResult::UnknownUser
    );
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(5, &jpeg(1))]));
    assert_eq!(
        db.apply_file(FT_TYPE_FACE, &face_file(5, &jpeg(2))),
        FileResult::FaceMismatch
    );
    assert_eq!(db.face_status(DoorUserId(5)).face_sha256, None);
    assert_eq!(db.apply_file(0x83, &[1, 2, 3]), FileResult::UnknownType);
}

#[test]
fn upsert_beyond_capacity_is_refused_whole() {
    let mut db = DoorDb::new(DoorDbLimits {
        capacity_users: 2,
        ..limits()
    });
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(1, &jpeg(1))]));
    let before = db.clone();
    let r = db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(2, &jpeg(2)), rec(3, &jpeg(3))]));
    assert_eq!(r, FileResult::Capacity);
    assert_eq!(r.ftstat_status(), -1);
    assert_eq!(db.digest(), before.digest());
    // Replacing an existing user does not need a free slot.
    let mut renamed = rec(1, &jpeg(1));
    renamed.display_name = "renamed".into();
    assert_eq!(
        db.apply_file(FT_TYPE_RECORDS, &records_file(&[renamed, rec(2, &jpeg(2))])),
        FileResult::Applied
    );
    assert_eq!(
        db.record(DoorUserId(1)).map(|r| r.display_name.as_str()),
        Some("renamed")
    );
}

#[test]
fn record_upsert_keeps_the_face_and_delete_removes_both() {
    let mut db = DoorDb::new(limits());
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(1, &jpeg(1))]));
    db.apply_file(FT_TYPE_FACE, &face_file(1, &jpeg(1)));
    let mut deny = rec(1, &jpeg(1));
    deny.policy = Policy::Deny;
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[deny]));
    assert_eq!(db.record(DoorUserId(1)).map(|r| r.policy), Some(Policy::Deny));
    assert!(db.face_jpeg(DoorUserId(1)).is_some());
    db.delete(&[DoorUserId(1), DoorUserId(99)]);
    assert_eq!(
        db.face_status(DoorUserId(1)),
        FaceStatus {
            id: DoorUserId(1),
            record_hash_prefix: None,
            face_sha256: None
        }
    );
}

#[test]
fn clear_needs_its_confirm_magic() {
    let mut db = DoorDb::new(limits());
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(1, &jpeg(1))]));
    let answer = db.handle_mfg(b"\x11\x07\x00CLEARAL");
    assert_eq!(
        answer,
        DoorAnswer::Reply(MfgReply {
            request_id: 7,
            reply: Reply::Failed {
                op_code: 0x11,
                status: Status::BadConfirm
            }
        })
    );
    assert_eq!(db.user_count(), 1);
    assert_eq!(db.handle_mfg(b"\x11\x08\x00CLEARALL"), DoorAnswer::Ack);
    assert_eq!(db.user_count(), 0);
    assert_eq!(db.handle_mfg(&[0x11]), DoorAnswer::Nak(NAK_RECORD));
}

#[test]
fn list_pages_walk_a_bucket_with_cursors() {
    let mut db = DoorDb::new(DoorDbLimits {
        capacity_users: 100,
        ..limits()
    });
    let records: Vec<_> = (0..10)
        .map(|i| rec(3 + 64 * i, &jpeg(1)))
        .chain([rec(4, &jpeg(1))])
        .collect();
    db.apply_file(FT_TYPE_RECORDS, &records_file(&records));
    let p1 = db.list_page(3, 0).unwrap();
    assert_eq!(p1.entries.len(), 4);
    assert_eq!(p1.next_cursor, Some(3 + 64 * 3 + 1));
    let all = db.list(3);
    assert_eq!(
        all.iter().map(|e| e.id.0).collect::<Vec<_>>(),
        (0..10).map(|i| 3 + 64 * i).collect::<Vec<_>>()
    );
    assert_eq!(db.list(4).len(), 1);
    assert_eq!(db.list_page(64, 0), Err(Status::OutOfRange));
    let answer = db.handle_mfg(&[0x04, 1, 0, 64, 0, 0, 0, 0]);
    assert!(matches!(
        answer,
        DoorAnswer::Reply(MfgReply {
            reply: Reply::Failed {
                status: Status::OutOfRange,
                ..
            },
            ..
        })
    ));
}

#[test]
fn bucket_pages_cover_all_buckets_and_agree_with_the_digest_counts() {
    let mut db = DoorDb::new(limits());
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(1, &jpeg(1)), rec(65, &jpeg(2))]));
    let mut seen = Vec::new();
    let mut first = 0;
    while first < BUCKET_COUNT {
        let page = db.bucket_page(first).unwrap();
        first += page.buckets.len() as u8;
        seen.extend(page.buckets);
    }
    assert_eq!(seen, db.bucket_digests());
    assert_eq!(seen[1].user_count, 2);
    assert_eq!(
        seen.iter().map(|b| u32::from(b.user_count)).sum::<u32>(),
        db.digest().user_count
    );
}

#[test]
fn every_answer_fits_64_bytes_and_queries_change_nothing() {
    let mut db = DoorDb::new(limits());
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(1, &jpeg(1))]));
    let before = db.clone();
    for command in [
        Command::Info,
        Command::Digest,
        Command::BucketDigests { first_bucket: 60 },
        Command::List { bucket: 1, cursor: 0 },
        Command::FaceStatus(DoorUserId(1)),
    ] {
        let data = MfgCommand {
            request_id: 42,
            command,
        }
        .encode()
        .unwrap();
        match db.handle_mfg(&data) {
            DoorAnswer::Reply(r) => {
                assert_eq!(r.request_id, 42);
                assert!(r.encode().unwrap().len() <= vendor::MAX_MFG_DATA_BYTES);
            }
            other => panic!("query answered {other:?}"),
        }
    }
    assert_eq!(db, before);
}

#[test]
fn door_db_round_trips_through_json() {
    let mut db = DoorDb::new(limits());
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(1, &jpeg(1))]));
    db.apply_file(FT_TYPE_FACE, &face_file(1, &jpeg(1)));
    let json = serde_json::to_string(&db).unwrap();
    let back: DoorDb = serde_json::from_str(&json).unwrap();
    assert_eq!(back, db);
}

#[test]
fn assembled_fragments_apply_like_the_whole_file() {
    let mut db = DoorDb::new(limits());
    db.apply_file(FT_TYPE_RECORDS, &records_file(&[rec(1, &jpeg(1))]));
    let file = face_file(1, &jpeg(1));
    let mut asm = FileAssembler::new(db.max_file_bytes());
    let mut result = None;
    for (i, chunk) in file.chunks(16).enumerate() {
        let off = (i * 16) as u32;
        // Each fragment twice, as a LibOSDP CP retransmit would.
        for _ in 0..2 {
            if let FragmentProgress::Complete(f) = asm.on_fragment(FT_TYPE_FACE, file.len() as u32, off, chunk).unwrap()
            {
                result = Some(db.apply_file(f.ft_type, &f.bytes));
            }
        }
    }
    assert_eq!(result, Some(FileResult::Applied));
    assert_eq!(db.face_jpeg(DoorUserId(1)), Some(jpeg(1).as_slice()));
}
