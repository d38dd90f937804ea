use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::domain::{DoorRecord, FaceRef, Policy};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn user(id: &str) -> StoredUser {
    StoredUser {
        key: UserKey::new("IDENTITY", id),
        display_name: format!("User {id}"),
        policy: Policy::Permission,
        expire_at: Some(t(1_800_000_000)),
        cloud_face_id: Some(format!("face-{id}")),
        image_fingerprint: Some("fp".into()),
        faces: BTreeMap::new(),
        failure: None,
        roster_revoked: false,
        updated_at: t(1_767_225_600),
    }
}

fn applied_entry(store: &Store, id: &str) -> AppliedEntry {
    applied(id, store.put_face(id.as_bytes()).unwrap())
}

/// `id`'s entry as applied at door id 1 with `face`.
pub(super) fn applied(id: &str, face: FaceRef) -> AppliedEntry {
    AppliedEntry {
        key: UserKey::new("IDENTITY", id),
        record: Some(DoorRecord {
            id: DoorUserId(1),
            policy: Policy::Permission,
            expire_at: None,
            face,
            display_name: id.into(),
        }),
        face: Some(face),
    }
}

#[test]
fn everything_written_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_user(&user("a")).unwrap();
        let entry = applied_entry(&store, "a");
        store.record_applied("lobby", DoorUserId(1), &entry).unwrap();
        store
            .save_ids("lobby", &[(UserKey::new("IDENTITY", "a"), DoorUserId(1))], 2)
            .unwrap();
        store
            .put_tombstone(&Tombstone {
                key: UserKey::new("IDENTITY", "x"),
                revoked_at: t(5),
                reason: "r".into(),
                fingerprint: None,
                seen_faces: Default::default(),
                delete_acked_mark: None,
            })
            .unwrap();
        store
            .outbox_push(&OutboxItem::DeleteFace {
                key: UserKey::new("IDENTITY", "x"),
            })
            .unwrap();
        store
            .put_door_status(
                "lobby",
                &DoorStatus {
                    pending: 3,
                    ..Default::default()
                },
            )
            .unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get_user(&UserKey::new("IDENTITY", "a")).unwrap(), Some(user("a")));
    let applied = store.applied("lobby").unwrap();
    assert_eq!(applied.len(), 1);
    let face = applied[&DoorUserId(1)].face.unwrap();
    assert_eq!(store.get_face(&face).unwrap().unwrap(), b"a");
    assert_eq!(
        store.door_ids("lobby").unwrap()[&UserKey::new("IDENTITY", "a")],
        DoorUserId(1)
    );
    assert_eq!(store.next_id("lobby").unwrap(), 2);
    assert_eq!(store.next_id("other").unwrap(), 1);
    assert_eq!(store.tombstones().unwrap().len(), 1);
    assert_eq!(store.outbox_len(), 1);
    assert_eq!(store.door_status("lobby").unwrap().pending, 3);
}

#[test]
fn a_second_opener_is_told_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("another doorsync process"), "{err}");
}

#[test]
fn record_deleted_drops_the_entry_and_the_id_mapping_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = UserKey::new("IDENTITY", "a");
    store.save_ids("lobby", &[(key.clone(), DoorUserId(1))], 2).unwrap();
    store
        .record_applied("lobby", DoorUserId(1), &applied_entry(&store, "a"))
        .unwrap();
    store.record_deleted("lobby", DoorUserId(1)).unwrap();
    assert!(store.applied("lobby").unwrap().is_empty());
    assert!(store.door_ids("lobby").unwrap().is_empty());
    // Deleting again (a repeated, idempotent op) is fine.
    store.record_deleted("lobby", DoorUserId(1)).unwrap();
}

#[test]
fn a_corrupt_user_is_reported_by_key_and_the_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_user(&user("a")).unwrap();
    store.put_user(&user("c")).unwrap();
    store.users.insert(b"\x08IDENTITYb", b"{not json".as_slice()).unwrap();
    let (users, corrupt) = store.users().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(corrupt.len(), 1);
    let msg = corrupt[0].to_string();
    assert!(msg.contains("users") && msg.contains("IDENTITYb"), "{msg}");
}

#[test]
fn users_and_ids_leave_out_the_key_their_sled_key_holds_and_keep_one_it_would_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let short = user("a");
    let mut long = user("b");
    long.key.user_type = "T".repeat(300);
    for (u, id) in [(&short, 1), (&long, 2)] {
        store.put_user(u).unwrap();
        store.save_ids("lobby", &[(u.key.clone(), DoorUserId(id))], 3).unwrap();
    }
    let raw =
        |tree: &Tree, k: &UserKey| String::from_utf8(tree.get(user_key_bytes(k)).unwrap().unwrap().to_vec()).unwrap();
    assert!(!raw(&store.users, &short.key).contains("user_id"));
    assert!(raw(&store.users, &long.key).contains("user_id"));
    let ids_tree = store.ids_tree("lobby").unwrap();
    assert_eq!(raw(&ids_tree, &short.key), "1");
    assert!(raw(&ids_tree, &long.key).contains("user_id"));

    let (users, corrupt) = store.users().unwrap();
    assert!(corrupt.is_empty());
    assert_eq!(users, [short.clone(), long.clone()]);
    assert_eq!(store.get_user(&long.key).unwrap(), Some(long.clone()));
    let ids = store.door_ids("lobby").unwrap();
    assert_eq!((ids[&short.key], ids[&long.key]), (DoorUserId(1), DoorUserId(2)));
}

#[test]
fn a_user_whose_sled_key_is_cut_short_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_user(&user("a")).unwrap();
    let value = encode(&user("x")).unwrap();
    store.users.insert(b" IDENTITYx", value).unwrap();
    let (users, corrupt) = store.users().unwrap();
    assert_eq!(users.len(), 1);
    let msg = corrupt[0].to_string();
    assert!(msg.contains("IDENTITYx") && msg.contains("user type length"), "{msg}");
}

#[test]
fn a_store_from_a_newer_doorsync_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_meta(META_SCHEMA, &(SCHEMA_VERSION + 1)).unwrap();
        store.flush().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1));
}

#[test]
fn outbox_keeps_order_across_reopen_and_ack_removes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for id in ["1", "2", "3"] {
            store
                .outbox_push(&OutboxItem::DeleteFace {
                    key: UserKey::new("IDENTITY", id),
                })
                .unwrap();
        }
    }
    let store = Store::open(dir.path()).unwrap();
    let mut seen = Vec::new();
    while let Some((seq, item)) = store.outbox_peek().unwrap() {
        let OutboxItem::DeleteFace { key } = item else {
            panic!("unexpected item")
        };
        seen.push(key.user_id);
        store.outbox_ack(seq).unwrap();
    }
    assert_eq!(seen, ["1", "2", "3"]);
    store
        .outbox_push(&OutboxItem::DeleteFace {
            key: UserKey::new("IDENTITY", "4"),
        })
        .unwrap();
    assert_eq!(store.outbox_len(), 1);
}

#[test]
fn the_store_directory_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let _store = Store::open(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn many_new_ids_are_saved_in_chunks_with_the_next_id_above_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = u32::try_from(3 * SAVE_IDS_CHUNK + 5).unwrap();
    let new_ids: Vec<_> = (1..=n)
        .map(|i| (UserKey::new("IDENTITY", format!("u{i}")), DoorUserId(i)))
        .collect();
    store.save_ids("lobby", &new_ids, n + 1).unwrap();
    let ids = store.door_ids("lobby").unwrap();
    assert_eq!(ids.len(), new_ids.len());
    assert!(new_ids.iter().all(|(k, id)| ids[k] == *id));
    assert_eq!(store.next_id("lobby").unwrap(), n + 1);
    store.save_ids("lobby", &[], n + 7).unwrap();
    assert_eq!(
        store.next_id("lobby").unwrap(),
        n + 7,
        "no new ids still saves the next value"
    );
}
