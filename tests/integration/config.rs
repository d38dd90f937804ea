//! The configuration contract end to end: every shipped file through the real loader, and the
//! `check-config` command as a technician runs it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use doorsync::config::{Config, FileChecks, builtin_profile, builtin_profile_names, load_profile_file};
use predicates::prelude::*;

fn firmware_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config")
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

/// Files under `profiles/` are firmware profiles; every other `.toml` is a doorsync config.
#[test]
fn every_toml_file_in_firmware_config_loads_through_the_real_loader() {
    let mut files = Vec::new();
    toml_files(&firmware_config_dir(), &mut files);
    files.sort();
    let (mut configs, mut profiles) = (0, 0);
    for file in &files {
        if file.parent().is_some_and(|p| p.ends_with("profiles")) {
            let profile = load_profile_file(file).unwrap_or_else(|e| panic!("{e}"));
            assert!(!profile.description.is_empty(), "{}", file.display());
            profiles += 1;
        } else {
            // A build machine has none of the secret or port files; everything else must be valid.
            let (config, warnings) = Config::load(file, FileChecks::WarnOnly).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.doors.is_empty());
            for w in &warnings {
                assert!(
                    w.to_string().contains("does not exist"),
                    "{}: unexpected warning {w}",
                    file.display()
                );
            }
            configs += 1;
        }
    }
    assert!(
        configs >= 1 && profiles >= 2,
        "found {configs} configs, {profiles} profiles in {files:?}"
    );
}

#[test]
fn every_shipped_profile_is_built_into_the_binary_unchanged() {
    let mut shipped = Vec::new();
    toml_files(&firmware_config_dir().join("profiles"), &mut shipped);
    for file in &shipped {
        let name = file.file_stem().unwrap().to_str().unwrap();
        let builtin = builtin_profile(name).unwrap_or_else(|| panic!("{name} is shipped but not built in"));
        assert_eq!(builtin, load_profile_file(file).unwrap());
    }
    assert_eq!(builtin_profile_names().count(), shipped.len());
}

/// A config whose files all exist, in a temp dir; the door port is a symlink to a real pty.
struct Site {
    dir: tempfile::TempDir,
    _pty: nix::pty::OpenptyResult,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("app_secret");
        std::fs::write(&secret, "topsecret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        let tty = nix::unistd::ttyname(&pty.slave).unwrap();
        std::os::unix::fs::symlink(tty, dir.path().join("ttyDOOR")).unwrap();
        Self { dir, _pty: pty }
    }

    fn config(&self, extra_door: &str) -> PathBuf {
        let text = format!(
            r#"
[cloud]
app_key = "k"
app_secret_file = "app_secret"
device_iot_id = "iot"

[store]
path = "store"

[[door]]
name = "lobby"
port = "ttyDOOR"
baud = 9600
osdp_address = 0
profile = "libosdp-reference"
{extra_door}
"#
        );
        let path = self.dir.path().join("doorsync.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[test]
fn config_with_a_pty_port_and_a_0600_secret_is_valid_with_file_checks() {
    let site = Site::new();
    let (config, warnings) = Config::load(&site.config(""), FileChecks::Required).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.cloud.app_secret.as_ref().unwrap().expose(), b"topsecret");
    assert_eq!(config.doors[0].profile.osdp.max_packet_bytes, 256);
    assert_eq!(
        config.control_socket_path(),
        site.dir.path().join("store/doorsync.sock")
    );
}

#[test]
fn check_config_accepts_the_example_without_files() {
    Command::cargo_bin("doorsync")
        .unwrap()
        .args(["check-config", "--no-files", "--config"])
        .arg(firmware_config_dir().join("doorsync.example.toml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("doorsync.example.toml: valid (2 doors,"));
}

#[test]
fn check_config_on_a_valid_site_exits_zero_without_warnings() {
    let site = Site::new();
    Command::cargo_bin("doorsync")
        .unwrap()
        .arg("check-config")
        .env("DOORSYNC_CONFIG", site.config(""))
        .assert()
        .code(0)
        .stdout(predicate::str::ends_with("valid (1 door, 0 warnings)\n"));
}

#[test]
fn check_config_prints_every_problem_key_first_and_exits_2() {
    let site = Site::new();
    std::fs::set_permissions(
        site.dir.path().join("app_secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let path = site.config(
        r#"
[[door]]
name = "lobby"
port = "ttyDOOR"
baud = 4800
osdp_address = 0
profile = "no-such-profile"
colour = "red"
"#,
    );
    let out = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["check-config", "--config"])
        .arg(&path)
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    for prefix in [
        "door[1].colour: unknown key",
        "cloud.app_secret_file: ",
        "door[1].name: \"lobby\" is already the name of door[0]",
        "door[1].baud: 4800 is not an OSDP baud rate (9600, 19200, 38400, 57600, 115200, 230400)",
        "door[1].osdp_address: 0 on ",
        "door[1].profile: no profile \"no-such-profile\"",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "no line starting {prefix:?} in:\n{out}"
        );
    }
    assert!(out.contains("chmod 600") && !out.contains("topsecret"), "{out}");
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("doorsync.toml: invalid (6 errors, 0 warnings)"),
        "{out}"
    );
}

#[test]
fn check_config_reports_a_toml_syntax_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doorsync.toml");
    std::fs::write(&path, "[cloud]\napp_key = \"k\n").unwrap();
    Command::cargo_bin("doorsync")
        .unwrap()
        .args(["check-config", "--config"])
        .arg(&path)
        .assert()
        .code(2)
        .stdout(predicate::str::contains("doorsync.toml:2:").and(predicate::str::contains("TOML syntax error")));
}

#[test]
fn check_config_on_a_missing_file_says_so_and_exits_2() {
    Command::cargo_bin("doorsync")
        .unwrap()
        .args(["check-config", "--config", "/nonexistent/doorsync.toml"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("cannot read /nonexistent/doorsync.toml"));
}
