//! The async adapter over an in-memory pipe, driven by the crate's CP session.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use super::*;
use crate::osdp::{Event, FailReason, PdSession, PdState, SessionConfig};

/// Runs the CP until `done` says so or the session reports what the test waits for.
async fn drive(cp: &mut PdSession, line: &mut DuplexStream, mut done: impl FnMut(Event) -> bool) {
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if let Some(bytes) = cp.poll_transmit(now) {
            line.write_all(&bytes).await.unwrap();
        }
        while let Some(ev) = cp.poll_event() {
            if done(ev) {
                return;
            }
        }
        let wait = cp
            .poll_at()
            .map_or(Duration::from_millis(50), |t| t.saturating_duration_since(now));
        tokio::select! {
            n = line.read(&mut buf) => {
                let n = n.unwrap();
                assert_ne!(n, 0, "door closed the line");
                cp.handle_bytes(Instant::now(), &buf[..n]);
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn online(cp: &mut PdSession, line: &mut DuplexStream) {
    drive(cp, line, |ev| matches!(ev, Event::Online { .. })).await;
}

async fn submit(cp: &mut PdSession, line: &mut DuplexStream, cmd: Command) -> Result<Reply, FailReason> {
    let id = cp.submit(cmd).unwrap();
    let mut got = None;
    drive(cp, line, |ev| match ev {
        Event::Reply { id: i, reply } if i == id => {
            got = Some(Ok(reply));
            true
        }
        Event::Failed { id: i, reason } if i == id => {
            got = Some(Err(reason));
            true
        }
        _ => false,
    })
    .await;
    got.unwrap()
}

async fn exchange(cp: &mut PdSession, line: &mut DuplexStream, cmd: Command) -> Reply {
    submit(cp, line, cmd).await.unwrap()
}

#[tokio::test]
async fn sim_door_serves_a_cp_session_and_the_handle_sees_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("generic-face-v1");
    cfg.db_file = Some(dir.path().join("door.json"));
    cfg.baud = Some(115_200);
    let (door_end, mut cp_end) = tokio::io::duplex(4096);
    let (door, driver) = SimDoor::new(cfg, door_end).unwrap();
    let task = tokio::spawn(driver.run());

    let mut cp = PdSession::new(SessionConfig::new(1), Instant::now());
    online(&mut cp, &mut cp_end).await;
    assert_eq!(cp.state(), PdState::Online);
    let face = vec![0x5A; 2500];
    let records = vendor::encode_record_file(&[record(1, &face), record(2, b"two")]).unwrap();
    let face_file = vendor::encode_face_file(DoorUserId(1), &face).unwrap();
    for (ft_type, file) in [(FT_TYPE_RECORDS, &records), (FT_TYPE_FACE, &face_file)] {
        for (i, chunk) in file.chunks(900).enumerate() {
            let reply = exchange(
                &mut cp,
                &mut cp_end,
                Command::FileTransfer(FileTransfer {
                    ft_type,
                    size_total: file.len() as u32,
                    offset: (i * 900) as u32,
                    data: chunk.to_vec(),
                }),
            )
            .await;
            assert!(matches!(reply, Reply::FtStat(st) if !st.status.is_error()), "{reply:?}");
        }
    }
    let delete = MfgCommand {
        request_id: 1,
        command: VCmd::Delete(vec![DoorUserId(2)]),
    }
    .encode()
    .unwrap();
    let reply = exchange(
        &mut cp,
        &mut cp_end,
        Command::Mfg(Mfg {
            vendor_code: VENDOR,
            data: delete,
        }),
    )
    .await;
    assert_eq!(reply, Reply::Ack);

    let dump = door.dump();
    assert_eq!(dump.user_count, 1);
    assert_eq!(dump.user(1).unwrap().face.as_ref().unwrap().len_bytes, 2500);
    // The db file already says the same: it was written before the door answered.
    assert_eq!(DoorDump::read(&dir.path().join("door.json")).unwrap(), dump);
    let c = door.counters();
    assert_eq!(c.faces_applied, 1);
    assert!(c.file_payload_bytes >= (records.len() + face_file.len()) as u64);
    assert!(c.bytes_sent > 0 && c.bytes_received > c.file_payload_bytes);

    // A reboot keeps the file-backed database, and the CP finds its way back with SQN 0.
    door.reboot().unwrap();
    assert_eq!(door.snapshot().user_count(), 1);
    let first = submit(&mut cp, &mut cp_end, Command::Poll).await;
    assert_eq!(
        first,
        Err(FailReason::LinkRestarted),
        "the rebooted door NAKs the old SQN"
    );
    online(&mut cp, &mut cp_end).await;
    assert_eq!(exchange(&mut cp, &mut cp_end, Command::Poll).await, Reply::Ack);
    assert_eq!(door.counters().reboots, 1);
    door.shutdown();
    task.await.unwrap().unwrap();
}

#[test]
fn sim_door_handle_is_shareable_and_its_driver_can_be_spawned() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn spawnable<T: Send + 'static>() {}
    shareable::<SimDoor>();
    spawnable::<SimDoorDriver<DuplexStream>>();
    spawnable::<SimDoorDriver<crate::serial::pty::Pty>>();
}

#[tokio::test]
async fn faults_and_tampering_set_through_the_handle_reach_the_running_door() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("door.json");
    let mut cfg = config("generic-face-v1");
    cfg.db_file = Some(path.clone());
    cfg.seed = 3;
    let (door_end, mut cp_end) = tokio::io::duplex(4096);
    let (door, driver) = SimDoor::new(cfg, door_end).unwrap();
    let task = tokio::spawn(driver.run());
    let mut cp = PdSession::new(SessionConfig::new(1), Instant::now());
    online(&mut cp, &mut cp_end).await;

    door.set_faults(FaultRates {
        busy_rate: 0.5,
        ..FaultRates::default()
    })
    .unwrap();
    assert_eq!(door.faults().busy_rate, 0.5);
    for i in 0..6 {
        // The CP resends after osdp_BUSY; every query is answered in the end.
        let reply = exchange(&mut cp, &mut cp_end, Command::Poll).await;
        assert_eq!(reply, Reply::Ack, "poll {i}");
    }
    assert!(door.counters().busy_replies > 0);
    assert!(
        door.set_faults(FaultRates {
            drop_rate: -1.0,
            ..FaultRates::default()
        })
        .is_err()
    );
    door.set_faults(FaultRates::default()).unwrap();

    // A record slipped into the door behind the agent's back is persisted like any change.
    let records = vendor::encode_record_file(&[record(42, b"x")]).unwrap();
    let result = door.tamper(|db| db.apply_file(FT_TYPE_RECORDS, &records)).unwrap();
    assert_eq!(result, vendor::FileResult::Applied);
    assert_eq!(door.dump_json(), std::fs::read_to_string(&path).unwrap());
    assert_eq!(DoorDump::read(&path).unwrap().user(42).unwrap().display_name, "user 42");

    // A silenced door answers nothing; once resumed it answers again.
    door.silence();
    let id = cp.submit(Command::Poll).unwrap();
    drive(
        &mut cp,
        &mut cp_end,
        |ev| matches!(ev, Event::Failed { id: i, .. } if i == id),
    )
    .await;
    door.resume();
    online(&mut cp, &mut cp_end).await;
    assert!(door.counters().bytes_ignored > 0);
    door.shutdown();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn sim_door_driver_returns_when_the_stream_ends() {
    let (door_end, cp_end) = tokio::io::duplex(64);
    let (_door, driver) = SimDoor::new(config("generic-face-v1"), door_end).unwrap();
    drop(cp_end);
    driver.run().await.unwrap();
}

#[tokio::test]
async fn sim_door_refuses_bad_settings_and_a_corrupt_db_file() {
    let mut cfg = config("generic-face-v1");
    cfg.faults.drop_rate = 2.0;
    let (a, _b) = tokio::io::duplex(64);
    let err = SimDoor::new(cfg, a).unwrap_err().to_string();
    assert!(err.contains("drop rate 2"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("door.json");
    std::fs::write(&path, "{").unwrap();
    let mut cfg = config("generic-face-v1");
    cfg.db_file = Some(path.clone());
    let (a, _b) = tokio::io::duplex(64);
    let err = SimDoor::new(cfg, a).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("corrupt"),
        "{err}"
    );
}
