//! Rule-by-rule tests of the whole pipeline (text → raw → validated `Config`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const SECRET: &str = "app-secret-DO-NOT-LEAK-4242";
const SCBK: &str = "a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8";

/// A temp dir holding the files a valid config refers to (secret 0600, a port, an SCBK).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let f = Self { dir };
        f.write("app_secret", &format!("{SECRET}\n"), 0o600);
        f.write("lobby.scbk", SCBK, 0o600);
        f.write("ttyS1", "", 0o600);
        f
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn load(&self, text: &str, checks: FileChecks) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
        Config::from_toml_str(text, &self.path().join("doorsync.toml"), self.path(), checks)
    }

    fn errors(&self, text: &str) -> Vec<String> {
        match self.load(text, FileChecks::Required) {
            Ok(_) => panic!("config unexpectedly valid:\n{text}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Relative paths: resolved against the fixture dir.
const MINIMAL: &str = r#"
[cloud]
app_key = "key1"
app_secret_file = "app_secret"
device_iot_id = "iot-1"

[store]
path = "db"

[[door]]
name = "lobby"
port = "ttyS1"
baud = 9600
osdp_address = 1
profile = "generic-face-v1"
"#;

fn has(errors: &[String], needle: &str) -> bool {
    errors.iter().any(|e| e.contains(needle))
}

#[test]
fn minimal_config_gets_only_the_documented_defaults() {
    let f = Fixture::new();
    let (c, warnings) = f.load(MINIMAL, FileChecks::Required).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.cloud.endpoint, DEFAULT_ENDPOINT);
    assert_eq!(c.cloud.user_type, UserType::Identity);
    assert_eq!(c.cloud.image_format, ImageFormat::Url);
    assert_eq!(c.cloud.timezone.seconds(), 8 * 3600);
    assert_eq!(c.cloud.poll_interval, Duration::from_secs(60));
    assert_eq!(c.cloud.request_timeout, Duration::from_secs(10));
    assert_eq!(c.cloud.max_concurrency, 8);
    assert_eq!(c.cloud.image_hosts, vec![HostPattern::parse("*.aliyuncs.com").unwrap()]);
    assert_eq!(c.cloud.image_download_max_bytes, 2 * 1024 * 1024);
    assert!(!c.cloud.allow_insecure_http);
    assert_eq!(c.sync.verify_interval, Duration::from_secs(3600));
    let door = &c.doors[0];
    assert_eq!(door.reply_timeout, Duration::from_millis(200));
    assert_eq!(door.profile.name, "generic-face-v1");
    assert!(door.scbk.is_none());
    // Relative paths are relative to the config file's directory.
    assert_eq!(c.store.path, f.path().join("db"));
    assert_eq!(door.port, f.path().join("ttyS1"));
    assert_eq!(c.control_socket_path(), f.path().join("db").join("doorsync.sock"));
    // Required checks read the secret into the config.
    assert_eq!(c.cloud.app_secret.as_ref().unwrap().expose(), SECRET.as_bytes());
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    let f = Fixture::new();
    let text = MINIMAL.replace("osdp_address = 1", "osdp_address = 1\nosdp_adress = 2");
    let errors = f.errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("door[0].osdp_adress: unknown key"), "{errors:?}");
    assert!(errors[0].contains("(line 15)"), "{errors:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let f = Fixture::new();
    f.write("ttyS2", "", 0o600);
    let text = format!(
        "{}\n{}",
        MINIMAL
            .replace("https://", "")
            .replace("[cloud]", "[cloud]\nendpoint = \"http://example.com\""),
        r#"
[[door]]
name = "lobby"
port = "ttyS1"
baud = 4800
osdp_address = 127
profile = "generic-face-v1"
colour = "red"

[[door]]
name = "car park"
port = "ttyS2"
baud = "fast"
osdp_address = 3
profile = "generic-face-v1"
"#
    );
    let errors = f.errors(&text);
    for needle in [
        "cloud.endpoint: \"http://example.com\" uses plain http",
        "door[1].name: \"lobby\" is already the name of door[0]",
        "door[1].baud: 4800 is not an OSDP baud rate (9600, 19200, 38400, 57600, 115200, 230400)",
        "door[1].osdp_address: 127 is not a PD address (0..=126; 127 is broadcast)",
        "door[1].colour: unknown key",
        "door[2].name: \"car park\" is not a door name",
        "door[2].baud: invalid type",
    ] {
        assert!(has(&errors, needle), "missing {needle:?} in {errors:#?}");
    }
    // The wrong-typed baud is reported once, not again as "missing".
    assert_eq!(
        errors.iter().filter(|e| e.starts_with("door[2].baud")).count(),
        1,
        "{errors:#?}"
    );
}

#[test]
fn http_endpoint_is_allowed_only_with_allow_insecure_http_and_then_warned() {
    let f = Fixture::new();
    let http = MINIMAL.replace("[cloud]", "[cloud]\nendpoint = \"http://127.0.0.1:8080\"");
    assert!(has(&f.errors(&http), "plain http"));
    let allowed = http.replace("[cloud]", "[cloud]\nallow_insecure_http = true");
    let (c, warnings) = f.load(&allowed, FileChecks::Required).unwrap();
    assert_eq!(c.cloud.endpoint, "http://127.0.0.1:8080");
    assert!(warnings.iter().any(|w| w.key == "cloud.endpoint"), "{warnings:?}");
}

#[test]
fn pds_on_one_bus_need_distinct_addresses_and_one_baud() {
    let f = Fixture::new();
    f.write("ttyS2", "", 0o600);
    let second = |port: &str, baud: u32, addr: u8| {
        format!(
            "{MINIMAL}\n[[door]]\nname = \"b\"\nport = \"{port}\"\nbaud = {baud}\nosdp_address = {addr}\nprofile = \"generic-face-v1\"\n"
        )
    };
    let errors = f.errors(&second("ttyS1", 19200, 1));
    assert!(has(&errors, "door[1].osdp_address: 1 on"), "{errors:?}");
    assert!(
        has(&errors, "door[1].baud: 19200 differs from door[0] (9600)"),
        "{errors:?}"
    );
    // Same address on another port, or another address on the same port: fine.
    assert!(f.load(&second("ttyS2", 19200, 1), FileChecks::Required).is_ok());
    assert_eq!(
        f.load(&second("ttyS1", 9600, 2), FileChecks::Required)
            .unwrap()
            .0
            .doors
            .len(),
        2
    );
}

#[test]
fn missing_sections_and_keys_say_what_to_add() {
    let f = Fixture::new();
    let errors = f.errors("");
    assert!(has(&errors, "cloud: missing; add a [cloud] section"), "{errors:?}");
    assert!(has(&errors, "store: missing"), "{errors:?}");
    assert!(
        has(&errors, "door: missing; at least one [[door]] is required"),
        "{errors:?}"
    );
    let errors = f.errors(&MINIMAL.replace("app_key = \"key1\"", ""));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("cloud.app_key: missing"), "{errors:?}");
}

#[test]
fn value_rules_name_the_key() {
    let f = Fixture::new();
    let cases = [
        (
            "app_key = \"key1\"",
            "app_key = \"key1\"\ntimezone = \"Asia/Shanghai\"",
            "cloud.timezone:",
        ),
        (
            "app_key = \"key1\"",
            "app_key = \"key1\"\nuser_type = \"EMPLOYEE\"",
            "cloud.user_type:",
        ),
        (
            "app_key = \"key1\"",
            "app_key = \"key1\"\nimage_format = \"PNG\"",
            "cloud.image_format:",
        ),
        (
            "app_key = \"key1\"",
            "app_key = \"key1\"\nmax_concurrency = 65",
            "cloud.max_concurrency: 65 is not in 1..=64",
        ),
        (
            "app_key = \"key1\"",
            "app_key = \"key1\"\npoll_interval = \"often\"",
            "cloud.poll_interval:",
        ),
        (
            "app_key = \"key1\"",
            "app_key = \"key1\"\nimage_hosts = [\"ok.com\", \"https://x\"]",
            "cloud.image_hosts[1]:",
        ),
        (
            "app_key = \"key1\"",
            "app_key = \"key1\"\nimage_hosts = []",
            "cloud.image_hosts: is empty",
        ),
        (
            "osdp_address = 1",
            "osdp_address = 1\nreply_timeout = \"0ms\"",
            "door[0].reply_timeout:",
        ),
        (
            "profile = \"generic-face-v1\"",
            "profile = \"nope\"",
            "door[0].profile: no profile \"nope\"",
        ),
        (
            "[store]",
            "[sync]\nverify_interval = \"5s\"\n[store]",
            "sync.verify_interval:",
        ),
    ];
    for (from, to, needle) in cases {
        let errors = f.errors(&MINIMAL.replace(from, to));
        assert!(has(&errors, needle), "{to}: missing {needle:?} in {errors:?}");
    }
}

#[test]
fn missing_files_are_errors_when_required_and_warnings_with_no_files() {
    let f = Fixture::new();
    let text = MINIMAL
        .replace("\"app_secret\"", "\"gone/app_secret\"")
        .replace("\"ttyS1\"", "\"/dev/doorsync-no-such-tty\"")
        .replace("[store]", "ca_file = \"gone/ca.pem\"\n[store]")
        .replace("osdp_address = 1", "osdp_address = 1\nscbk_file = \"gone/lobby.scbk\"");
    let errors = f.errors(&text);
    for key in [
        "cloud.app_secret_file",
        "cloud.ca_file",
        "door[0].port",
        "door[0].scbk_file",
    ] {
        assert!(has(&errors, &format!("{key}: ")), "{key} not in {errors:?}");
    }
    let (c, warnings) = f.load(&text, FileChecks::WarnOnly).unwrap();
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert!(c.cloud.app_secret.is_none());
    assert!(warnings.iter().all(|w| w.to_string().contains("does not exist")));
}

#[test]
fn insecure_secret_is_an_error_even_with_no_files() {
    let f = Fixture::new();
    f.write("app_secret", SECRET, 0o644);
    for checks in [FileChecks::Required, FileChecks::WarnOnly] {
        let errs = f.load(MINIMAL, checks).unwrap_err().to_string();
        assert!(
            errs.contains("cloud.app_secret_file: ") && errs.contains("chmod 600"),
            "{errs}"
        );
        assert!(!errs.contains(SECRET));
    }
}

#[test]
fn secrets_never_appear_in_errors_warnings_or_debug() {
    let f = Fixture::new();
    let text = MINIMAL.replace("osdp_address = 1", "osdp_address = 1\nscbk_file = \"lobby.scbk\"");
    let (c, _) = f.load(&text, FileChecks::Required).unwrap();
    assert_eq!(
        c.doors[0].scbk.as_ref().unwrap().expose(),
        hex::decode(SCBK).unwrap().as_slice()
    );
    let debug = format!("{c:?}");
    assert!(!debug.contains(SECRET) && !debug.contains(SCBK), "{debug}");

    // Broken secret files, each in a different way: nothing of their content in any message.
    f.write("app_secret", SECRET, 0o666);
    f.write("lobby.scbk", &SCBK[..30], 0o600);
    let errs = f.load(&text, FileChecks::Required).unwrap_err();
    let all = format!("{errs} {errs:?}");
    assert!(all.contains("door[0].scbk_file: "), "{all}");
    assert!(!all.contains(SECRET) && !all.contains(&SCBK[..30]), "{all}");
}

#[test]
fn load_names_the_file_and_reads_relative_to_it() {
    let f = Fixture::new();
    let path = f.write("doorsync.toml", MINIMAL, 0o644);
    let (c, _) = Config::load(&path, FileChecks::Required).unwrap();
    assert_eq!(c.base_dir, f.path());
    let e = Config::load(&f.path().join("absent.toml"), FileChecks::Required).unwrap_err();
    assert!(
        e.to_string().contains("absent.toml") && e.to_string().contains("cannot read"),
        "{e}"
    );
    let bad = f.write("bad.toml", "[cloud\n", 0o644);
    let e = Config::load(&bad, FileChecks::Required).unwrap_err().to_string();
    assert!(e.contains("bad.toml:1:7: TOML syntax error"), "{e}");
}

#[test]
fn image_host_allowed_uses_the_patterns() {
    let f = Fixture::new();
    let text = MINIMAL.replace("[store]", "image_hosts = [\"*.aliyuncs.com\", \"127.0.0.1\"]\n[store]");
    let (c, _) = f.load(&text, FileChecks::Required).unwrap();
    assert!(c.cloud.image_host_allowed("bucket.oss-cn-shanghai.aliyuncs.com"));
    assert!(c.cloud.image_host_allowed("127.0.0.1"));
    assert!(!c.cloud.image_host_allowed("evil.example"));
}

#[test]
fn empty_paths_and_directory_ports_are_refused() {
    let f = Fixture::new();
    let errors = f.errors(
        &MINIMAL
            .replace("port = \"ttyS1\"", "port = \"\"")
            .replace("path = \"db\"", "path = \"\""),
    );
    assert!(has(&errors, "door[0].port: must not be empty"), "{errors:?}");
    assert!(has(&errors, "store.path: must not be empty"), "{errors:?}");
    let errors = f.errors(&MINIMAL.replace("port = \"ttyS1\"", "port = \".\""));
    assert!(
        has(&errors, "door[0].port: ") && has(&errors, "is a directory"),
        "{errors:?}"
    );
}

#[test]
fn wrong_types_are_explained_in_toml_terms() {
    let f = Fixture::new();
    let errors = f.errors(&MINIMAL.replace("baud = 9600", "baud = \"9600\""));
    assert!(
        has(
            &errors,
            "door[0].baud: invalid type: string \"9600\", expected an integer"
        ),
        "{errors:?}"
    );
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    const KEYS: &[&str] = &[
        "endpoint",
        "app_key",
        "baud",
        "osdp_address",
        "port",
        "profile",
        "timezone",
        "image_hosts",
        "bogus",
        "door",
        "cloud",
        "reply_timeout",
        "scbk_file",
        "[cloud]",
        "[[door]]",
        "[sync]",
    ];
    const VALUES: &[&str] = &[
        "1",
        "-1",
        "4800",
        "127",
        "\"\"",
        "\"x\"",
        "[]",
        "[1, \"a\"]",
        "{}",
        "true",
        "\"+99:00\"",
        "1.5",
        "\"http://a\"",
        "\"../../x.toml\"",
        "2024-01-01",
        "\"*.\"",
    ];

    proptest! {
        /// The loader never panics, and every error it returns says something, whatever is inserted.
        #[test]
        fn loader_is_total_on_mutated_configs(
            edits in proptest::collection::vec((0usize..20, 0usize..KEYS.len(), 0usize..VALUES.len()), 0..6)
        ) {
            let mut lines: Vec<String> = MINIMAL.lines().map(str::to_owned).collect();
            for (at, k, v) in edits {
                let key = KEYS[k];
                let line = if key.starts_with('[') { key.to_owned() } else { format!("{key} = {}", VALUES[v]) };
                lines.insert(at.min(lines.len()), line);
            }
            let text = lines.join("\n");
            let dir = Path::new("/nonexistent/doorsync-prop");
            match Config::from_toml_str(&text, &dir.join("c.toml"), dir, FileChecks::WarnOnly) {
                Ok((c, _)) => prop_assert!(!c.doors.is_empty()),
                Err(e) => {
                    prop_assert!(!e.errors.is_empty());
                    for err in e.iter() {
                        prop_assert!(!err.to_string().trim().is_empty());
                    }
                }
            }
        }

        #[test]
        fn loader_is_total_on_arbitrary_text(text in "\\PC{0,200}") {
            let dir = Path::new("/nonexistent/doorsync-prop");
            let _ = Config::from_toml_str(&text, &dir.join("c.toml"), dir, FileChecks::WarnOnly);
        }

        #[test]
        fn vendor_code_round_trips(code in any::<[u8; 3]>()) {
            let text = format!("{:02X}:{:02x}:{:02X}", code[0], code[1], code[2]);
            prop_assert_eq!(parse_vendor_code(&text).unwrap(), code);
        }

        #[test]
        fn offset_round_trips(minutes in -(14 * 60)..=(14 * 60i32)) {
            let sign = if minutes < 0 { '-' } else { '+' };
            let text = format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60);
            prop_assert_eq!(super::values::parse_offset(&text).unwrap().seconds(), minutes * 60);
        }
    }
}

#[test]
fn an_empty_store_path_is_refused_by_the_check_that_run_and_sync_share() {
    let f = Fixture::new();
    let errors = f.errors(&MINIMAL.replace("path = \"db\"", "path = \"\""));
    assert!(has(&errors, "store.path: must not be empty"), "{errors:?}");
}

#[test]
fn the_mass_removal_guard_keys_have_defaults_and_ranges() {
    let f = Fixture::new();
    let (c, _) = f.load(MINIMAL, FileChecks::Required).unwrap();
    assert_eq!(c.sync.max_implicit_removals, None);
    assert_eq!(c.sync.removal_hold, Duration::from_secs(600));
    let set = MINIMAL.replace(
        "[store]",
        "[sync]\nmax_implicit_removals = 5\nremoval_hold = \"30m\"\n\n[store]",
    );
    let (c, _) = f.load(&set, FileChecks::Required).unwrap();
    assert_eq!(c.sync.max_implicit_removals, Some(5));
    assert_eq!(c.sync.removal_hold, Duration::from_secs(1800));
    let bad = MINIMAL.replace(
        "[store]",
        "[sync]\nmax_implicit_removals = -1\nremoval_hold = \"8d\"\n\n[store]",
    );
    let errors = f.errors(&bad);
    assert!(has(&errors, "sync.max_implicit_removals"), "{errors:?}");
    assert!(has(&errors, "sync.removal_hold"), "{errors:?}");
}

#[test]
fn a_secret_file_with_two_lines_is_refused_naming_the_file_only() {
    let f = Fixture::new();
    f.write("app_secret", &format!("{SECRET}\nsecond-line\n"), 0o600);
    let errors = f.errors(MINIMAL);
    assert!(
        has(&errors, "app_secret") && has(&errors, "more than one"),
        "{errors:?}"
    );
    assert!(
        !errors.iter().any(|e| e.contains(SECRET) || e.contains("second-line")),
        "{errors:?}"
    );
}

#[test]
fn line_settings_apply_to_a_door_port_and_their_values_are_checked() {
    let f = Fixture::new();
    let line = |body: &str| format!("{MINIMAL}\n[[line]]\nport = \"ttyS1\"\n{body}");
    let (c, _) = f
        .load(
            &line("rs485 = \"rts-low-on-send\"\nrs485_delay_after_send = \"2ms\"\ndiscard_echo = true\n"),
            FileChecks::Required,
        )
        .unwrap();
    let port = c.doors[0].port.clone();
    let settings = c.line(&port);
    assert!(settings.discard_echo);
    assert_eq!(
        settings.rs485,
        Some(crate::config::Rs485Mode {
            rts: crate::config::Rs485Rts::LowOnSend,
            delay_before_send: std::time::Duration::ZERO,
            delay_after_send: std::time::Duration::from_millis(2),
        })
    );
    // A port without [[line]] gets the defaults: the port left as it is, no echo filter.
    let (c, _) = f.load(MINIMAL, FileChecks::Required).unwrap();
    assert_eq!((c.line(&port).rs485, c.line(&port).discard_echo), (None, false));

    let errors = f.errors(&line("rs485 = \"auto\"\nrs485_delay_before_send = \"1s\"\n"));
    assert!(
        has(&errors, "line[0].rs485: \"auto\" is not an RS-485 mode"),
        "{errors:?}"
    );
    assert!(has(&errors, "line[0].rs485_delay_before_send"), "{errors:?}");
    let errors = f.errors(&format!("{MINIMAL}\n[[line]]\nport = \"ttyS9\"\n"));
    assert!(has(&errors, "line[0].port: no [[door]] uses"), "{errors:?}");
    let errors = f.errors(&format!("{}\n[[line]]\nport = \"ttyS1\"\n", line("")));
    assert!(has(&errors, "line[1].port: line[0] already sets up"), "{errors:?}");
}
