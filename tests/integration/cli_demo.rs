//! `doorsync demo`, the newcomer's first command, run as a user would run it.

use assert_cmd::Command;

#[test]
fn demo_json_prints_one_object_showing_users_pulled_into_the_store() {
    let out = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["demo", "--users", "6", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "nothing but the JSON object on stdout: {stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["users_desired"], 6);
    assert_eq!(v["users_stored"], 6);
    assert_eq!(v["users_failed"], 0);
    assert_eq!(v["images_downloaded"], 6);
    assert_eq!(
        v["refresh_images_downloaded"], 0,
        "a refresh with nothing changed downloads no image"
    );
}

#[test]
fn demo_text_tells_the_story() {
    let out = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["demo", "--users", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fake cloud: http://127.0.0.1:"), "{text}");
    assert!(text.contains("pull: 3 users, 3 images downloaded"), "{text}");
}

#[test]
fn the_app_secret_never_reaches_the_logs_even_at_trace_level() {
    for format in ["text", "json"] {
        let out = Command::cargo_bin("doorsync")
            .unwrap()
            .args(["demo", "--users", "2", "-vvv", "--log-format", format])
            .output()
            .unwrap();
        assert!(out.status.success());
        let logs = String::from_utf8_lossy(&out.stderr);
        assert!(logs.lines().count() > 10, "trace logging is on: {logs}");
        assert!(
            !logs.contains("demo-secret-0123456789abcdef"),
            "secret leaked into {format} logs"
        );
        if format == "json" {
            let first = logs.lines().next().unwrap();
            assert!(
                serde_json::from_str::<serde_json::Value>(first).is_ok(),
                "not JSON: {first}"
            );
        }
    }
}

#[test]
fn default_logging_is_quiet() {
    let out = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["demo", "--users", "2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no log lines without -v");
}
