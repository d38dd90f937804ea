//! Unit tests: one or more per planner rule.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::domain::AppliedEntry;
use crate::held::IdTable;

pub(super) fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

pub(super) fn at(offset_s: i64) -> Timestamp {
    now() + SignedDuration::from_secs(offset_s)
}

pub(super) fn face(n: u8) -> FaceRef {
    FaceRef {
        sha256: [n; 32],
        len_bytes: 1000 + u32::from(n),
    }
}

pub(super) fn key(n: u32) -> UserKey {
    UserKey::new("IDENTITY", format!("u{n}"))
}

pub(super) fn user(n: u32) -> UserEntry {
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
fn held(u: &UserEntry, id: u32) -> (DoorUserId, Held) {
    (
        DoorUserId(id),
        Held::of(&AppliedEntry {
            key: u.key.clone(),
            record: Some(record_for(u, id)),
            face: u.face,
        }),
    )
}

fn ids_of(pairs: &[(u32, u32)]) -> IdTable {
    IdTable::from_map(&pairs.iter().map(|(k, id)| (key(*k), DoorUserId(*id))).collect())
}

fn run<'a>(users: &'a [UserEntry], applied: &BTreeMap<DoorUserId, Held>, ids: &IdTable) -> Plan<'a> {
    plan(now(), users, applied, ids, 100, &mut MonotonicIds { next: 50 })
}

/// A door holding user 1 under id 1 while the user now has `change` applied: the plan must only delete.
fn assert_removed(change: impl FnOnce(&mut UserEntry)) {
    let original = user(1);
    let applied = BTreeMap::from([held(&original, 1)]);
    let mut now_user = original.clone();
    change(&mut now_user);
    let users = [now_user];
    let p = run(&users, &applied, &ids_of(&[(1, 1)]));
    assert_eq!(p.door_ops(), vec![DoorOp::Delete(DoorUserId(1))]);
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
    let users = [];
    let p = run(&users, &applied, &ids_of(&[(1, 1)]));
    assert_eq!(p.door_ops(), vec![DoorOp::Delete(DoorUserId(1))]);
}

#[test]
fn user_without_face_is_not_put_on_door() {
    let mut u = user(1);
    u.face = None;
    let users = [u];
    let p = run(&users, &BTreeMap::new(), &IdTable::default());
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
        p.door_ops(),
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
        p.door_ops(),
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
    assert_eq!(p.door_ops(), vec![DoorOp::Upsert(record_for(&new, 1))]);
    assert_eq!(p.faces().count(), 0, "an unchanged face is never sent again");
}

#[test]
fn crash_after_record_ack_only_resends_face() {
    let mut u = user(1);
    u.face = Some(face(2));
    let (id, mut entry) = held(&u, 1);
    entry.face = Some(face(1));
    let users = [u];
    let p = run(&users, &BTreeMap::from([(id, entry)]), &ids_of(&[(1, 1)]));
    assert_eq!(
        p.door_ops(),
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
    let users = [user(1)];
    let p = run(&users, &applied, &ids_of(&[(1, 5)]));
    assert_eq!(
        p.door_ops(),
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
    let users = [user(1)];
    let p = run(&users, &applied, &ids_of(&[(1, 4)]));
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
    let users = [denied, user(1)];
    let p = plan(now(), &users, &applied, &ids_of(&[(8, 2)]), 10, &mut alloc);
    assert_eq!(p.new_ids, vec![(&key(1), DoorUserId(3))]);
    assert_eq!(p.ops.first(), Some(&PlanOp::Delete(DoorUserId(1))));
    assert_eq!(alloc.next, 4);
}

#[test]
fn lost_id_table_reuses_the_id_the_door_holds() {
    let applied = BTreeMap::from([held(&user(1), 7)]);
    let users = [user(1)];
    let p = run(&users, &applied, &IdTable::default());
    assert!(p.is_empty(), "{:?}", p.ops);
    assert_eq!(p.new_ids, vec![(&key(1), DoorUserId(7))]);
}

#[test]
fn two_users_mapped_to_one_id_never_share_it() {
    let users = [user(1), user(2)];
    let p = run(&users, &BTreeMap::new(), &ids_of(&[(1, 3), (2, 3)]));
    assert_eq!(p.assignments.len(), 2);
    assert_eq!(p.key_of(DoorUserId(3)), Some(&key(1)));
    assert_eq!(p.new_ids, vec![(&key(2), DoorUserId(50))]);
}

#[test]
fn duplicate_roster_entries_first_wins_regardless_of_rest() {
    let mut second = user(1);
    second.display_name = "Other".into();
    let users = [user(1), second];
    let p = run(&users, &BTreeMap::new(), &ids_of(&[(1, 1)]));
    assert_eq!(
        p.upserts().map(|r| r.display_name).collect::<Vec<_>>(),
        vec!["User 1".to_string()]
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
        p.assignments.values().map(|u| u.key.clone()).collect::<Vec<_>>(),
        vec![key(3), key(4), key(1)]
    );
    assert_eq!(p.over_capacity, vec![&key(2)]);
    assert_eq!(p.new_ids, vec![(&key(1), DoorUserId(10))]);
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
    assert_eq!(p.door_ops(), vec![DoorOp::Delete(DoorUserId(3))]);
    assert_eq!(p.over_capacity, vec![&key(3)]);
}

#[test]
fn zero_capacity_puts_nobody_on_door() {
    let users = [user(1)];
    let p = plan(
        now(),
        &users,
        &BTreeMap::new(),
        &IdTable::default(),
        0,
        &mut MonotonicIds::default(),
    );
    assert!(p.is_empty());
    assert_eq!(p.over_capacity, vec![&key(1)]);
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
    let users = [user(1)];
    let p = plan(now(), &users, &BTreeMap::new(), &IdTable::default(), 10, &mut Exhausted);
    assert!(p.is_empty());
    assert_eq!(p.unassigned, vec![&key(1)]);
}

#[test]
fn allocator_returning_a_held_id_is_not_trusted() {
    let applied = BTreeMap::from([held(&user(9), 1)]);
    let users = [user(9), user(1)];
    let p = plan(now(), &users, &applied, &ids_of(&[(9, 1)]), 10, &mut AlwaysOne);
    assert!(p.is_empty(), "user 9 must keep id 1: {:?}", p.ops);
    assert_eq!(p.unassigned, vec![&key(1)]);
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
    let one = key(1);
    let put = DoorOp::PutFace {
        id: DoorUserId(1),
        face: face(1),
    };
    assert_eq!(
        apply_to(&mut applied, &put, |_| Some(&one)),
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
    let one = key(1);
    apply_to(&mut applied, &up, |_| Some(&one)).unwrap();
    let e = &applied[&DoorUserId(1)];
    assert!(e.is(&key(1)));
    assert_eq!(e.face, None);
}

#[test]
fn duplicate_roster_entry_that_revokes_wins() {
    let mut revoked = user(1);
    revoked.revoked_locally = true;
    let applied = BTreeMap::from([held(&user(1), 1)]);
    let users = [user(1), revoked];
    let p = run(&users, &applied, &ids_of(&[(1, 1)]));
    assert_eq!(p.door_ops(), vec![DoorOp::Delete(DoorUserId(1))]);
}

#[test]
fn plan_helpers_count_by_kind() {
    let applied = BTreeMap::from([held(&user(9), 1)]);
    let users = [user(1), user(2)];
    let p = run(&users, &applied, &ids_of(&[(1, 2), (2, 3)]));
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
    let a = run(&users, &applied, &IdTable::default());
    let b = run(&reversed, &applied, &IdTable::default());
    assert_eq!(a, b);
}
