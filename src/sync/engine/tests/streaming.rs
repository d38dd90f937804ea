//! The pass split: roster removals reach the doors before any detail call is answered, and one user's
//! detail change (DENY) reaches them while other users' details are still outstanding, and the roster
//! is walked again while a long detail phase runs.

use super::*;
use crate::domain::Policy;

/// Waits (on paused time) until `done` holds; the bound only guards against a hang.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

fn holds(door: &MemoryDoor, engine: &Engine, id: &str) -> bool {
    id_of(engine, "door0", id).is_some_and(|i| door.user_ids().contains(&i))
}

#[tokio::test(start_paused = true)]
async fn a_roster_removal_reaches_the_doors_before_any_detail_call_is_answered() {
    let r = rig(4, 2);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    r.cloud.remove("u2");
    r.cloud.block_details();
    r.cloud.state.lock().unwrap().answered.clear();
    let engine = r.engine.clone();
    let pull = tokio::spawn(async move { engine.pull(false).await });
    until(|| r.doors.iter().all(|d| d.user_ids().len() == 3)).await;
    assert!(
        r.cloud.state.lock().unwrap().answered.is_empty(),
        "the removal went out before any detail call was answered"
    );
    assert!(!pull.is_finished());
    r.cloud.release(None);
    let (report, removals) = pull.await.unwrap().unwrap();
    assert!(report.changed);
    assert_eq!(report.removed_implicitly, 1);
    assert_eq!(removals.len(), 2, "{removals:?}");
    assert!(removals.iter().all(|r| r.removed == vec![key("u2")]));
}

#[tokio::test(start_paused = true)]
async fn a_deny_reaches_the_door_while_other_users_details_are_outstanding() {
    let r = rig(4, 1);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    assert!(holds(&r.doors[0], &r.engine, "u3"));
    {
        let mut s = r.cloud.state.lock().unwrap();
        if let Some(u) = s.users.iter_mut().find(|u| u.key == key("u3")) {
            u.policy = Policy::Deny;
        }
    }
    r.cloud.block_details();
    r.cloud.state.lock().unwrap().answered.clear();
    r.cloud.release(Some("u3"));
    let engine = r.engine.clone();
    let pull = tokio::spawn(async move { engine.pull(false).await });
    until(|| !holds(&r.doors[0], &r.engine, "u3")).await;
    assert_eq!(
        r.cloud.state.lock().unwrap().answered,
        vec![key("u3")],
        "only the denied user's details were in"
    );
    assert!(!pull.is_finished(), "the other users' details are still outstanding");
    assert_eq!(r.doors[0].user_ids().len(), 3);
    r.cloud.release(None);
    let (report, removals) = pull.await.unwrap().unwrap();
    assert!(report.changed);
    assert_eq!(
        removals.iter().map(|r| r.removed.clone()).collect::<Vec<_>>(),
        vec![vec![key("u3")]]
    );
    assert_eq!(r.doors[0].user_ids().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_pull_stuck_in_its_detail_calls_removes_nobody() {
    // The roster is complete and unchanged, the details never come: nobody leaves, nothing is lost.
    let r = rig(3, 1);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    r.cloud.block_details();
    let engine = r.engine.clone();
    let pull = tokio::spawn(async move { engine.pull(false).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(r.doors[0].user_ids().len(), 3);
    pull.abort();
    assert_eq!(r.engine.store().users().unwrap().0.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_roster_removal_during_a_long_detail_phase_goes_out_at_the_next_walk_and_stays_out() {
    let settings = EngineSettings {
        roster_interval: Some(Duration::from_secs(2)),
        ..EngineSettings::default()
    };
    let r = rig_with(4, 1, settings);
    r.engine.pass(&PassOptions::default(), &quiet).await.unwrap();
    r.cloud.block_details();
    let engine = r.engine.clone();
    let pull = tokio::spawn(async move { engine.pull(false).await });
    // The first walk of this pull still lists u2; its detail call is in flight and held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.cloud.remove("u2");
    let removed_in_cloud = tokio::time::Instant::now();
    until(|| r.doors[0].user_ids().len() == 3).await;
    assert!(
        removed_in_cloud.elapsed() <= Duration::from_secs(3),
        "off the door by the next walk: {:?}",
        removed_in_cloud.elapsed()
    );
    assert!(!pull.is_finished(), "every detail call is still held");
    // The cloud lists u2 again only for detail calls (not for a walk before this pull ends): u2's held
    // answer comes back as a full record and must not bring them back.
    r.cloud.add("u2", None);
    r.cloud.release(None);
    let (report, _) = pull.await.unwrap().unwrap();
    assert_eq!(report.removed_implicitly, 1);
    assert!(r.engine.store().get_user(&key("u2")).unwrap().is_none());
    let applied = r.engine.sync_door("door0", false, &quiet).await.unwrap();
    assert!(applied.converged);
    assert_eq!(r.doors[0].user_ids().len(), 3, "u2 stays off the door");
}
