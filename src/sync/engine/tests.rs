//! Engine behaviour against in-memory doors and a scripted cloud, with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;

use super::*;
use crate::clock::ManualClock;
use crate::domain::UserKey;
use crate::door::memory::{DoorCall, MemoryDoor};
use crate::store::Store;
use crate::sync::testutil::{FakeCloud, engine_doors, memory_door, now};

struct Rig {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    cloud: Arc<FakeCloud>,
    clock: Arc<ManualClock>,
    doors: Vec<Arc<MemoryDoor>>,
}

fn rig(users: usize, doors: usize) -> Rig {
    rig_with(users, doors, EngineSettings::default())
}

fn rig_with(users: usize, doors: usize, settings: EngineSettings) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cloud = Arc::new(FakeCloud::with_users(users));
    let clock = Arc::new(ManualClock::new(now()));
    let memory: Vec<Arc<MemoryDoor>> = (0..doors).map(|_| Arc::new(memory_door())).collect();
    let engine_doors = engine_doors(&memory);
    let engine = Engine::new(store, cloud.clone(), clock.clone(), engine_doors, settings);
    Rig {
        _dir: dir,
        engine: Arc::new(engine),
        cloud,
        clock,
        doors: memory,
    }
}

fn key(id: &str) -> UserKey {
    UserKey::new("IDENTITY", id)
}

fn quiet(_: Progress) {}

/// The door ids holding `id`, per the agent's record.
fn id_of(engine: &Engine, door: &str, id: &str) -> DoorUserIdOpt {
    engine.store().door_ids(door).unwrap().get(&key(id)).copied()
}

type DoorUserIdOpt = Option<crate::domain::DoorUserId>;

#[tokio::test]
async fn a_pass_fills_every_door_and_a_second_pass_sends_nothing() {
    let r = rig(5, 2);
    let first = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(first.converged, "{first:?}");
    for d in &r.doors {
        assert_eq!(d.user_ids().len(), 5);
    }
    let bytes: Vec<u64> = r.doors.iter().map(|d| d.image_bytes_received()).collect();
    let second = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(second.converged);
    assert_eq!(second.pull.as_ref().unwrap().images_downloaded, 0);
    for (d, before) in r.doors.iter().zip(bytes) {
        assert_eq!(d.image_bytes_received(), before, "no image byte is sent twice");
    }
    assert!(second.doors.iter().all(|d| d.apply == ApplyReport::default()));
}

#[tokio::test]
async fn a_cloud_outage_keeps_the_cached_users_and_still_removes_the_expired_one() {
    let r = rig(3, 1);
    r.cloud.add("temp", Some(now() + SignedDuration::from_secs(60)));
    assert!(r.engine.pass(&PassOptions::default(), &quiet).await.unwrap().converged);
    assert_eq!(r.doors[0].user_ids().len(), 4);
    r.cloud.set_down(true);
    r.clock.advance(SignedDuration::from_secs(61));
    let pass = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(
        pass.pull_error
            .as_deref()
            .is_some_and(|e| e.contains("connection refused"))
    );
    assert!(pass.converged, "doors converge to the cached state: {pass:?}");
    assert_eq!(pass.removed_at_once, 1);
    let held = r.doors[0].user_ids();
    assert_eq!(held.len(), 3, "the three permanent users stay; the expired one is gone");
    assert!(id_of(&r.engine, "door0", "temp").is_none_or(|id| !held.contains(&id)));
}

#[tokio::test]
async fn the_expiry_deadline_comes_from_the_store_and_removal_records_its_latency() {
    let r = rig(1, 1);
    let at = now() + SignedDuration::from_secs(30);
    r.cloud.add("temp", Some(at));
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert_eq!(r.engine.next_expiry().unwrap(), Some(at));
    r.clock.set(at + SignedDuration::from_millis(250));
    let removals = r.engine.remove_undesired(RemovalCause::Expired, at).await.unwrap();
    assert_eq!(removals[0].removed, vec![key("temp")]);
    assert_eq!(removals[0].latency_ms, Some(250));
    assert_eq!(
        r.engine.store().door_status("door0").unwrap().last_expiry_latency_ms,
        Some(250)
    );
    assert_eq!(r.engine.next_expiry().unwrap(), None);
}

// Paused time: each face takes 100 ms of tokio time on the door, and tokio time only moves when every
// task waits, so the revocation below runs while the second face is in flight however loaded the machine.
#[tokio::test(start_paused = true)]
async fn a_revocation_during_a_slow_transfer_reaches_the_door_before_the_transfer_ends() {
    let r = rig(6, 1);
    let door = r.doors[0].clone();
    door.set_face_delay(Duration::from_millis(100));
    r.engine.pull(false).await.unwrap();
    let engine = r.engine.clone();
    let transfer = tokio::spawn(async move { engine.sync_door("door0", false, &quiet).await.unwrap() });
    // Wait for the first face to land, then revoke its owner while the rest are still in flight.
    while !door.calls().iter().any(|c| matches!(c, DoorCall::PutFace(_))) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_face = door
        .calls()
        .iter()
        .find_map(|c| match c {
            DoorCall::PutFace(id) => Some(*id),
            _ => None,
        })
        .unwrap();
    let owner = r
        .engine
        .store()
        .applied("door0")
        .unwrap()
        .get(&first_face)
        .unwrap()
        .key
        .clone();
    let revoked = r.engine.revoke(&owner, "test").await.unwrap();
    assert!(revoked.all_doors_reached);
    let report = transfer.await.unwrap();
    assert!(report.converged, "{report:?}");
    let calls = door.calls();
    let delete_at = calls
        .iter()
        .position(|c| matches!(c, DoorCall::Delete(ids) if ids.contains(&first_face)))
        .expect("the revoked user was deleted");
    let last_face_at = calls.iter().rposition(|c| matches!(c, DoorCall::PutFace(_))).unwrap();
    assert!(
        delete_at < last_face_at,
        "delete must not wait for the transfer: {calls:?}"
    );
    assert!(!door.user_ids().contains(&first_face));
    assert_eq!(door.user_ids().len(), 5);
    assert_eq!(r.engine.store().outbox_len(), 1, "the cloud delete is queued");
}

#[tokio::test]
async fn force_refresh_repairs_a_reset_door_without_clearing_it_and_reports_what_changed() {
    let r = rig(4, 1);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    r.doors[0].factory_reset();
    let options = PassOptions {
        force_refresh: true,
        ..Default::default()
    };
    let pass = r.engine.pass(&options, &quiet).await.unwrap();
    assert!(pass.converged, "{pass:?}");
    let door = &pass.doors[0];
    assert_eq!(door.verify.as_ref().map(|v| v.missing), Some(4));
    assert_eq!((door.apply.upserted, door.apply.faces_sent), (4, 4));
    assert_eq!(door.confirmed, Some(true));
    assert_eq!(
        pass.pull.as_ref().unwrap().images_downloaded,
        4,
        "force refresh re-downloads"
    );
    assert!(!r.doors[0].calls().contains(&DoorCall::Clear));
    assert_eq!(r.doors[0].user_ids().len(), 4);
}

#[tokio::test]
async fn an_offline_door_gets_its_deletes_first_when_it_returns() {
    let r = rig(3, 1);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    let door = &r.doors[0];
    door.set_offline(true);
    r.engine.revoke(&key("u1"), "test").await.unwrap();
    r.cloud.add("u9", None);
    let offline = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(!offline.converged);
    assert!(offline.doors[0].apply.pending > 0);
    let before = door.calls().len();
    door.set_offline(false);
    let back = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(back.converged, "{back:?}");
    let replay = &door.calls()[before..];
    assert!(
        matches!(replay.first(), Some(DoorCall::Delete(_))),
        "deletes first: {replay:?}"
    );
    assert_eq!(door.user_ids().len(), 3, "u2, u3, u9");
}

#[tokio::test]
async fn the_outbox_sends_in_order_and_waits_behind_the_first_call_that_cannot_go_yet() {
    let r = rig(3, 1);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    r.cloud.set_down(true);
    r.engine.revoke(&key("u1"), "test").await.unwrap();
    let queued = r.engine.modify_user("u2", Some("New Name"), None).await.unwrap();
    assert!(queued.queued && !queued.sent);
    r.engine.revoke(&key("u3"), "test").await.unwrap();
    let stuck = r.engine.flush_outbox().await.unwrap();
    assert_eq!((stuck.sent, stuck.remaining), (0, 3));
    assert!(stuck.error.is_some());
    r.cloud.set_down(false);
    let flushed = r.engine.flush_outbox().await.unwrap();
    assert_eq!((flushed.sent, flushed.remaining), (3, 0));
    assert_eq!(
        r.cloud.calls(),
        vec!["delete:IDENTITY:u1", "modify:u2", "delete:IDENTITY:u3"]
    );
}

#[tokio::test]
async fn a_call_the_cloud_refuses_for_good_is_dropped_and_does_not_block_the_queue() {
    let r = rig(1, 1);
    r.cloud.state.lock().unwrap().refuse_modify.push("bad".into());
    let refused = r.engine.modify_user("bad", Some("x"), None).await.unwrap();
    assert!(!refused.sent && !refused.queued);
    assert!(refused.error.as_deref().is_some_and(|e| e.contains("460")));
    let ok = r.engine.modify_user("good", Some("y"), None).await.unwrap();
    assert!(ok.sent);
    assert_eq!(r.cloud.calls(), vec!["modify:good"]);
}

#[tokio::test]
async fn a_user_the_roster_drops_leaves_every_door_at_once() {
    let r = rig(3, 2);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    r.cloud.remove("u2");
    r.clock.advance(SignedDuration::from_millis(5));
    let (pulled, removals) = r.engine.pull(false).await.unwrap();
    assert!(pulled.changed);
    assert_eq!(removals.len(), 2);
    for (removal, door) in removals.iter().zip(&r.doors) {
        assert_eq!(removal.removed, vec![key("u2")]);
        assert_eq!(door.user_ids().len(), 2);
    }
    let status = r.engine.store().door_status("door1").unwrap();
    assert_eq!(
        status.last_revocation_latency_ms,
        Some(0),
        "manual clock: no time passed in the delete"
    );
}

#[tokio::test]
async fn most_users_gone_stops_the_purge_and_the_doors_keep_everyone() {
    let r = rig(6, 1);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    {
        let mut s = r.cloud.state.lock().unwrap();
        for i in 1..=5 {
            s.gone.insert(key(&format!("u{i}")));
        }
    }
    let pass = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(pass.mass_user_gone, "{pass:?}");
    assert_eq!(r.doors[0].user_ids().len(), 6, "nobody is wiped");
    // One user gone on its own is purged.
    r.cloud.state.lock().unwrap().gone = [key("u6")].into_iter().collect();
    let pass = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(!pass.mass_user_gone && pass.converged, "{pass:?}");
    assert_eq!(r.doors[0].user_ids().len(), 5);
}

#[tokio::test]
async fn an_unknown_door_name_is_an_error_naming_it() {
    let r = rig(1, 1);
    let options = PassOptions {
        door: Some("garage".into()),
        ..Default::default()
    };
    let err = r.engine.pass(&options, &quiet).await.unwrap_err();
    assert!(err.to_string().contains("garage"));
}

mod revocation;
mod streaming;
/// Gives cloud user `id` a new face (a new faceId and image), as a re-enrolment does.
fn change_face(cloud: &FakeCloud, id: &str, version: u32) {
    let mut s = cloud.state.lock().unwrap();
    let u = s.users.iter_mut().find(|u| u.key.user_id == id).unwrap();
    u.face_id = Some(format!("face-{id}-v{version}"));
    u.image = crate::cloud::ImageSource::Inline(crate::cloud::sim::face_jpeg(&format!("{id}-v{version}")));
}

/// The sha256 of each face file in the store.
fn face_files(engine: &Engine) -> std::collections::BTreeSet<String> {
    let root = engine.store().path().join("faces");
    let mut out = std::collections::BTreeSet::new();
    for sub in std::fs::read_dir(root).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            out.insert(name.trim_end_matches(".jpg").to_string());
        }
    }
    out
}

#[tokio::test]
async fn after_every_face_changed_twice_the_store_holds_only_the_current_faces() {
    let r = rig(4, 1);
    assert!(r.engine.pass(&PassOptions::default(), &quiet).await.unwrap().converged);
    for version in [2, 3] {
        for i in 1..=4 {
            change_face(&r.cloud, &format!("u{i}"), version);
        }
        let pass = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
        assert!(pass.converged, "{pass:?}");
        assert_eq!(pass.pull.unwrap().images_downloaded, 4);
    }
    let current: std::collections::BTreeSet<String> = r
        .engine
        .store()
        .users()
        .unwrap()
        .0
        .iter()
        .flat_map(|u| u.faces.values().map(|f| f.sha256_hex()))
        .collect();
    assert_eq!(current.len(), 4);
    assert_eq!(face_files(&r.engine), current);
    let status = crate::sync::status::collect(r.engine.store(), &["door0"], false).unwrap();
    let bytes: u64 = r
        .engine
        .store()
        .users()
        .unwrap()
        .0
        .iter()
        .flat_map(|u| u.faces.values().map(|f| u64::from(f.len_bytes)))
        .sum();
    assert_eq!((status.faces_stored, status.faces_bytes_on_disk), (4, bytes));
}

#[tokio::test]
async fn a_lost_face_file_leaves_its_user_pending_until_the_next_pull_fetches_it_again() {
    let r = rig(3, 1);
    r.engine.pull(false).await.unwrap();
    let u1 = r.engine.store().get_user(&key("u1")).unwrap().unwrap();
    let face = *u1.faces.values().next().unwrap();
    let hex = face.sha256_hex();
    std::fs::remove_file(
        r.engine
            .store()
            .path()
            .join("faces")
            .join(&hex[..2])
            .join(format!("{hex}.jpg")),
    )
    .unwrap();

    let sync = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert_eq!(sync.apply.pending, 1, "{sync:?}");
    assert!(sync.apply.failed.is_empty(), "pending, not failed: {sync:?}");
    assert!(!sync.converged);
    let id = id_of(&r.engine, "door0", "u1").unwrap();
    assert_eq!(r.doors[0].snapshot().face_jpeg(id), None, "no wrong bytes sent");

    let pass = r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert_eq!(pass.pull.as_ref().unwrap().images_downloaded, 1, "{pass:?}");
    assert!(pass.converged, "{pass:?}");
    let sent = r.doors[0]
        .snapshot()
        .face_jpeg(id)
        .map(|j| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(j)));
    assert_eq!(sent.as_deref(), Some(hex.as_str()));
}
