//! Helpers for tests that run doorsync as real processes: a `doorsync simulate door` on a new
//! pseudo-terminal, and an agent config pointing at the fake cloud and that door.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::harness::{HANG_GUARD, KEY, SECRET};

/// A running `doorsync simulate door`: the child, the pty link to open as a port, and its db file.
pub struct DoorProcess {
    pub child: Child,
    pub link: PathBuf,
    pub db: PathBuf,
}

/// Starts `doorsync simulate door --pty-link DIR/door-tty --db-file DIR/door.json` plus `pacing`
/// (e.g. `["--no-pacing"]` or `["--baud", "230400"]`) and waits for its ready line.
pub async fn start_door(dir: &Path, pacing: &[&str]) -> DoorProcess {
    let link = dir.join("door-tty");
    let db = dir.join("door.json");
    let mut args: Vec<std::ffi::OsString> = pacing.iter().map(Into::into).collect();
    args.extend([
        "--pty-link".into(),
        link.clone().into(),
        "--db-file".into(),
        db.clone().into(),
    ]);
    let (child, _ready) = spawn_simulated_door(&args).await;
    DoorProcess { child, link, db }
}

/// Spawns `doorsync simulate door ARGS` and waits for its ready line, which it returns.
pub async fn spawn_simulated_door(args: &[std::ffi::OsString]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["simulate", "door"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(HANG_GUARD, lines.next_line())
        .await
        .expect("the simulated door never said it was ready")
        .unwrap()
        .expect("the simulated door exited before it was ready");
    (child, ready)
}

/// The display names a simulated door's `--db-file` holds.
pub fn names_in(db: &Path) -> Vec<String> {
    doorsync::door::sim::DoorDump::read(db)
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.display_name)
        .collect()
}

/// Writes an owner-only app secret and `DIR/doorsync.toml` for one door named "lobby" on `port`.
pub fn write_config(dir: &Path, cloud_url: &str, port: &Path, baud: u32) -> PathBuf {
    let secret = dir.join("app_secret");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.join("doorsync.toml");
    std::fs::write(
        &path,
        format!(
            r#"[cloud]
endpoint = "{cloud_url}"
allow_insecure_http = true
image_hosts = ["127.0.0.1"]
app_key = "{KEY}"
app_secret_file = "{secret}"
device_iot_id = "sim-device-0001"
poll_interval = "1h"

[store]
path = "{dir}/store"

[[door]]
name = "lobby"
port = "{port}"
baud = {baud}
osdp_address = 1
profile = "generic-face-v1"
"#,
            secret = secret.display(),
            dir = dir.display(),
            port = port.display(),
        ),
    )
    .unwrap();
    path
}

/// Runs `doorsync ARGS --config CONFIG` to completion (hang-guarded), echoing its stderr.
pub async fn doorsync(config: &Path, args: &[&str]) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_doorsync"))
            .args(args)
            .arg("--config")
            .arg(config),
        args,
    )
    .await
}

/// `doorsync revoke --user-type IDENTITY --user-id USER_ID --json --config CONFIG`, which must succeed;
/// returns its JSON report.
pub async fn revoke_ok(config: &Path, user_id: &str) -> serde_json::Value {
    let out = doorsync(
        config,
        &["revoke", "--user-type", "IDENTITY", "--user-id", user_id, "--json"],
    )
    .await;
    assert!(out.status.success(), "revoke {user_id}: exit {}", out.status);
    json(&out)
}

/// Runs `doorsync ARGS PATHS` to completion (hang-guarded), echoing its stderr.
pub async fn doorsync_with_paths(args: &[&str], paths: &[&Path]) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_doorsync")).args(args).args(paths),
        args,
    )
    .await
}

/// Runs `command` (a `doorsync ARGS …`) to completion (hang-guarded), echoing its stderr.
async fn run(command: &mut Command, args: &[&str]) -> Output {
    let out = tokio::time::timeout(HANG_GUARD, command.kill_on_drop(true).output())
        .await
        .expect("doorsync hung")
        .unwrap();
    eprintln!(
        "doorsync {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The one JSON object a `--json` verb printed.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Spawns `doorsync run --config CONFIG` (stderr inherited, killed on drop).
pub fn spawn_daemon(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["run", "--config"])
        .arg(config)
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits until a daemon listens on `socket`.
pub async fn wait_listening(socket: &Path) {
    tokio::time::timeout(HANG_GUARD, async {
        while doorsync::agent::control::connect(socket).await.ok().flatten().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the daemon never listened");
}
