//! The daemon's invariants (docs/ARCHITECTURE.md §3), in-process with real parts: the fake cloud on 127.0.0.1,
//! sled in a temp dir, the control socket, in-memory doors.

use std::time::Duration;

use doorsync::agent::clock::TokioClock;
use doorsync::agent::control::Request;
use doorsync::agent::{self, AgentError, DaemonEvent};
use doorsync::clock::Clock as _;
use doorsync::cloud::sim::{Fault, SimCloud, SimConfig};
use doorsync::cloud::wire;
use doorsync::domain::{Policy, Secret, UserKey};
use doorsync::door::memory::DoorCall;
use doorsync::store::Store;
use doorsync::sync::engine::{RemovalCause, RevokeReport};
use doorsync::sync::status::StatusReport;
use jiff::{SignedDuration, Timestamp};

use crate::harness::{
    self, HANG_GUARD, KEY, Options, SECRET, converged, memory_door, name_of, names_on, sim, until, wait_for,
};

fn key(id: &str) -> UserKey {
    UserKey::new("IDENTITY", id)
}

async fn revoke(d: &harness::Running, id: &str) -> RevokeReport {
    serde_json::from_value(d.request(Request::Revoke { key: key(id) }).await.unwrap()).unwrap()
}

#[tokio::test]
async fn after_a_pass_no_door_holds_anyone_the_cloud_no_longer_grants() {
    let sim = sim(10).await;
    let (_dir, door, d) = harness::settled(&sim).await;
    assert_eq!(door.user_ids().len(), 10);
    let revoked_names: Vec<String> = ["u-0002", "u-0003", "u-0004", "u-0005"]
        .iter()
        .map(|u| name_of(&sim, u))
        .collect();
    sim.remove_from_roster("u-0002");
    sim.set_policy("u-0003", Policy::Deny);
    sim.set_status("u-0004", Some("transferDeleted"));
    sim.set_expire("u-0005", Some(Timestamp::now() - SignedDuration::from_secs(60)));
    let pass = d.sync(false).await;
    assert!(pass.converged, "{pass:?}");
    assert_eq!(
        pass.removed_at_once, 4,
        "removed right after the pull, before any upload"
    );
    let held = names_on(&door);
    assert_eq!(held.len(), 6);
    for name in &revoked_names {
        assert!(!held.contains(name), "{name} still on the door: {held:?}");
    }
    d.stop().await;
}

/// How far after the test's start the user expires: more than the hang guards of the start-up.
const EXPIRY_MARGIN: Duration = Duration::from_secs(600);

#[tokio::test]
async fn an_expired_user_leaves_the_door_within_a_second_with_the_cloud_stopped() {
    let sim = sim(3).await;
    let clock = std::sync::Arc::new(TokioClock::new(Timestamp::now()));
    // The start-up below runs in real time (HTTP to the fake cloud), bounded by HANG_GUARD per step;
    // the expiry lies well beyond all of them, so however slow the machine, it comes after the door
    // was filled, and paused time then reaches it at no cost. Whole seconds: the cloud's
    // "yyyy-MM-dd HH:mm:ss" carries no fraction.
    let expire_at = Timestamp::from_second(clock.now().as_second() + EXPIRY_MARGIN.as_secs() as i64).unwrap();
    sim.set_expire("u-0002", Some(expire_at));
    let leaving = name_of(&sim, "u-0002");
    let dir = tempfile::tempdir().unwrap();
    let door = memory_door();
    let options = Options {
        clock: clock.clone(),
        ..Default::default()
    };
    let mut d = harness::start(dir.path(), &sim.base_url(), door.clone(), options).await;
    d.settle().await;
    assert!(names_on(&door).contains(&leaving));
    sim.shutdown().await;
    // From here on tokio time only moves when every task sleeps: the daemon's timers decide.
    tokio::time::pause();
    assert!(clock.now() < expire_at, "start-up took longer than its hang guards");
    let removed = harness::wait_for_within(EXPIRY_MARGIN + HANG_GUARD, &mut d.events, |e| {
        matches!(
            e,
            DaemonEvent::Removed {
                cause: RemovalCause::Expired,
                ..
            }
        )
    })
    .await;
    let DaemonEvent::Removed { removal, .. } = removed else {
        unreachable!()
    };
    assert_eq!(removal.removed, vec![key("u-0002")]);
    let latency = removal.latency_ms.unwrap();
    assert!(latency <= 1000, "removed {latency} ms after expiry");
    assert!(clock.now() >= expire_at, "never before the expiry");
    assert!(!names_on(&door).contains(&leaving));
    assert_eq!(door.user_ids().len(), 2);
    tokio::time::resume();
    d.stop().await;
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.door_status("lobby").unwrap().last_expiry_latency_ms,
        Some(latency)
    );
}

#[tokio::test]
async fn a_door_that_comes_back_gets_the_missed_deletes_before_anything_else() {
    let sim = sim(4).await;
    let (_dir, door, mut d) = harness::settled(&sim).await;
    door.set_offline(true);
    let report = revoke(&d, "u-0001").await;
    assert!(!report.all_doors_reached, "the door is offline: {report:?}");
    sim.remove_from_roster("u-0002");
    sim.upsert_user(harness::granted_user(key("u-0100"), "New Comer"));
    let offline = d.sync(false).await;
    assert!(!offline.converged);
    let before = door.calls().len();
    d.fresh();
    door.set_offline(false);
    converged(&mut d.events).await;
    let replay = door.calls()[before..].to_vec();
    let first_other = replay.iter().position(|c| !matches!(c, DoorCall::Delete(_)));
    let deleted: usize = replay
        .iter()
        .take(first_other.unwrap_or(replay.len()))
        .map(|c| match c {
            DoorCall::Delete(ids) => ids.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(deleted, 2, "both missed deletes go first: {replay:?}");
    assert!(first_other.is_some(), "then the new user: {replay:?}");
    let names = names_on(&door);
    assert!(names.contains(&"New Comer".to_string()));
    assert_eq!(names.len(), 3);
    d.stop().await;
}

#[tokio::test]
async fn a_revocation_through_the_socket_reaches_the_door_before_a_slow_transfer_ends() {
    let sim = sim(12).await;
    let dir = tempfile::tempdir().unwrap();
    let door = memory_door();
    door.set_face_delay(Duration::from_millis(60));
    let mut d = harness::start(dir.path(), &sim.base_url(), door.clone(), Options::default()).await;
    // Records and faces go out as the pull's answers arrive: wait for every record and two faces.
    until(|| {
        door.user_ids().len() == 12
            && door
                .calls()
                .iter()
                .filter(|c| matches!(c, DoorCall::PutFace(_)))
                .count()
                >= 2
    })
    .await;
    assert!(door.image_bytes_received() > 0, "the transfer is under way");
    let store_ids: Vec<_> = door.user_ids();
    // Someone already fully on the door: revoke them while the other faces are still on the line.
    let db = door.snapshot();
    let victim_id = *store_ids.iter().find(|id| db.face_jpeg(**id).is_some()).unwrap();
    let victim_name = db.record(victim_id).unwrap().display_name.clone();
    let victim = sim.users().into_iter().find(|u| u.name == victim_name).unwrap().key;
    let report: RevokeReport =
        serde_json::from_value(d.request(Request::Revoke { key: victim.clone() }).await.unwrap()).unwrap();
    assert!(report.all_doors_reached);
    assert!(report.doors[0].removed.contains(&victim));
    d.fresh();
    converged(&mut d.events).await;
    let calls = door.calls();
    let deleted_at = calls
        .iter()
        .position(|c| matches!(c, DoorCall::Delete(ids) if ids.contains(&victim_id)))
        .unwrap();
    let last_face_at = calls.iter().rposition(|c| matches!(c, DoorCall::PutFace(_))).unwrap();
    assert!(
        deleted_at < last_face_at,
        "the delete waited for the transfer: {calls:?}"
    );
    assert_eq!(door.user_ids().len(), 11);
    assert!(!names_on(&door).contains(&victim_name));
    let status: StatusReport = serde_json::from_value(d.request(Request::Status).await.unwrap()).unwrap();
    assert!(status.daemon_running);
    assert!(status.doors[0].last_revocation_latency_ms.is_some());
    d.stop().await;
}

#[tokio::test]
async fn a_force_refresh_with_nothing_changed_sends_no_image_bytes() {
    let sim = sim(6).await;
    let (_dir, door, d) = harness::settled(&sim).await;
    let sent = door.image_bytes_received();
    assert!(sent > 0);
    let pass = d.sync(true).await;
    assert!(pass.converged, "{pass:?}");
    assert_eq!(
        pass.pull.as_ref().unwrap().images_downloaded,
        6,
        "every image re-pulled"
    );
    let lobby = &pass.doors[0];
    assert!(lobby.verify.as_ref().unwrap().matched, "read back and compared");
    assert_eq!(lobby.apply.image_bytes_sent, 0);
    assert_eq!(door.image_bytes_received(), sent, "no image byte reached the door");
    d.stop().await;
}

#[tokio::test]
async fn a_corrupt_image_fails_only_that_user_and_status_says_why() {
    let mut config = SimConfig::new(KEY, Secret::new(SECRET.to_vec()), 5);
    config.corrupt_image_users = vec!["u-0003".into()];
    let sim = harness::sim_with(config).await;
    let (_dir, door, d) = harness::settled(&sim).await;
    let names = names_on(&door);
    assert_eq!(names.len(), 4);
    assert!(!names.contains(&name_of(&sim, "u-0003")));
    let status: StatusReport = serde_json::from_value(d.request(Request::Status).await.unwrap()).unwrap();
    let why = status.failed.get("IDENTITY:u-0003").expect("u-0003 is failed");
    assert!(why.contains("image"), "{why}");
    assert_eq!(status.failed.len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn a_local_revocation_survives_a_stale_roster_until_the_cloud_regrants() {
    let sim = sim(4).await;
    let (_dir, door, mut d) = harness::settled(&sim).await;
    let name = name_of(&sim, "u-0002");
    // The cloud refuses the delete for now, so its roster keeps granting u-0002.
    sim.push_fault(wire::PATH_IMAGE_DELETE, Fault::ServerError, 10_000);
    revoke(&d, "u-0002").await;
    assert!(!names_on(&door).contains(&name));
    for _ in 0..2 {
        let pass = d.sync(false).await;
        assert!(pass.converged && pass.pull_error.is_none(), "{pass:?}");
        assert!(!names_on(&door).contains(&name), "a stale roster brought the user back");
    }
    sim.clear_faults(wire::PATH_IMAGE_DELETE);
    d.sync(false).await; // the cloud answers: the outbox goes out
    wait_for(
        &mut d.events,
        |e| matches!(e, DaemonEvent::OutboxFlushed { report } if report.remaining == 0),
    )
    .await;
    assert_eq!(sim.deletes(), vec![key("u-0002")]);
    d.sync(false).await;
    assert!(!names_on(&door).contains(&name));
    // A newer grant in the cloud (a new face) lifts the tombstone.
    sim.regenerate_image("u-0002");
    let pass = d.sync(false).await;
    assert_eq!(pass.pull.as_ref().unwrap().tombstones_lifted, 1, "{pass:?}");
    assert!(names_on(&door).contains(&name));
    d.stop().await;
}

#[tokio::test]
async fn queued_cloud_calls_replay_in_order_after_the_cloud_returns() {
    let first = sim(4).await;
    let addr = first.addr();
    let (_dir, door, mut d) = harness::settled(&first).await;
    first.shutdown().await;
    revoke(&d, "u-0001").await;
    let modify = Request::ModifyUser {
        identity_id: "u-0003".into(),
        name: Some("Renamed".into()),
        ext_info: Some("{\"team\":\"night\"}".into()),
    };
    let queued = d.request(modify).await.unwrap();
    assert_eq!(queued["queued"], true, "{queued}");
    revoke(&d, "u-0004").await;
    let status: StatusReport = serde_json::from_value(d.request(Request::Status).await.unwrap()).unwrap();
    assert_eq!(status.outbox_pending, 3);
    assert_eq!(door.user_ids().len(), 2, "revocations do not need the cloud");
    let back = SimCloud::start(addr, SimConfig::new(KEY, Secret::new(SECRET.to_vec()), 4))
        .await
        .unwrap();
    d.sync(false).await;
    wait_for(
        &mut d.events,
        |e| matches!(e, DaemonEvent::OutboxFlushed { report } if report.remaining == 0),
    )
    .await;
    assert_eq!(back.deletes(), vec![key("u-0001"), key("u-0004")]);
    let modifies = back.modifies();
    assert_eq!(modifies.len(), 1);
    assert_eq!(
        (modifies[0].identity_id.as_str(), modifies[0].name.as_deref()),
        ("u-0003", Some("Renamed"))
    );
    d.stop().await;
}

#[tokio::test]
async fn most_users_gone_in_one_pass_does_not_wipe_the_door() {
    let sim = sim(8).await;
    let (_dir, door, d) = harness::settled(&sim).await;
    for mut u in sim.users().into_iter().take(6) {
        u.has_face = false; // the cloud answers 2405 "identity is not existed" for them
        sim.upsert_user(u);
    }
    let pass = d.sync(false).await;
    assert!(pass.mass_user_gone, "{pass:?}");
    assert!(
        pass.pull_error
            .as_deref()
            .is_some_and(|e| e.contains("refusing to purge"))
    );
    assert_eq!(door.user_ids().len(), 8, "nobody was wiped");
    d.stop().await;
}

#[tokio::test]
async fn a_second_daemon_on_the_same_store_fails_with_a_clear_message() {
    let sim = sim(1).await;
    let dir = tempfile::tempdir().unwrap();
    let d = harness::start(dir.path(), &sim.base_url(), memory_door(), Options::default()).await;
    let err = match agent::open_store(dir.path()) {
        Err(e) => e,
        Ok(_) => panic!("a second process opened the store"),
    };
    assert!(matches!(err, AgentError::StoreInUse { .. }));
    let text = err.to_string();
    assert!(text.contains("another doorsync process holds the store"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    d.stop().await;
    tokio::time::timeout(HANG_GUARD, async {
        // Once stopped, the store is free again (and the socket gone).
        assert!(agent::open_store(dir.path()).is_ok());
    })
    .await
    .unwrap();
    assert!(!dir.path().join("doorsync.sock").exists());
}

#[tokio::test]
async fn a_door_reset_while_the_daemon_was_down_is_repaired_at_start_up_without_wiping_it() {
    let sim = sim(5).await;
    let (dir, door, d) = harness::settled(&sim).await;
    d.stop().await;
    door.factory_reset();
    let before = door.calls().len();
    let mut d = harness::start(dir.path(), &sim.base_url(), door.clone(), Options::default()).await;
    let synced = wait_for(
        &mut d.events,
        |e| matches!(e, DaemonEvent::DoorSynced { report } if report.verify.is_some()),
    )
    .await;
    let DaemonEvent::DoorSynced { report } = synced else {
        unreachable!()
    };
    assert!(report.converged, "{report:?}");
    assert_eq!(report.verify.as_ref().unwrap().missing, 5);
    assert_eq!(report.confirmed, Some(true));
    assert_eq!(door.user_ids().len(), 5);
    assert!(
        !door.calls()[before..].contains(&DoorCall::Clear),
        "repaired, not wiped"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_shutdown_during_a_transfer_leaves_the_record_equal_to_the_door() {
    let sim = sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let door = memory_door();
    door.set_face_delay(Duration::from_millis(50));
    let d = harness::start(dir.path(), &sim.base_url(), door.clone(), Options::default()).await;
    until(|| {
        door.calls()
            .iter()
            .filter(|c| matches!(c, DoorCall::PutFace(_)))
            .count()
            >= 3
    })
    .await;
    d.stop().await;
    let faces_on_door = door
        .calls()
        .iter()
        .filter(|c| matches!(c, DoorCall::PutFace(_)))
        .count();
    assert!(faces_on_door < 10, "stopped mid-transfer");
    let store = Store::open(dir.path()).unwrap();
    let applied = store.applied("lobby").unwrap();
    use doorsync::door::Door as _;
    assert_eq!(
        doorsync::door::expected_digest(&applied),
        door.digest().await.unwrap(),
        "every op the door acknowledged is recorded, and nothing else"
    );
    assert_eq!(applied.values().filter(|e| e.face.is_some()).count(), faces_on_door);
}

#[tokio::test]
async fn a_door_changed_by_hand_is_caught_by_the_hourly_verification() {
    let sim = sim(3).await;
    let dir = tempfile::tempdir().unwrap();
    let door = memory_door();
    let options = Options {
        clock: std::sync::Arc::new(TokioClock::new(Timestamp::now())),
        ..Default::default()
    };
    let mut d = harness::start(dir.path(), &sim.base_url(), door.clone(), options).await;
    d.settle().await;
    // A technician enrols a stranger on the unit by hand.
    harness::enrol_stranger(&door);
    assert_eq!(door.user_ids().len(), 4);
    tokio::time::pause();
    // Virtual time: the guard allows a little over the one-hour verify interval.
    let found = harness::wait_for_within(
        Duration::from_secs(2 * 3600),
        &mut d.events,
        |e| matches!(e, DaemonEvent::DoorSynced { report } if report.verify.as_ref().is_some_and(|v| !v.matched)),
    )
    .await;
    let DaemonEvent::DoorSynced { report } = found else {
        unreachable!()
    };
    assert_eq!(report.verify.as_ref().unwrap().unknown_deleted, 1, "{report:?}");
    assert!(!names_on(&door).contains(&"Stranger".to_string()));
    assert_eq!(door.user_ids().len(), 3);
    tokio::time::resume();
    d.stop().await;
}
