//! `doorsync run | sync | revoke | user modify | status` as real processes: the fake cloud on 127.0.0.1,
//! `doorsync simulate door` on a pseudo-terminal (the real OSDP door driver talks to it), sled in a
//! temp dir — once with a running `doorsync run`, once without any daemon.

use std::path::{Path, PathBuf};

use doorsync::cloud::sim::SimHandle;
use tokio::process::Child;

use crate::harness::{HANG_GUARD, name_of, sim};
use crate::processes::{self, doorsync, json};

struct Door {
    _child: Option<Child>,
    link: PathBuf,
    db: PathBuf,
}

async fn start_door(dir: &Path) -> Door {
    let door = processes::start_door(dir, &["--no-pacing"]).await;
    Door {
        _child: Some(door.child),
        link: door.link,
        db: door.db,
    }
}

fn write_config(dir: &Path, sim: &SimHandle, door: &Door) -> PathBuf {
    processes::write_config(dir, &sim.base_url(), &door.link, 115_200)
}

fn names_on(door: &Door) -> Vec<String> {
    processes::names_in(&door.db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_revoke_work_without_a_daemon_over_a_real_serial_door() {
    let sim = sim(5).await;
    let dir = tempfile::tempdir().unwrap();
    let door = start_door(dir.path()).await;
    let config = write_config(dir.path(), &sim, &door);

    let out = doorsync(&config, &["sync", "--json"]).await;
    assert!(out.status.success(), "exit {}", out.status);
    let pass = json(&out);
    assert_eq!(pass["converged"], true, "{pass}");
    assert_eq!(pass["pull"]["users_total"], 5);
    assert_eq!(pass["doors"][0]["apply"]["faces_sent"], 5);
    assert_eq!(names_on(&door).len(), 5);

    let leaving = name_of(&sim, "u-0002");
    let revoked = processes::revoke_ok(&config, "u-0002").await;
    assert_eq!(revoked["all_doors_reached"], true, "{revoked}");
    assert_eq!(
        revoked["outbox"]["sent"], 1,
        "the cloud delete went out at once: {revoked}"
    );
    assert!(!names_on(&door).contains(&leaving));
    assert_eq!(sim.deletes().len(), 1);

    let out = doorsync(&config, &["sync", "--force-refresh"]).await;
    assert!(out.status.success(), "exit {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("door lobby: converged"), "{text}");
    assert!(text.contains("read back: matches the record"), "{text}");
    assert_eq!(
        names_on(&door).len(),
        4,
        "the revocation holds: the cloud no longer has u-0002's face"
    );

    let status = json(&doorsync(&config, &["status", "--json"]).await);
    assert_eq!(status["daemon_running"], false);
    assert_eq!(status["revoked_locally"], 1);
    assert_eq!(status["doors"][0]["users_applied"], 4);
    assert!(status["doors"][0]["last_verified_at"].is_string(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_revoke_and_modify_go_through_a_running_daemon_which_stops_cleanly_on_sigterm() {
    let sim = sim(4).await;
    let dir = tempfile::tempdir().unwrap();
    let door = start_door(dir.path()).await;
    let config = write_config(dir.path(), &sim, &door);
    let mut daemon = processes::spawn_daemon(&config);
    let socket = dir.path().join("store").join("doorsync.sock");
    processes::wait_listening(&socket).await;

    let second = doorsync(&config, &["run"]).await;
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another doorsync process holds the store"), "{stderr}");

    let out = doorsync(&config, &["sync", "--json"]).await;
    assert!(out.status.success(), "exit {}", out.status);
    let pass = json(&out);
    assert_eq!(pass["converged"], true, "{pass}");
    assert_eq!(names_on(&door).len(), 4);

    let leaving = name_of(&sim, "u-0003");
    let out = doorsync(&config, &["revoke", "--user-type", "identity", "--user-id", "u-0003"]).await;
    assert!(out.status.success(), "exit {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("door lobby: removed"), "{text}");
    assert!(!names_on(&door).contains(&leaving));

    let out = doorsync(
        &config,
        &[
            "user",
            "modify",
            "--identity-id",
            "u-0001",
            "--name",
            "Ann Renamed",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "exit {}", out.status);
    assert_eq!(json(&out)["sent"], true);
    assert_eq!(sim.modifies()[0].name.as_deref(), Some("Ann Renamed"));

    let status = json(&doorsync(&config, &["status", "--json"]).await);
    assert_eq!(status["daemon_running"], true);
    assert_eq!(status["doors"][0]["users_applied"], 3);
    assert!(status["doors"][0]["last_revocation_latency_ms"].is_u64(), "{status}");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exit = tokio::time::timeout(HANG_GUARD, daemon.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}");
    assert!(!socket.exists(), "the control socket is removed");
    // The store is free again and holds what the door acknowledged.
    let status = json(&doorsync(&config, &["status", "--json"]).await);
    assert_eq!(status["daemon_running"], false);
    assert_eq!(status["doors"][0]["users_applied"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpluggable_door_is_reported_unreachable_and_revoke_still_records_the_tombstone() {
    let sim = sim(3).await;
    let dir = tempfile::tempdir().unwrap();
    let gone = Door {
        _child: None,
        link: dir.path().join("ttyUSB-unplugged"),
        db: dir.path().join("unused.json"),
    };
    let config = write_config(dir.path(), &sim, &gone);
    let out = doorsync(&config, &["sync", "--json"]).await;
    assert_eq!(out.status.code(), Some(2), "a door that did not converge");
    let pass = json(&out);
    assert_eq!(pass["converged"], false);
    assert_eq!(pass["pull"]["users_total"], 3, "the pull still ran: {pass}");
    let error = pass["doors"][0]["apply"]["error"].as_str().unwrap();
    assert!(error.contains("ttyUSB-unplugged"), "{error}");

    let out = doorsync(
        &config,
        &["revoke", "--user-type", "IDENTITY", "--user-id", "u-0001", "--json"],
    )
    .await;
    assert!(out.status.code().is_some(), "{out:?}");
    let status = json(&doorsync(&config, &["status", "--json"]).await);
    assert_eq!(status["revoked_locally"], 1);
    assert!(
        status["doors"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("ttyUSB-unplugged")
    );
    let run = doorsync(&config, &["run"]).await;
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no door could be opened"));
}
