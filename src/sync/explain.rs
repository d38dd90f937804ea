//! `doorsync explain`: why one person is (not) on each door, read from the store and decided by the
//! planner's own rule ([`plan::desired_records`]), never a copy of it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::desired::user_entries;
use super::plan::{self, MonotonicIds, PlanOp};
use crate::clock::trust::ClockStatus;
use crate::domain::{Policy, Profile, UserKey};
use crate::store::{OutboxItem, Store, StoreError};

/// `doorsync explain --json` prints this object (stable field names; see README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Explanation {
    /// Whether the answer came from a running daemon (else the CLI read the store itself).
    pub daemon_running: bool,
    /// `TYPE:ID`.
    pub user: String,
    /// The effective time the expiry rule was applied at (README "Clock trust").
    pub now: Timestamp,
    pub clock: ClockStatus,
    /// The stored roster entry, `None` when the person is not on the stored roster.
    pub roster: Option<RosterFacts>,
    pub revoked_locally: Option<RevokedLocally>,
    /// The mass-removal guard holds this person's removal from the roster.
    pub removal_held: Option<HeldFacts>,
    /// Cloud calls for this person waiting in the outbox (`delete_face`).
    pub cloud_calls_queued: Vec<String>,
    pub doors: Vec<DoorExplanation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RosterFacts {
    pub display_name: String,
    /// `Permission` or `Deny`.
    pub policy: Policy,
    /// The cloud listed the person, but a cloud-side delete is pending: treated as `Deny`.
    pub roster_revoked: bool,
    pub expire_at: Option<Timestamp>,
    /// `expire_at` is at or before `now`.
    pub expired: bool,
    /// When the pull last changed this entry.
    pub updated_at: Timestamp,
    /// Why the face image could not be used (download or normalisation failure).
    pub image_failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RevokedLocally {
    pub revoked_at: Timestamp,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldFacts {
    pub first_seen_at: Timestamp,
    pub until: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DoorExplanation {
    pub name: String,
    /// The planner's answer: this person belongs on this door now.
    pub desired: bool,
    /// One line: `on the door: may pass`, `not on the door: …`, `should be on the door but pending: …`,
    /// `still on the door until a pending delete is acknowledged: …`.
    pub verdict: String,
    /// The profile's capacity (the door may declare less in INFO when it is asked).
    pub capacity_users: u32,
    pub over_capacity: bool,
    /// Door-local id the door acknowledged for this person.
    pub door_user_id: Option<u32>,
    /// The door acknowledged the record (not just the id).
    pub record_acked: bool,
    /// sha256 of the face the door acknowledged.
    pub face_sha256: Option<String>,
    /// Ids written ahead for this person: sent (or about to be) but not acknowledged.
    pub written_ahead: Vec<u32>,
    /// Ops the planner would send for this person now (`delete 7`, `upsert 7`, `put_face 7`).
    pub pending_ops: Vec<String>,
    /// The last sync's failure for this person on this door.
    pub failed: Option<String>,
    pub last_verified_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// Explains `key` for each of `doors` (name, profile) at the effective time `now`.
pub(crate) fn explain(
    store: &Store,
    key: &UserKey,
    doors: &[(&str, &Profile)],
    now: Timestamp,
    daemon_running: bool,
) -> Result<Explanation, StoreError> {
    let stored = store.get_user(key)?;
    let tombstone = store.get_tombstone(key)?;
    let held = store.held_removals()?;
    let roster = stored.as_ref().map(|u| RosterFacts {
        display_name: u.display_name.clone(),
        policy: u.policy,
        roster_revoked: u.roster_revoked,
        expire_at: u.expire_at,
        expired: u.expire_at.is_some_and(|at| at <= now),
        updated_at: u.updated_at,
        image_failure: u.failure.clone(),
    });
    let revoked_locally = tombstone.map(|t| RevokedLocally {
        revoked_at: t.revoked_at,
        reason: t.reason,
    });
    let removal_held = held.users.get(&key.to_string()).map(|h| HeldFacts {
        first_seen_at: h.first_seen_at,
        until: h.until,
    });
    let cloud_calls_queued = store
        .outbox_items()?
        .into_iter()
        .filter_map(|(_, item)| match item {
            OutboxItem::DeleteFace { key: k } if &k == key => Some("delete_face".to_string()),
            _ => None,
        })
        .collect();
    let mut out = Explanation {
        daemon_running,
        user: key.to_string(),
        now,
        clock: store.clock_status()?,
        roster,
        revoked_locally,
        removal_held,
        cloud_calls_queued,
        doors: Vec::with_capacity(doors.len()),
    };
    for (name, profile) in doors {
        let door = explain_door(store, key, name, profile, now)?;
        out.doors.push(DoorExplanation {
            verdict: verdict(&out, &door),
            ..door
        });
    }
    Ok(out)
}

fn explain_door(
    store: &Store,
    key: &UserKey,
    name: &str,
    profile: &Profile,
    now: Timestamp,
) -> Result<DoorExplanation, StoreError> {
    let ids = store.door_id_table(name)?;
    let applied = store.may_hold_compact(name)?;
    let entries = user_entries(store, &profile.name)?;
    // A throwaway allocator: explaining never records an id.
    let mut alloc = MonotonicIds {
        next: store.next_id(name)?,
    };
    let desired = plan::desired_records(now, &entries, &applied, &ids, profile.capacity_users, &mut alloc);
    let is_desired = desired.users.values().any(|u| &u.key == key);
    let over_capacity = desired.over_capacity.contains(&key);
    let plan = plan::plan_from_desired(&applied, desired);
    let acked = store.applied(name)?;
    let held = acked.iter().find(|(_, e)| &e.key == key);
    let mine: Vec<_> = applied
        .iter()
        .filter(|(_, e)| e.is(key))
        .map(|(id, _)| *id)
        .chain(
            plan.assignments
                .iter()
                .filter(|(_, u)| &u.key == key)
                .map(|(id, _)| *id),
        )
        .collect();
    let pending_ops = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            PlanOp::Delete(id) if mine.contains(id) => Some(format!("delete {}", id.0)),
            PlanOp::Upsert(id) if mine.contains(id) => Some(format!("upsert {}", id.0)),
            PlanOp::PutFace { id, .. } if mine.contains(id) => Some(format!("put_face {}", id.0)),
            _ => None,
        })
        .collect();
    let written_ahead = store
        .written_ahead(name)?
        .into_iter()
        .filter(|(_, k)| k == key)
        .map(|(id, _)| id.0)
        .collect();
    let status = store.door_status(name)?;
    Ok(DoorExplanation {
        name: name.to_string(),
        desired: is_desired,
        verdict: String::new(),
        capacity_users: profile.capacity_users,
        over_capacity,
        door_user_id: held.map(|(id, _)| id.0),
        record_acked: held.is_some_and(|(_, e)| e.record.is_some()),
        face_sha256: held.and_then(|(_, e)| e.face.map(|f| f.sha256_hex())),
        written_ahead,
        pending_ops,
        failed: status.failed.get(&key.to_string()).cloned(),
        last_verified_at: status.last_verified_at,
        last_error: status.last_error,
    })
}

/// The first reason, in the planner's order, that keeps the person off a door.
fn why_not(e: &Explanation, door: &DoorExplanation) -> String {
    let Some(r) = &e.roster else {
        return "not on the stored roster".into();
    };
    if let Some(t) = &e.revoked_locally {
        return format!("revoked locally at {} ({})", t.revoked_at, t.reason);
    }
    if r.roster_revoked {
        return "revoked: a cloud-side delete is pending".into();
    }
    if r.policy != Policy::Permission {
        return "policy DENY".into();
    }
    if let Some(at) = r.expire_at.filter(|_| r.expired) {
        return format!("expired at {at}");
    }
    if door.over_capacity {
        return format!("the door is full ({} users)", door.capacity_users);
    }
    match &r.image_failure {
        Some(why) => format!("no usable face: {why}"),
        None => "no usable face for this door's profile".into(),
    }
}

fn verdict(e: &Explanation, door: &DoorExplanation) -> String {
    let on_door = door.record_acked && door.face_sha256.is_some();
    if door.desired {
        if on_door && door.pending_ops.is_empty() {
            return match &e.removal_held {
                Some(h) => format!(
                    "on the door: may pass (gone from the roster; the mass-removal guard holds the removal until {})",
                    h.until
                ),
                None => "on the door: may pass".into(),
            };
        }
        let mut why = door.pending_ops.join(", ");
        if let Some(f) = door.failed.as_ref().or(door.last_error.as_ref()) {
            why.push_str(&format!(" (last failure: {f})"));
        }
        return format!("should be on the door but pending: {why}");
    }
    let why = why_not(e, door);
    if door.door_user_id.is_some() || !door.written_ahead.is_empty() {
        format!("still on the door until a pending delete is acknowledged: {why}")
    } else {
        format!("not on the door: {why}")
    }
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = if self.daemon_running {
            "daemon running"
        } else {
            "no daemon running; read from the store"
        };
        writeln!(f, "doorsync explain {} at {} ({source})", self.user, self.now)?;
        match &self.roster {
            None => writeln!(f, "roster: not on the stored roster")?,
            Some(r) => writeln!(
                f,
                "roster: {} ({}), policy {:?}{}, expire_at {}, entry updated {}{}",
                r.display_name,
                self.user,
                r.policy,
                if r.roster_revoked {
                    " (cloud delete pending)"
                } else {
                    ""
                },
                r.expire_at.map_or_else(
                    || "none".to_string(),
                    |at| format!("{at} ({})", if r.expired { "passed" } else { "not passed" })
                ),
                r.updated_at,
                r.image_failure
                    .as_ref()
                    .map(|w| format!("; image failure: {w}"))
                    .unwrap_or_default()
            )?,
        }
        if let Some(t) = &self.revoked_locally {
            writeln!(f, "revoked locally at {}: {}", t.revoked_at, t.reason)?;
        }
        if let Some(h) = &self.removal_held {
            writeln!(
                f,
                "removal HELD by the mass-removal guard (first seen {}, applied at {})",
                h.first_seen_at, h.until
            )?;
        }
        if !self.cloud_calls_queued.is_empty() {
            writeln!(f, "cloud calls queued: {}", self.cloud_calls_queued.join(", "))?;
        }
        for d in &self.doors {
            writeln!(f, "door {}: {}", d.name, d.verdict)?;
            writeln!(
                f,
                "  id {}, record {}, face {}, written ahead {:?}, capacity {}{}, pending ops [{}], last verified {}{}{}",
                d.door_user_id.map_or_else(|| "-".to_string(), |id| id.to_string()),
                if d.record_acked { "acked" } else { "-" },
                d.face_sha256.as_deref().unwrap_or("-"),
                d.written_ahead,
                d.capacity_users,
                if d.over_capacity { " (over capacity)" } else { "" },
                d.pending_ops.join(", "),
                d.last_verified_at
                    .map_or_else(|| "never".to_string(), |t| t.to_string()),
                d.failed.as_ref().map(|w| format!("; failed: {w}")).unwrap_or_default(),
                d.last_error
                    .as_ref()
                    .map(|w| format!("; last error: {w}"))
                    .unwrap_or_default(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
