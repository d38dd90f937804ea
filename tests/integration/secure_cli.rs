//! Secure Channel end to end as real processes: a `doorsync simulate door --install-mode`, the
//! technician's `door keyset`, `door probe --scbk-file`, then `doorsync sync` and `status` with the
//! door's `scbk_file` — a face push over Secure Channel to the simulated door.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use doorsync::door::sim::DoorDump;

use crate::harness::sim;
use crate::processes::{self, doorsync_with_paths as doorsync, json};

const NEW_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_channel_keyset_probe_and_sync_with_the_simulated_door() {
    let dir = tempfile::tempdir().unwrap();
    let door_key = dir.path().join("door-held.scbk");
    let door = processes::start_door(
        dir.path(),
        &[
            "--no-pacing",
            "--install-mode",
            "--scbk-file",
            door_key.to_str().unwrap(),
        ],
    )
    .await;
    let new_key = dir.path().join("lobby.scbk");
    std::fs::write(&new_key, format!("{NEW_KEY}\n")).unwrap();
    std::fs::set_permissions(&new_key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Before keyset the door only knows SCBK-D: probing with the new key fails, named as a key problem.
    let out = doorsync(
        &["door", "probe", "--json", "--scbk-file"],
        &[&new_key, Path::new("--port"), &door.link],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["online"], false);
    assert_eq!(
        v["error"],
        "secure channel handshake failed: the door's cryptogram does not match — wrong SCBK for this door?"
    );

    let out = doorsync(
        &[
            "door",
            "keyset",
            "--address",
            "1",
            "--install-mode",
            "--json",
            "--new-scbk-file",
        ],
        &[&new_key, Path::new("--port"), &door.link],
    )
    .await;
    assert!(out.status.success());
    let v = json(&out);
    assert_eq!(
        (v["key_sent"].as_bool(), v["confirmed"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.to_lowercase().contains(NEW_KEY), "the key was printed");
    // The door stored the key it was given (0600).
    let held = std::fs::read_to_string(&door_key).unwrap();
    assert_eq!(held.trim().to_lowercase(), NEW_KEY);
    assert_eq!(
        std::fs::metadata(&door_key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let out = doorsync(
        &["door", "probe", "--json", "--scbk-file"],
        &[&new_key, Path::new("--port"), &door.link],
    )
    .await;
    assert!(out.status.success());
    let v = json(&out);
    assert_eq!(
        (v["online"].as_bool(), v["secure_channel"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    // Room for SCB, MAC and padding in the simulated door's 1024-byte buffer.
    assert_eq!(v["max_fragment_bytes"], 1008 - 1 - 11);

    // The daemon's door with scbk_file: a full sync over Secure Channel, and status says so.
    let cloud = sim(3).await;
    let config = processes::write_config(dir.path(), &cloud.base_url(), &door.link, 115_200);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "osdp_address = 1\n",
        &format!("osdp_address = 1\nscbk_file = \"{}\"\n", new_key.display()),
    );
    std::fs::write(&config, text).unwrap();
    let out = doorsync(&["sync", "--json", "--config"], &[&config]).await;
    assert!(out.status.success());
    assert_eq!(json(&out)["converged"], true);
    assert_eq!(DoorDump::read(&door.db).unwrap().users.len(), 3);
    let out = doorsync(&["status", "--json", "--config"], &[&config]).await;
    assert_eq!(json(&out)["doors"][0]["secure_channel"], true);
}

/// The shipped example configuration, with only its paths, endpoint and credentials pointed at the test
/// site, syncs its `lobby` door (which sets `scbk_file`) over Secure Channel to the simulated door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_channel_example_config_starts_as_written_with_the_simulated_door() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("lobby.scbk");
    std::fs::write(&key, format!("{NEW_KEY}\n")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let door = processes::start_door(dir.path(), &["--no-pacing", "--scbk-file", key.to_str().unwrap()]).await;
    let cloud = sim(2).await;
    // write_config leaves the app secret beside it; the example's own text is used from here on.
    processes::write_config(dir.path(), &cloud.base_url(), &door.link, 115_200);
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/firmware-config/doorsync.example.toml"
    ))
    .unwrap();
    let d = dir.path().display().to_string();
    let text = example
        .replace("https://api.link.aliyun.com", &cloud.base_url())
        .replace("allow_insecure_http = false", "allow_insecure_http = true")
        .replace("\"*.aliyuncs.com\"", "\"127.0.0.1\"")
        .replace("203xxxxxxx", crate::harness::KEY)
        .replace("Pz3SaaXXXXXXXXXXXXXX000101", "sim-device-0001")
        .replace("/etc/doorsync/app_secret", &format!("{d}/app_secret"))
        .replace("/etc/doorsync/lobby.scbk", &key.display().to_string())
        .replace("/var/lib/doorsync", &format!("{d}/store"))
        .replace("/dev/ttyS1", &door.link.display().to_string());
    let config = dir.path().join("example.toml");
    std::fs::write(&config, text).unwrap();
    let out = doorsync(&["sync", "--door", "lobby", "--json", "--config"], &[&config]).await;
    assert!(out.status.success());
    assert_eq!(json(&out)["converged"], true);
    assert_eq!(DoorDump::read(&door.db).unwrap().users.len(), 2);
}

/// `doorsync demo --secure`: the whole story (push, revoke, expiry, read-back) inside Secure Channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_channel_demo_runs_the_whole_story_over_sc() {
    let out = doorsync(&["demo", "--users", "4", "--secure", "--json"], &[]).await;
    assert!(out.status.success());
    let v = json(&out);
    assert_eq!(v["secure_channel"], true, "{v}");
    assert_eq!(v["converged"], true, "{v}");
    assert_eq!(
        (v["revoked_present"].as_bool(), v["expired_present"].as_bool()),
        (Some(false), Some(false)),
        "{v}"
    );
    assert_eq!(v["users_on_door"], 2, "{v}");
}
