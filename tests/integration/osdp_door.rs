//! `OsdpDoor` over a real pseudo-terminal against the simulated door (in-process, and as the
//! `doorsync simulate door` process for `door probe`): what lands on the door is checked in the
//! simulator's own database, sha256 of every face included.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use doorsync::cloud::sim::face_jpeg;
use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId, Profile};
use doorsync::door::sim::{DoorDump, FaultRates, SimDoor, SimDoorConfig};
use doorsync::door::vendor;
use doorsync::door::{Door, DoorError, FailureClass, OsdpDoor, OsdpDoorOptions};
use doorsync::serial::pty::Pty;
use doorsync::testkit::door_record;
use jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::processes::spawn_simulated_door;

/// Only guards against a hang; no assertion depends on how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn profile() -> Profile {
    builtin_profile("generic-face-v1").unwrap()
}

struct Rig {
    sim: SimDoor,
    door: Arc<OsdpDoor>,
}

/// A simulated door on a pty master, and an `OsdpDoor` that opens the slave path like a real port.
async fn rig(configure: impl FnOnce(&mut SimDoorConfig)) -> Rig {
    rig_on_line(configure, |pty| pty).await
}

/// [`rig`] with the simulated door reading and writing through `line(pty master)`.
async fn rig_on_line<S>(configure: impl FnOnce(&mut SimDoorConfig), line: impl FnOnce(Pty) -> S) -> Rig
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let pty = Pty::open().unwrap();
    let path = pty.slave_path().to_path_buf();
    let mut cfg = SimDoorConfig::new(1, profile());
    configure(&mut cfg);
    let (sim, sim_driver) = SimDoor::new(cfg, line(pty)).unwrap();
    tokio::spawn(sim_driver.run());
    let (door, driver) = OsdpDoor::open(&path, 115_200, 1, &profile(), OsdpDoorOptions::default()).unwrap();
    tokio::spawn(driver.run());
    assert!(door.wait_online(HANG_GUARD).await, "door never came online");
    Rig {
        sim,
        door: Arc::new(door),
    }
}

/// Where the test cuts the line to the door: once `cut_at` bytes have reached the door, every further
/// byte is lost (the door hears nothing, so it answers nothing) until [`LineCut::reconnect`]. The cut
/// lands at an exact byte, so what the door has when it goes silent does not depend on timing.
struct LineCut {
    cut_at: AtomicU64,
    delivered: AtomicU64,
    lost: AtomicU64,
    reconnected: AtomicBool,
}

impl LineCut {
    /// A line that is not cut (yet).
    fn whole() -> Arc<Self> {
        Arc::new(Self {
            cut_at: AtomicU64::new(u64::MAX),
            delivered: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            reconnected: AtomicBool::new(false),
        })
    }

    /// Cuts the line `bytes` after what has reached the door so far.
    fn cut_after(&self, bytes: u64) {
        self.cut_at
            .store(self.delivered.load(Ordering::SeqCst) + bytes, Ordering::SeqCst);
    }

    fn reconnect(&self) {
        self.reconnected.store(true, Ordering::SeqCst);
    }

    /// Of `got` bytes just read from the line, how many reach the door.
    fn admit(&self, got: usize) -> usize {
        let delivered = self.delivered.load(Ordering::SeqCst);
        let keep = if self.reconnected.load(Ordering::SeqCst) {
            got
        } else {
            got.min(usize::try_from(self.cut_at.load(Ordering::SeqCst).saturating_sub(delivered)).unwrap_or(usize::MAX))
        };
        self.delivered.fetch_add(keep as u64, Ordering::SeqCst);
        self.lost.fetch_add((got - keep) as u64, Ordering::SeqCst);
        keep
    }
}

/// The door's end of the line, passing bytes through a [`LineCut`]; the door's replies pass untouched.
struct CutLine<S> {
    inner: S,
    cut: Arc<LineCut>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CutLine<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let start = buf.filled().len();
            std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
            let got = buf.filled().len() - start;
            if got == 0 {
                return Poll::Ready(Ok(()));
            }
            let keep = self.cut.admit(got);
            buf.set_filled(start + keep);
            // Every byte read was lost: read on rather than report an end of stream.
            if keep > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CutLine<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Person {
    record: DoorRecord,
    jpeg: Bytes,
}

fn person(id: u32) -> Person {
    let jpeg = face_jpeg(&format!("door-link-{id}"));
    let record = DoorRecord {
        expire_at: Some(Timestamp::from_second(1_900_000_000).unwrap()),
        ..door_record(id, &jpeg, &format!("Person {id}"))
    };
    Person {
        record,
        jpeg: Bytes::from(jpeg),
    }
}

/// Pushes every person's record, then each face, as a sync pass does.
async fn push(door: &OsdpDoor, people: &[Person]) {
    let records: Vec<DoorRecord> = people.iter().map(|p| p.record.clone()).collect();
    door.upsert_users(&records).await.unwrap();
    for p in people {
        door.put_face(p.record.id, p.record.face, p.jpeg.clone()).await.unwrap();
    }
}

/// Retries what a sync pass would retry (transient errors), as the engine does on its next pass.
async fn until_ok<F, Fut>(mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), DoorError>>,
{
    for _ in 0..30 {
        match op().await {
            Ok(()) => return,
            Err(e) if e.class().stops_pass() && e.class() != FailureClass::DoorMisconfigured => continue,
            Err(e) => panic!("permanent door error: {e}"),
        }
    }
    panic!("no success after 30 attempts");
}

/// The door holds exactly `people`, each with the face that was sent (by sha256 and length).
fn assert_holds(dump: &DoorDump, people: &[&Person]) {
    let ids: Vec<u32> = dump.users.iter().map(|u| u.id).collect();
    let want: Vec<u32> = people.iter().map(|p| p.record.id.0).collect();
    assert_eq!(ids, want);
    for p in people {
        let user = dump.user(p.record.id.0).unwrap();
        let face = user.face.as_ref().expect("face enrolled");
        assert_eq!(face.sha256, hex::encode(vendor::sha256(&p.jpeg)));
        assert_eq!(face.len_bytes as usize, p.jpeg.len());
        assert_eq!(user.display_name, p.record.display_name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_users_and_faces_land_on_the_simulated_door_and_deletes_remove_them() {
    let rig = rig(|_| {}).await;
    let people: Vec<Person> = (1..=6).map(person).collect();
    tokio::time::timeout(HANG_GUARD, async {
        push(&rig.door, &people).await;
        rig.door.delete_users(&[DoorUserId(2), DoorUserId(5)]).await.unwrap();
    })
    .await
    .unwrap();
    let dump = rig.sim.dump();
    assert_holds(&dump, &[&people[0], &people[2], &people[3], &people[5]]);
    let digest = rig.door.digest().await.unwrap();
    assert_eq!(hex::encode(digest.digest), dump.digest);
    assert_eq!(
        rig.door.stats().fragment_bytes,
        1023 - 8 - 11,
        "largest fragment the door's buffer allows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_that_answers_queries_only_on_later_polls_is_understood() {
    // As a LibOSDP-based PD must: ACK the query, deliver the osdp_MFGREP as the reply to a later POLL.
    let rig = rig(|cfg| cfg.deferred_replies = true).await;
    let people: Vec<Person> = (1..=3).map(person).collect();
    tokio::time::timeout(HANG_GUARD, push(&rig.door, &people))
        .await
        .unwrap();
    let dump = rig.sim.dump();
    assert_holds(&dump, &[&people[0], &people[1], &people[2]]);
    assert_eq!(hex::encode(rig.door.digest().await.unwrap().digest), dump.digest);
    assert!(rig.sim.counters().deferred_reports >= 3, "replies really came on polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_issued_mid_transfer_reaches_the_door_before_the_face_file_completes() {
    // Paced to 115200 baud: a face file takes seconds on the line, as on RS-485.
    let rig = rig(|cfg| cfg.baud = Some(115_200)).await;
    let (owner, revoked) = (person(1), person(2));
    rig.door
        .upsert_users(&[owner.record.clone(), revoked.record.clone()])
        .await
        .unwrap();
    let door = rig.door.clone();
    let (id, face, jpeg) = (owner.record.id, owner.record.face, owner.jpeg.clone());
    let push = tokio::spawn(async move { door.put_face(id, face, jpeg).await });
    tokio::time::timeout(HANG_GUARD, async {
        while rig.sim.counters().file_payload_bytes < 3000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    rig.door.delete_users(&[revoked.record.id]).await.unwrap();
    assert!(!push.is_finished(), "the delete did not wait for the face file");
    tokio::time::timeout(HANG_GUARD, push).await.unwrap().unwrap().unwrap();
    let c = rig.sim.counters();
    assert!(c.last_delete_at.unwrap() < c.last_face_file_at.unwrap());
    assert_holds(&rig.sim.dump(), &[&owner]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_transfer_resumes_where_it_stopped_after_the_door_goes_silent() {
    let cut = LineCut::whole();
    let line = {
        let cut = cut.clone();
        move |pty| CutLine { inner: pty, cut }
    };
    let rig = rig_on_line(|cfg| cfg.baud = Some(115_200), line).await;
    let p = person(1);
    let file_len = (p.jpeg.len() + vendor::FACE_FILE_HEADER_BYTES) as u64;
    const CUT_AFTER_BYTES: u64 = 5000;
    assert!(file_len > 2 * CUT_AFTER_BYTES, "the cut falls inside the face file");
    rig.door.upsert_users(std::slice::from_ref(&p.record)).await.unwrap();
    // The door goes silent once 5000 more bytes reached it: fewer than the face file, whatever the
    // timing, so the file is unfinished when it does.
    cut.cut_after(CUT_AFTER_BYTES);
    let door = rig.door.clone();
    let (id, face, jpeg) = (p.record.id, p.record.face, p.jpeg.clone());
    let retries_before = rig.door.stats().retries;
    let push = tokio::spawn(async move { door.put_face(id, face, jpeg).await });
    // Explicit synchronisation: the agent noticed the silence and resent into it.
    tokio::time::timeout(HANG_GUARD, async {
        while rig.door.stats().retries == retries_before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert!(cut.lost.load(Ordering::SeqCst) > 0, "the door missed bytes");
    assert!(
        rig.sim.counters().file_payload_bytes < file_len,
        "the face file is unfinished"
    );
    assert!(!push.is_finished(), "the transfer waits for the silent door");
    cut.reconnect();
    tokio::time::timeout(HANG_GUARD, push).await.unwrap().unwrap().unwrap();
    let sent = rig.sim.counters().file_payload_bytes;
    assert!(sent >= file_len, "{sent} of {file_len}");
    assert!(
        sent < file_len + 3 * 1004,
        "resumed, not restarted: {sent} payload bytes for a {file_len}-byte file"
    );
    assert_holds(&rig.sim.dump(), &[&p]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_line_with_a_busy_door_still_converges() {
    let rig = rig(|cfg| {
        cfg.faults = FaultRates {
            drop_rate: 0.0001,
            corrupt_rate: 0.0001,
            busy_rate: 0.05,
        };
        cfg.seed = 7;
    })
    .await;
    let people: Vec<Person> = (1..=5).map(person).collect();
    let records: Vec<DoorRecord> = people.iter().map(|p| p.record.clone()).collect();
    tokio::time::timeout(HANG_GUARD, async {
        until_ok(|| rig.door.upsert_users(&records)).await;
        for p in &people {
            until_ok(|| rig.door.put_face(p.record.id, p.record.face, p.jpeg.clone())).await;
        }
        until_ok(|| rig.door.delete_users(&[DoorUserId(3)])).await;
    })
    .await
    .unwrap();
    let c = rig.sim.counters();
    // ~23 damaged bytes are expected; BUSY answers depend on how many polls the timing produced.
    assert!(c.bytes_dropped + c.bytes_corrupted > 0, "faults were injected: {c:?}");
    assert!(rig.door.stats().retries > 0);
    assert_holds(&rig.sim.dump(), &[&people[0], &people[1], &people[3], &people[4]]);
}

/// `doorsync simulate door` on a new pty linked at `dir/door-tty`; the child and the link.
async fn start_sim_process(dir: &std::path::Path) -> (tokio::process::Child, PathBuf) {
    let link = dir.join("door-tty");
    let (child, _ready) = spawn_simulated_door(&["--pty-link".into(), link.clone().into()]).await;
    (child, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_probe_reports_identity_capabilities_and_digest_of_the_simulated_door() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, link) = start_sim_process(dir.path()).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["door", "probe", "--json", "--port"])
        .arg(&link)
        .output();
    let out = tokio::time::timeout(HANG_GUARD, out).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["online"], true);
    assert_eq!(v["address"], 1);
    assert_eq!(v["identity"]["vendor_code"], "02:44:53");
    assert_eq!(v["identity"]["serial_number"], 0x4453_0001);
    assert_eq!(v["identity"]["firmware"], "1.0.0");
    assert_eq!(v["receive_buffer_bytes"], 1024);
    assert_eq!(v["max_fragment_bytes"], 1004);
    let caps = v["capabilities"].as_array().unwrap();
    assert!(
        caps.iter()
            .any(|c| c["function"] == 10 && c["name"] == "receive buffer size")
    );
    assert_eq!(v["vendor_extension"]["user_count"], 0);
    assert_eq!(v["vendor_extension"]["protocol_version"], 1);
    assert_eq!(v["vendor_extension"]["digest"], hex::encode(vendor::sha256(b"")));

    let text = tokio::process::Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["door", "probe", "--port"])
        .arg(&link)
        .output();
    let text = tokio::time::timeout(HANG_GUARD, text).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success());
    assert!(
        stdout.contains("online") && stdout.contains("serial number") && stdout.contains("users 0"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_probe_on_a_port_nobody_answers_names_port_address_and_baud() {
    let pty = Pty::open().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args([
            "door",
            "probe",
            "--timeout",
            "1s",
            "--address",
            "5",
            "--baud",
            "38400",
            "--port",
        ])
        .arg(pty.slave_path())
        .output();
    let out = tokio::time::timeout(HANG_GUARD, out).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let port = pty.slave_path().display().to_string();
    assert!(
        stderr.contains(&port) && stderr.contains("address 5") && stderr.contains("38400 baud"),
        "{stderr}"
    );
    drop(pty);
}
