//! Properties of the planner over arbitrary rosters, door states and id tables.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::tests::{at, face, key, now};
use super::*;
use crate::domain::AppliedEntry;
use crate::held::IdTable;

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

fn arb_applied() -> impl Strategy<Value = BTreeMap<DoorUserId, Held>> {
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
                    Held::of(&AppliedEntry {
                        key: u.key,
                        record,
                        face: f,
                    }),
                )
            })
            .collect()
    })
}

fn arb_ids() -> impl Strategy<Value = BTreeMap<UserKey, DoorUserId>> {
    proptest::collection::btree_map((0u32..6).prop_map(key), (1u32..12).prop_map(DoorUserId), 0..6)
}

fn apply_all(applied: &mut BTreeMap<DoorUserId, Held>, p: &Plan<'_>) {
    for op in &p.door_ops() {
        let id = match op {
            DoorOp::Delete(id) | DoorOp::PutFace { id, .. } => *id,
            DoorOp::Upsert(r) => r.id,
        };
        apply_to(applied, op, |id| p.key_of(id)).unwrap_or_else(|e| panic!("{e} ({id})"));
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
        let p = plan(now(), &users, &applied, &IdTable::from_map(&ids), capacity, &mut MonotonicIds { next });

        // Deletes first, then upserts, then faces.
        let rank = |op: &PlanOp| match op { PlanOp::Delete(_) => 0, PlanOp::Upsert(_) => 1, PlanOp::PutFace { .. } => 2 };
        prop_assert!(p.ops.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])), "out of order: {:?}", p.ops);

        // Never put an undesired user on the door; never re-send a face the door holds for that user.
        for (id, planned) in &p.assignments {
            let k = &planned.key;
            prop_assert!(users.iter().filter(|u| &u.key == k).all(|u| is_desired(now(), u)), "{k} planned onto door {id}");
        }
        for (id, f) in p.faces() {
            let e = initial.get(&id);
            prop_assert!(!e.is_some_and(|e| p.key_of(id).is_some_and(|k| e.is(k)) && e.face == Some(f)), "face re-sent to {id}");
        }
        // New ids never take an id the door holds for someone else.
        for (k, id) in &p.new_ids {
            prop_assert!(initial.get(id).is_none_or(|e| e.is(k)));
        }

        // Nobody who qualifies is silently dropped.
        let qualifying: BTreeSet<&UserKey> = users
            .iter()
            .filter(|u| users.iter().filter(|v| v.key == u.key).all(|v| is_desired(now(), v)))
            .map(|u| &u.key)
            .collect();
        let mut accounted: Vec<&UserKey> = p.assignments.values().map(|u| &u.key).chain(p.over_capacity.iter().copied()).chain(p.unassigned.iter().copied()).collect();
        accounted.sort();
        prop_assert_eq!(accounted, qualifying.into_iter().collect::<Vec<_>>());

        let mut door = applied;
        apply_all(&mut door, &p);
        prop_assert!(door.len() <= capacity as usize);

        // The door now holds exactly the desired state.
        let desired = desired_records(now(), &users, &initial, &IdTable::from_map(&ids), capacity, &mut MonotonicIds { next });
        let expected: BTreeMap<DoorUserId, Held> = desired.users.into_iter().map(|(id, u)| {
            (id, Held::of(&AppliedEntry { key: u.key.clone(), face: u.face, record: record_for(id, u) }))
        }).collect();
        prop_assert_eq!(&door, &expected);
        // Independently of the planner: each held record is the first roster entry for that user.
        for (id, e) in &door {
            let u = users.iter().find(|u| e.is(&u.key)).unwrap();
            let spelled_out = DoorRecord {
                id: *id,
                policy: Policy::Permission,
                expire_at: u.expire_at,
                face: u.face.unwrap(),
                display_name: u.display_name.clone(),
            };
            prop_assert_eq!(e.record, Some(RecordDigest::of(&spelled_out)));
            prop_assert_eq!(e.face, u.face);
        }

        // Replanning against the new state with the recorded ids changes nothing.
        let mut ids2 = ids.clone();
        ids2.extend(p.new_ids.iter().map(|(k, id)| ((*k).clone(), *id)));
        let again = plan(now(), &users, &door, &IdTable::from_map(&ids2), capacity, &mut MonotonicIds { next });
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
        let p = plan(now(), &users, &applied, &IdTable::from_map(&ids), capacity, &mut MonotonicIds::default());
        let mut door = applied;
        for id in p.deletes() {
            apply_to(&mut door, &DoorOp::Delete(id), |_| None).unwrap();
        }
        prop_assert!(door.len() <= capacity as usize);
        for (id, e) in &door {
            prop_assert!(p.key_of(*id).is_some_and(|k| e.is(k)), "stale holder left on door at {}", id);
        }
        // Upserts from here on only ever add users the plan keeps, so the count stays within capacity.
        for op in p.door_ops().iter().filter(|op| !matches!(op, DoorOp::Delete(_))) {
            apply_to(&mut door, op, |id| p.key_of(id)).unwrap();
            prop_assert!(door.len() <= capacity as usize);
        }
    }

    #[test]
    fn urgent_deletes_are_deletes_of_the_full_plan_and_leave_no_undesired_user(
        users in proptest::collection::vec(arb_user(), 0..8),
        applied in arb_applied(),
        ids in arb_ids(),
        capacity in 0u32..6,
    ) {
        let urgent = undesired_ids(now(), &users, &applied);
        let p = plan(now(), &users, &applied, &IdTable::from_map(&ids), capacity, &mut MonotonicIds::default());
        let planned: BTreeSet<DoorUserId> = p.deletes().collect();
        for id in &urgent {
            prop_assert!(planned.contains(id), "urgent delete {} not in the plan", id);
        }
        let mut door = applied.clone();
        for id in &urgent {
            door.remove(id);
        }
        for e in door.values() {
            let entries: Vec<_> = users.iter().filter(|u| e.is(&u.key)).collect();
            prop_assert!(!entries.is_empty() && entries.iter().all(|u| is_desired(now(), u)), "{:?} left on the door", e.key);
        }
    }

    #[test]
    fn expired_users_are_never_kept(users in proptest::collection::vec(arb_user(), 0..8), offset in -30i64..30) {
        let t = at(offset);
        let p = plan(t, &users, &BTreeMap::new(), &IdTable::default(), 100, &mut MonotonicIds::default());
        for r in p.upserts() {
            prop_assert!(r.expire_at.is_none_or(|e| e > t));
            prop_assert_eq!(r.policy, Policy::Permission);
        }
        if let Some(e) = next_expiry(t, &users) {
            prop_assert!(e > t);
        }
    }
}
