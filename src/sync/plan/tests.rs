use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn at(offset_s: i64) -> Timestamp {
    now() + SignedDuration::from_secs(offset_s)
}

fn face(n: u8) -> FaceRef {
    FaceRef {
        sha256: [n; 32],
        len_bytes: 1000 + u32::from(n),
    }
}

fn key(n: u32) -> UserKey {
    UserKey::new("IDENTITY", format!("u{n}"))
}

fn user(n: u32) -> UserEntry {
    UserEntry {
        key: key(n),
        display_name: format!("User {n}"),
        policy: Policy::Permission,
        expire_at: None,
        face: Some(face(1)),
        revoked_locally: false,
    }
}

fn record_for(u: &UserEntry, id: u32) -> DoorRecord {
    DoorRecord {
        id: DoorUserId(id),
        policy: Policy::Permission,
        expire_at: u.expire_at,
        face: u.face.unwrap(),
        display_name: u.display_name.clone(),
    }
}

/// The door already holds `u` under `id`, record and face acknowledged.
fn held(u: &UserEntry, id: u32) -> (DoorUserId, AppliedEntry) {
    (
        DoorUserId(id),
        AppliedEntry {
            key: u.key.clone(),
            record: Some(record_for(u, id)),
            face: u.face,
        },
    )
}

fn ids_of(pairs: &[(u32, u32)]) -> BTreeMap<UserKey, DoorUserId> {
    pairs.iter().map(|(k, id)| (key(*k), DoorUserId(*id))).collect()
}

fn run(users: &[UserEntry], applied: &BTreeMap<DoorUserId, AppliedEntry>, ids: &BTreeMap<UserKey, DoorUserId>) -> Plan {
    plan(now(), users, applied, ids, 100, &mut MonotonicIds { next: 50 })
}

/// A door holding user 1 under id 1 while the user now has `change` applied: the plan must only delete.
fn assert_removed(change: impl FnOnce(&mut UserEntry)) {
    let original = user(1);
    let applied = BTreeMap::from([held(&original, 1)]);
    let mut now_user = original.clone();
    change(&mut now_user);
    let p = run(&[now_user], &applied, &ids_of(&[(1, 1)]));
    assert_eq!(p.ops, vec![DoorOp::Delete(DoorUserId(1))]);
    assert!(p.assignments.is_empty());
    assert!(p.new_ids.is_empty(), "a removed user must not be given an id");
}

#[test]
fn user_expiring_exactly_now_is_removed() {
    assert_removed(|u| u.expire_at = Some(now()));
}

#[test]
fn user_expired_in_the_past_is_removed() {
    assert_removed(|u| u.expire_at = Some(at(-1)));
}

#[test]
fn denied_user_is_removed() {
    assert_removed(|u| u.policy = Policy::Deny);
}

#[test]
fn locally_revoked_user_is_removed() {
    assert_removed(|u| u.revoked_locally = true);
}

#[test]
fn user_who_lost_their_face_is_removed() {
    assert_removed(|u| u.face = None);
}

#[test]
fn user_gone_from_roster_is_removed() {
    let applied = BTreeMap::from([held(&user(1), 1)]);
    let p = run(&[], &applied, &ids_of(&[(1, 1)]));
    assert_eq!(p.ops, vec![DoorOp::Delete(DoorUserId(1))]);
}

#[test]
fn user_without_face_is_not_put_on_door() {
    let mut u = user(1);
    u.face = None;
    let p = run(&[u], &BTreeMap::new(), &BTreeMap::new());
    assert!(p.is_empty());
    assert!(p.new_ids.is_empty());
}

#[test]
fn user_expiring_one_second_later_stays() {
    let mut u = user(1);
    u.expire_at = Some(at(1));
    let applied = BTreeMap::from([held(&u, 1)]);
    assert!(run(&[u], &applied, &ids_of(&[(1, 1)])).is_empty());
}

#[test]
fn new_user_gets_upsert_then_face_with_expiry_on_record() {
    let mut u = user(1);
    u.expire_at = Some(at(3600));
    let p = run(std::slice::from_ref(&u), &BTreeMap::new(), &ids_of(&[(1, 7)]));
    assert_eq!(
        p.ops,
        vec![
            DoorOp::Upsert(record_for(&u, 7)),
            DoorOp::PutFace {
                id: DoorUserId(7),
                face: face(1)
            }
        ]
    );
    assert_eq!(p.upserts().next().unwrap().expire_at, Some(at(3600)));
}

#[test]
fn unchanged_door_gives_empty_plan() {
    let users = [user(1), user(2)];
    let applied = BTreeMap::from([held(&users[0], 1), held(&users[1], 2)]);
    let p = run(&users, &applied, &ids_of(&[(1, 1), (2, 2)]));
    assert!(p.is_empty(), "{:?}", p.ops);
    assert!(p.new_ids.is_empty());
    assert_eq!(p.counts(), OpCounts::default());
}

#[test]
fn face_change_plans_upsert_then_put_face() {
    let old = user(1);
    let applied = BTreeMap::from([held(&old, 1)]);
    let mut new = old.clone();
    new.face = Some(face(2));
    let p = run(std::slice::from_ref(&new), &applied, &ids_of(&[(1, 1)]));
    assert_eq!(
        p.ops,
        vec![
            DoorOp::Upsert(record_for(&new, 1)),
            DoorOp::PutFace {
                id: DoorUserId(1),
                face: face(2)
            }
        ]
    );
}

#[test]
fn name_change_resends_record_but_not_unchanged_face() {
    let old = user(1);
    let applied = BTreeMap::from([held(&old, 1)]);
    let mut new = old.clone();
    new.display_name = "Renamed".into();
    let p = run(std::slice::from_ref(&new), &applied, &ids_of(&[(1, 1)]));
    assert_eq!(p.ops, vec![DoorOp::Upsert(record_for(&new, 1))]);
    assert_eq!(p.faces().count(), 0, "an unchanged face is never sent again");
}

#[test]
fn crash_after_record_ack_only_resends_face() {
    let mut u = user(1);
    u.face = Some(face(2));
    let (id, mut entry) = held(&u, 1);
    entry.face = Some(face(1));
    let p = run(&[u], &BTreeMap::from([(id, entry)]), &ids_of(&[(1, 1)]));
    assert_eq!(
        p.ops,
        vec![DoorOp::PutFace {
            id: DoorUserId(1),
            face: face(2)
        }]
    );
}

#[test]
fn id_remapped_to_another_user_deletes_old_holder_first() {
    // The door holds user 2 under id 5, but the id table now gives id 5 to user 1.
    let applied = BTreeMap::from([held(&user(2), 5)]);
    let p = run(&[user(1)], &applied, &ids_of(&[(1, 5)]));
    assert_eq!(
        p.ops,
        vec![
            DoorOp::Delete(DoorUserId(5)),
            DoorOp::Upsert(record_for(&user(1), 5)),
            DoorOp::PutFace {
                id: DoorUserId(5),
                face: face(1)
            }
        ]
    );
    assert_eq!(p.key_of(DoorUserId(5)), Some(&key(1)));
}

#[test]
fn user_moved_to_new_id_is_deleted_under_old_id() {
    let applied = BTreeMap::from([held(&user(1), 3)]);
    let p = run(&[user(1)], &applied, &ids_of(&[(1, 4)]));
    assert_eq!(p.deletes().collect::<Vec<_>>(), vec![DoorUserId(3)]);
    assert_eq!(p.upserts().map(|r| r.id).collect::<Vec<_>>(), vec![DoorUserId(4)]);
}

#[test]
fn new_id_skips_ids_the_door_or_table_still_holds() {
    // Id 1 is on the door for a denied user, id 2 is in the table for someone else.
    let mut denied = user(9);
    denied.policy = Policy::Deny;
    let applied = BTreeMap::from([held(&user(9), 1)]);
    let mut alloc = MonotonicIds::default();
    let p = plan(now(), &[denied, user(1)], &applied, &ids_of(&[(8, 2)]), 10, &mut alloc);
    assert_eq!(p.new_ids, vec![(key(1), DoorUserId(3))]);
    assert_eq!(p.ops.first(), Some(&DoorOp::Delete(DoorUserId(1))));
    assert_eq!(alloc.next, 4);
}

#[test]
fn lost_id_table_reuses_the_id_the_door_holds() {
    let applied = BTreeMap::from([held(&user(1), 7)]);
    let p = run(&[user(1)], &applied, &BTreeMap::new());
    assert!(p.is_empty(), "{:?}", p.ops);
    assert_eq!(p.new_ids, vec![(key(1), DoorUserId(7))]);
}

#[test]
fn two_users_mapped_to_one_id_never_share_it() {
    let p = run(&[user(1), user(2)], &BTreeMap::new(), &ids_of(&[(1, 3), (2, 3)]));
    assert_eq!(p.assignments.len(), 2);
    assert_eq!(p.assignments.get(&DoorUserId(3)), Some(&key(1)));
    assert_eq!(p.new_ids, vec![(key(2), DoorUserId(50))]);
}

#[test]
fn duplicate_roster_entries_first_wins_regardless_of_rest() {
    let mut second = user(1);
    second.display_name = "Other".into();
    let p = run(&[user(1), second], &BTreeMap::new(), &ids_of(&[(1, 1)]));
    assert_eq!(
        p.upserts().map(|r| r.display_name.as_str()).collect::<Vec<_>>(),
        vec!["User 1"]
    );
}

#[test]
fn over_capacity_new_users_are_reported_and_get_no_id() {
    let users = [user(1), user(2), user(3), user(4)];
    let mut alloc = MonotonicIds { next: 10 };
    let p = plan(
        now(),
        &users,
        &BTreeMap::new(),
        &ids_of(&[(3, 1), (4, 2)]),
        3,
        &mut alloc,
    );
    assert_eq!(
        p.assignments.values().cloned().collect::<Vec<_>>(),
        vec![key(3), key(4), key(1)]
    );
    assert_eq!(p.over_capacity, vec![key(2)]);
    assert_eq!(p.new_ids, vec![(key(1), DoorUserId(10))]);
    assert_eq!(alloc.next, 11, "no id is burnt on a user who does not fit");
}

#[test]
fn lowered_capacity_deletes_latest_added_users() {
    let users = [user(1), user(2), user(3)];
    let applied = BTreeMap::from([held(&users[0], 1), held(&users[1], 2), held(&users[2], 3)]);
    let p = plan(
        now(),
        &users,
        &applied,
        &ids_of(&[(1, 1), (2, 2), (3, 3)]),
        2,
        &mut MonotonicIds::default(),
    );
    assert_eq!(p.ops, vec![DoorOp::Delete(DoorUserId(3))]);
    assert_eq!(p.over_capacity, vec![key(3)]);
}

#[test]
fn zero_capacity_puts_nobody_on_door() {
    let p = plan(
        now(),
        &[user(1)],
        &BTreeMap::new(),
        &BTreeMap::new(),
        0,
        &mut MonotonicIds::default(),
    );
    assert!(p.is_empty());
    assert_eq!(p.over_capacity, vec![key(1)]);
}

struct Exhausted;
impl IdAllocator for Exhausted {
    fn allocate(&mut self, _taken: &dyn Fn(DoorUserId) -> bool) -> Option<DoorUserId> {
        None
    }
}

/// A faulty allocator that ignores `taken`.
struct AlwaysOne;
impl IdAllocator for AlwaysOne {
    fn allocate(&mut self, _taken: &dyn Fn(DoorUserId) -> bool) -> Option<DoorUserId> {
        Some(DoorUserId(1))
    }
}

#[test]
fn exhausted_allocator_reports_unassigned() {
    let p = plan(
        now(),
        &[user(1)],
        &BTreeMap::new(),
        &BTreeMap::new(),
        10,
        &mut Exhausted,
    );
    assert!(p.is_empty());
    assert_eq!(p.unassigned, vec![key(1)]);
}

#[test]
fn allocator_returning_a_held_id_is_not_trusted() {
    let applied = BTreeMap::from([held(&user(9), 1)]);
    let p = plan(
        now(),
        &[user(9), user(1)],
        &applied,
        &ids_of(&[(9, 1)]),
        10,
        &mut AlwaysOne,
    );
    assert!(p.is_empty(), "user 9 must keep id 1: {:?}", p.ops);
    assert_eq!(p.unassigned, vec![key(1)]);
}

#[test]
fn monotonic_ids_skip_zero_and_taken_and_wrap() {
    let mut a = MonotonicIds { next: 0 };
    assert_eq!(a.allocate(&|id| id.0 == 1), Some(DoorUserId(2)));
    let mut a = MonotonicIds { next: u32::MAX };
    assert_eq!(a.allocate(&|_| false), Some(DoorUserId(u32::MAX)));
    assert_eq!(a.allocate(&|_| false), Some(DoorUserId(1)));
    let mut a = MonotonicIds::default();
    assert_eq!(a.allocate(&|_| true), None, "a full id space ends, not loops");
}

#[test]
fn next_expiry_is_nearest_future_expiry_of_desired_users() {
    let mut soon = user(1);
    soon.expire_at = Some(at(30));
    let mut later = user(2);
    later.expire_at = Some(at(60));
    let mut past = user(3);
    past.expire_at = Some(now());
    let mut revoked = user(4);
    revoked.expire_at = Some(at(5));
    revoked.revoked_locally = true;
    let mut faceless = user(5);
    faceless.expire_at = Some(at(6));
    faceless.face = None;
    let mut denied = user(6);
    denied.expire_at = Some(at(7));
    denied.policy = Policy::Deny;
    let users = [later, user(7), past, revoked, faceless, denied, soon];
    assert_eq!(next_expiry(now(), &users), Some(at(30)));
    assert_eq!(next_expiry(at(30), &users), Some(at(60)));
    assert_eq!(next_expiry(at(60), &users), None);
}

#[test]
fn apply_to_rejects_face_without_record_and_upsert_without_key() {
    let mut applied = BTreeMap::new();
    let put = DoorOp::PutFace {
        id: DoorUserId(1),
        face: face(1),
    };
    assert_eq!(
        apply_to(&mut applied, &put, |_| Some(key(1))),
        Err(ApplyError::FaceWithoutRecord(DoorUserId(1)))
    );
    let up = DoorOp::Upsert(record_for(&user(1), 1));
    assert_eq!(
        apply_to(&mut applied, &up, |_| None),
        Err(ApplyError::UnknownKey(DoorUserId(1)))
    );
    assert!(applied.is_empty());
}

#[test]
fn apply_to_upsert_over_other_user_drops_their_face() {
    let mut applied = BTreeMap::from([held(&user(2), 1)]);
    let up = DoorOp::Upsert(record_for(&user(1), 1));
    apply_to(&mut applied, &up, |_| Some(key(1))).unwrap();
    let e = &applied[&DoorUserId(1)];
    assert_eq!(e.key, key(1));
    assert_eq!(e.face, None);
}

#[test]
fn duplicate_roster_entry_that_revokes_wins() {
    let mut revoked = user(1);
    revoked.revoked_locally = true;
    let applied = BTreeMap::from([held(&user(1), 1)]);
    let p = run(&[user(1), revoked], &applied, &ids_of(&[(1, 1)]));
    assert_eq!(p.ops, vec![DoorOp::Delete(DoorUserId(1))]);
}

#[test]
fn plan_helpers_count_by_kind() {
    let applied = BTreeMap::from([held(&user(9), 1)]);
    let p = run(&[user(1), user(2)], &applied, &ids_of(&[(1, 2), (2, 3)]));
    assert_eq!(
        p.counts(),
        OpCounts {
            deletes: 1,
            upserts: 2,
            faces: 2
        }
    );
    assert_eq!(
        p.faces().map(|(id, _)| id).collect::<Vec<_>>(),
        vec![DoorUserId(2), DoorUserId(3)]
    );
}

#[test]
fn plan_does_not_depend_on_roster_order() {
    let users = [user(3), user(1), user(2)];
    let mut reversed = users.clone();
    reversed.reverse();
    let applied = BTreeMap::from([held(&user(9), 4)]);
    let a = run(&users, &applied, &BTreeMap::new());
    let b = run(&reversed, &applied, &BTreeMap::new());
    assert_eq!(a, b);
}

// ---- properties ----

fn arb_user() -> impl Strategy<Value = UserEntry> {
    (
        0u32..6,
        prop_oneof![Just("A".to_string()), Just("B".to_string())],
        prop_oneof![4 => Just(Policy::Permission), 1 => Just(Policy::Deny)],
        prop_oneof![Just(None), (-2i64..3).prop_map(|s| Some(at(s * 10)))],
        proptest::option::weighted(0.8, (0u8..3).prop_map(face)),
        proptest::bool::weighted(0.15),
    )
        .prop_map(
            |(k, display_name, policy, expire_at, face, revoked_locally)| UserEntry {
                key: key(k),
                display_name,
                policy,
                expire_at,
                face,
                revoked_locally,
            },
        )
}

fn arb_applied() -> impl Strategy<Value = BTreeMap<DoorUserId, AppliedEntry>> {
    proptest::collection::btree_map(
        (1u32..10).prop_map(DoorUserId),
        (
            arb_user(),
            proptest::option::of(1u32..10),
            proptest::option::of((0u8..3).prop_map(face)),
        ),
        0..6,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(id, (u, rec_id, f))| {
                // Records with any id/contents, including ones that match desired exactly.
                let record = rec_id.map(|r| DoorRecord {
                    id: DoorUserId(r),
                    policy: u.policy,
                    expire_at: u.expire_at,
                    face: u.face.unwrap_or(face(0)),
                    display_name: u.display_name.clone(),
                });
                (
                    id,
                    AppliedEntry {
                        key: u.key,
                        record,
                        face: f,
                    },
                )
            })
            .collect()
    })
}

fn arb_ids() -> impl Strategy<Value = BTreeMap<UserKey, DoorUserId>> {
    proptest::collection::btree_map((0u32..6).prop_map(key), (1u32..12).prop_map(DoorUserId), 0..6)
}

fn apply_all(applied: &mut BTreeMap<DoorUserId, AppliedEntry>, p: &Plan) {
    for op in &p.ops {
        let id = match op {
            DoorOp::Delete(id) | DoorOp::PutFace { id, .. } => *id,
            DoorOp::Upsert(r) => r.id,
        };
        apply_to(applied, op, |id| p.key_of(id).cloned()).unwrap_or_else(|e| panic!("{e} ({id})"));
    }
}

proptest! {
    #[test]
    fn applying_a_plan_converges_and_replanning_is_empty(
        users in proptest::collection::vec(arb_user(), 0..8),
        applied in arb_applied(),
        ids in arb_ids(),
        capacity in 0u32..6,
        next in 0u32..12,
    ) {
        let initial = applied.clone();
        let p = plan(now(), &users, &applied, &ids, capacity, &mut MonotonicIds { next });

        // Deletes first, then upserts, then faces.
        let rank = |op: &DoorOp| match op { DoorOp::Delete(_) => 0, DoorOp::Upsert(_) => 1, DoorOp::PutFace { .. } => 2 };
        prop_assert!(p.ops.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])), "out of order: {:?}", p.ops);

        // Never put an undesired user on the door; never re-send a face the door holds for that user.
        for (id, k) in &p.assignments {
            prop_assert!(users.iter().filter(|u| &u.key == k).all(|u| is_desired(now(), u)), "{k} planned onto door {id}");
        }
        for (id, f) in p.faces() {
            let e = initial.get(&id);
            prop_assert!(!e.is_some_and(|e| Some(&e.key) == p.key_of(id) && e.face == Some(f)), "face re-sent to {id}");
        }
        // New ids never take an id the door holds for someone else.
        for (k, id) in &p.new_ids {
            prop_assert!(initial.get(id).is_none_or(|e| &e.key == k));
        }

        // Nobody who qualifies is silently dropped.
        let qualifying: BTreeSet<&UserKey> = users
            .iter()
            .filter(|u| users.iter().filter(|v| v.key == u.key).all(|v| is_desired(now(), v)))
            .map(|u| &u.key)
            .collect();
        let mut accounted: Vec<&UserKey> = p.assignments.values().chain(&p.over_capacity).chain(&p.unassigned).collect();
        accounted.sort();
        prop_assert_eq!(accounted, qualifying.into_iter().collect::<Vec<_>>());

        let mut door = applied;
        apply_all(&mut door, &p);
        prop_assert!(door.len() <= capacity as usize);

        // The door now holds exactly the desired state.
        let desired = desired_records(now(), &users, &initial, &ids, capacity, &mut MonotonicIds { next });
        let expected: BTreeMap<DoorUserId, AppliedEntry> = desired.users.into_iter().map(|(id, d)| {
            (id, AppliedEntry { key: d.key, face: Some(d.record.face), record: Some(d.record) })
        }).collect();
        prop_assert_eq!(&door, &expected);

        // Replanning against the new state with the recorded ids changes nothing.
        let mut ids2 = ids.clone();
        ids2.extend(p.new_ids.iter().cloned());
        let again = plan(now(), &users, &door, &ids2, capacity, &mut MonotonicIds { next });
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again.ops);
        prop_assert!(again.new_ids.is_empty());
        prop_assert_eq!(again.over_capacity, p.over_capacity);
    }

    #[test]
    fn after_deletes_door_holds_only_desired_within_capacity(
        users in proptest::collection::vec(arb_user(), 0..8),
        applied in arb_applied(),
        ids in arb_ids(),
        capacity in 0u32..6,
    ) {
        let p = plan(now(), &users, &applied, &ids, capacity, &mut MonotonicIds::default());
        let mut door = applied;
        for id in p.deletes() {
            apply_to(&mut door, &DoorOp::Delete(id), |_| None).unwrap();
        }
        prop_assert!(door.len() <= capacity as usize);
        for (id, e) in &door {
            prop_assert_eq!(p.key_of(*id), Some(&e.key), "stale holder left on door at {}", id);
        }
        // Upserts from here on only ever add users the plan keeps, so the count stays within capacity.
        for op in p.ops.iter().filter(|op| !matches!(op, DoorOp::Delete(_))) {
            apply_to(&mut door, op, |id| p.key_of(id).cloned()).unwrap();
            prop_assert!(door.len() <= capacity as usize);
        }
    }

    #[test]
    fn expired_users_are_never_kept(users in proptest::collection::vec(arb_user(), 0..8), offset in -30i64..30) {
        let t = at(offset);
        let p = plan(t, &users, &BTreeMap::new(), &BTreeMap::new(), 100, &mut MonotonicIds::default());
        for r in p.upserts() {
            prop_assert!(r.expire_at.is_none_or(|e| e > t));
            prop_assert_eq!(r.policy, Policy::Permission);
        }
        if let Some(e) = next_expiry(t, &users) {
            prop_assert!(e > t);
        }
    }
}
