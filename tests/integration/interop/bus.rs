//! Two LibOSDP doors on one line: a small bus splitter forwards every byte the agent's single line
//! driver sends to both PDs' pseudo-terminals and merges their replies back, as an RS-485 pair does.
//! Each PD answers only its own address; the agent keeps one session (SQN, discovery) per PD. The
//! splitter paces the CP's bytes to 115200 baud as the pair would: every PD must read and discard the
//! packets for the others, and LibOSDP's receive ring overflows when they arrive faster than a line
//! can carry them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId};
use doorsync::door::db::DoorDb;
use doorsync::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS};
use doorsync::door::{Door, OsdpDoor, OsdpDoorOptions};
use doorsync::serial::link::{self, LineOptions};
use doorsync::serial::pty::Pty;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::mpsc;

use super::agent::assert_door_answers_match;
use super::peer::{self, LibosdpPeer};
use super::{LIMITS, assert_json_matches, jpeg, record};

/// 10 bits per byte at 115200 baud.
const BYTE_TIME: Duration = Duration::from_nanos(86_806);

/// Forwards `cp`'s bytes to every PD line at the line rate and every PD's bytes to `cp`, until `cp`
/// closes.
async fn splitter(cp: DuplexStream, pds: Vec<Pty>) {
    let (mut cp_rx, mut cp_tx) = tokio::io::split(cp);
    let (merged_tx, mut merged) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut writers = Vec::new();
    for pd in pds {
        let (mut rx, tx) = tokio::io::split(pd);
        writers.push(tx);
        let merged_tx = merged_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = rx.read(&mut buf).await {
                if n == 0 || merged_tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    tokio::spawn(async move {
        while let Some(bytes) = merged.recv().await {
            if cp_tx.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = cp_rx.read(&mut buf).await {
        if n == 0 {
            break;
        }
        for w in &mut writers {
            if w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(BYTE_TIME * n as u32).await;
    }
}

#[tokio::test]
async fn two_libosdp_doors_on_one_line_take_pushes_deletes_and_queries_through_one_driver() {
    let test = "two_libosdp_doors_on_one_line_take_pushes_deletes_and_queries_through_one_driver";
    let Some(python) = peer::python_or_skip(test) else {
        return;
    };
    let profile = builtin_profile("libosdp-reference").unwrap();
    let vendor_code = profile.vendor_code.map(|b| format!("{b:02x}")).join(":");
    let mut ptys = Vec::new();
    let mut peers = Vec::new();
    for address in ["1", "2"] {
        let pty = Pty::open().unwrap();
        let serial = format!("0x4453000{address}");
        let args = [
            "--vendor-code",
            vendor_code.as_str(),
            "--address",
            address,
            "--serial",
            &serial,
        ];
        peers.push(LibosdpPeer::start(&python, pty.slave_path(), &args).await);
        ptys.push(pty);
    }
    let (cp, line) = tokio::io::duplex(64 * 1024);
    tokio::spawn(splitter(line, ptys));
    let sessions = [1, 2].map(|a| OsdpDoor::session_config(a, &profile)).to_vec();
    let (handles, driver) = link::bus(cp, sessions, LineOptions::default());
    tokio::spawn(driver.run());
    let doors: Vec<Arc<OsdpDoor>> = handles
        .into_iter()
        .map(|h| Arc::new(OsdpDoor::on_link(h, &profile, OsdpDoorOptions::default())))
        .collect();
    for door in &doors {
        assert!(
            door.wait_online(Duration::from_secs(30)).await,
            "a LibOSDP door never came online"
        );
    }
    assert_ne!(doors[0].pdid(), doors[1].pdid(), "each session discovered its own PD");

    // Each door gets its own users; both pushes run at once over the one line.
    let ids = [[1u32, 2, 3, 65], [4, 5, 6, 129]];
    let mut models = [DoorDb::new(LIMITS), DoorDb::new(LIMITS)];
    let pushes = ids.iter().zip(&doors).map(|(ids, door)| {
        let door = door.clone();
        let users: Vec<(DoorRecord, Bytes)> = ids
            .iter()
            .map(|&id| {
                let face = Bytes::from(jpeg(id, 6_000 + 100 * id as usize));
                (record(id, &format!("User {id}"), &face), face)
            })
            .collect();
        async move {
            let records: Vec<DoorRecord> = users.iter().map(|(r, _)| r.clone()).collect();
            door.upsert_users(&records).await.unwrap();
            for (r, face) in &users {
                door.put_face(r.id, r.face, face.clone()).await.unwrap();
            }
            users
        }
    });
    let pushed = futures::future::join_all(pushes).await;
    for (model, users) in models.iter_mut().zip(&pushed) {
        let records: Vec<DoorRecord> = users.iter().map(|(r, _)| r.clone()).collect();
        model.apply_file(FT_TYPE_RECORDS, &vendor::encode_record_file(&records).unwrap());
        for (r, face) in users {
            model.apply_file(FT_TYPE_FACE, &vendor::encode_face_file(r.id, face).unwrap());
        }
    }

    // Deletes reach the door they are meant for and no other.
    doors[0].delete_users(&[DoorUserId(2)]).await.unwrap();
    models[0].delete(&[DoorUserId(2)]);
    doors[1].delete_users(&[DoorUserId(5), DoorUserId(6)]).await.unwrap();
    models[1].delete(&[DoorUserId(5), DoorUserId(6)]);

    for (door, model) in doors.iter().zip(&models) {
        assert_door_answers_match(door, model, &[1, 2, 4, 5]).await;
    }
    for (i, peer) in peers.into_iter().enumerate() {
        let expected: Vec<u32> = models[i].user_ids().map(|id| id.0).collect();
        assert_json_matches(&peer.stop(), &models[i], &expected);
    }
}
