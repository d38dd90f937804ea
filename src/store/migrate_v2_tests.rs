//! Schema 2 → 3 on a real schema-2 store: `tests/fixtures/store-schema2` was written by the schema-2
//! code (commit 38c1fdd) through its own code path (`record_size_tests::write_store_fixture`'s recipe;
//! see the fixture's README). Schema 3 rewrites nothing: it reads the schema-2 records and writes the smaller form.

use std::path::Path;
use std::sync::Arc;

use super::tests::{copy_of, raw_db, schema_of};
use super::*;
use crate::domain::{DoorUserId, UserKey};
use crate::store::user_key_bytes;

fn copy_of_fixture() -> tempfile::TempDir {
    copy_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-schema2"))
}

/// The raw value of `key` in `tree`.
fn raw(db: &sled::Db, tree: &str, key: &[u8]) -> String {
    let v = db.open_tree(tree).unwrap().get(key).unwrap().unwrap();
    String::from_utf8(v.to_vec()).unwrap()
}

fn key(id: &str) -> UserKey {
    UserKey::new("IDENTITY", id)
}

#[test]
fn the_fixture_is_a_schema_2_store_with_the_old_record_forms() {
    let dir = copy_of_fixture();
    let db = raw_db(&dir.path().join("store"));
    assert_eq!(schema_of(&db), 2);
    let user = raw(&db, "users", &user_key_bytes(&key("u2")));
    assert!(user.contains(r#""key":{"#) && user.contains(r#""sha256":["#), "{user}");
    let id = raw(&db, "ids/lobby", &user_key_bytes(&key("u2")));
    assert!(id.starts_with(r#"[{"user_type":"IDENTITY","user_id":"u2"},"#), "{id}");
    let applied = raw(&db, "applied/lobby", &2u32.to_be_bytes());
    assert_eq!(applied.matches(r#""sha256":["#).count(), 2, "{applied}");
}

#[test]
fn a_schema_2_store_opens_as_schema_3_and_reads_every_record() {
    let dir = copy_of_fixture();
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.get_meta::<u32>(META_SCHEMA).unwrap(), Some(3));

    let (users, corrupt) = store.users().unwrap();
    assert!(corrupt.is_empty(), "{corrupt:?}");
    let keys: Vec<UserKey> = users.iter().map(|u| u.key.clone()).collect();
    assert_eq!(keys, ["u1", "u2", "u3", "u4", "u5", "u6"].map(key));
    for u in &users {
        assert_eq!(store.get_user(&u.key).unwrap().as_ref(), Some(u));
        let face = u.faces.values().next().unwrap();
        assert!(store.get_face(face).unwrap().is_some(), "{}", u.key);
    }
    let applied = store.applied("lobby").unwrap();
    let ids = store.door_ids("lobby").unwrap();
    assert_eq!(applied.len(), 5, "u6 was revoked off the door");
    assert_eq!(ids.len(), 5);
    for (id, entry) in &applied {
        assert_eq!(ids[&entry.key], *id);
        let record = entry.record.as_ref().unwrap();
        assert_eq!(entry.face, Some(record.face));
        let user = users.iter().find(|u| u.key == entry.key).unwrap();
        assert_eq!(user.faces.values().next(), Some(&record.face), "{}", entry.key);
    }
    assert_eq!(store.applied_counts("lobby").unwrap().faces, 5);
    assert_eq!(store.tombstones().unwrap().len(), 1);
    assert!(store.get_tombstone(&key("u6")).unwrap().is_some());
    store.outbox_items().unwrap();
    assert!(store.last_pass().unwrap().is_some());
    drop(store);
    // Recorded durably: the next open finds schema 3 and changes nothing.
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.get_meta::<u32>(META_SCHEMA).unwrap(), Some(3));
}

#[tokio::test]
async fn a_migrated_store_syncs_without_downloads_and_writes_the_new_forms() {
    use crate::sync::engine::PassOptions;
    use crate::sync::testutil::{FakeCloud, lobby_engine};

    let dir = copy_of_fixture();
    let store = Store::open(&dir.path().join("store")).unwrap();
    // The cloud as the fixture left it, plus u3's face changed and a new user u7.
    let cloud = Arc::new(FakeCloud::with_users(6));
    {
        let mut s = cloud.state.lock().unwrap();
        for (i, v) in [(0, "u1-v2"), (2, "u3-v2")] {
            s.users[i].face_id = Some(format!("face-{v}"));
            s.users[i].image = crate::cloud::ImageSource::Inline(crate::cloud::sim::face_jpeg(v));
        }
    }
    cloud.add("u7", None);
    let engine = lobby_engine(store, cloud);
    let pass = engine.pass(&PassOptions::default(), &|_| {}).await.unwrap();
    assert!(pass.converged, "{pass:?}");
    assert_eq!(
        pass.pull.as_ref().unwrap().images_downloaded,
        2,
        "u3 and u7 only: {pass:?}"
    );

    let store = engine.store();
    let ids = store.door_ids("lobby").unwrap();
    assert_eq!(ids.len(), 6, "u1..u5 and u7");
    let db = &store.db;
    // Rewritten records take the new form; untouched ones keep the old one and still read.
    let u3 = raw(db, "users", &user_key_bytes(&key("u3")));
    assert!(
        !u3.contains(r#""key""#) && !u3.contains(r#""sha256":["#) && !u3.contains("null"),
        "{u3}"
    );
    let u3_applied = raw(db, "applied/lobby", &ids[&key("u3")].0.to_be_bytes());
    assert_eq!(u3_applied.matches(r#""sha256":""#).count(), 1, "{u3_applied}");
    assert!(u3_applied.contains(r#""face_is_record_face":true"#), "{u3_applied}");
    assert_eq!(
        raw(db, "ids/lobby", &user_key_bytes(&key("u7"))),
        ids[&key("u7")].0.to_string()
    );
    let u2_id = raw(db, "ids/lobby", &user_key_bytes(&key("u2")));
    assert!(u2_id.starts_with('['), "untouched: {u2_id}");
    assert_eq!(ids[&key("u2")], DoorUserId(2));
    // Deleting an id still stored in the old form also removes its mapping.
    store.record_deleted("lobby", DoorUserId(2)).unwrap();
    assert!(!store.door_ids("lobby").unwrap().contains_key(&key("u2")));
}
