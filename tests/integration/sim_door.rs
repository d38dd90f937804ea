//! `doorsync simulate door --pty-link` as a separate process, driven over the real serial stack by the
//! crate's CP session: what a technician's dry run or the sync crash tests see.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use doorsync::domain::{DoorRecord, DoorUserId, Policy};
use doorsync::door::sim::DoorDump;
use doorsync::door::vendor::{self, Command as VCmd, FT_TYPE_FACE, FT_TYPE_RECORDS, MfgReply, Reply as VReply};
use doorsync::osdp::reply::FtStatus;
use doorsync::osdp::{Command, Event, Reply};
use doorsync::testkit::{Cp, door_record};
use jiff::Timestamp;
use tokio::process::Child;

use crate::harness::HANG_GUARD;
use crate::processes::spawn_simulated_door;

const VENDOR: [u8; 3] = [0x02, 0x44, 0x53];

struct Door {
    child: Child,
    link: PathBuf,
    ready: String,
}

async fn start_door(dir: &Path, extra: &[&str]) -> Door {
    let link = dir.join("door-tty");
    start_door_on(dir, &link, "--pty-link", extra).await
}

async fn start_door_on(dir: &Path, link: &Path, line_flag: &str, extra: &[&str]) -> Door {
    let mut args: Vec<OsString> = vec![line_flag.into(), link.into(), "--db-file".into()];
    args.push(dir.join("door.json").into());
    args.extend(["--baud", "115200"].iter().chain(extra).map(Into::into));
    let (child, ready) = spawn_simulated_door(&args).await;
    Door {
        child,
        link: link.to_path_buf(),
        ready,
    }
}

async fn connect(link: &Path) -> Cp {
    Cp::connect(link, 115_200).await
}

fn record(id: u32, jpeg: &[u8], name: &str) -> DoorRecord {
    DoorRecord {
        expire_at: Some(Timestamp::from_second(1_893_456_000).unwrap()),
        ..door_record(id, jpeg, name)
    }
}

fn signal(door: &Door, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(door.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
}

async fn stop(mut door: Door) {
    signal(&door, nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(HANG_GUARD, door.child.wait())
        .await
        .expect("simulated door ignored SIGTERM")
        .unwrap();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    assert!(
        std::fs::symlink_metadata(&door.link).is_err(),
        "the pty link is removed on exit"
    );
}

#[tokio::test]
async fn simulated_door_process_applies_records_faces_and_a_delete_between_fragments_to_its_db_file() {
    let dir = tempfile::tempdir().unwrap();
    let door = start_door(dir.path(), &[]).await;
    assert!(
        door.ready.starts_with(&format!(
            "simulated door listening on {} (address 1, 115200 baud, profile generic-face-v1",
            door.link.display()
        )),
        "{}",
        door.ready
    );
    let mut cp = connect(&door.link).await;
    let pdid = *cp.session.pdid().unwrap();
    assert_eq!(pdid.vendor_code, VENDOR);
    assert_eq!(cp.session.pdcap().unwrap().receive_buffer_bytes(), Some(1024));

    let ana: Vec<u8> = (0..6000u32).map(|i| (i * 7) as u8).collect();
    let bo = vec![0xB0; 900];
    let records = vendor::encode_record_file(&[record(1, &ana, "Ana"), record(2, &bo, "Bo")]).unwrap();
    assert_eq!(
        cp.send_file(FT_TYPE_RECORDS, &records, 0, records.len()).await,
        FtStatus::Processed
    );
    let bo_file = vendor::encode_face_file(DoorUserId(2), &bo).unwrap();
    assert_eq!(
        cp.send_file(FT_TYPE_FACE, &bo_file, 0, bo_file.len()).await,
        FtStatus::Processed
    );

    // Ana's face in flight; Bo is revoked between two of its fragments.
    let ana_file = vendor::encode_face_file(DoorUserId(1), &ana).unwrap();
    assert_eq!(cp.send_file(FT_TYPE_FACE, &ana_file, 0, 3000).await, FtStatus::Ok);
    assert_eq!(cp.mfg(VENDOR, 1, VCmd::Delete(vec![DoorUserId(2)])).await, Reply::Ack);
    let mid = DoorDump::read(&dir.path().join("door.json")).unwrap();
    assert!(
        mid.user(2).is_none(),
        "the delete is in the db file before the transfer ends"
    );
    assert!(mid.user(1).unwrap().face.is_none());
    assert_eq!(
        cp.send_file(FT_TYPE_FACE, &ana_file, 3000, ana_file.len()).await,
        FtStatus::Processed
    );

    let dump = DoorDump::read(&dir.path().join("door.json")).unwrap();
    assert_eq!((dump.user_count, dump.face_count), (1, 1));
    let u = dump.user(1).unwrap();
    assert_eq!((u.display_name.as_str(), u.policy), ("Ana", Policy::Permission));
    let face = u.face.as_ref().unwrap();
    assert_eq!(face.sha256, hex::encode(vendor::sha256(&ana)));
    assert_eq!(face.len_bytes, 6000);
    // The door's DIGEST over the wire is the one in its file.
    let Reply::MfgRep(rep) = cp.mfg(VENDOR, 2, VCmd::Digest).await else {
        panic!()
    };
    let VReply::Digest(d) = MfgReply::decode(&rep.data).unwrap().reply else {
        panic!()
    };
    assert_eq!(hex::encode(d.digest), dump.digest);
    stop(door).await;
}

#[tokio::test]
async fn simulated_door_process_with_deferred_replies_answers_queries_on_the_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let door = start_door(dir.path(), &["--deferred-replies", "--profile", "libosdp-reference"]).await;
    let mut cp = connect(&door.link).await;
    assert_eq!(cp.session.pdcap().unwrap().receive_buffer_bytes(), Some(256));
    assert_eq!(cp.mfg(VENDOR, 0x0101, VCmd::Info).await, Reply::Ack);
    let Reply::MfgRep(rep) = cp.exchange(Command::Poll).await else {
        panic!()
    };
    let reply = MfgReply::decode(&rep.data).unwrap();
    assert_eq!(reply.request_id, 0x0101);
    assert!(matches!(reply.reply, VReply::Info(i) if i.user_count == 0));
    stop(door).await;
}

#[test]
fn simulated_door_refuses_to_start_on_a_corrupt_db_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("door.json");
    std::fs::write(&db, "{\"format\": \"doorsync-sim-door/1\"").unwrap();
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["simulate", "door", "--pty-link"])
        .arg(dir.path().join("tty"))
        .arg("--db-file")
        .arg(&db)
        .timeout(HANG_GUARD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&db.display().to_string()) && err.contains("corrupt"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no ready line for a door that did not start");
}

#[tokio::test]
async fn simulated_door_killed_mid_session_comes_back_holding_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let door = start_door(dir.path(), &[]).await;
    let mut cp = connect(&door.link).await;
    let jpeg = vec![0x11; 2000];
    let records = vendor::encode_record_file(&[record(5, &jpeg, "Eve"), record(6, b"six", "Sam")]).unwrap();
    cp.send_file(FT_TYPE_RECORDS, &records, 0, records.len()).await;
    let face = vendor::encode_face_file(DoorUserId(5), &jpeg).unwrap();
    cp.send_file(FT_TYPE_FACE, &face, 0, face.len()).await;
    assert_eq!(cp.mfg(VENDOR, 1, VCmd::Delete(vec![DoorUserId(6)])).await, Reply::Ack);
    let Reply::MfgRep(before) = cp.mfg(VENDOR, 2, VCmd::Digest).await else {
        panic!()
    };

    // A power cut: no chance to flush anything.
    let mut door = door;
    signal(&door, nix::sys::signal::Signal::SIGKILL);
    door.child.wait().await.unwrap();
    drop(cp);

    // Restarted on the same db file and link path (the stale link is replaced).
    let door = start_door(dir.path(), &[]).await;
    let mut cp = connect(&door.link).await;
    let Reply::MfgRep(after) = cp.mfg(VENDOR, 3, VCmd::Digest).await else {
        panic!()
    };
    let digest = |rep: &doorsync::osdp::reply::MfgRep| match MfgReply::decode(&rep.data).unwrap().reply {
        VReply::Digest(d) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(digest(&after), digest(&before));
    assert_eq!(digest(&after).user_count, 1, "the deleted user stays deleted");
    stop(door).await;
}

#[tokio::test]
async fn simulated_door_process_serves_an_existing_tty_given_by_port() {
    let dir = tempfile::tempdir().unwrap();
    let pty = doorsync::serial::pty::Pty::open().unwrap();
    let slave = pty.slave_path().to_path_buf();
    let door = start_door_on(dir.path(), &slave, "--port", &["--no-pacing"]).await;
    assert!(door.ready.contains("no pacing"), "{}", door.ready);
    let mut cp = Cp::over(pty).await;
    assert_eq!(cp.session.pdid().unwrap().vendor_code, VENDOR);
    let Reply::MfgRep(rep) = cp.mfg(VENDOR, 1, VCmd::Info).await else {
        panic!()
    };
    assert!(matches!(MfgReply::decode(&rep.data).unwrap().reply, VReply::Info(i) if i.capacity_users == 10_000));
    // --port does not own the path: SIGTERM leaves it alone.
    signal(&door, nix::sys::signal::Signal::SIGTERM);
    let mut door = door;
    assert!(door.child.wait().await.unwrap().success());
    assert!(slave.exists());
}

#[tokio::test]
async fn signals_reboot_and_silence_the_simulated_door_process() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().unwrap();
    let door = start_door(dir.path(), &[]).await;
    let mut cp = connect(&door.link).await;
    let records = vendor::encode_record_file(&[record(9, b"nine", "Nia")]).unwrap();
    cp.send_file(FT_TYPE_RECORDS, &records, 0, records.len()).await;

    // SIGUSR1: the door reboots; the CP's next poll is refused (old SQN) and the link restarts.
    signal(&door, Signal::SIGUSR1);
    let mut restarted = false;
    cp.run_until(|ev| {
        restarted |= matches!(ev, Event::Online { .. });
        restarted
    })
    .await;
    let Reply::MfgRep(rep) = cp.mfg(VENDOR, 1, VCmd::FaceStatus(DoorUserId(9))).await else {
        panic!()
    };
    assert!(
        matches!(MfgReply::decode(&rep.data).unwrap().reply, VReply::FaceStatus(s) if s.record_hash_prefix.is_some()),
        "a file-backed door keeps its users across a reboot"
    );

    // SIGUSR2: silent until the next SIGUSR2; commands time out meanwhile.
    signal(&door, Signal::SIGUSR2);
    loop {
        let id = cp.session.submit(Command::Poll).unwrap();
        let mut failed = false;
        cp.run_until(|ev| match ev {
            Event::Reply { id: i, .. } if i == id => true,
            Event::Failed { id: i, .. } if i == id => {
                failed = true;
                true
            }
            _ => false,
        })
        .await;
        if failed {
            break;
        }
    }
    signal(&door, Signal::SIGUSR2);
    cp.run_until(|ev| matches!(ev, Event::Online { .. })).await;
    assert_eq!(cp.exchange(Command::Poll).await, Reply::Ack);
    stop(door).await;
}
