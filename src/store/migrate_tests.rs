//! Migration of a real schema-1 store: `tests/fixtures/store-schema1` was written by the schema-1
//! release's own code (`Engine::pass` twice over a `MemoryDoor` and `FakeCloud::with_users(6)`, with
//! u1's face changed in between, then `Engine::revoke` of u6; see the fixture's README).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::domain::UserKey;

/// Faces the fixture's sled `faces` tree holds: six users plus u1's previous face.
const FIXTURE_FACES: u64 = 7;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-schema1")
}

/// A private copy of the fixture (sled writes to the store it opens).
fn copy_of_fixture() -> tempfile::TempDir {
    copy_of(&fixture())
}

/// A private copy of the store `fixture`, as `<tempdir>/store`.
pub(super) fn copy_of(fixture: &Path) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(fixture, &dir.path().join("store"));
    dir
}

pub(super) fn raw_db(store_dir: &Path) -> sled::Db {
    sled::Config::new().path(store_dir.join("db")).open().unwrap()
}

pub(super) fn schema_of(db: &sled::Db) -> u32 {
    let meta = db.open_tree("meta").unwrap();
    serde_json::from_slice(&meta.get(META_SCHEMA).unwrap().unwrap()).unwrap()
}

fn has_v1_tree(db: &sled::Db) -> bool {
    db.tree_names().iter().any(|n| n.as_ref() == b"faces")
}

/// Every face a user or the lobby's applied state refers to is readable and intact.
fn assert_every_referenced_face_is_readable(store: &Store) {
    let (users, corrupt) = store.users().unwrap();
    assert!(corrupt.is_empty());
    assert_eq!(users.len(), 6);
    for u in &users {
        for face in u.faces.values() {
            assert!(store.get_face(face).unwrap().is_some(), "{}", u.key);
        }
    }
    for e in store.applied("lobby").unwrap().values() {
        assert!(store.get_face(&e.face.unwrap()).unwrap().is_some(), "{}", e.key);
    }
}

#[test]
fn the_fixture_is_a_schema_1_store_with_faces_in_sled() {
    let dir = copy_of_fixture();
    let db = raw_db(&dir.path().join("store"));
    assert_eq!(schema_of(&db), 1);
    assert_eq!(db.open_tree("faces").unwrap().len() as u64, FIXTURE_FACES);
}

#[tokio::test]
async fn a_schema_1_store_is_migrated_on_open_and_the_next_pass_downloads_nothing() {
    use crate::sync::engine::PassOptions;
    use crate::sync::testutil::{FakeCloud, lobby_engine};

    let dir = copy_of_fixture();
    let path = dir.path().join("store");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get_meta::<u32>(META_SCHEMA).unwrap(), Some(SCHEMA_VERSION));
    assert!(!store.db.tree_names().iter().any(|n| n.as_ref() == b"faces"));
    assert_eq!(store.face_usage().unwrap().files, FIXTURE_FACES);
    assert_every_referenced_face_is_readable(&store);
    assert_eq!(store.tombstones().unwrap().len(), 1);
    assert_eq!(store.door_ids("lobby").unwrap().len(), 5, "u6 was revoked off the door");
    assert!(store.last_pass().unwrap().is_some());

    // The same cloud as when the fixture was written: every fingerprint matches, nothing is fetched.
    let cloud = Arc::new(FakeCloud::with_users(6));
    {
        let mut s = cloud.state.lock().unwrap();
        s.users[0].face_id = Some("face-u1-v2".into());
        s.users[0].image = crate::cloud::ImageSource::Inline(crate::cloud::sim::face_jpeg("u1-v2"));
    }
    let engine = lobby_engine(store, cloud);
    let pass = engine.pass(&PassOptions::default(), &|_| {}).await.unwrap();
    assert_eq!(pass.pull.as_ref().unwrap().images_downloaded, 0, "{pass:?}");
    assert!(pass.converged, "{pass:?}");
    // u1's previous face, kept by schema 1 for ever, is collected after the pass.
    assert_eq!(engine.store().face_usage().unwrap().files, FIXTURE_FACES - 1);
    assert_every_referenced_face_is_readable(engine.store());
}

#[test]
fn a_migration_killed_part_way_is_finished_by_the_next_open() {
    let dir = copy_of_fixture();
    let path = dir.path().join("store");
    {
        // Killed after three faces, with a fourth half written.
        let db = raw_db(&path);
        let files = FaceFiles::open(&path).unwrap();
        assert_eq!(copy_v1_faces(&db, &files, 3).unwrap(), 3);
        let half = files.root().join("00").join(".tmp-killed");
        std::fs::create_dir_all(half.parent().unwrap()).unwrap();
        std::fs::write(&half, b"\xff\xd8 half").unwrap();
        assert_eq!(schema_of(&db), 1);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get_meta::<u32>(META_SCHEMA).unwrap(), Some(SCHEMA_VERSION));
    assert_every_referenced_face_is_readable(&store);
    let gc = store.collect_faces(&["lobby"]).unwrap();
    assert_eq!(gc.removed_temp_files, 1);
}

/// Killed after recording the new schema, before dropping the old tree: by this release (3) or by
/// the schema-2 release.
#[test]
fn a_migration_killed_after_recording_its_schema_drops_the_old_tree_on_the_next_open() {
    for recorded in [SCHEMA_VERSION, 2] {
        let dir = copy_of_fixture();
        let path = dir.path().join("store");
        {
            let db = raw_db(&path);
            let files = FaceFiles::open(&path).unwrap();
            copy_v1_faces(&db, &files, usize::MAX).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(META_SCHEMA, serde_json::to_vec(&recorded).unwrap())
                .unwrap();
            db.flush().unwrap();
            assert!(has_v1_tree(&db));
        }
        let store = Store::open(&path).unwrap();
        assert!(!has_v1_tree(&store.db));
        assert_eq!(store.get_meta::<u32>(META_SCHEMA).unwrap(), Some(SCHEMA_VERSION));
        assert_every_referenced_face_is_readable(&store);
        drop(store);
        // And a store already migrated opens as it is.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.face_usage().unwrap().files, FIXTURE_FACES);
    }
}

#[test]
fn a_corrupt_schema_1_face_is_not_migrated_and_its_user_is_fetched_again() {
    let dir = copy_of_fixture();
    let path = dir.path().join("store");
    let u2 = UserKey::new("IDENTITY", "u2");
    {
        let db = raw_db(&path);
        let users = db.open_tree("users").unwrap();
        let (_, v) = users
            .iter()
            .map(Result::unwrap)
            .find(|(_, v)| serde_json::from_slice::<crate::store::StoredUser>(v).unwrap().key == u2)
            .unwrap();
        let user: crate::store::StoredUser = serde_json::from_slice(&v).unwrap();
        let face = user.faces.values().next().unwrap();
        db.open_tree("faces")
            .unwrap()
            .insert(face.sha256, b"not the face".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.face_usage().unwrap().files, FIXTURE_FACES - 1);
    assert_eq!(store.refetch_missing_faces().unwrap(), 1);
    assert_eq!(store.get_user(&u2).unwrap().unwrap().image_fingerprint, None);
}
