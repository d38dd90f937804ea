//! `doorsync explain` as a real process without a daemon: after a real sync to a simulated serial
//! door and a local revocation, it names why each person is (not) on the door.

use crate::harness::sim;
use crate::processes::{self, doorsync, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_an_allowed_and_a_revoked_user_from_the_store() {
    let sim = sim(3).await;
    let dir = tempfile::tempdir().unwrap();
    let door = processes::start_door(dir.path(), &["--no-pacing"]).await;
    let config = processes::write_config(dir.path(), &sim.base_url(), &door.link, 115_200);
    assert!(doorsync(&config, &["sync", "--json"]).await.status.success());
    let out = doorsync(&config, &["revoke", "--user-type", "IDENTITY", "--user-id", "u-0002"]).await;
    assert!(out.status.success());

    let explain = |id: &'static str| {
        let config = config.clone();
        async move {
            let out = doorsync(
                &config,
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
    };
    let allowed = explain("u-0001").await;
    assert_eq!(allowed["daemon_running"], false);
    let lobby = &allowed["doors"][0];
    assert_eq!(lobby["name"], "lobby");
    assert_eq!(lobby["verdict"], "on the door: may pass", "{allowed}");
    assert_eq!(lobby["desired"], true);
    assert!(
        lobby["face_sha256"].as_str().is_some_and(|s| s.len() == 64),
        "{allowed}"
    );
    assert!(lobby["door_user_id"].is_u64());

    let revoked = explain("u-0002").await;
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

    let text = doorsync(&config, &["explain", "--user-type", "IDENTITY", "--user-id", "u-0002"]).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("door lobby: not on the door: revoked locally at"));
    let unknown = doorsync(
        &config,
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
