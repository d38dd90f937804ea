//! Several doors on one RS-485 bus, end to end as real processes: the example configuration (two doors
//! on one port, the first with Secure Channel) against `doorsync simulate door --address 1 --address 2`
//! on one pseudo-terminal, paced as one half-duplex 115200-baud line.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use doorsync::cloud::sim::{SimConfig, SimHandle};
use doorsync::domain::Secret;
use tokio::process::Child;

use crate::harness::{HANG_GUARD, SECRET, name_of, sim_with, until};
use crate::processes::{doorsync, json, names_in, revoke_ok, spawn_daemon, spawn_simulated_door, wait_listening};

/// The example configuration's cloud identity (kept as written).
const EXAMPLE_APP_KEY: &str = "203xxxxxxx";
const EXAMPLE_DEVICE: &str = "Pz3SaaXXXXXXXXXXXXXX000101";
const LOBBY_SCBK: &str = "00112233445566778899aabbccddeeff";

struct Bus {
    _child: Child,
    link: PathBuf,
    dbs: [PathBuf; 2],
}

fn write_private(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `simulate door` with the example's two addresses on one pty, door 1 with the lobby key.
async fn start_bus(dir: &Path, scbk: &Path) -> Bus {
    let link = dir.join("ttyS1");
    let dbs = [dir.join("lobby.json"), dir.join("lobby-exit.json")];
    let mut args: Vec<std::ffi::OsString> = ["--address", "1", "--address", "2", "--baud", "115200"]
        .iter()
        .map(Into::into)
        .collect();
    args.extend([
        "--db-file".into(),
        dbs[0].clone().into(),
        "--db-file".into(),
        dbs[1].clone().into(),
    ]);
    args.extend(["--scbk-file".into(), format!("1={}", scbk.display()).into()]);
    args.extend(["--pty-link".into(), link.clone().into()]);
    let (child, ready) = spawn_simulated_door(&args).await;
    assert!(ready.contains("address 1 2"), "{ready}");
    Bus {
        _child: child,
        link,
        dbs,
    }
}

/// firmware-config/doorsync.example.toml with only its paths (and the cloud's address) changed.
fn example_config(dir: &Path, sim: &SimHandle, bus: &Bus) -> PathBuf {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/firmware-config/doorsync.example.toml"
    ))
    .unwrap();
    let secret = dir.join("app_secret");
    write_private(&secret, SECRET);
    let text = example
        .replace(
            "endpoint = \"https://api.link.aliyun.com\"",
            &format!("endpoint = \"{}\"", sim.base_url()),
        )
        .replace("allow_insecure_http = false", "allow_insecure_http = true")
        .replace("image_hosts = [\"*.aliyuncs.com\"]", "image_hosts = [\"127.0.0.1\"]")
        .replace("/etc/doorsync/app_secret", &secret.display().to_string())
        .replace(
            "/etc/doorsync/lobby.scbk",
            &dir.join("lobby.scbk").display().to_string(),
        )
        .replace("/var/lib/doorsync", &dir.join("store").display().to_string())
        .replace("/dev/ttyS1", &bus.link.display().to_string());
    assert!(
        !text.contains("/etc/doorsync/") || text.contains("# ca_file"),
        "a path was left: {text}"
    );
    let path = dir.join("doorsync.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configuration_runs_two_doors_on_one_bus_sync_revoke_probe_and_daemon() {
    let mut cloud = SimConfig::new(EXAMPLE_APP_KEY, Secret::new(SECRET.to_vec()), 3);
    cloud.device_iot_id = EXAMPLE_DEVICE.into();
    let sim = sim_with(cloud).await;
    let dir = tempfile::tempdir().unwrap();
    let scbk = dir.path().join("lobby.scbk");
    write_private(&scbk, LOBBY_SCBK.as_bytes());
    let bus = start_bus(dir.path(), &scbk).await;
    let config = example_config(dir.path(), &sim, &bus);

    // Both doors of the bus are filled by one pass, each over its own session (door 1 in Secure Channel).
    let out = doorsync(&config, &["sync", "--json"]).await;
    assert!(out.status.success(), "exit {}", out.status);
    let pass = json(&out);
    assert_eq!(pass["converged"], true, "{pass}");
    for (i, db) in bus.dbs.iter().enumerate() {
        assert_eq!(pass["doors"][i]["apply"]["faces_sent"], 3, "{pass}");
        assert_eq!(names_in(db).len(), 3, "door {i}");
    }

    // A revocation reaches every door on the bus.
    let leaving = name_of(&sim, "u-0002");
    revoke_ok(&config, "u-0002").await;
    for db in &bus.dbs {
        assert!(!names_in(db).contains(&leaving), "{:?}", names_in(db));
        assert_eq!(names_in(db).len(), 2);
    }

    // Each PD answers a probe at its own address, the first inside its secure session.
    let port = bus.link.display().to_string();
    let out = doorsync_probe(&["--port", &port, "--address", "2", "--json"]).await;
    let probe = json(&out);
    assert_eq!(
        (probe["online"].clone(), probe["address"].clone()),
        (true.into(), 2.into()),
        "{probe}"
    );
    assert_eq!(probe["secure_channel"], false);
    let scbk_arg = scbk.display().to_string();
    let out = doorsync_probe(&["--port", &port, "--address", "1", "--scbk-file", &scbk_arg, "--json"]).await;
    let probe = json(&out);
    assert_eq!(
        (probe["online"].clone(), probe["secure_channel"].clone()),
        (true.into(), true.into()),
        "{probe}"
    );

    // The daemon runs the same bus: a user revoked through it leaves both doors.
    let _daemon = spawn_daemon(&config);
    wait_listening(&dir.path().join("store/doorsync.sock")).await;
    let leaving = name_of(&sim, "u-0003");
    revoke_ok(&config, "u-0003").await;
    tokio::time::timeout(
        HANG_GUARD,
        until(|| bus.dbs.iter().all(|db| !names_in(db).contains(&leaving))),
    )
    .await
    .expect("the revocation never reached both doors");
    let out = doorsync(&config, &["status", "--json"]).await;
    let status = json(&out);
    let doors = status["doors"].as_array().cloned().unwrap_or_default();
    assert_eq!(doors.len(), 2, "{status}");
    // The daemon shows each door's live link: both on one line, the lobby inside its secure session.
    for (door, secure) in doors.iter().zip([true, false]) {
        assert_eq!(door["secure_channel"], secure, "{door}");
        assert_eq!(door["link"]["state"], "online", "{door}");
        assert_eq!(door["link"]["secure_channel"], secure, "{door}");
        assert_eq!(door["link"]["pds_on_line"], 2, "{door}");
    }
}

/// `doorsync door probe ARGS` (no config).
async fn doorsync_probe(args: &[&str]) -> std::process::Output {
    let mut all = vec!["door", "probe"];
    all.extend_from_slice(args);
    crate::processes::doorsync_with_paths(&all, &[]).await
}
