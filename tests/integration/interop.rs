//! Interop with LibOSDP 3.2.9: our CP over a real pseudo-terminal to a door run by LibOSDP's PD
//! (`tests/interop/libosdp_pd.py`), which implements `firmware-config/PROTOCOL.md` on its own.
//!
//! The main test goes through the agent's own door link (`OsdpDoor`); the negative paths, which need
//! raw control of the wire (a 65-byte osdp_MFG, a packet resent byte for byte, hand-cut fragments),
//! drive the crate's CP session (`osdp::PdSession`) directly with `link::Link`.
//!
//! Every check compares the LibOSDP door with `door::db::DoorDb`, the Rust reference semantics, fed
//! the same files and deletes: its JSON database (ids, records, face sha256s) and its answers to
//! every query (DIGEST, BUCKET_DIGESTS, LIST, FACE_STATUS, INFO) must be exactly the model's.
//! Needs Python with `osdp` (see `peer::find_python`); skipped with a notice when it is missing,
//! failed when `DOORSYNC_REQUIRE_LIBOSDP=1`.

mod agent;
mod bus;
mod link;
mod peer;
mod secure;

use std::process::Command as Process;

use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId, Policy};
use doorsync::door::db::{DoorDb, DoorDbLimits};
use doorsync::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult, MfgCommand, Status};
use doorsync::osdp::reply::{FtStatus, NakCode};
use doorsync::osdp::{Command, FailReason, PdState, Reply, SessionConfig};
use doorsync::serial::pty::Pty;
use doorsync::testkit::door_record;
use jiff::Timestamp;

use link::Link;
use peer::{DoorJson, LibosdpPeer};

/// The limits the script runs with by default (its --capacity / --max-* flags).
pub(crate) const LIMITS: DoorDbLimits = DoorDbLimits {
    capacity_users: 10_000,
    max_record_file_bytes: 8192,
    max_face_jpeg_bytes: 65_536,
};

/// The LibOSDP door (the `libosdp-reference` profile's vendor code, plus `door_args`) on the slave
/// end of a fresh pty, and that pty's master. `None` when LibOSDP is missing and not required.
pub(crate) async fn start_door(test: &str, door_args: &[&str]) -> Option<(LibosdpPeer, Pty)> {
    let python = peer::python_or_skip(test)?;
    let profile = builtin_profile("libosdp-reference").unwrap();
    let pty = Pty::open().unwrap();
    let vendor = profile.vendor_code.map(|b| format!("{b:02x}")).join(":");
    let mut args = vec!["--vendor-code", vendor.as_str()];
    args.extend_from_slice(door_args);
    let door = LibosdpPeer::start(&python, pty.slave_path(), &args).await;
    Some((door, pty))
}

/// The CP on a fresh pty, the LibOSDP door on its slave end, both configured from the
/// `libosdp-reference` firmware profile. `None` when LibOSDP is missing and not required.
async fn start(test: &str) -> Option<(LibosdpPeer, Link)> {
    let (door, pty) = start_door(test, &[]).await?;
    let profile = builtin_profile("libosdp-reference").unwrap();
    let mut config = SessionConfig::new(1);
    config.max_packet_bytes = usize::from(profile.osdp.max_packet_bytes);
    let link = Link::connect(pty, config, profile.vendor_code).await;
    Some((door, link))
}

pub(crate) use doorsync::testkit::jpeg;

/// A record for `face`: every fifth id DENY, every third with an expiry.
pub(crate) fn record(id: u32, name: &str, face: &[u8]) -> DoorRecord {
    DoorRecord {
        policy: if id.is_multiple_of(5) {
            Policy::Deny
        } else {
            Policy::Permission
        },
        expire_at: id
            .is_multiple_of(3)
            .then(|| Timestamp::from_second(1_900_000_000 + i64::from(id)).unwrap()),
        ..door_record(id, face, name)
    }
}

/// The door's database equals the model's: the same ids, each record as sent (fields and record
/// hash), and each face by sha256 and length.
pub(crate) fn assert_json_matches(json: &DoorJson, model: &DoorDb, expected_ids: &[u32]) {
    assert_eq!(json.ids(), expected_ids, "ids the LibOSDP door holds");
    for user in &json.users {
        let want = model.record(DoorUserId(user.id)).unwrap();
        let policy = match want.policy {
            Policy::Permission => 0,
            Policy::Deny => 1,
        };
        assert_eq!(user.policy, policy, "policy of {}", user.id);
        assert_eq!(
            user.expire_at,
            want.expire_at.map_or(0, |t| t.as_second()),
            "expire_at of {}",
            user.id
        );
        assert_eq!(
            user.name,
            vendor::truncate_display_name(&want.display_name),
            "name of {}",
            user.id
        );
        assert_eq!(
            user.face_sha256,
            hex::encode(want.face.sha256),
            "record face of {}",
            user.id
        );
        assert_eq!(
            user.record_hash,
            hex::encode(vendor::record_hash(want)),
            "record hash of {}",
            user.id
        );
        let face = model.face_jpeg(DoorUserId(user.id));
        assert_eq!(
            user.face.as_ref().map(|f| (f.sha256.clone(), f.len)),
            face.map(|j| (hex::encode(vendor::sha256(j)), j.len() as u32)),
            "face of {}",
            user.id
        );
    }
}

/// Every reconciliation answer of the LibOSDP door equals the model's.
async fn assert_queries_match(link: &mut Link, model: &DoorDb, probe_ids: &[u32]) {
    assert_eq!(link.digest().await, model.digest(), "DIGEST");
    let buckets = link.bucket_digests().await;
    assert_eq!(buckets, model.bucket_digests(), "BUCKET_DIGESTS");
    for b in buckets.iter().filter(|b| b.user_count > 0) {
        assert_eq!(
            link.list(b.bucket).await,
            model.list(b.bucket),
            "LIST of bucket {}",
            b.bucket
        );
    }
    for &id in probe_ids {
        assert_eq!(
            link.face_status(id).await,
            model.face_status(DoorUserId(id)),
            "FACE_STATUS {id}"
        );
    }
    assert_eq!(link.info().await, model.info(), "INFO");
}

#[test]
fn python_door_reproduces_every_hex_example_of_protocol_md() {
    // Only plain Python is needed: the check builds PROTOCOL.md's example door without LibOSDP.
    let python = peer::find_python().unwrap_or_else(|_| "python3".into());
    let out = Process::new(python)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/check_examples.py"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/firmware-config/PROTOCOL.md"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let examples: usize = text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(examples >= 22 && text.contains(" 0 mismatches"), "{text}");
}

#[tokio::test]
async fn mfg_over_64_bytes_gets_nak_02_and_our_cp_keeps_the_link() {
    let test = "mfg_over_64_bytes_gets_nak_02_and_our_cp_keeps_the_link";
    let Some((door, mut link)) = start(test).await else {
        return;
    };
    // The largest DELETE (15 ids, 64 bytes of vendor data) plus one byte: LibOSDP refuses it before
    // the door sees it.
    let mut data = vec![0x10, 0x01, 0x00, 15];
    data.extend((1u32..=15).flat_map(|id| id.to_le_bytes()));
    data.push(0);
    assert_eq!(data.len(), 65);
    match link.mfg_raw(&data).await {
        Err(FailReason::Nak(nak)) => assert_eq!(nak.code, NakCode::CommandLength),
        other => panic!("65-byte osdp_MFG: {other:?}"),
    }
    assert_eq!(
        link.session.state(),
        PdState::Online,
        "a NAK fails the command, not the link"
    );
    // The same link carries on: the largest DELETE (15 ids, exactly 64 bytes) goes through.
    let ids: Vec<u32> = (1..=15).collect();
    link.delete(&ids).await;
    // Fewer than 3 bytes of vendor data, and another vendor's code: NAK 0x09, nothing done.
    match link.mfg_raw(&[0x02, 0x01]).await {
        Err(FailReason::Nak(nak)) => assert_eq!(nak.code, NakCode::UnableToProcess),
        other => panic!("2-byte vendor data: {other:?}"),
    }
    let other_vendor = Command::Mfg(doorsync::osdp::command::Mfg {
        vendor_code: [0x12, 0x34, 0x56],
        data: vec![0x11, 0x09, 0x00, b'C', b'L', b'E', b'A', b'R', b'A', b'L', b'L'],
    });
    match link.exchange(other_vendor).await {
        Err(FailReason::Nak(nak)) => assert_eq!(nak.code, NakCode::UnableToProcess),
        other => panic!("foreign vendor code: {other:?}"),
    }
    assert_eq!(link.info().await.user_count, 0);
    let json = door.stop();
    assert_eq!(
        json.mfg_executed.get("DELETE"),
        Some(&1),
        "the 65-byte DELETE never reached the door"
    );
    assert_eq!(
        json.mfg_executed.get("CLEAR"),
        None,
        "the foreign CLEAR was not executed"
    );
}

#[tokio::test]
async fn retransmitted_delete_runs_twice_on_libosdp_and_changes_nothing_more() {
    let Some((door, mut link)) = start("retransmitted_delete_runs_twice_on_libosdp_and_changes_nothing_more").await
    else {
        return;
    };
    let mut model = DoorDb::new(LIMITS);
    let records: Vec<DoorRecord> = (1..=3)
        .map(|id| record(id, &format!("U{id}"), &jpeg(id, 100)))
        .collect();
    for file in link.upsert(&records, LIMITS.max_record_file_bytes).await {
        model.apply_file(FT_TYPE_RECORDS, &file);
    }
    link.delete(&[2]).await;
    model.delete(&[DoorUserId(2)]);
    // The CP lost the ACK and sends the same packet again (same SQN): LibOSDP executes it again.
    assert_eq!(link.resend_last().await, Reply::Ack);
    assert_eq!(link.session.state(), PdState::Online);
    assert_queries_match(&mut link, &model, &[1, 2, 3]).await;
    let json = door.stop();
    assert_eq!(
        json.mfg_executed.get("DELETE"),
        Some(&2),
        "LibOSDP re-ran the resent command"
    );
    assert_json_matches(&json, &model, &[1, 3]);
}

#[tokio::test]
async fn resent_fragment_does_not_complete_a_face_file_early() {
    let test = "resent_fragment_does_not_complete_a_face_file_early";
    let Some((door, mut link)) = start(test).await else {
        return;
    };
    let mut model = DoorDb::new(LIMITS);
    let face_a = jpeg(1, 500);
    // Face B ends in 200 zero bytes, exactly the bytes the door will not receive below: its sha256
    // cannot reveal the hole in a zero-filled buffer, only coverage tracking can.
    let mut face_b = jpeg(2, 355);
    face_b.resize(555, 0);
    for file in link.upsert(&[record(1, "Ana", &face_a)], 8192).await {
        model.apply_file(FT_TYPE_RECORDS, &file);
    }
    let file = link.put_face(1, &face_a).await;
    model.apply_file(FT_TYPE_FACE, &file);
    // A new face for Ana: the record names it, the old face stays until the new one lands.
    for file in link.upsert(&[record(1, "Ana", &face_b)], 8192).await {
        model.apply_file(FT_TYPE_RECORDS, &file);
    }
    // 600 bytes in three fragments of 200. Fragment 0 is resent (its FTSTAT was "lost"), so LibOSDP's
    // byte count reaches 600 after fragment 1, with bytes 400..600 never sent.
    let file_b = vendor::encode_face_file(DoorUserId(1), &face_b).unwrap();
    assert_eq!(file_b.len(), 600);
    let size = file_b.len() as u32;
    link.fragment(FT_TYPE_FACE, size, 0, &file_b[..200]).await;
    assert!(matches!(link.resend_last().await, Reply::FtStat(_)));
    let stat = link.fragment(FT_TYPE_FACE, size, 200, &file_b[200..400]).await;
    assert_eq!(
        stat.status,
        FtStatus::Processed,
        "LibOSDP believes the file is complete"
    );
    let info = link.info().await;
    assert_eq!(
        (info.last_file_type, info.last_file_result),
        (FT_TYPE_FACE, FileResult::Corrupt)
    );
    assert_eq!(
        link.face_status(1).await.face_sha256,
        Some(vendor::sha256(&face_a)),
        "the door kept its previous face"
    );
    // The CP, unaware, sends the last fragment: LibOSDP opens a new file with it. osdp_ABORT drops
    // that, and the whole file sent again lands.
    link.fragment(FT_TYPE_FACE, size, 400, &file_b[400..]).await;
    assert_eq!(link.exchange(Command::Abort).await, Ok(Reply::Ack));
    let stat = link.send_file(FT_TYPE_FACE, &file_b, 236).await;
    assert_eq!(stat.status, FtStatus::Processed);
    assert_eq!(model.apply_file(FT_TYPE_FACE, &file_b), FileResult::Applied);
    assert_queries_match(&mut link, &model, &[1]).await;
    let json = door.stop();
    assert_json_matches(&json, &model, &[1]);
    let results: Vec<String> = json.files.iter().map(|f| f.to_string()).collect();
    assert!(
        results.iter().any(|f| f.contains("\"result\":2")) && results.iter().any(|f| f.contains("aborted")),
        "{results:?}"
    );
}

#[tokio::test]
async fn libosdp_door_discards_bad_files_whole_and_keeps_its_state() {
    let test = "libosdp_door_discards_bad_files_whole_and_keeps_its_state";
    let Some((door, mut link)) = start(test).await else {
        return;
    };
    let mut model = DoorDb::new(LIMITS);
    let face = jpeg(9, 400);
    for file in link
        .upsert(&[record(1, "Ana", &face), record(2, "Bo", &face)], 8192)
        .await
    {
        model.apply_file(FT_TYPE_RECORDS, &file);
    }
    let good = vendor::encode_face_file(DoorUserId(1), &face).unwrap();
    let mut flipped = good.clone();
    flipped[300] ^= 0x01; // JPEG no longer matches the sha256 in the header
    let mut bad_records = vendor::encode_record_file(&[record(3, "Cy", &face)]).unwrap();
    let last = bad_records.len() - 1;
    bad_records[last] ^= 0x80; // trailer no longer sha256 of the file
    let other = jpeg(10, 400);
    let cases: Vec<(u8, Vec<u8>, FileResult)> = vec![
        (FT_TYPE_FACE, flipped, FileResult::Corrupt),
        (FT_TYPE_RECORDS, bad_records, FileResult::Corrupt),
        (
            FT_TYPE_FACE,
            vendor::encode_face_file(DoorUserId(1), &other).unwrap(),
            FileResult::FaceMismatch,
        ),
        (
            FT_TYPE_FACE,
            vendor::encode_face_file(DoorUserId(42), &face).unwrap(),
            FileResult::UnknownUser,
        ),
        (0x83, good.clone(), FileResult::UnknownType),
    ];
    for (ft_type, file, want) in cases {
        link.send_file(ft_type, &file, 236).await;
        assert_eq!(
            model.apply_file(ft_type, &file),
            want,
            "the model agrees on FtType {ft_type:#x}"
        );
        let info = link.info().await;
        assert_eq!((info.last_file_type, info.last_file_result), (ft_type, want));
    }
    // CLEAR without its confirm bytes does nothing and says so.
    let cmd = MfgCommand {
        request_id: link.request_id(),
        command: vendor::Command::Clear,
    };
    let mut no_confirm = cmd.encode().unwrap();
    no_confirm.pop();
    let reply = link.query_raw(&no_confirm).await;
    assert_eq!(
        reply.reply,
        vendor::Reply::Failed {
            op_code: 0x11,
            status: Status::BadConfirm
        }
    );
    assert_queries_match(&mut link, &model, &[1, 2, 3, 42]).await;
    assert_json_matches(&door.db(), &model, &[1, 2]);
    // The real CLEAR empties the door.
    assert_eq!(link.mfg(vendor::Command::Clear).await, None);
    model.clear();
    assert_queries_match(&mut link, &model, &[1, 2]).await;
    assert_json_matches(&door.stop(), &model, &[]);
}
