use super::*;
use crate::domain::DoorUserId;
use crate::store::{HeldRemovals, HeldUser, Tombstone};
use crate::sync::testutil::{add_user, now, profile, record_on_door};

fn key(id: &str) -> UserKey {
    UserKey::new("IDENTITY", id)
}

/// Records `id` as acknowledged on `door` with its record and face, as an apply would.
fn put_on_door(store: &Store, door: &str, id: &str, door_id: u32) -> String {
    let face = add_user(store, id);
    record_on_door(store, door, id, door_id, face);
    face.sha256_hex()
}

fn explain_one(store: &Store, id: &str) -> Explanation {
    let p = profile();
    explain(store, &key(id), &[("lobby", &p)], now(), false).unwrap()
}

#[test]
fn an_allowed_user_on_the_door_may_pass_with_the_acked_face() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let sha = put_on_door(&store, "lobby", "ann", 1);
    let e = explain_one(&store, "ann");
    let d = &e.doors[0];
    assert_eq!(d.verdict, "on the door: may pass");
    assert!(d.desired);
    assert_eq!(d.door_user_id, Some(1));
    assert_eq!(d.face_sha256.as_deref(), Some(sha.as_str()));
    assert!(d.pending_ops.is_empty());
    assert!(e.roster.as_ref().is_some_and(|r| !r.expired));
    assert!(e.revoked_locally.is_none());
}

#[test]
fn an_allowed_user_not_yet_pushed_is_pending_with_the_planned_ops() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    add_user(&store, "bob");
    let e = explain_one(&store, "bob");
    let d = &e.doors[0];
    assert!(d.desired);
    assert_eq!(d.verdict, "should be on the door but pending: upsert 1, put_face 1");
    assert_eq!(d.door_user_id, None);
    assert!(store.door_ids("lobby").unwrap().is_empty(), "explaining records no id");
}

#[test]
fn a_locally_revoked_user_is_explained_by_the_tombstone_off_and_on_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    put_on_door(&store, "lobby", "cy", 4);
    store
        .put_tombstone(&Tombstone {
            key: key("cy"),
            revoked_at: now(),
            reason: "doorsync revoke".into(),
            fingerprint: None,
            seen_faces: Default::default(),
            delete_acked_mark: None,
        })
        .unwrap();
    let e = explain_one(&store, "cy");
    let d = &e.doors[0];
    assert!(!d.desired);
    assert_eq!(
        d.verdict,
        format!(
            "still on the door until a pending delete is acknowledged: revoked locally at {} (doorsync revoke)",
            now()
        )
    );
    assert_eq!(d.pending_ops, vec!["delete 4".to_string()]);

    store.record_deleted("lobby", DoorUserId(4)).unwrap();
    let e = explain_one(&store, "cy");
    assert_eq!(
        e.doors[0].verdict,
        format!("not on the door: revoked locally at {} (doorsync revoke)", now())
    );
    assert!(e.doors[0].pending_ops.is_empty());
}

#[test]
fn expiry_denial_and_absence_are_named_in_the_planners_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    add_user(&store, "dee");
    let mut u = store.get_user(&key("dee")).unwrap().unwrap();
    u.expire_at = Some(now());
    store.put_user(&u).unwrap();
    let e = explain_one(&store, "dee");
    assert!(
        e.roster.as_ref().is_some_and(|r| r.expired),
        "expiring exactly now counts as expired"
    );
    assert_eq!(e.doors[0].verdict, format!("not on the door: expired at {}", now()));

    u.policy = Policy::Deny;
    store.put_user(&u).unwrap();
    assert_eq!(
        explain_one(&store, "dee").doors[0].verdict,
        "not on the door: policy DENY"
    );

    u.policy = Policy::Permission;
    u.expire_at = None;
    u.faces.clear();
    u.failure = Some("image too large".into());
    store.put_user(&u).unwrap();
    assert_eq!(
        explain_one(&store, "dee").doors[0].verdict,
        "not on the door: no usable face: image too large"
    );

    let e = explain_one(&store, "nobody");
    assert!(e.roster.is_none());
    assert_eq!(e.doors[0].verdict, "not on the door: not on the stored roster");
}

#[test]
fn the_json_field_names_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    put_on_door(&store, "lobby", "ann", 1);
    let v = serde_json::to_value(explain_one(&store, "ann")).unwrap();
    for field in [
        "daemon_running",
        "user",
        "now",
        "clock",
        "roster",
        "revoked_locally",
        "removal_held",
        "cloud_calls_queued",
        "doors",
    ] {
        assert!(v.get(field).is_some(), "{field}");
    }
    for field in [
        "name",
        "desired",
        "verdict",
        "capacity_users",
        "over_capacity",
        "door_user_id",
        "record_acked",
        "face_sha256",
        "written_ahead",
        "pending_ops",
        "failed",
        "last_verified_at",
        "last_error",
    ] {
        assert!(v["doors"][0].get(field).is_some(), "{field}");
    }
}

#[test]
fn a_held_removal_is_named_while_the_person_may_still_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    put_on_door(&store, "lobby", "eve", 2);
    let mut held = HeldRemovals::default();
    held.users.insert(
        key("eve").to_string(),
        HeldUser {
            key: key("eve"),
            first_seen_at: now(),
            until: now(),
        },
    );
    store.put_held_removals(&held).unwrap();
    let e = explain_one(&store, "eve");
    assert_eq!(e.removal_held.as_ref().map(|h| h.until), Some(now()));
    assert_eq!(
        e.doors[0].verdict,
        format!(
            "on the door: may pass (gone from the roster; the mass-removal guard holds the removal until {})",
            now()
        )
    );
}
