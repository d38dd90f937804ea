//! `doorsync demo`, the newcomer's first command, run as a user would run it: the fake cloud, a paced
//! simulated door on a pseudo-terminal and the real daemon, then a revocation, an expiry and a read-back.
//!
//! A demo takes some seconds of real time, so every test here reads the one run in [`demo`]: five users,
//! text output on stdout, trace-level JSON logs on stderr.

use std::sync::OnceLock;

use assert_cmd::Command;

const SECRET: &str = "demo-secret-0123456789abcdef";

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// The shared run; the first test to ask starts it and the others wait for it.
fn demo() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let out = Command::cargo_bin("doorsync")
            .unwrap()
            .args(["demo", "--users", "5", "-vvv", "--log-format", "json"])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
}

/// The JSON log lines of the run (every stderr line must be one).
fn log_lines() -> Vec<serde_json::Value> {
    demo()
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn demo_converges_without_the_revoked_and_expired_users() {
    let run = demo();
    assert!(
        run.success,
        "stdout:\n{}\nstderr tail:\n{}",
        run.stdout,
        tail(&run.stderr)
    );
    let text = &run.stdout;
    for expected in [
        "users: 5 in the cloud, 3 may pass, 3 on the door (converged)",
        "revoked IDENTITY:u-0002: gone from the door; expired IDENTITY:u-0001: gone from the door",
        "cloud face delete for the revoked user: sent",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for measured in ["revocation latency: ", "expiry latency: "] {
        let line = text.lines().find(|l| l.contains(measured)).unwrap_or_default();
        assert!(line.contains(" ms ("), "{measured}was measured: {line:?} in:\n{text}");
    }
}

#[test]
fn demo_text_tells_the_story() {
    let text = &demo().stdout;
    for expected in [
        "fake cloud: http://127.0.0.1:",
        "simulated door: OSDP address 1 on /dev/pts/",
        "first pass: 5 users on the door",
        "door demo-door: removed in",
        // Printed only when the daemon reported the expired user's removal from the door.
        "expiry: IDENTITY:u-0001 removed from demo-door",
        "door DIGEST matches",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_app_secret_never_reaches_the_logs_even_at_trace_level() {
    let logs = log_lines();
    assert!(logs.len() > 10, "trace logging is on: {}", demo().stderr);
    assert!(!demo().stderr.contains(SECRET), "secret leaked into the logs");
    assert!(!demo().stdout.contains(SECRET), "secret leaked onto stdout");
}

#[test]
fn default_logging_is_quiet_because_the_demo_logs_no_warnings() {
    // Without -v only warnings and errors are shown (cli::logging), so a run that logs none of them
    // at trace level prints nothing on stderr by default.
    let loud: Vec<String> = log_lines()
        .iter()
        .filter(|l| matches!(l["level"].as_str(), Some("WARN" | "ERROR")))
        .map(|l| l.to_string())
        .collect();
    assert!(loud.is_empty(), "the demo logged warnings or errors: {loud:#?}");
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
