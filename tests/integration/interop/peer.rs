//! The LibOSDP door (`tests/interop/libosdp_pd.py`) as a child process on the slave end of a pty.
//!
//! Shared by the interop tests and `benches/libosdp_link.rs` (included there with `#[path]`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/libosdp_pd.py");

/// Where LibOSDP's Python module is, or why there is none.
pub fn find_python() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("DOORSYNC_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
            PathBuf::from("python3"),
        ],
    };
    let mut tried = Vec::new();
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import osdp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(python);
        }
        tried.push(python.display().to_string());
    }
    Err(format!(
        "no Python with LibOSDP (`import osdp`) among {tried:?}; run scripts/test, or \
         `python3 -m venv .venv && .venv/bin/pip install libosdp==3.2.9`, or set DOORSYNC_PYTHON"
    ))
}

/// The interpreter to run the door with, or `None` (with a printed notice) when LibOSDP is missing and
/// not required. With `DOORSYNC_REQUIRE_LIBOSDP=1` (scripts/test, CI) a missing LibOSDP fails the test.
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    match find_python() {
        Ok(p) => Some(p),
        Err(why) if std::env::var("DOORSYNC_REQUIRE_LIBOSDP").is_ok_and(|v| v == "1") => {
            panic!("{test}: DOORSYNC_REQUIRE_LIBOSDP=1 but {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// The door's database as the script writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct DoorJson {
    pub users: Vec<JsonUser>,
    pub files: Vec<serde_json::Value>,
    pub mfg_executed: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JsonUser {
    pub id: u32,
    pub policy: u8,
    pub expire_at: i64,
    pub name: String,
    /// The face sha256 the record names (hex).
    pub face_sha256: String,
    pub record_hash: String,
    pub face: Option<JsonFace>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JsonFace {
    pub sha256: String,
    pub len: u32,
}

impl DoorJson {
    pub fn ids(&self) -> Vec<u32> {
        self.users.iter().map(|u| u.id).collect()
    }

    pub fn user(&self, id: u32) -> Option<&JsonUser> {
        self.users.iter().find(|u| u.id == id)
    }
}

/// A running LibOSDP door. Killed on drop if not stopped.
pub struct LibosdpPeer {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl LibosdpPeer {
    /// Starts the door on `port` (a pty slave path) and waits until it listens.
    pub async fn start(python: &Path, port: &Path, extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("door.log")).unwrap();
        let child = Command::new(python)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(SCRIPT)
            .arg("--port")
            .arg(port)
            .arg("--db")
            .arg(dir.path().join("door.json"))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} {SCRIPT}: {e}", python.display()));
        let mut peer = LibosdpPeer {
            child: Some(child),
            dir,
        };
        // The script writes its (empty) database once LibOSDP runs; a slow start is not a failure.
        for _ in 0..600 {
            if peer.db_path().exists() {
                return peer;
            }
            if let Some(status) = peer.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("LibOSDP door exited with {status} before listening:\n{}", peer.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("LibOSDP door did not start within 30 s:\n{}", peer.log());
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("door.json")
    }

    /// What the door printed (LibOSDP warnings, Python errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("door.log")).unwrap_or_default()
    }

    /// The database as last written (the door writes it after every change, before answering).
    pub fn db(&self) -> DoorJson {
        let text = std::fs::read_to_string(self.db_path()).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("door database is not valid JSON ({e}):\n{text}"))
    }

    /// The door loses its next reply (SIGUSR1), as a noisy line would: the CP resends the command, and
    /// LibOSDP executes it a second time.
    pub fn lose_next_reply(&self) {
        let child = self.child.as_ref().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGUSR1).unwrap();
    }

    /// SIGTERM, wait for a clean exit, and read the final database.
    pub fn stop(mut self) -> DoorJson {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "LibOSDP door exited with {status}:\n{}", self.log());
        let log = self.log();
        assert!(
            !log.contains("Traceback") && !log.contains("Error in user command handler"),
            "the door's Python code failed:\n{log}"
        );
        self.db()
    }
}

impl Drop for LibosdpPeer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- LibOSDP door log ---\n{}", self.log());
            }
        }
    }
}
