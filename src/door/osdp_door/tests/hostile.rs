//! A scripted hostile door (issue "door link hardening"): for every case the agent's call ends within a
//! bound derived from PROTOCOL.md §8 (checked against the paused clock and a generous test deadline),
//! with a clear error, and the door's users stay as they were.

use std::time::Duration;

use tokio::time::Instant;

use super::peer::Hook;
use super::*;
use crate::door::vendor::{BucketPage, ListPage, MfgCommand, MfgReply, Reply as VReply};
use crate::door::{DoorListEntry, FailureClass, Misconfig};
use crate::osdp::reply::{FtStat, FtStatus, MfgRep, Nak, NakCode};
use crate::osdp::{Command, Reply};

/// What a hook returns (see `peer::Hook`).
pub(super) type Answer = Option<Option<Reply>>;

/// The test's own deadline: far above every bound, so only a hang trips it.
const HANG_GUARD: Duration = Duration::from_secs(600);

/// Runs `op` under the hang guard and returns its result and the (paused-clock) time it took.
pub(super) async fn bounded<T>(op: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(HANG_GUARD, op)
        .await
        .expect("the call must end within the hang guard");
    (out, started.elapsed())
}

fn hostile(knobs: Knobs, hook: Hook) -> (Arc<OsdpDoor>, SharedPeer) {
    let (door, peer) = start(knobs);
    peer.lock().unwrap().hook = Some(hook);
    (door, peer)
}

fn vendor_code() -> [u8; 3] {
    profile().vendor_code
}

/// A hook that answers osdp_MFG commands through `f` (`None`: the door answers itself).
pub(super) fn on_mfg(mut f: impl FnMut(&MfgCommand) -> Option<Option<Reply>> + Send + 'static) -> Hook {
    Box::new(move |c| match c {
        Command::Mfg(m) => MfgCommand::decode(&m.data).ok().and_then(|mc| f(&mc)),
        _ => None,
    })
}

pub(super) fn mfgrep_with(vendor_code: [u8; 3], request_id: u16, reply: VReply) -> Option<Option<Reply>> {
    let data = MfgReply { request_id, reply }.encode().unwrap();
    Some(Some(Reply::MfgRep(MfgRep { vendor_code, data })))
}

pub(super) fn mfgrep(request_id: u16, reply: VReply) -> Option<Option<Reply>> {
    mfgrep_with(vendor_code(), request_id, reply)
}

fn info(version: u8, buckets: u8, users: u32, max_record: u32, max_face: u32) -> DoorInfo {
    DoorInfo {
        protocol_version: version,
        bucket_count: buckets,
        capacity_users: 100,
        user_count: users,
        face_count: 0,
        max_record_file_bytes: max_record,
        max_face_jpeg_bytes: max_face,
        last_file_type: 0,
        last_file_result: FileResult::None,
    }
}

/// A hook that answers INFO with `i` and lets the door answer everything else.
fn info_says(i: DoorInfo) -> Hook {
    on_mfg(move |mc| match mc.command {
        vendor::Command::Info => mfgrep(mc.request_id, VReply::Info(i)),
        _ => None,
    })
}

/// Answers every osdp_FILETRANSFER with an osdp_FTSTAT of `status` (action 1, delay 500 ms).
pub(super) fn ftstat_says(status: i16) -> Hook {
    Box::new(move |c| match c {
        Command::FileTransfer(_) => Some(Some(Reply::FtStat(FtStat {
            action: 1,
            delay_ms: 500,
            status: FtStatus::from(status),
            update_msg_max: 0,
        }))),
        _ => None,
    })
}

/// An osdp_MFGREP with one LIST page of `bucket`.
pub(super) fn list_page(request_id: u16, bucket: u8, next_cursor: Option<u32>, entries: Vec<DoorListEntry>) -> Answer {
    mfgrep(
        request_id,
        VReply::List(ListPage {
            bucket,
            next_cursor,
            entries,
        }),
    )
}

pub(super) fn entry(id: u32) -> DoorListEntry {
    DoorListEntry {
        id: DoorUserId(id),
        record_hash_prefix: [1; 4],
        face_hash_prefix: [0; 4],
    }
}

pub(super) async fn seed_two_users(door: &OsdpDoor) {
    door.upsert_users(&[rec(1, &jpeg(1, 10)), rec(2, &jpeg(2, 10))])
        .await
        .unwrap();
}

pub(super) fn user_count(peer: &SharedPeer) -> usize {
    peer.lock().unwrap().db.user_count()
}

#[tokio::test(start_paused = true)]
async fn list_saying_more_forever_stops_at_info_user_count_plus_margin() {
    let (door, peer) = start(Knobs::default());
    seed_two_users(&door).await;
    let lists = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = lists.clone();
    peer.lock().unwrap().hook = Some(on_mfg(move |mc| match mc.command {
        vendor::Command::List { bucket, cursor } => {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            list_page(mc.request_id, bucket, Some(cursor + 64), vec![entry(cursor + 1)])
        }
        _ => None,
    }));
    let (result, took) = bounded(door.list(1)).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, DoorError::Misconfigured(Misconfig::BoundExceeded { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("INFO reports 2 users"), "{err}");
    assert_eq!(err.class(), FailureClass::DoorMisconfigured);
    let lists = lists.load(std::sync::atomic::Ordering::SeqCst);
    assert!(lists <= 2 + LIST_MARGIN_USERS as usize + 1, "{lists} LIST requests");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_eq!(user_count(&peer), 2, "the door's users are unchanged");
}

#[tokio::test(start_paused = true)]
async fn list_cursor_going_backwards_is_refused_at_once() {
    let (door, peer) = hostile(
        Knobs::default(),
        on_mfg(|mc| match mc.command {
            vendor::Command::List { bucket, cursor } => list_page(
                mc.request_id,
                bucket,
                Some(if cursor == 0 { 100 } else { 5 }),
                vec![entry(cursor + 1)],
            ),
            _ => None,
        }),
    );
    let (result, _) = bounded(door.list(3)).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("cursor 5, not after cursor 100"), "{err}");
    assert_eq!(user_count(&peer), 0);
}

#[tokio::test(start_paused = true)]
async fn ft_delay_65535_is_obeyed_only_up_to_max_ft_delay_and_counted() {
    let knobs = Knobs {
        ft_delay_ms: u16::MAX,
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    let face = jpeg(1, 3 * FRAGMENT);
    door.upsert_users(&[rec(1, &face)]).await.unwrap();
    let (result, took) = bounded(door.put_face(DoorUserId(1), face_of(&face), Bytes::from(face.clone()))).await;
    result.unwrap();
    let fragments = fragment_offsets(&seen(&peer)).len() as u32;
    let cap = Duration::from_millis(u64::from(profile().osdp.max_ft_delay_ms));
    assert_eq!(cap, Duration::from_secs(2), "the default max_ft_delay");
    assert!(took <= cap * (fragments + 1) + Duration::from_secs(10), "{took:?}");
    // Every FTSTAT but the final one asked for the long delay.
    assert_eq!(door.stats().ft_delays_capped, u64::from(fragments - 1));
    assert_eq!(peer.lock().unwrap().db.face_jpeg(DoorUserId(1)), Some(face.as_slice()));
}

#[tokio::test(start_paused = true)]
async fn busy_forever_is_offline_after_the_offline_timeout() {
    let (door, peer) = start(Knobs::default());
    seed_two_users(&door).await;
    peer.lock().unwrap().hook = Some(Box::new(|_| Some(Some(Reply::Busy))));
    let (result, took) = bounded(door.digest()).await;
    let err = result.unwrap_err();
    assert!(matches!(err, DoorError::Offline { .. }), "{err}");
    assert_eq!(err.class(), FailureClass::Reconnect);
    // The session's offline timeout (8 s) plus one reply timeout.
    assert!(took <= Duration::from_secs(9), "{took:?}");
    assert!(door.link_status().diagnostics.busy_replies > 0);
    assert_eq!(user_count(&peer), 2);
}

#[tokio::test(start_paused = true)]
async fn info_with_another_protocol_version_or_bucket_count_is_refused_clearly() {
    let (door, _) = hostile(Knobs::default(), info_says(info(9, 64, 0, 8192, 65536)));
    let err = bounded(door.info()).await.0.unwrap_err();
    assert!(
        err.to_string()
            .contains("door speaks doorsync protocol version 9; this agent speaks 1"),
        "{err}"
    );
    assert_eq!(err.class(), FailureClass::DoorMisconfigured);

    let (door, peer) = hostile(Knobs::default(), info_says(info(1, 0, 0, 8192, 65536)));
    let err = bounded(door.upsert_users(&[rec(1, &jpeg(1, 10))])).await.0.unwrap_err();
    assert!(
        matches!(err, DoorError::Misconfigured(Misconfig::BucketCount { door: 0 })),
        "{err}"
    );
    assert_eq!(
        user_count(&peer),
        0,
        "nothing was sent to a door that speaks another protocol"
    );
}

#[tokio::test(start_paused = true)]
async fn a_face_over_info_max_face_jpeg_bytes_is_not_sent() {
    let (door, peer) = hostile(Knobs::default(), info_says(info(1, 64, 0, 8192, 0)));
    let face = jpeg(1, 500);
    let err = bounded(door.put_face(DoorUserId(1), face_of(&face), Bytes::from(face)))
        .await
        .0
        .unwrap_err();
    assert!(
        matches!(
            err,
            DoorError::FaceTooLarge {
                bytes: 500,
                max_bytes: 0
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), FailureClass::FailUser);
    assert!(fragment_offsets(&seen(&peer)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn max_record_file_bytes_zero_is_a_door_configuration_error() {
    let (door, peer) = hostile(Knobs::default(), info_says(info(1, 64, 0, 0, 65536)));
    let err = bounded(door.upsert_users(&[rec(1, &jpeg(1, 10))])).await.0.unwrap_err();
    assert!(
        matches!(
            err,
            DoorError::Misconfigured(Misconfig::RecordFileTooSmall { door_bytes: 0, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("too small for one record"), "{err}");
    assert_eq!(user_count(&peer), 0);
}

#[tokio::test(start_paused = true)]
async fn nak_01_mid_file_resends_that_fragment_and_never_restarts_the_file() {
    let mut nak_left = 3;
    let mut fragments = 0;
    let hook: Hook = Box::new(move |c| match c {
        Command::FileTransfer(ft) if ft.ft_type == FT_TYPE_FACE => {
            fragments += 1;
            if fragments % 4 == 2 && nak_left > 0 {
                nak_left -= 1;
                Some(Some(Reply::Nak(Nak::new(NakCode::MessageCheck))))
            } else {
                None
            }
        }
        _ => None,
    });
    let (door, peer) = start(Knobs::default());
    let face = jpeg(1, 12 * FRAGMENT);
    door.upsert_users(&[rec(1, &face)]).await.unwrap();
    peer.lock().unwrap().hook = Some(hook);
    let (result, _) = bounded(door.put_face(DoorUserId(1), face_of(&face), Bytes::from(face.clone()))).await;
    result.unwrap();
    let offsets = fragment_offsets(&seen(&peer));
    assert_eq!(
        offsets.iter().filter(|o| **o == 0).count(),
        1,
        "no restart: {offsets:?}"
    );
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(door.link_status().diagnostics.check_resends >= 3);
    assert!(!seen(&peer).contains(&Seen::Abort));
}

#[tokio::test(start_paused = true)]
async fn nak_storms_with_every_code_end_in_a_clear_bounded_error() {
    for code in (0u8..=0x0A).chain([0x42, 0xFF]) {
        let (door, peer) = start(Knobs::default());
        seed_two_users(&door).await;
        peer.lock().unwrap().hook = Some(on_mfg(move |_| Some(Some(Reply::Nak(Nak::new(NakCode::from(code)))))));
        let (result, took) = bounded(door.digest()).await;
        let err = result.unwrap_err();
        let class = err.class();
        match code {
            0x02 | 0x03 | 0x05 | 0x06 | 0x09 => {
                assert_eq!(class, FailureClass::DoorMisconfigured, "{code:#04x}: {err}")
            }
            0x01 => assert_eq!(class, FailureClass::Resend, "{code:#04x}: {err}"),
            _ => assert!(class.stops_pass() || class == FailureClass::FailUser, "{err}"),
        }
        assert!(took < Duration::from_secs(10), "NAK {code:#04x} took {took:?}");
        assert_eq!(user_count(&peer), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn nak_06_and_nak_09_name_secure_channel_and_the_vendor_code() {
    let (door, _) = hostile(
        Knobs::default(),
        on_mfg(|_| Some(Some(Reply::Nak(Nak::new(NakCode::EncryptionRequired))))),
    );
    let err = bounded(door.digest()).await.0.unwrap_err();
    assert!(err.to_string().contains("requires OSDP Secure Channel"), "{err}");

    let (door, _) = hostile(
        Knobs::default(),
        on_mfg(|_| Some(Some(Reply::Nak(Nak::new(NakCode::UnableToProcess))))),
    );
    let err = bounded(door.digest()).await.0.unwrap_err();
    assert!(
        matches!(err, DoorError::Misconfigured(Misconfig::VendorCodeRefused { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("generic-face-v1"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn mfgrep_with_another_vendor_code_is_reported_as_a_mismatch() {
    let (door, _) = hostile(
        Knobs::default(),
        on_mfg(|mc| mfgrep_with([0x12, 0x34, 0x56], mc.request_id, VReply::Cleared)),
    );
    let (result, took) = bounded(door.digest()).await;
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("door answers vendor code 12:34:56, profile `generic-face-v1` says"),
        "{text}"
    );
    assert!(took <= OsdpDoorOptions::default().query_timeout + Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn mfgrep_unknown_op_short_payload_or_another_request_id_times_out_within_the_query_timeout() {
    let bad: [fn(&MfgCommand) -> Answer; 3] = [
        |mc| {
            let mut data = MfgReply {
                request_id: mc.request_id,
                reply: VReply::Cleared,
            }
            .encode()
            .unwrap();
            data[0] = 0xEE;
            Some(Some(Reply::MfgRep(MfgRep {
                vendor_code: vendor_code(),
                data,
            })))
        },
        |mc| {
            let mut data = MfgReply {
                request_id: mc.request_id,
                reply: VReply::Digest(DoorDigest {
                    user_count: 1,
                    digest: [0; 32],
                }),
            }
            .encode()
            .unwrap();
            data.truncate(9);
            Some(Some(Reply::MfgRep(MfgRep {
                vendor_code: vendor_code(),
                data,
            })))
        },
        |mc| {
            mfgrep(
                mc.request_id.wrapping_add(77),
                VReply::Digest(DoorDigest {
                    user_count: 1,
                    digest: [0; 32],
                }),
            )
        },
    ];
    for f in bad {
        let (door, _) = hostile(Knobs::default(), on_mfg(f));
        let (result, took) = bounded(door.digest()).await;
        assert!(matches!(result, Err(DoorError::Timeout)), "{result:?}");
        assert!(
            took <= OsdpDoorOptions::default().query_timeout + Duration::from_secs(1),
            "{took:?}"
        );
    }
}

/// A door whose DIGEST and bucket digests disagree with the record everywhere, so a verified pass
/// walks LIST in every bucket; LIST itself is answered by `list`.
pub(super) fn differs_everywhere(
    user_count: u32,
    mut list: impl FnMut(u16, u8, u32) -> Answer + Send + 'static,
) -> Hook {
    on_mfg(move |mc| match mc.command {
        vendor::Command::Digest => mfgrep(
            mc.request_id,
            VReply::Digest(DoorDigest {
                user_count,
                digest: [7; 32],
            }),
        ),
        vendor::Command::BucketDigests { first_bucket } => mfgrep(
            mc.request_id,
            VReply::BucketDigests(BucketPage {
                bucket_count: 64,
                first_bucket,
                buckets: (first_bucket..(first_bucket + 5).min(64))
                    .map(|b| crate::door::BucketDigest {
                        bucket: b,
                        user_count: u16::MAX,
                        digest: [9; 8],
                    })
                    .collect(),
            }),
        ),
        vendor::Command::List { bucket, cursor } => list(mc.request_id, bucket, cursor),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn digest_claiming_100000_users_is_just_a_mismatch_and_bucket_walks_stay_bounded() {
    let (door, peer) = start(Knobs::default());
    seed_two_users(&door).await;
    // LIST is answered by the door itself: it holds the two users, whatever DIGEST claims.
    peer.lock().unwrap().hook = Some(differs_everywhere(100_000, |_, _, _| None));
    let (digest, _) = bounded(door.digest()).await;
    assert_eq!(digest.unwrap().user_count, 100_000);
    let (buckets, _) = bounded(door.bucket_digests()).await;
    assert_eq!(buckets.unwrap().len(), 64);
    // LIST is bounded by INFO (2 users), not by what DIGEST claimed.
    let (list, _) = bounded(door.list(1)).await;
    assert!(list.unwrap().len() <= 2);
    assert_eq!(user_count(&peer), 2);
}

#[tokio::test(start_paused = true)]
async fn ftstat_with_unusual_statuses_ends_the_file_with_a_clear_error() {
    for status in [3i16, 7, -7, i16::MIN, i16::MAX] {
        let hook = ftstat_says(status);
        let (door, peer) = start(Knobs::default());
        let face = jpeg(1, 2 * FRAGMENT);
        door.upsert_users(&[rec(1, &face)]).await.unwrap();
        peer.lock().unwrap().hook = Some(hook);
        let (result, took) = bounded(door.put_face(DoorUserId(1), face_of(&face), Bytes::from(face))).await;
        let err = result.unwrap_err();
        let bound = OsdpDoorOptions::default().resume_wait + Duration::from_secs(5);
        assert!(took <= bound, "status {status}: {took:?}");
        assert!(!err.to_string().is_empty());
        assert_eq!(user_count(&peer), 1, "status {status}");
    }
}

#[tokio::test(start_paused = true)]
async fn ftstat_update_msg_max_too_small_for_a_header_fails_the_file() {
    let knobs = Knobs {
        update_msg_max: 1,
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    let face = jpeg(1, 3 * FRAGMENT);
    door.upsert_users(&[rec(1, &face)]).await.unwrap();
    let (result, _) = bounded(door.put_face(DoorUserId(1), face_of(&face), Bytes::from(face))).await;
    assert!(result.is_err());
    assert_eq!(user_count(&peer), 1);
}

/// A hostile case: the reply name a diagnosis must give, and the hook that answers wrongly.
pub(super) type DiscoveryCase = (&'static str, fn(&Command) -> Answer);

/// A PDCAP of odd length and a truncated PDID.
pub(super) fn malformed_discovery() -> [DiscoveryCase; 2] {
    [
        ("osdp_PDCAP", |c| match c {
            Command::Cap => Some(Some(Reply::Other {
                code: crate::osdp::reply::pdcap::CODE,
                data: vec![8, 1, 0, 10],
            })),
            _ => None,
        }),
        ("osdp_PDID", |c| match c {
            Command::Id => Some(Some(Reply::Other {
                code: crate::osdp::reply::pdid::CODE,
                data: vec![0x0A, 0x0B, 0x0C, 7],
            })),
            _ => None,
        }),
    ]
}

#[tokio::test(start_paused = true)]
async fn pdcap_of_odd_length_or_a_truncated_pdid_never_comes_online_and_says_why() {
    let cases = malformed_discovery();
    for (name, f) in cases {
        let (door, _) = hostile(Knobs::default(), Box::new(f));
        let (online, _) = bounded(door.wait_online(Duration::from_secs(3))).await;
        assert!(!online, "{name}");
        let d = door.link_status().diagnostics;
        let what = d.last_malformed.unwrap_or_default();
        assert!(what.starts_with(name), "{name}: {what}");
        let (result, took) = bounded(door.digest()).await;
        assert!(matches!(result, Err(DoorError::Offline { .. })), "{name}: {result:?}");
        assert!(took <= OsdpDoorOptions::default().connect_wait, "{name}: {took:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_one_byte_receive_buffer_is_a_configuration_error_naming_the_limit() {
    let knobs = Knobs {
        rx_buffer: 1,
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    let (result, _) = bounded(door.digest()).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            DoorError::Misconfigured(Misconfig::PacketTooLarge {
                max: 0,
                receive_buffer_bytes: Some(1),
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("receive buffer of 1 bytes"), "{err}");
    assert_eq!(err.class(), FailureClass::DoorMisconfigured);
    assert_eq!(door.pdcap().and_then(|c| c.receive_buffer_bytes()), Some(1));
    assert_eq!(user_count(&peer), 0);
}
