use proptest::prelude::*;

use super::*;

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Info),
        Just(Command::Digest),
        any::<u8>().prop_map(|first_bucket| Command::BucketDigests { first_bucket }),
        (any::<u8>(), any::<u32>()).prop_map(|(bucket, cursor)| Command::List { bucket, cursor }),
        any::<u32>().prop_map(|id| Command::FaceStatus(DoorUserId(id))),
        proptest::collection::vec(any::<u32>().prop_map(DoorUserId), 1..=MAX_DELETE_IDS).prop_map(Command::Delete),
        Just(Command::Clear),
    ]
}

fn arb_result() -> impl Strategy<Value = FileResult> {
    (0u8..9).prop_map(|v| FileResult::from_u8(v).unwrap())
}

fn arb_reply() -> impl Strategy<Value = Reply> {
    let info = (any::<(u8, u8, u32, u32, u32)>(), any::<(u32, u32, u8)>(), arb_result()).prop_map(
        |((protocol_version, bucket_count, capacity_users, user_count, face_count), (r, f, t), res)| {
            Reply::Info(DoorInfo {
                protocol_version,
                bucket_count,
                capacity_users,
                user_count,
                face_count,
                max_record_file_bytes: r,
                max_face_jpeg_bytes: f,
                last_file_type: t,
                last_file_result: res,
            })
        },
    );
    let buckets = (
        0u8..60,
        proptest::collection::vec(any::<(u16, [u8; 8])>(), 0..=MAX_BUCKETS_PER_REPLY),
    )
        .prop_map(|(first, b)| {
            Reply::BucketDigests(BucketPage {
                bucket_count: BUCKET_COUNT,
                first_bucket: first,
                buckets: b
                    .into_iter()
                    .enumerate()
                    .map(|(i, (user_count, digest))| BucketDigest {
                        bucket: first + i as u8,
                        user_count,
                        digest,
                    })
                    .collect(),
            })
        });
    let list = (
        any::<u8>(),
        any::<Option<u32>>(),
        proptest::collection::vec(any::<(u32, [u8; 4], [u8; 4])>(), 0..=MAX_LIST_ENTRIES_PER_REPLY),
    )
        .prop_map(|(bucket, next_cursor, e)| {
            Reply::List(ListPage {
                bucket,
                next_cursor,
                entries: e
                    .into_iter()
                    .map(|(id, r, f)| DoorListEntry {
                        id: DoorUserId(id),
                        record_hash_prefix: r,
                        face_hash_prefix: f,
                    })
                    .collect(),
            })
        });
    let status = (any::<u32>(), any::<Option<[u8; 16]>>(), any::<Option<[u8; 32]>>()).prop_map(|(id, r, f)| {
        Reply::FaceStatus(FaceStatus {
            id: DoorUserId(id),
            record_hash_prefix: r,
            face_sha256: f,
        })
    });
    let failed = (0u8..0x80, 1u8..6).prop_map(|(op_code, s)| Reply::Failed {
        op_code,
        status: Status::from_u8(s).unwrap(),
    });
    prop_oneof![
        info,
        any::<(u32, [u8; 32])>().prop_map(|(user_count, digest)| Reply::Digest(DoorDigest { user_count, digest })),
        buckets,
        list,
        status,
        Just(Reply::Deleted),
        Just(Reply::Cleared),
        failed,
    ]
}

proptest! {
    #[test]
    fn commands_round_trip_within_64_bytes(request_id in any::<u16>(), command in arb_command()) {
        let cmd = MfgCommand { request_id, command };
        let bytes = cmd.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_MFG_DATA_BYTES);
        prop_assert_eq!(MfgCommand::decode(&bytes).unwrap(), cmd);
    }

    #[test]
    fn replies_round_trip_within_64_bytes(request_id in any::<u16>(), reply in arb_reply()) {
        let rep = MfgReply { request_id, reply };
        let bytes = rep.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_MFG_DATA_BYTES, "{} bytes", bytes.len());
        prop_assert_eq!(MfgReply::decode(&bytes).unwrap(), rep);
    }

    #[test]
    fn mfg_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = MfgCommand::decode(&bytes);
        let _ = MfgReply::decode(&bytes);
    }
}

#[test]
fn delete_with_the_most_ids_fills_exactly_64_bytes() {
    let ids = (0..MAX_DELETE_IDS as u32).map(DoorUserId).collect();
    let bytes = MfgCommand {
        request_id: 1,
        command: Command::Delete(ids),
    }
    .encode()
    .unwrap();
    assert_eq!(bytes.len(), MAX_MFG_DATA_BYTES);
    let too_many = (0..=MAX_DELETE_IDS as u32).map(DoorUserId).collect();
    assert!(
        MfgCommand {
            request_id: 1,
            command: Command::Delete(too_many)
        }
        .encode()
        .is_err()
    );
    assert!(
        MfgCommand {
            request_id: 1,
            command: Command::Delete(vec![])
        }
        .encode()
        .is_err()
    );
}

#[test]
fn delete_batch_size_follows_the_profile_limit() {
    assert_eq!(delete_batch_size(64), 15);
    assert_eq!(delete_batch_size(61), 14);
    assert_eq!(delete_batch_size(1000), 15);
    assert_eq!(delete_batch_size(7), 0);
}

#[test]
fn clear_without_the_confirm_magic_is_refused() {
    assert_eq!(MfgCommand::decode(&[0x11, 1, 0]), Err(VendorError::BadConfirm));
    assert_eq!(
        MfgCommand::decode(b"\x11\x01\x00CLEARALX"),
        Err(VendorError::BadConfirm)
    );
    assert!(MfgCommand::decode(b"\x11\x01\x00CLEARALL").is_ok());
    assert!(matches!(
        MfgCommand::decode(b"\x11\x01\x00CLEARALL!"),
        Err(VendorError::TrailingBytes { extra: 1, .. })
    ));
}

#[test]
fn vendor_code_is_checked_as_bytes() {
    let data = with_vendor_code([0x12, 0x34, 0x56], &[1, 2]);
    assert_eq!(split_vendor_code(&data, [0x12, 0x34, 0x56]), Ok(&[1u8, 2][..]));
    assert!(matches!(
        split_vendor_code(&data, [0x56, 0x34, 0x12]),
        Err(VendorError::WrongVendorCode { .. })
    ));
    assert!(split_vendor_code(&[0x12], [0x12, 0x34, 0x56]).is_err());
}

#[test]
fn reply_with_command_op_or_over_64_bytes_is_refused() {
    assert!(MfgReply::decode(&[0x02, 0, 0, 0]).is_err());
    assert!(matches!(MfgReply::decode(&[0u8; 65]), Err(VendorError::TooLong { .. })));
    // A failure reply for an op we never heard of still decodes, so the CP can match its request id.
    assert_eq!(
        MfgReply::decode(&[0xFF, 9, 0, 2]).unwrap(),
        MfgReply {
            request_id: 9,
            reply: Reply::Failed {
                op_code: 0x7F,
                status: Status::UnknownOp
            }
        }
    );
}

#[test]
fn a_stale_or_foreign_reply_does_not_answer_the_command() {
    let cmd = MfgCommand {
        request_id: 5,
        command: Command::Digest,
    };
    let ok = MfgReply {
        request_id: 5,
        reply: Reply::Digest(DoorDigest {
            user_count: 0,
            digest: [0; 32],
        }),
    };
    assert!(ok.answers(&cmd));
    assert!(
        !MfgReply {
            request_id: 4,
            ..ok.clone()
        }
        .answers(&cmd)
    );
    assert!(
        !MfgReply {
            request_id: 5,
            reply: Reply::Cleared
        }
        .answers(&cmd)
    );
    let failed = MfgReply {
        request_id: 5,
        reply: Reply::Failed {
            op_code: 0x02,
            status: Status::Malformed,
        },
    };
    assert!(failed.answers(&cmd));
}
