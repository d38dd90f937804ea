//! What the packaged service relies on: `doorsync run` under the systemd notify protocol, as
//! packaging/doorsync.service (Type=notify, WatchdogSec) runs it — a real process, the fake cloud, a
//! simulated door on a pty, and a datagram socket standing in for systemd's `$NOTIFY_SOCKET` — and
//! `doorsync --version`.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;

use tokio::process::Command;

use crate::harness::{HANG_GUARD, sim};
use crate::processes::{start_door, write_config};

/// The next datagram, waited for on a blocking thread (bounded by the socket's read timeout).
async fn next(socket: &UnixDatagram) -> String {
    let socket = socket.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("no notification before the hang guard");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn run_notifies_ready_once_the_socket_listens_then_feeds_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = sim(2).await;
    let door = start_door(dir.path(), &["--no-pacing"]).await;
    let config = write_config(dir.path(), &cloud.base_url(), &door.link, 115_200);
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(HANG_GUARD)).unwrap();

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        // 400 ms watchdog: pings every 200 ms while the runtime answers.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    assert_eq!(next(&notify).await, "READY=1");
    let socket = dir.path().join("store").join("doorsync.sock");
    assert!(
        tokio::net::UnixStream::connect(&socket).await.is_ok(),
        "READY=1 came before the control socket listened"
    );
    for _ in 0..3 {
        assert_eq!(next(&notify).await, "WATCHDOG=1");
    }

    let pid = nix::unistd::Pid::from_raw(daemon.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut last = next(&notify).await;
    while last == "WATCHDOG=1" {
        last = next(&notify).await;
    }
    assert_eq!(last, "STOPPING=1");
    let status = tokio::time::timeout(HANG_GUARD, daemon.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    drop(door);
}

#[test]
fn version_names_commit_target_and_secure_channel() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("doorsync {}", env!("CARGO_PKG_VERSION")), "{text}");
    assert!(
        lines[1].starts_with("commit: ") && lines[1].len() > "commit: ".len(),
        "{text}"
    );
    assert_eq!(lines[2], format!("target: {}", doorsync::BUILD_INFO.target), "{text}");
    assert!(lines[3].starts_with("osdp secure channel: "), "{text}");
    assert_eq!(lines[3], "osdp secure channel: built in", "{text}");
}
