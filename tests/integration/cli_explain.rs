//! `doorsync explain` as a real process, without a daemon and through a running one: after a real sync
//! to a simulated serial door and a local revocation, it names why each person is (not) on the door.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::harness::{HANG_GUARD, sim};
use crate::processes::{self, doorsync, json};

async fn explain(config: &Path, id: &str) -> serde_json::Value {
    let out = doorsync(
        config,
        &[
            "explain",
            "--user-type",
            "IDENTITY",
            "--user-id",
            id,
            "--door",
            "lobby",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "exit {}", out.status);
    json(&out)
}

/// Syncs three users to the door, revokes u-0002, and checks what `explain` says about u-0001 and u-0002.
async fn sync_revoke_and_explain(config: &Path, daemon_running: bool) {
    assert!(doorsync(config, &["sync", "--json"]).await.status.success());
    let out = doorsync(config, &["revoke", "--user-type", "IDENTITY", "--user-id", "u-0002"]).await;
    assert!(out.status.success());

    let allowed = explain(config, "u-0001").await;
    assert_eq!(allowed["daemon_running"], daemon_running);
    let lobby = &allowed["doors"][0];
    assert_eq!(lobby["name"], "lobby");
    assert_eq!(lobby["verdict"], "on the door: may pass", "{allowed}");
    assert_eq!(lobby["desired"], true);
    assert!(
        lobby["face_sha256"].as_str().is_some_and(|s| s.len() == 64),
        "{allowed}"
    );
    assert!(lobby["door_user_id"].is_u64());

    let revoked = explain(config, "u-0002").await;
    let lobby = &revoked["doors"][0];
    assert_eq!(lobby["desired"], false);
    assert!(
        lobby["verdict"]
            .as_str()
            .is_some_and(|v| v.starts_with("not on the door: revoked locally at ")),
        "{revoked}"
    );
    assert!(lobby["door_user_id"].is_null(), "{revoked}");
    assert!(revoked["revoked_locally"]["revoked_at"].is_string(), "{revoked}");

    let text = doorsync(config, &["explain", "--user-type", "IDENTITY", "--user-id", "u-0002"]).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("door lobby: not on the door: revoked locally at"));
    let unknown = doorsync(
        config,
        &[
            "explain",
            "--user-type",
            "IDENTITY",
            "--user-id",
            "u-0001",
            "--door",
            "hall",
        ],
    )
    .await;
    assert!(
        !unknown.status.success(),
        "an unknown door is an error, not an empty answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_an_allowed_and_a_revoked_user_from_the_store() {
    let sim = sim(3).await;
    let dir = tempfile::tempdir().unwrap();
    let door = processes::start_door(dir.path(), &["--no-pacing"]).await;
    let config = processes::write_config(dir.path(), &sim.base_url(), &door.link, 115_200);
    sync_revoke_and_explain(&config, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_goes_through_a_running_daemon() {
    let sim = sim(3).await;
    let dir = tempfile::tempdir().unwrap();
    let door = processes::start_door(dir.path(), &["--no-pacing"]).await;
    let config = processes::write_config(dir.path(), &sim.base_url(), &door.link, 115_200);
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    processes::wait_listening(&dir.path().join("store").join("doorsync.sock")).await;
    sync_revoke_and_explain(&config, true).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exit = tokio::time::timeout(HANG_GUARD, daemon.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit}");
}
