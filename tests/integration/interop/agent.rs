//! The agent's door link (`OsdpDoor`, the real agent code path: link driver, request-id matching,
//! confirmation and recovery) against the LibOSDP door.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use doorsync::cloud::sim::face_jpeg;
use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId};
use doorsync::door::db::{DoorDb, DoorDbLimits};
use doorsync::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult};
use doorsync::door::{Door, DoorError, FailureClass, OsdpDoor, OsdpDoorOptions};

use super::peer::LibosdpPeer;
use super::{LIMITS, assert_json_matches, jpeg, record};

/// The agent's door link (`OsdpDoor` over the pty master, its driver spawned) to the LibOSDP door.
async fn start_agent(test: &str, door_args: &[&str]) -> Option<(LibosdpPeer, Arc<OsdpDoor>)> {
    let (door, pty) = super::start_door(test, door_args).await?;
    let profile = builtin_profile("libosdp-reference").unwrap();
    let (agent, driver) = OsdpDoor::over(pty, 1, &profile, OsdpDoorOptions::default());
    tokio::spawn(driver.run());
    assert!(
        agent.wait_online(Duration::from_secs(30)).await,
        "LibOSDP door never came online"
    );
    Some((door, Arc::new(agent)))
}

/// Every reconciliation answer the agent gets from the LibOSDP door equals the model's.
pub(super) async fn assert_door_answers_match(agent: &OsdpDoor, model: &DoorDb, probe_ids: &[u32]) {
    assert_eq!(agent.digest().await.unwrap(), model.digest(), "DIGEST");
    let buckets = agent.bucket_digests().await.unwrap();
    assert_eq!(buckets, model.bucket_digests(), "BUCKET_DIGESTS");
    for b in buckets.iter().filter(|b| b.user_count > 0) {
        assert_eq!(
            agent.list(b.bucket).await.unwrap(),
            model.list(b.bucket),
            "LIST {}",
            b.bucket
        );
    }
    for &id in probe_ids {
        let got = agent.face_status(DoorUserId(id)).await.unwrap();
        assert_eq!(got, model.face_status(DoorUserId(id)), "FACE_STATUS {id}");
    }
    assert_eq!(agent.info().await.unwrap(), model.info(), "INFO");
}

#[tokio::test]
async fn agent_door_link_leaves_the_libosdp_door_holding_exactly_what_was_pushed_and_not_revoked() {
    let test = "agent_door_link_leaves_the_libosdp_door_holding_exactly_what_was_pushed_and_not_revoked";
    let Some((door, agent)) = start_agent(test, &[]).await else {
        return;
    };
    let mut model = DoorDb::new(LIMITS);
    // Ids share buckets (1, 65, 129 are all bucket 1) so LIST pages and bucket digests are exercised;
    // one name is cut at 48 bytes on a character boundary. Faces are real JPEGs of 10-40 KB.
    let ids: Vec<u32> = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 65, 129, 193, 257, 4096];
    let faces: Vec<Bytes> = ids
        .iter()
        .map(|id| Bytes::from(face_jpeg(&format!("interop-{id}"))))
        .collect();
    let records: Vec<DoorRecord> = ids
        .iter()
        .zip(&faces)
        .map(|(&id, face)| {
            let name = if id == 4096 {
                "Łukasz Żółć-".repeat(5)
            } else {
                format!("User {id}")
            };
            record(id, &name, face)
        })
        .collect();

    agent.upsert_users(&records).await.unwrap();
    model.apply_file(FT_TYPE_RECORDS, &vendor::encode_record_file(&records).unwrap());
    for (r, face) in records.iter().zip(&faces).filter(|(r, _)| r.id != DoorUserId(8)) {
        agent.put_face(r.id, r.face, face.clone()).await.unwrap();
        model.apply_file(FT_TYPE_FACE, &vendor::encode_face_file(r.id, face).unwrap());
    }
    assert_door_answers_match(&agent, &model, &[1, 8, 65, 999]).await;

    // Deletes, one of an id the door never held.
    let gone = [DoorUserId(3), DoorUserId(4), DoorUserId(999)];
    agent.delete_users(&gone).await.unwrap();
    model.delete(&gone);

    // A new face for user 7 is in flight when users 7 and 5 are revoked: the DELETE goes out between two
    // fragments, takes effect (and is stored) at once, and the face file then fails as "unknown user".
    let new_face = Bytes::from(jpeg(77, 30_000));
    let rec7 = record(7, "User 7", &new_face);
    agent.upsert_users(std::slice::from_ref(&rec7)).await.unwrap();
    model.apply_file(
        FT_TYPE_RECORDS,
        &vendor::encode_record_file(std::slice::from_ref(&rec7)).unwrap(),
    );
    let fragments_before = agent.stats().fragments;
    let push = tokio::spawn({
        let agent = agent.clone();
        let face = new_face.clone();
        async move { agent.put_face(DoorUserId(7), rec7.face, face).await }
    });
    // Waits for the transfer to be under way; a push that ended first fails the overtaking check below
    // instead of spinning here.
    while agent.stats().fragments < fragments_before + 2 && !push.is_finished() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    agent.delete_users(&[DoorUserId(7), DoorUserId(5)]).await.unwrap();
    let sent_by_then = agent.stats().fragments - fragments_before;
    let json = door.db();
    assert_eq!(
        (json.user(7), json.user(5)),
        (None, None),
        "stored before the DELETE was answered"
    );
    model.delete(&[DoorUserId(7), DoorUserId(5)]);
    let face_file = vendor::encode_face_file(DoorUserId(7), &new_face).unwrap();
    let fragments_total = face_file.len().div_ceil(agent.stats().fragment_bytes as usize) as u64;
    assert!(
        sent_by_then < fragments_total,
        "the DELETE overtook the face file ({sent_by_then} of {fragments_total} fragments sent)"
    );
    // Hang guard only: a face push is bounded by the session's timeouts, so this never decides a run.
    let pushed = tokio::time::timeout(Duration::from_secs(60), push)
        .await
        .expect("the face push never ended");
    match pushed.unwrap() {
        Err(DoorError::FileRejected { result }) => assert_eq!(result, FileResult::UnknownUser),
        other => panic!("face for a user deleted mid-transfer: {other:?}"),
    }
    assert_eq!(model.apply_file(FT_TYPE_FACE, &face_file), FileResult::UnknownUser);

    let stats = agent.stats();
    assert_eq!(
        (stats.fragment_bytes, stats.retries),
        (236, 0),
        "LibOSDP's 256-byte buffer, a clean line"
    );
    let expected: Vec<u32> = ids.iter().copied().filter(|id| ![3, 4, 5, 7].contains(id)).collect();
    assert_door_answers_match(&agent, &model, &[1, 3, 5, 7, 8, 129]).await;
    let json = door.stop();
    assert_json_matches(&json, &model, &expected);
    assert_eq!(json.user(8).unwrap().face, None, "user 8 was never sent a face");
    let long = json.user(4096).unwrap();
    assert!(
        long.name.len() <= 48 && long.name.len() > 40,
        "name cut at 48 bytes: {:?}",
        long.name
    );
}

/// Starts pushing `jpeg` as user `id`'s face and has the door lose the FTSTAT of a fragment in the
/// middle of the file, so the CP resends that fragment and LibOSDP counts its bytes twice.
async fn push_losing_one_ftstat(
    door: &LibosdpPeer,
    agent: &Arc<OsdpDoor>,
    id: u32,
    jpeg: &Bytes,
) -> Result<(), DoorError> {
    let rec = record(id, "Resent", jpeg);
    agent.upsert_users(std::slice::from_ref(&rec)).await.unwrap();
    let (fragments_before, retries_before) = (agent.stats().fragments, agent.stats().retries);
    let push = tokio::spawn({
        let (agent, jpeg) = (agent.clone(), jpeg.clone());
        async move { agent.put_face(DoorUserId(id), rec.face, jpeg).await }
    });
    while agent.stats().fragments < fragments_before + 10 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    door.lose_next_reply();
    let result = push.await.unwrap();
    assert!(agent.stats().retries > retries_before, "the CP resent a fragment");
    result
}

#[tokio::test]
async fn agent_completes_a_face_file_libosdp_overcounted_after_a_lost_ftstat() {
    let test = "agent_completes_a_face_file_libosdp_overcounted_after_a_lost_ftstat";
    let Some((door, agent)) = start_agent(test, &[]).await else {
        return;
    };
    // 30,045 bytes: the duplicate 236-byte fragment carries LibOSDP's count past the size, so it never
    // closes the file; the agent sees "bytes missing" after the last fragment, sends osdp_ABORT and
    // the file again, whole.
    let face = Bytes::from(jpeg(31, 30_000));
    push_losing_one_ftstat(&door, &agent, 1, &face).await.unwrap();
    let status = agent.face_status(DoorUserId(1)).await.unwrap();
    assert_eq!(status.face_sha256, Some(vendor::sha256(&face)));
    let json = door.stop();
    let face_json = json.user(1).and_then(|u| u.face.clone()).unwrap();
    assert_eq!(
        (face_json.sha256, face_json.len),
        (hex::encode(vendor::sha256(&face)), 30_000)
    );
    let files: Vec<String> = json.files.iter().map(|f| f.to_string()).collect();
    assert!(
        files.iter().any(|f| f.contains("aborted")),
        "the overcounted file was dropped by osdp_ABORT: {files:?}"
    );
}

#[tokio::test]
async fn agent_catches_a_face_file_libosdp_closed_early_with_a_hole_and_resends_it() {
    let test = "agent_catches_a_face_file_libosdp_closed_early_with_a_hole_and_resends_it";
    let Some((door, agent)) = start_agent(test, &[]).await else {
        return;
    };
    // 100 fragments of exactly 236 bytes: the duplicate makes LibOSDP's count reach the size one
    // fragment early, so it closes the file with its last 236 bytes missing and answers FTSTAT 1. The
    // door detects the hole; the agent does not take FTSTAT's word, FACE_STATUS shows no face, and the
    // result is a transient "corrupt" that the next attempt (as the next sync pass) cures.
    let face = Bytes::from(jpeg(32, 236 * 100 - vendor::FACE_FILE_HEADER_BYTES));
    match push_losing_one_ftstat(&door, &agent, 1, &face).await {
        Err(
            e @ DoorError::FileRejected {
                result: FileResult::Corrupt,
            },
        ) => assert_eq!(e.class(), FailureClass::Resend),
        other => panic!("a face file closed with a hole: {other:?}"),
    }
    assert_eq!(agent.face_status(DoorUserId(1)).await.unwrap().face_sha256, None);
    let r = record(1, "Resent", &face);
    agent.put_face(DoorUserId(1), r.face, face.clone()).await.unwrap();
    let json = door.stop();
    assert_eq!(
        json.user(1).and_then(|u| u.face.clone()).map(|f| f.sha256),
        Some(hex::encode(vendor::sha256(&face)))
    );
    let files: Vec<String> = json.files.iter().map(|f| f.to_string()).collect();
    assert!(
        files.iter().any(|f| f.contains("\"result\":2")),
        "hole detected: {files:?}"
    );
}

#[tokio::test]
async fn agent_learns_from_info_that_the_libosdp_door_refused_a_file_over_its_limits() {
    let test = "agent_learns_from_info_that_the_libosdp_door_refused_a_file_over_its_limits";
    let args = ["--capacity", "2", "--max-face-jpeg-bytes", "1000"];
    let Some((door, agent)) = start_agent(test, &args).await else {
        return;
    };
    let limits = DoorDbLimits {
        capacity_users: 2,
        max_face_jpeg_bytes: 1000,
        ..LIMITS
    };
    let mut model = DoorDb::new(limits);
    // LibOSDP's FTSTAT says "processed" either way; the verdict comes from INFO.
    let faces: Vec<Bytes> = (1..=3).map(|i| Bytes::from(jpeg(i, 400 * i as usize + 300))).collect();
    let records: Vec<DoorRecord> = (1..=3).map(|i| record(i, "Cap", &faces[i as usize - 1])).collect();
    match agent.upsert_users(&records).await {
        Err(DoorError::FileRejected { result }) => assert_eq!(result, FileResult::Capacity),
        other => panic!("3 users for a door of 2: {other:?}"),
    }
    let file = vendor::encode_record_file(&records).unwrap();
    assert_eq!(model.apply_file(FT_TYPE_RECORDS, &file), FileResult::Capacity);
    assert_eq!(
        agent.digest().await.unwrap(),
        model.digest(),
        "nothing of the refused file was applied"
    );

    agent.upsert_users(&records[..2]).await.unwrap();
    model.apply_file(FT_TYPE_RECORDS, &vendor::encode_record_file(&records[..2]).unwrap());
    agent
        .put_face(DoorUserId(1), records[0].face, faces[0].clone())
        .await
        .unwrap();
    // INFO says 1,000 bytes at most: the agent does not send the face at all, and fails that user.
    match agent.put_face(DoorUserId(2), records[1].face, faces[1].clone()).await {
        Err(
            e @ DoorError::FaceTooLarge {
                bytes: 1100,
                max_bytes: 1000,
            },
        ) => assert_eq!(e.class(), FailureClass::FailUser),
        other => panic!("a 1,100-byte JPEG for a 1,000-byte door: {other:?}"),
    }
    model.apply_file(
        FT_TYPE_FACE,
        &vendor::encode_face_file(DoorUserId(1), &faces[0]).unwrap(),
    );
    assert_door_answers_match(&agent, &model, &[1, 2, 3]).await;
    assert_json_matches(&door.stop(), &model, &[1, 2]);
}
