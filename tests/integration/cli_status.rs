//! `doorsync status` against a real store in a temp dir, with no daemon running.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use doorsync::domain::{Policy, UserKey};
use doorsync::store::{Store, StoredUser};
use jiff::Timestamp;

use crate::processes;

/// A config for one door, "lobby", on a port nothing listens on; `status` reads only the store.
fn write_config(dir: &Path) -> PathBuf {
    processes::write_config(dir, "https://api.link.aliyun.com", &dir.join("ttyS1"), 115_200)
}

fn status_json(config: &Path) -> serde_json::Value {
    let out = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn status_reads_the_store_when_no_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let empty = status_json(&config);
    assert_eq!(empty["daemon_running"], false);
    assert_eq!(empty["users"], 0);
    assert_eq!(empty["doors"][0]["name"], "lobby");
    assert_eq!(empty["build"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(empty["build"]["target"], doorsync::BUILD_INFO.target.as_ref());
    assert_eq!(empty["build"]["secure_channel"], doorsync::build_info::SECURE_CHANNEL);

    {
        let store = Store::open(&dir.path().join("store")).unwrap();
        store
            .put_user(&StoredUser {
                key: UserKey::new("IDENTITY", "u-1"),
                display_name: "Ann".into(),
                policy: Policy::Permission,
                expire_at: None,
                cloud_face_id: None,
                image_fingerprint: None,
                faces: Default::default(),
                failure: Some("image is not a JPEG, PNG or WebP".into()),
                roster_revoked: false,
                updated_at: Timestamp::UNIX_EPOCH,
            })
            .unwrap();
        store.flush().unwrap();
    }
    let one = status_json(&config);
    assert_eq!(one["users"], 1);
    assert_eq!(one["failed"]["IDENTITY:u-1"], "image is not a JPEG, PNG or WebP");

    let text = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("users: 1") && text.contains("door lobby:"), "{text}");
}

#[test]
fn status_while_another_process_holds_the_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let _held = Store::open(&dir.path().join("store")).unwrap();
    let out = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another doorsync process"), "{err}");
}
