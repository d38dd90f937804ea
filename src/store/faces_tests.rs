use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::domain::{DoorUserId, Policy, UserKey};
use crate::store::tests::applied;

fn user(id: &str, faces: &[FaceRef]) -> StoredUser {
    StoredUser {
        key: UserKey::new("IDENTITY", id),
        display_name: id.into(),
        policy: Policy::Permission,
        expire_at: None,
        cloud_face_id: None,
        image_fingerprint: Some(format!("fp-{id}")),
        faces: faces
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("profile-{i}"), *f))
            .collect::<BTreeMap<_, _>>(),
        failure: None,
        roster_revoked: false,
        updated_at: Timestamp::from_second(1_767_225_600).unwrap(),
    }
}

/// Every file under `<store>/faces`, relative to it.
fn files_under(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for sub in fs::read_dir(store.faces.root()).unwrap() {
        let sub = sub.unwrap();
        for f in fs::read_dir(sub.path()).unwrap() {
            let f = f.unwrap().file_name().into_string().unwrap();
            out.push(format!("{}/{f}", sub.file_name().into_string().unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_face_is_a_file_named_by_its_hash_in_a_fan_out_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let face = store.put_face(b"jpeg bytes").unwrap();
    let hex = face.sha256_hex();
    assert_eq!(files_under(&store), [format!("{}/{hex}.jpg", &hex[..2])]);
    let path = dir.path().join("faces").join(&hex[..2]).join(format!("{hex}.jpg"));
    assert_eq!(fs::read(&path).unwrap(), b"jpeg bytes");
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(store.put_face(b"jpeg bytes").unwrap(), face, "same bytes, same ref");
    assert_eq!(files_under(&store).len(), 1, "no temporary file left behind");
    assert_eq!(store.get_face(&face).unwrap().unwrap(), b"jpeg bytes");
    assert_eq!(store.face_usage().unwrap(), FaceUsage { files: 1, bytes: 10 });
}

#[test]
fn a_changed_or_grown_face_file_is_corrupt_and_deleted_and_a_missing_one_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for tampered in [b"JPEG bytes".as_slice(), b"jpeg bytes and more"] {
        let face = store.put_face(b"jpeg bytes").unwrap();
        let path = store.faces.path_of(&face.sha256);
        fs::write(&path, tampered).unwrap();
        let err = store.get_face(&face).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(&face.sha256_hex()), "{err}");
        assert!(!path.exists(), "a corrupt file is deleted so the face is fetched again");
        assert_eq!(store.get_face(&face).unwrap(), None);
    }
}

#[test]
fn users_whose_face_file_is_gone_are_marked_for_fetching_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = store.put_face(b"kept").unwrap();
    let lost = store.put_face(b"lost").unwrap();
    store.put_user(&user("a", &[kept])).unwrap();
    store.put_user(&user("b", &[kept, lost])).unwrap();
    fs::remove_file(store.faces.path_of(&lost.sha256)).unwrap();
    assert_eq!(store.refetch_missing_faces().unwrap(), 1);
    let b = store.get_user(&UserKey::new("IDENTITY", "b")).unwrap().unwrap();
    assert_eq!(b.image_fingerprint, None, "the next pull downloads b's face again");
    assert_eq!(b.faces.len(), 2, "b's record stays, so doors keep what they hold");
    let a = store.get_user(&UserKey::new("IDENTITY", "a")).unwrap().unwrap();
    assert!(a.image_fingerprint.is_some());
    assert_eq!(store.refetch_missing_faces().unwrap(), 0, "marked once");
}

#[test]
fn collection_keeps_what_a_user_or_a_door_needs_and_deletes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let users_face = store.put_face(b"user face").unwrap();
    let doors_face = store.put_face(b"face still on the door").unwrap();
    let other_doors_face = store.put_face(b"face on an unconfigured door").unwrap();
    let orphan = store.put_face(b"orphan").unwrap();
    store.put_user(&user("a", &[users_face])).unwrap();
    store
        .record_applied("lobby", DoorUserId(1), &applied("b", doors_face))
        .unwrap();
    store
        .record_applied("gone", DoorUserId(1), &applied("c", other_doors_face))
        .unwrap();
    // A write a crash interrupted.
    let temp = store.faces.root().join("ab").join(".tmp-abandoned");
    fs::create_dir_all(temp.parent().unwrap()).unwrap();
    fs::write(&temp, b"half a fa").unwrap();

    let report = store.collect_faces(&["lobby"]).unwrap();
    assert_eq!(report.removed_files, 2);
    assert_eq!(
        report.removed_bytes,
        (orphan.len_bytes + other_doors_face.len_bytes) as u64
    );
    assert_eq!(report.removed_temp_files, 1);
    assert_eq!(report.kept.files, 2);
    assert!(store.get_face(&users_face).unwrap().is_some());
    assert!(store.get_face(&doors_face).unwrap().is_some());
    assert_eq!(store.get_face(&orphan).unwrap(), None);
    assert!(!temp.exists());
    assert_eq!(store.face_usage().unwrap(), report.kept);
}

#[test]
fn collection_deletes_nothing_while_a_user_record_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let orphan = store.put_face(b"maybe the unreadable user's face").unwrap();
    store.users.insert(b"\x08IDENTITYx", b"{not json".as_slice()).unwrap();
    let report = store.collect_faces(&[]).unwrap();
    assert_eq!(report.removed_files, 0);
    assert!(store.get_face(&orphan).unwrap().is_some());
}
