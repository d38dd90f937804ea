//! `doorsync demo`, the newcomer's first command, run as a user would run it: the fake cloud, a paced
//! simulated door on a pseudo-terminal and the real daemon, then a revocation, an expiry and a read-back.

use assert_cmd::Command;

#[test]
fn demo_json_prints_one_object_showing_the_door_converged_without_the_revoked_and_expired_users() {
    let out = Command::cargo_bin("doorsync")
        .unwrap()
        .args(["demo", "--users", "5", "--json"])
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
    assert_eq!(v["converged"], true, "{v}");
    assert_eq!(v["door_digest_matches"], true, "{v}");
    assert_eq!(v["revoked_present"], false, "the revoked user left the door: {v}");
    assert_eq!(v["expired_present"], false, "the expired user left the door: {v}");
    assert_eq!(v["users_desired"], 3, "five users, one revoked, one expired: {v}");
    assert_eq!(v["users_on_door"], 3, "{v}");
    assert_ne!(v["revoked_user"], v["expired_user"]);
    assert!(
        v["image_bytes_sent"].as_u64().unwrap() > 5 * 1000,
        "five faces went over the line: {v}"
    );
    let goodput = v["goodput"].as_f64().unwrap();
    assert!(goodput > 0.0 && goodput <= 1.0, "a fraction of the line rate: {v}");
    assert!(v["revocation_latency_ms"].is_u64(), "{v}");
    assert!(v["expiry_latency_ms"].is_u64(), "{v}");
    assert_eq!(
        v["cloud_delete_sent"], true,
        "the revocation's cloud delete went out: {v}"
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
    for expected in [
        "fake cloud: http://127.0.0.1:",
        "simulated door: OSDP address 1 on /dev/pts/",
        "first pass: 3 users on the door",
        "door demo-door: removed in",
        "expiry: IDENTITY:u-0001 removed from demo-door",
        "door DIGEST matches",
        "users: 3 in the cloud, 1 may pass, 1 on the door (converged)",
        "revoked IDENTITY:u-0002: gone from the door; expired IDENTITY:u-0001: gone from the door",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_app_secret_never_reaches_the_logs_even_at_trace_level() {
    for format in ["text", "json"] {
        let out = Command::cargo_bin("doorsync")
            .unwrap()
            .args(["demo", "--users", "3", "-vvv", "--log-format", format])
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
        .args(["demo", "--users", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no log lines without -v");
}
