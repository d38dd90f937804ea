//! The desired state as the store holds it: every stored user as one door profile sees them (its face
//! for that profile, tombstones and pending cloud-side deletes applied), the input of the planner.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::plan;
use crate::domain::{Policy, UserEntry, UserKey};
use crate::store::{Store, StoreError, StoredUser};

/// How each stored user looks from a door with `profile_name`, with tombstones applied.
pub(crate) fn user_entries(store: &Store, profile_name: &str) -> Result<Vec<UserEntry>, StoreError> {
    let tombstoned = tombstoned(store)?;
    // One record at a time: only the compact entries are kept (BENCHMARKS.md, memory budget).
    let mut entries = Vec::new();
    store.each_user(|u| entries.push(user_entry(&u, profile_name, tombstoned.contains(&u.key))))?;
    // The entries live through the plan and the transfer; growth by doubling left up to half of the
    // vector unused (≈ 0.5–0.9 MiB at 10 000 users, heap profile in BENCHMARKS.md).
    entries.shrink_to_fit();
    Ok(entries)
}

/// The keys of the users revoked locally (a technician's few, not the roster).
pub(crate) fn tombstoned(store: &Store) -> Result<BTreeSet<UserKey>, StoreError> {
    Ok(store.tombstones()?.into_iter().map(|t| t.key).collect())
}

/// `plan::next_expiry` over every profile's [`user_entries`], streamed: one record at a time and
/// nothing kept per user, since the expiry timer asks after every change of desired state.
pub(crate) fn next_expiry(
    store: &Store,
    profile_names: &[&str],
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let tombstoned = tombstoned(store)?;
    let mut next: Option<Timestamp> = None;
    store.each_user(|u| {
        if u.expire_at.is_none() {
            return;
        }
        for name in profile_names {
            let entry = user_entry(&u, name, tombstoned.contains(&u.key));
            if let Some(t) = plan::next_expiry(now, std::slice::from_ref(&entry)) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
    })?;
    Ok(next)
}

/// Whether `key` must not be on a door with `profile_name` at `now`: the one-user form of
/// `plan::undesired_ids` over [`user_entries`], for urgent deletes that look up only the users a door
/// may hold. A user not in the store, or whose record is unreadable (which [`user_entries`] skips),
/// must not pass.
pub(crate) fn must_not_pass(
    store: &Store,
    key: &UserKey,
    profile_name: &str,
    tombstoned: &BTreeSet<UserKey>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let user = match store.get_user(key) {
        Ok(user) => user,
        Err(StoreError::Corrupt { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(user.is_none_or(|u| !plan::is_desired(now, &user_entry(&u, profile_name, tombstoned.contains(key)))))
}

fn user_entry(u: &StoredUser, profile_name: &str, tombstoned: bool) -> UserEntry {
    UserEntry {
        key: u.key.clone(),
        display_name: u.display_name.clone(),
        // A roster entry with a pending cloud-side delete must not pass, whatever its policy says.
        policy: if u.roster_revoked { Policy::Deny } else { u.policy },
        expire_at: u.expire_at,
        face: u.faces.get(profile_name).copied(),
        revoked_locally: tombstoned,
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::sync::testutil::{add_user, now};

    fn key(id: &str) -> UserKey {
        UserKey::new("IDENTITY", id)
    }

    fn edit(store: &Store, id: &str, change: impl FnOnce(&mut StoredUser)) {
        let mut u = store.get_user(&key(id)).unwrap().unwrap();
        change(&mut u);
        store.put_user(&u).unwrap();
    }

    #[test]
    fn next_expiry_is_the_nearest_of_the_users_each_profile_would_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let at = |s| now() + SignedDuration::from_secs(s);
        add_user(&store, "later");
        edit(&store, "later", |u| u.expire_at = Some(at(60)));
        add_user(&store, "revoked");
        edit(&store, "revoked", |u| u.expire_at = Some(at(5)));
        store
            .put_tombstone(&crate::store::Tombstone {
                key: key("revoked"),
                revoked_at: now(),
                reason: "test".into(),
                fingerprint: None,
                seen_faces: Default::default(),
                delete_acked_mark: None,
            })
            .unwrap();
        add_user(&store, "past");
        edit(&store, "past", |u| u.expire_at = Some(now()));
        let face = add_user(&store, "other-profile");
        edit(&store, "other-profile", |u| {
            u.expire_at = Some(at(10));
            u.faces.clear();
            u.faces.insert("other".into(), face);
        });
        add_user(&store, "forever");

        assert_eq!(next_expiry(&store, &["generic-face-v1"], now()).unwrap(), Some(at(60)));
        assert_eq!(
            next_expiry(&store, &["generic-face-v1", "other"], now()).unwrap(),
            Some(at(10))
        );
        assert_eq!(next_expiry(&store, &[], now()).unwrap(), None);
    }

    #[test]
    fn a_missing_unreadable_denied_or_revoked_user_must_not_pass_and_a_desired_one_may() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let profile = "generic-face-v1";
        let none = BTreeSet::new();
        add_user(&store, "a");
        add_user(&store, "denied");
        edit(&store, "denied", |u| u.roster_revoked = true);
        store.put_raw_user(b"\x08IDENTITYz", b"{not json").unwrap();

        let verdict = |id: &str, tombstoned: &BTreeSet<UserKey>| {
            must_not_pass(&store, &key(id), profile, tombstoned, now()).unwrap()
        };
        assert!(!verdict("a", &none));
        assert!(verdict("a", &BTreeSet::from([key("a")])), "revoked locally");
        assert!(
            must_not_pass(&store, &key("a"), "other", &none, now()).unwrap(),
            "no face for that profile"
        );
        assert!(verdict("denied", &none));
        assert!(verdict("gone", &none));
        assert!(verdict("z", &none), "an unreadable record");
    }
}
