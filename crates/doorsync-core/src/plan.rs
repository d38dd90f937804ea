//! The pure planner: owns the decision of which users a door should hold and the ordered ops to get there.
//!
//! No I/O and no clock reads: `now` is a parameter, so every decision is reproducible in tests. The
//! planner is level-triggered (docs/ARCHITECTURE.md §2): it compares desired state with what the door acknowledged and
//! emits every Delete before any Upsert or PutFace (invariant 1), never re-sends a face the door already
//! holds (invariant 5), and never plans more users than the door's capacity.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::domain::{DoorOp, DoorRecord, DoorUserId, FaceRef, Policy, UserEntry, UserKey};
use crate::held::{Held, IdTable, KeyDigest, RecordDigest};

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

/// Hands out door-local ids for users who have none yet on a door.
///
/// The planner passes `taken`, which is true for every id that applied state or the id table still
/// holds, so an id is never reused for a different person while the door may still hold it.
pub trait IdAllocator {
    /// A fresh id for which `taken(id)` is false, or `None` when the id space is exhausted.
    fn allocate(&mut self, taken: &dyn Fn(DoorUserId) -> bool) -> Option<DoorUserId>;
}

/// Monotonic allocator: ids only grow, so a freed id is not handed out again until the counter wraps.
/// The store persists `next` per door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonotonicIds {
    /// The next id to try. Id 0 is never handed out (some firmware treats it as "no user").
    pub next: u32,
}

impl Default for MonotonicIds {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl IdAllocator for MonotonicIds {
    fn allocate(&mut self, taken: &dyn Fn(DoorUserId) -> bool) -> Option<DoorUserId> {
        // Bounded scan: skipping taken ids can never loop forever, even if every id is taken.
        const MAX_PROBES: u32 = 1 << 20;
        for _ in 0..MAX_PROBES {
            let candidate = self.next.max(1);
            // Wrapping is safe: `taken` keeps any id the door may still hold from being handed out.
            self.next = candidate.wrapping_add(1);
            let id = DoorUserId(candidate);
            if !taken(id) {
                return Some(id);
            }
        }
        None
    }
}

/// Whether `user` belongs on a door at `now`: permitted, not expired (expiring exactly at `now` counts as
/// expired), not revoked locally, and with a usable face.
pub fn is_desired(now: Timestamp, user: &UserEntry) -> bool {
    user.policy == Policy::Permission
        && user.expire_at.is_none_or(|at| at > now)
        && !user.revoked_locally
        && user.face.is_some()
}

/// The state a door should converge to, borrowing the planner's input: per id the roster entry to
/// hold, never a copy of its record (BENCHMARKS.md, memory budget).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired<'a> {
    /// Users the door should hold, by door-local id. Never more than the door's capacity. Each entry
    /// qualifies ([`is_desired`]), so it has a face.
    pub users: BTreeMap<DoorUserId, &'a UserEntry>,
    /// Ids assigned in this computation; the store must record them before any op is sent.
    pub new_ids: Vec<(&'a UserKey, DoorUserId)>,
    /// Users who qualify but do not fit the door's capacity, in key order.
    pub over_capacity: Vec<&'a UserKey>,
    /// Users who qualify but got no id because the allocator was exhausted, in key order.
    pub unassigned: Vec<&'a UserKey>,
}

/// The record a door holding `user` under `id` should hold; `None` for a user without a face (who
/// never qualifies).
pub fn record_for(id: DoorUserId, user: &UserEntry) -> Option<DoorRecord> {
    Some(DoorRecord {
        id,
        policy: Policy::Permission,
        expire_at: user.expire_at,
        face: user.face?,
        display_name: user.display_name.clone(),
    })
}

/// The digest of [`record_for`] `user` under `id`, without building the record.
fn record_digest_for(id: DoorUserId, user: &UserEntry, face: FaceRef) -> RecordDigest {
    RecordDigest::of_fields(id, Policy::Permission, user.expire_at, face, &user.display_name)
}

/// Computes what a door should hold at `now`.
///
/// A user keeps the id `ids` maps them to. A user without one reuses the id applied state holds them
/// under (recovering a lost id table), else gets a new id from `alloc`. When more users qualify than
/// `capacity_users`, the earliest-added win: users with an existing id in id order (ids grow as users
/// are added), then new users in key order; the rest are reported in `over_capacity` and get no id.
pub fn desired_records<'a>(
    now: Timestamp,
    users: &'a [UserEntry],
    applied: &BTreeMap<DoorUserId, Held>,
    ids: &IdTable,
    capacity_users: u32,
    alloc: &mut dyn IdAllocator,
) -> Desired<'a> {
    // Bad input (the same key twice) fails closed: any entry that disqualifies a key keeps it off the
    // door, so a revocation can never be shadowed by a stale duplicate. Otherwise the first entry wins.
    let disqualified: BTreeSet<&UserKey> = users.iter().filter(|u| !is_desired(now, u)).map(|u| &u.key).collect();
    let mut qualifying: BTreeMap<&UserKey, &UserEntry> = BTreeMap::new();
    for user in users.iter().filter(|u| !disqualified.contains(&u.key)) {
        if user.face.is_some() {
            qualifying.entry(&user.key).or_insert(user);
        }
    }
    drop(disqualified);

    // Split into users with a usable existing id and users needing one. An id claimed by two keys goes
    // to the first key in order; the other is treated as new so two people never share a door id.
    let mut claimed: BTreeSet<DoorUserId> = BTreeSet::new();
    let mut with_id: Vec<(DoorUserId, &UserEntry)> = Vec::new();
    let mut without_id: Vec<&UserEntry> = Vec::new();
    for (key, user) in &qualifying {
        match ids.get(key) {
            Some(id) if claimed.insert(id) => with_id.push((id, user)),
            _ => without_id.push(user),
        }
    }
    drop(qualifying);
    // Ids are unique here (`claimed`), so the order is by id alone.
    with_id.sort_by_key(|(id, _)| *id);

    let capacity = usize::try_from(capacity_users).unwrap_or(usize::MAX);
    let mut out = Desired::default();
    for (id, user) in with_id {
        if out.users.len() < capacity {
            out.users.insert(id, user);
        } else {
            out.over_capacity.push(&user.key);
        }
    }

    // Only users without an id need these; a re-plan of a door whose users all have one skips them.
    let (applied_id_of, id_table_values): (BTreeMap<KeyDigest, DoorUserId>, BTreeSet<DoorUserId>) =
        if without_id.is_empty() {
            Default::default()
        } else {
            (
                applied.iter().map(|(id, e)| (e.key, *id)).collect(),
                ids.ids().collect(),
            )
        };
    for user in without_id {
        if out.users.len() >= capacity {
            out.over_capacity.push(&user.key);
            continue;
        }
        let reusable = applied_id_of
            .get(&KeyDigest::of(&user.key))
            .copied()
            .filter(|id| !claimed.contains(id) && !id_table_values.contains(id));
        let id = match reusable {
            Some(id) => Some(id),
            None => {
                let taken = |id: DoorUserId| {
                    claimed.contains(&id) || applied.contains_key(&id) || id_table_values.contains(&id)
                };
                // An allocator that returns a taken id is treated as exhausted rather than trusted.
                alloc.allocate(&taken).filter(|id| !taken(*id))
            }
        };
        match id {
            Some(id) => {
                claimed.insert(id);
                out.new_ids.push((&user.key, id));
                out.users.insert(id, user);
            }
            None => out.unassigned.push(&user.key),
        }
    }
    out.over_capacity.sort();
    out
}

/// Op counts of a plan, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub deletes: usize,
    pub upserts: usize,
    pub faces: usize,
}

/// One planned op, compact: an Upsert names only the id, and [`Plan::door_op`] builds the record when
/// it is sent, so a plan never holds a copy of every record (BENCHMARKS.md, memory budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanOp {
    Delete(DoorUserId),
    Upsert(DoorUserId),
    PutFace { id: DoorUserId, face: FaceRef },
}

/// The ordered ops for one door plus what the caller must record or report. It borrows the roster
/// entries it was planned from: the records it sends are built from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    /// Every Delete, then every Upsert, then every PutFace; each group in id order.
    pub ops: Vec<PlanOp>,
    /// Ids assigned by this plan; record them before sending any op.
    pub new_ids: Vec<(&'a UserKey, DoorUserId)>,
    /// Users who qualify but exceed the door's capacity (reported, not silently dropped).
    pub over_capacity: Vec<&'a UserKey>,
    /// Users who qualify but got no id (allocator exhausted).
    pub unassigned: Vec<&'a UserKey>,
    /// Who each id on the door belongs to once the plan is applied; the key source for [`apply_to`].
    pub assignments: BTreeMap<DoorUserId, &'a UserEntry>,
}

impl<'a> Plan<'a> {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn counts(&self) -> OpCounts {
        let mut c = OpCounts::default();
        for op in &self.ops {
            match op {
                PlanOp::Delete(_) => c.deletes += 1,
                PlanOp::Upsert(_) => c.upserts += 1,
                PlanOp::PutFace { .. } => c.faces += 1,
            }
        }
        c
    }

    pub fn deletes(&self) -> impl Iterator<Item = DoorUserId> + '_ {
        self.ops.iter().filter_map(|op| match op {
            PlanOp::Delete(id) => Some(*id),
            _ => None,
        })
    }

    /// The ids to upsert, in order.
    pub fn upsert_ids(&self) -> impl Iterator<Item = DoorUserId> + '_ {
        self.ops.iter().filter_map(|op| match op {
            PlanOp::Upsert(id) => Some(*id),
            _ => None,
        })
    }

    /// The records to upsert, in order, each built as it is taken.
    pub fn upserts(&self) -> impl Iterator<Item = DoorRecord> + '_ {
        self.upsert_ids().filter_map(|id| self.record(id))
    }

    pub fn faces(&self) -> impl Iterator<Item = (DoorUserId, FaceRef)> + '_ {
        self.ops.iter().filter_map(|op| match op {
            PlanOp::PutFace { id, face } => Some((*id, *face)),
            _ => None,
        })
    }

    /// The user an id belongs to after this plan (for recording an acknowledged Upsert).
    pub fn key_of(&self, id: DoorUserId) -> Option<&'a UserKey> {
        self.assignments.get(&id).map(|u| &u.key)
    }

    /// The record the door should hold under `id` after this plan.
    pub fn record(&self, id: DoorUserId) -> Option<DoorRecord> {
        self.assignments.get(&id).and_then(|u| record_for(id, u))
    }

    /// `op` as sent to the door (`None` for an Upsert of an id the plan does not assign, which the
    /// planner never emits).
    pub fn door_op(&self, op: &PlanOp) -> Option<DoorOp> {
        match *op {
            PlanOp::Delete(id) => Some(DoorOp::Delete(id)),
            PlanOp::Upsert(id) => self.record(id).map(DoorOp::Upsert),
            PlanOp::PutFace { id, face } => Some(DoorOp::PutFace { id, face }),
        }
    }

    /// Every op as sent to the door, records included: for tests and the one-user explanation, not
    /// for a whole roster.
    pub fn door_ops(&self) -> Vec<DoorOp> {
        self.ops.iter().filter_map(|op| self.door_op(op)).collect()
    }
}

/// Plans the ops that take a door from `applied` to the desired state at `now`.
///
/// Deletes: every applied id not desired — user gone, denied, expired, revoked, without face, over
/// capacity, or the id now belongs to a different user. Upserts: every desired user whose applied record
/// differs or is absent. PutFace: every desired user whose applied face differs; an unchanged face is
/// never planned.
pub fn plan<'a>(
    now: Timestamp,
    users: &'a [UserEntry],
    applied: &BTreeMap<DoorUserId, Held>,
    ids: &IdTable,
    capacity_users: u32,
    alloc: &mut dyn IdAllocator,
) -> Plan<'a> {
    let desired = desired_records(now, users, applied, ids, capacity_users, alloc);
    plan_from_desired(applied, desired)
}

/// The diff step alone, for callers that computed [`Desired`] themselves.
pub fn plan_from_desired<'a>(applied: &BTreeMap<DoorUserId, Held>, desired: Desired<'a>) -> Plan<'a> {
    let mut ops = Vec::new();
    for (id, entry) in applied {
        let keep = desired.users.get(id).is_some_and(|u| entry.is(&u.key));
        if !keep {
            ops.push(PlanOp::Delete(*id));
        }
    }

    let mut faces = Vec::new();
    for (id, want) in &desired.users {
        // After a planned Delete of another user's entry, the door holds nothing under this id.
        let Some(face) = want.face else {
            continue; // never desired (`is_desired`)
        };
        let held = applied.get(id).filter(|e| e.is(&want.key));
        if held.and_then(|e| e.record) != Some(record_digest_for(*id, want, face)) {
            ops.push(PlanOp::Upsert(*id));
        }
        if held.and_then(|e| e.face) != Some(face) {
            faces.push(PlanOp::PutFace { id: *id, face });
        }
    }

    ops.extend(faces);
    Plan {
        ops,
        assignments: desired.users,
        new_ids: desired.new_ids,
        over_capacity: desired.over_capacity,
        unassigned: desired.unassigned,
    }
}

/// Ids a door holds for people who must not pass at `now`: gone from the roster, denied, expired,
/// revoked locally or without a face. These are the deletes sent at once (revocation, expiry timer,
/// roster change) without waiting behind a door's transfer; every one of them is also a Delete of the
/// full [`plan`]. Deletes for capacity or id remapping are left to the full plan.
pub fn undesired_ids(now: Timestamp, users: &[UserEntry], applied: &BTreeMap<DoorUserId, Held>) -> Vec<DoorUserId> {
    let known: BTreeSet<KeyDigest> = users.iter().map(|u| KeyDigest::of(&u.key)).collect();
    let disqualified: BTreeSet<KeyDigest> = users
        .iter()
        .filter(|u| !is_desired(now, u))
        .map(|u| KeyDigest::of(&u.key))
        .collect();
    applied
        .iter()
        .filter(|(_, e)| !known.contains(&e.key) || disqualified.contains(&e.key))
        .map(|(id, _)| *id)
        .collect()
}

/// The nearest future `expire_at` among users who currently qualify for a door; drives the expiry timer.
pub fn next_expiry(now: Timestamp, users: &[UserEntry]) -> Option<Timestamp> {
    users
        .iter()
        .filter(|u| is_desired(now, u))
        .filter_map(|u| u.expire_at)
        .min()
}

/// An acknowledged op that cannot be recorded: the model and the door disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("upsert of door user {0} acknowledged, but no user key is known for that id")]
    UnknownKey(DoorUserId),
    #[error("face for door user {0} acknowledged, but the door holds no record under that id")]
    FaceWithoutRecord(DoorUserId),
}

/// What an acknowledged op does to a door's applied state; the engine records exactly this after each ack.
///
/// `key_of` names the user an Upserted id belongs to (normally [`Plan::key_of`]). An Upsert under an id
/// that held a different user replaces the whole entry, since the old face belongs to someone else.
pub fn apply_to<'k>(
    applied: &mut BTreeMap<DoorUserId, Held>,
    op: &DoorOp,
    key_of: impl FnOnce(DoorUserId) -> Option<&'k UserKey>,
) -> Result<(), ApplyError> {
    match op {
        DoorOp::Delete(id) => {
            applied.remove(id);
        }
        DoorOp::Upsert(record) => {
            let key = KeyDigest::of(key_of(record.id).ok_or(ApplyError::UnknownKey(record.id))?);
            let entry = applied.entry(record.id).or_insert(Held {
                key,
                record: None,
                face: None,
            });
            if entry.key != key {
                *entry = Held {
                    key,
                    record: None,
                    face: None,
                };
            }
            entry.record = Some(RecordDigest::of(record));
        }
        DoorOp::PutFace { id, face } => {
            let entry = applied.get_mut(id).ok_or(ApplyError::FaceWithoutRecord(*id))?;
            entry.face = Some(*face);
        }
    }
    Ok(())
}
