//! The demo's report without running a demo: the `--json` object's stable keys (README) and the text
//! summary. `tests/integration/cli_demo.rs` runs the real demo once, in text mode.

use super::*;

fn summary() -> DemoSummary {
    DemoSummary {
        converged: true,
        users: 5,
        baud: 115_200,
        users_desired: 3,
        users_on_door: 3,
        door_digest_matches: true,
        revoked_user: "IDENTITY:u-0002".into(),
        revoked_present: false,
        expired_user: "IDENTITY:u-0001".into(),
        expired_present: false,
        image_bytes_sent: 40_960,
        payload_bytes: 43_008,
        bytes_on_wire: 50_000,
        pass_ms: 6_000,
        goodput: 0.62,
        revocation_latency_ms: Some(40),
        expiry_latency_ms: None,
        cloud_delete_sent: true,
        secure_channel: false,
        doors: vec![],
    }
}

#[test]
fn json_summary_has_exactly_the_keys_the_readme_documents() {
    let value = serde_json::to_value(summary()).unwrap();
    let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    let mut documented = vec![
        "converged",
        "users",
        "baud",
        "users_desired",
        "users_on_door",
        "door_digest_matches",
        "revoked_user",
        "revoked_present",
        "expired_user",
        "expired_present",
        "image_bytes_sent",
        "payload_bytes",
        "bytes_on_wire",
        "pass_ms",
        "goodput",
        "revocation_latency_ms",
        "expiry_latency_ms",
        "cloud_delete_sent",
        "secure_channel",
        "doors",
    ];
    let mut keys = keys;
    keys.sort_unstable();
    documented.sort_unstable();
    assert_eq!(keys, documented);
    assert_eq!(
        value["expiry_latency_ms"],
        serde_json::Value::Null,
        "an unobserved expiry is null"
    );
}

#[test]
fn text_summary_says_what_was_not_measured() {
    let text = render(&summary());
    assert!(
        text.contains("users: 5 in the cloud, 3 may pass, 3 on the door (converged)"),
        "{text}"
    );
    assert!(text.contains("revocation latency: 40 ms"), "{text}");
    assert!(text.contains("expiry latency: n/a"), "{text}");
}
