//! `OsdpDoor` against a scripted door over an in-memory duplex, on a paused clock.

mod hostile;
mod hostile_line;
mod hostile_pty;
mod line;
mod peer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;

use self::peer::{Knobs, Peer, Seen, SharedPeer};
use super::*;
use crate::config::builtin_profile;
use crate::domain::{AppliedEntry, UserKey};
use crate::door::vendor::{FT_TYPE_FACE, Op};
use crate::door::{FileResult, expected_bucket_digests, expected_digest};
use crate::serial::test_pd::run_pd;

const ADDR: u8 = 1;

fn profile() -> Profile {
    builtin_profile("generic-face-v1").unwrap()
}

fn jpeg(seed: u32, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|i| ((i as u32).wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect();
    v[0] = 0xFF;
    v[1] = 0xD8;
    v
}

fn face_of(bytes: &[u8]) -> FaceRef {
    FaceRef {
        sha256: vendor::sha256(bytes),
        len_bytes: bytes.len() as u32,
    }
}

fn rec(id: u32, face: &[u8]) -> DoorRecord {
    DoorRecord {
        expire_at: Some(Timestamp::from_second(1_900_000_000).unwrap()),
        ..crate::testkit::door_record(id, face, &format!("user {id}"))
    }
}

/// The door refused the file with `want`.
fn assert_rejected(result: &Result<(), DoorError>, want: FileResult) {
    assert!(
        matches!(result, Err(DoorError::FileRejected { result }) if *result == want),
        "{result:?}"
    );
}

type Push = tokio::task::JoinHandle<Result<(), DoorError>>;

/// User 1 (with a `face_len`-byte face) and `others` recorded on a fresh door, and user 1's face being
/// pushed; returns once the door has seen `fragments` fragments of it, the push still running.
async fn face_in_flight(face_len: usize, others: &[DoorRecord], fragments: usize) -> (Arc<OsdpDoor>, SharedPeer, Push) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let knobs = Knobs {
        on_fragment: Some(tx),
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    let big = jpeg(1, face_len);
    let mut records = vec![rec(1, &big)];
    records.extend_from_slice(others);
    door.upsert_users(&records).await.unwrap();
    let d = door.clone();
    let face = face_of(&big);
    let push = tokio::spawn(async move { d.put_face(DoorUserId(1), face, Bytes::from(big)).await });
    while rx.recv().await.unwrap() < fragments {}
    (door, peer, push)
}

fn start_with(knobs: Knobs, options: OsdpDoorOptions) -> (Arc<OsdpDoor>, SharedPeer) {
    let (cp, pd) = tokio::io::duplex(64 * 1024);
    let profile = profile();
    let peer = Peer::new(profile.vendor_code, knobs);
    let p = peer.clone();
    tokio::spawn(run_pd(pd, ADDR, move |c| p.lock().unwrap().handle(c)));
    let (door, driver) = OsdpDoor::over(cp, ADDR, &profile, options);
    tokio::spawn(driver.run());
    (Arc::new(door), peer)
}

fn start(knobs: Knobs) -> (Arc<OsdpDoor>, SharedPeer) {
    start_with(knobs, OsdpDoorOptions::default())
}

fn seen(peer: &SharedPeer) -> Vec<Seen> {
    peer.lock().unwrap().seen.clone()
}

fn fragment_offsets(seen: &[Seen]) -> Vec<u32> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Fragment { ft_type, offset, .. } if *ft_type == FT_TYPE_FACE => Some(*offset),
            _ => None,
        })
        .collect()
}

/// Largest fragment for a 1024-byte PD buffer: packet 1023 (mark byte), minus header, code, CRC, FT header.
const FRAGMENT: usize = 1023 - 5 - 1 - 2 - 11;

#[tokio::test(start_paused = true)]
async fn pushed_users_and_faces_land_and_the_door_digest_matches() {
    let (door, peer) = start(Knobs::default());
    assert!(door.wait_online(Duration::from_secs(5)).await);
    let faces: Vec<Vec<u8>> = (1..=3).map(|i| jpeg(i, 20_000 + i as usize)).collect();
    let records: Vec<DoorRecord> = (1..=3).map(|i| rec(i, &faces[i as usize - 1])).collect();
    door.upsert_users(&records).await.unwrap();
    for (r, f) in records.iter().zip(&faces) {
        door.put_face(r.id, r.face, Bytes::from(f.clone())).await.unwrap();
    }
    {
        let p = peer.lock().unwrap();
        for (r, f) in records.iter().zip(&faces) {
            assert_eq!(p.db.face_jpeg(r.id), Some(f.as_slice()));
        }
    }
    let applied: BTreeMap<DoorUserId, AppliedEntry> = records
        .iter()
        .map(|r| {
            let entry = AppliedEntry {
                key: UserKey::new("IDENTITY", format!("u{}", r.id.0)),
                record: Some(r.clone()),
                face: Some(r.face),
            };
            (r.id, entry)
        })
        .collect();
    // The sync daemon holds doors as `Arc<dyn Door>`.
    let as_dyn: Arc<dyn Door> = door.clone();
    assert_eq!(as_dyn.digest().await.unwrap(), expected_digest(&applied));
    let stats = door.stats();
    assert_eq!(stats.fragment_bytes as usize, FRAGMENT);
    let face_file_bytes: usize = faces.iter().map(|f| f.len() + vendor::FACE_FILE_HEADER_BYTES).sum();
    assert!(stats.file_payload_bytes as usize >= face_file_bytes);
    assert_eq!(stats.retries, 0);
}

#[tokio::test(start_paused = true)]
async fn reply_delivered_on_a_later_poll_is_matched_by_request_id_and_a_stale_one_ignored() {
    let knobs = Knobs {
        answer_via_poll: true,
        stale_reply_first: true,
        ..Knobs::default()
    };
    let (door, _peer) = start(knobs);
    let f = jpeg(1, 100);
    door.upsert_users(&[rec(7, &f)]).await.unwrap();
    let info = door.info().await.unwrap();
    assert_eq!((info.user_count, info.face_count), (1, 0));
    let status = door.face_status(DoorUserId(7)).await.unwrap();
    assert_eq!(status.id, DoorUserId(7));
    assert!(status.record_hash_prefix.is_some() && status.face_sha256.is_none());
    assert_eq!(door.digest().await.unwrap().user_count, 1);
}

#[tokio::test(start_paused = true)]
async fn late_direct_reply_with_another_request_id_is_ignored() {
    let knobs = Knobs {
        stale_reply_first: true,
        ..Knobs::default()
    };
    let (door, _peer) = start(knobs);
    door.upsert_users(&[rec(1, &jpeg(1, 10)), rec(2, &jpeg(2, 10))])
        .await
        .unwrap();
    let d1 = door.digest().await.unwrap();
    door.delete_users(&[DoorUserId(2)]).await.unwrap();
    let d2 = door.digest().await.unwrap();
    assert_eq!((d1.user_count, d2.user_count), (2, 1), "each query got its own answer");
}

#[tokio::test(start_paused = true)]
async fn query_the_door_never_answers_fails_with_timeout() {
    let knobs = Knobs {
        ignore_queries: true,
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    assert!(matches!(door.digest().await, Err(DoorError::Timeout)));
    assert!(door.is_online(), "an unanswered query does not take the link down");
    let digests_sent = seen(&peer)
        .iter()
        .filter(|s| **s == Seen::Mfg { op: Op::Digest as u8 })
        .count();
    assert!(
        digests_sent >= 2,
        "the query was resent before giving up ({digests_sent})"
    );
}

#[tokio::test(start_paused = true)]
async fn delete_issued_during_a_face_transfer_goes_out_between_two_fragments() {
    let (door, peer, push) = face_in_flight(40_000, &[rec(2, &jpeg(2, 10))], 3).await;
    door.delete_users(&[DoorUserId(2)]).await.unwrap();
    push.await.unwrap().unwrap();

    let seen = seen(&peer);
    let delete_at = seen
        .iter()
        .position(|s| *s == Seen::Mfg { op: Op::Delete as u8 })
        .unwrap();
    let face_fragments = |seen: &[Seen]| {
        seen.iter()
            .filter(|s| {
                matches!(
                    s,
                    Seen::Fragment {
                        ft_type: FT_TYPE_FACE,
                        ..
                    }
                )
            })
            .count()
    };
    let (face_before, face_after) = (face_fragments(&seen[..delete_at]), face_fragments(&seen[delete_at..]));
    assert!(
        face_before >= 3 && face_after >= 10,
        "delete went out mid-file: {face_before} before, {face_after} after"
    );
    let p = peer.lock().unwrap();
    assert!(p.db.record(DoorUserId(2)).is_none());
    assert!(p.db.face_jpeg(DoorUserId(1)).is_some());
}

#[tokio::test(start_paused = true)]
async fn revoking_the_user_whose_face_is_in_flight_fails_that_face_as_unknown_user() {
    let (door, peer, push) = face_in_flight(30_000, &[], 2).await;
    door.delete_users(&[DoorUserId(1)]).await.unwrap();
    let result = push.await.unwrap();
    assert_rejected(&result, FileResult::UnknownUser);
    assert_eq!(peer.lock().unwrap().db.user_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn transfer_resumes_from_the_last_acknowledged_offset_after_a_link_drop() {
    let knobs = Knobs {
        drop_at_fragment: Some(6),
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    let big = jpeg(5, 20_000);
    door.upsert_users(&[rec(1, &big)]).await.unwrap();
    door.put_face(DoorUserId(1), face_of(&big), Bytes::from(big.clone()))
        .await
        .unwrap();
    let offsets = fragment_offsets(&seen(&peer));
    let contiguous: Vec<u32> = (0..offsets.len()).map(|i| (i * FRAGMENT) as u32).collect();
    assert_eq!(offsets, contiguous, "resumed where it stopped, nothing sent twice");
    assert!(!seen(&peer).contains(&Seen::Abort));
    assert!(door.stats().retries > 0, "the lost fragment was resent");
    assert_eq!(peer.lock().unwrap().db.face_jpeg(DoorUserId(1)), Some(big.as_slice()));
}

#[tokio::test(start_paused = true)]
async fn door_that_lost_the_partial_file_in_a_reboot_gets_it_again_whole() {
    let knobs = Knobs {
        drop_at_fragment: Some(6),
        reboot_on_drop: true,
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    let big = jpeg(6, 20_000);
    door.upsert_users(&[rec(1, &big)]).await.unwrap();
    door.put_face(DoorUserId(1), face_of(&big), Bytes::from(big.clone()))
        .await
        .unwrap();
    let seen = seen(&peer);
    let abort_at = seen
        .iter()
        .position(|s| *s == Seen::Abort)
        .expect("aborted before resending");
    assert_eq!(fragment_offsets(&seen[abort_at..]).first(), Some(&0));
    assert_eq!(peer.lock().unwrap().db.face_jpeg(DoorUserId(1)), Some(big.as_slice()));
}

#[tokio::test(start_paused = true)]
async fn restart_policy_aborts_and_sends_the_interrupted_file_from_the_start() {
    let knobs = Knobs {
        drop_at_fragment: Some(4),
        ..Knobs::default()
    };
    let options = OsdpDoorOptions {
        resume: ResumePolicy::Restart,
        ..OsdpDoorOptions::default()
    };
    let (door, peer) = start_with(knobs, options);
    let big = jpeg(7, 10_000);
    door.upsert_users(&[rec(1, &big)]).await.unwrap();
    door.put_face(DoorUserId(1), face_of(&big), Bytes::from(big.clone()))
        .await
        .unwrap();
    let seen = seen(&peer);
    let abort_at = seen.iter().position(|s| *s == Seen::Abort).unwrap();
    assert_eq!(fragment_offsets(&seen[abort_at..]).first(), Some(&0));
    assert_eq!(peer.lock().unwrap().db.face_jpeg(DoorUserId(1)), Some(big.as_slice()));
}

#[tokio::test(start_paused = true)]
async fn ftstat_asking_for_smaller_messages_and_a_pause_is_obeyed() {
    let knobs = Knobs {
        update_msg_max: 300,
        ft_delay_ms: 40,
        ..Knobs::default()
    };
    let (door, peer) = start(knobs);
    let f = jpeg(3, 5000);
    door.upsert_users(&[rec(1, &f)]).await.unwrap();
    door.put_face(DoorUserId(1), face_of(&f), Bytes::from(f.clone()))
        .await
        .unwrap();
    let fragments: Vec<(usize, tokio::time::Instant)> = seen(&peer)
        .iter()
        .filter_map(|s| match s {
            Seen::Fragment {
                ft_type: FT_TYPE_FACE,
                len,
                at,
                ..
            } => Some((*len, *at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fragments[0].0, FRAGMENT,
        "the first fragment is as large as the PD's buffer allows"
    );
    // 300-byte packets: header 5, code 1, CRC 2 and the 11-byte FILETRANSFER header around the data.
    assert!(fragments[1..].iter().all(|(len, _)| *len <= 300 - 8 - 11));
    assert_eq!(fragments[1].0, 300 - 8 - 11);
    for pair in fragments.windows(2) {
        assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(40), "FtDelay honoured");
    }
    assert_eq!(peer.lock().unwrap().db.face_jpeg(DoorUserId(1)), Some(f.as_slice()));
}

#[tokio::test(start_paused = true)]
async fn reply_timeout_of_a_line_covers_the_largest_packet_on_the_wire() {
    let at_115200 = OsdpDoor::line_session_config(ADDR, &profile(), 115_200).reply_timeout;
    let at_9600 = OsdpDoor::line_session_config(ADDR, &profile(), 9600).reply_timeout;
    // 1024-byte packets, mark and an 80-byte reply: 1105 bytes of 10 bits.
    assert_eq!(
        at_115200,
        Duration::from_millis(200) + Duration::from_micros(1105 * 10 * 1_000_000 / 115_200)
    );
    assert_eq!(
        at_9600,
        Duration::from_millis(200) + Duration::from_micros(1105 * 10 * 1_000_000 / 9600)
    );
}

#[tokio::test(start_paused = true)]
async fn negative_ftstat_fails_with_the_reason_the_door_gives() {
    let (door, _peer) = start(Knobs::default());
    let f = jpeg(1, 3000);
    let result = door.put_face(DoorUserId(9), face_of(&f), Bytes::from(f)).await;
    assert_rejected(&result, FileResult::UnknownUser);
}

#[tokio::test(start_paused = true)]
async fn face_rejected_behind_an_always_ok_ftstat_is_caught_by_face_status() {
    // LibOSDP-style: FTSTAT says 1 whatever the door made of the file.
    let knobs = Knobs {
        final_status: Some(1),
        ..Knobs::default()
    };
    let (door, _peer) = start(knobs);
    let right = jpeg(1, 2000);
    let wrong = jpeg(2, 2000);
    door.upsert_users(&[rec(1, &right)]).await.unwrap();
    let result = door.put_face(DoorUserId(1), face_of(&wrong), Bytes::from(wrong)).await;
    assert_rejected(&result, FileResult::FaceMismatch);
}

#[tokio::test(start_paused = true)]
async fn jpeg_that_does_not_match_its_face_ref_is_refused_before_sending() {
    let (door, peer) = start(Knobs::default());
    let f = jpeg(1, 100);
    let result = door
        .put_face(DoorUserId(1), face_of(&jpeg(2, 100)), Bytes::from(f))
        .await;
    assert!(matches!(result, Err(DoorError::Protocol(_))), "{result:?}");
    assert!(fragment_offsets(&seen(&peer)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn deletes_go_in_batches_of_fifteen_ids() {
    let (door, peer) = start(Knobs::default());
    let ids: Vec<DoorUserId> = (1..=40).map(DoorUserId).collect();
    door.delete_users(&ids).await.unwrap();
    let deletes = seen(&peer)
        .iter()
        .filter(|s| **s == Seen::Mfg { op: Op::Delete as u8 })
        .count();
    assert_eq!(deletes, 3);
}

#[tokio::test(start_paused = true)]
async fn bucket_digests_and_multi_page_lists_match_what_the_door_holds() {
    let (door, _peer) = start(Knobs::default());
    let records: Vec<DoorRecord> = (0..10).map(|i| rec(1 + 64 * i, &jpeg(i, 10))).collect();
    door.upsert_users(&records).await.unwrap();
    let listed = door.list(1).await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.id).collect::<Vec<_>>(),
        records.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    assert!(door.list(2).await.unwrap().is_empty());
    let applied: BTreeMap<DoorUserId, AppliedEntry> = records
        .iter()
        .map(|r| {
            let entry = AppliedEntry {
                key: UserKey::new("IDENTITY", format!("u{}", r.id.0)),
                record: Some(r.clone()),
                face: None,
            };
            (r.id, entry)
        })
        .collect();
    assert_eq!(door.bucket_digests().await.unwrap(), expected_bucket_digests(&applied));
}

#[tokio::test(start_paused = true)]
async fn clear_empties_the_door() {
    let (door, peer) = start(Knobs::default());
    door.upsert_users(&[rec(1, &jpeg(1, 10)), rec(2, &jpeg(2, 10))])
        .await
        .unwrap();
    door.clear().await.unwrap();
    assert_eq!(peer.lock().unwrap().db.user_count(), 0);
    assert_eq!(door.info().await.unwrap().user_count, 0);
}

#[tokio::test(start_paused = true)]
async fn door_that_never_answers_is_offline_with_a_reason() {
    let (cp, _pd) = tokio::io::duplex(1024);
    let mut session = OsdpDoor::session_config(ADDR, &profile());
    session.offline_after = Duration::from_secs(2);
    let (door, driver) = OsdpDoor::with_session(cp, session, &profile(), OsdpDoorOptions::default());
    tokio::spawn(driver.run());
    assert!(!door.wait_online(Duration::from_secs(1)).await);
    assert!(!door.is_online());
    let result = door.digest().await;
    assert!(matches!(result, Err(DoorError::Offline { .. })), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_call_waiting_for_discovery_ends_when_the_link_goes_offline_not_after_connect_wait() {
    let (cp, _pd) = tokio::io::duplex(1024);
    let mut session = OsdpDoor::session_config(ADDR, &profile());
    session.offline_after = Duration::from_secs(2);
    let options = OsdpDoorOptions::default();
    assert_eq!(options.connect_wait, Duration::from_secs(10));
    let (door, driver) = OsdpDoor::with_session(cp, session, &profile(), options);
    tokio::spawn(driver.run());
    // Called while discovery is still going on: the wait ends with the session's offline verdict.
    let started = tokio::time::Instant::now();
    let result = door.digest().await;
    let took = started.elapsed();
    assert!(matches!(result, Err(DoorError::Offline { .. })), "{result:?}");
    assert!(result.unwrap_err().to_string().contains("does not answer"));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "ended at the 2 s offline timeout: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_waiting_for_discovery_ends_at_a_failed_secure_channel_handshake() {
    use crate::osdp::SecureConfig;
    use crate::osdp::reply::{CapRecord, PdCap};
    use crate::osdp::sc::{Key16, PdChannel};
    use crate::osdp::{Command, PdLink, Reply};

    let (cp, pd) = tokio::io::duplex(4096);
    // The door holds another key than the agent: every handshake fails its cryptogram check.
    let pd_link = PdLink::new(ADDR, 4096).with_secure(PdChannel::new(Some(Key16::new([0x3C; 16])), false), Some(9));
    tokio::spawn(crate::serial::test_pd::run_pd_link(pd, pd_link, |c| match c {
        Command::Cap => Some(Reply::PdCap(PdCap {
            records: [(8, 1, 0), (9, 1, 1), (10, 0, 4)]
                .map(|(function, compliance, items)| CapRecord {
                    function,
                    compliance,
                    items,
                })
                .to_vec(),
        })),
        other => crate::serial::test_pd::basic_reply(other, 1024),
    }));
    let mut session = OsdpDoor::session_config(ADDR, &profile());
    session.secure = Some(SecureConfig {
        scbk: Key16::new([1; 16]),
        install_mode: false,
        rng_seed: Some(7),
    });
    let (door, driver) = OsdpDoor::with_session(cp, session, &profile(), OsdpDoorOptions::default());
    tokio::spawn(driver.run());
    let started = tokio::time::Instant::now();
    let result = door.digest().await;
    let took = started.elapsed();
    let err = result.unwrap_err();
    assert!(err.to_string().contains("secure channel handshake failed"), "{err}");
    assert!(took < Duration::from_secs(1), "ended at the failed handshake: {took:?}");
}
