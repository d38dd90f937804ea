use std::collections::BTreeMap;

use super::*;
use crate::domain::{FaceRef, Policy};
use crate::sync::testutil::now;

fn user(face_id: Option<&str>, image: &[u8]) -> StoredUser {
    let mut faces = BTreeMap::new();
    faces.insert(
        "generic-face-v1".to_string(),
        FaceRef {
            sha256: crate::door::vendor::sha256(image),
            len_bytes: 1,
        },
    );
    StoredUser {
        key: UserKey::new("IDENTITY", "x"),
        display_name: "x".into(),
        policy: Policy::Permission,
        expire_at: None,
        cloud_face_id: face_id.map(str::to_string),
        image_fingerprint: Some(format!("{face_id:?}")),
        faces,
        failure: None,
        roster_revoked: false,
        updated_at: now(),
    }
}

fn tombstone(seen: Option<&StoredUser>) -> Tombstone {
    Tombstone {
        key: UserKey::new("IDENTITY", "x"),
        revoked_at: now(),
        reason: "test".into(),
        fingerprint: None,
        seen_faces: seen.map(face_tokens).unwrap_or_default(),
        delete_acked_mark: None,
    }
}

#[test]
fn an_unknown_user_is_never_lifted_on_a_first_sighting_even_after_the_delete_ack() {
    let mut t = tombstone(None);
    t.delete_acked_mark = Some(10);
    let f1 = user(Some("F1"), b"one");
    assert_eq!(judge(&mut t, &f1, 11, false), TombstoneChange::Update);
    assert!(t.seen_faces.contains("face:F1"));
    assert_eq!(
        judge(&mut t, &f1, 12, false),
        TombstoneChange::Keep,
        "still the old grant"
    );
    let f2 = user(Some("F2"), b"two");
    assert_eq!(judge(&mut t, &f2, 13, false), TombstoneChange::Lift);
}

#[test]
fn nothing_lifts_while_the_cloud_delete_is_unacknowledged_or_still_queued() {
    let old = user(Some("F1"), b"one");
    let new = user(Some("F2"), b"two");
    let mut t = tombstone(Some(&old));
    assert_eq!(judge(&mut t, &new, 5, false), TombstoneChange::Update, "no ack yet");
    // F2 was seen before the acknowledgement, so it can no longer lift the tombstone either.
    t.delete_acked_mark = Some(6);
    assert_eq!(judge(&mut t, &new, 7, false), TombstoneChange::Keep);
    let mut t = tombstone(Some(&old));
    t.delete_acked_mark = Some(6);
    assert_eq!(
        judge(&mut t, &new, 7, true),
        TombstoneChange::Update,
        "a second delete is still queued"
    );
}

#[test]
fn a_pull_that_started_before_the_acknowledgement_never_lifts() {
    let old = user(Some("F1"), b"one");
    let new = user(Some("F2"), b"two");
    let mut t = tombstone(Some(&old));
    t.delete_acked_mark = Some(20);
    assert_eq!(judge(&mut t, &new, 19, false), TombstoneChange::Update);
    let mut t = tombstone(Some(&old));
    t.delete_acked_mark = Some(20);
    assert_eq!(judge(&mut t, &new, 21, false), TombstoneChange::Lift);
}

#[test]
fn a_rename_or_a_failed_image_is_not_a_new_face() {
    let old = user(Some("F1"), b"one");
    let mut t = tombstone(Some(&old));
    t.delete_acked_mark = Some(1);
    let mut renamed = old.clone();
    renamed.display_name = "new name".into();
    renamed.image_fingerprint = Some("other".into());
    assert_eq!(judge(&mut t, &renamed, 2, false), TombstoneChange::Keep);
    let mut failed = user(Some("F2"), b"two");
    failed.failure = Some("image download: 503".into());
    assert_ne!(judge(&mut t.clone(), &failed, 2, false), TombstoneChange::Lift);
    // Without faceIds the stored image decides.
    let mut t = tombstone(Some(&user(None, b"one")));
    t.delete_acked_mark = Some(1);
    assert_eq!(judge(&mut t, &user(None, b"one"), 2, false), TombstoneChange::Keep);
    assert_eq!(judge(&mut t, &user(None, b"two"), 3, false), TombstoneChange::Lift);
}

#[test]
fn review_uses_the_store_marks_and_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = UserKey::new("IDENTITY", "x");
    let seq = store
        .put_tombstone_and_queue(&tombstone(None), &OutboxItem::DeleteFace { key: key.clone() })
        .unwrap();
    let f1 = user(Some("F1"), b"one");
    let f2 = user(Some("F2"), b"two");
    // Delete queued: the first sighting is recorded, nothing lifts.
    let early = store.mark().unwrap();
    assert_eq!(review(&store, std::slice::from_ref(&f1), early).unwrap(), 0);
    store.outbox_ack_face_delete(seq, &key).unwrap();
    let t = store.get_tombstone(&key).unwrap().unwrap();
    assert!(t.delete_acked_mark.is_some_and(|m| m > early));
    assert!(t.seen_faces.contains("face:F1"));
    assert_eq!(store.outbox_len(), 0);
    // A pull that started before the ack cannot lift, even with a new face.
    assert_eq!(review(&store, std::slice::from_ref(&f2), early).unwrap(), 0);
    assert!(store.get_tombstone(&key).unwrap().is_some());
    // After the ack a face never seen before lifts it.
    let f3 = user(Some("F3"), b"three");
    let later = store.mark().unwrap();
    assert_eq!(review(&store, std::slice::from_ref(&f1), later).unwrap(), 0);
    assert_eq!(review(&store, &[f3], later).unwrap(), 1);
    assert!(store.get_tombstone(&key).unwrap().is_none());
}

#[test]
fn marks_only_grow_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = Store::open(dir.path()).unwrap();
        store.mark().unwrap()
    };
    let store = Store::open(dir.path()).unwrap();
    assert!(store.mark().unwrap() > first);
}
