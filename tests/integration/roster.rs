//! Roster integrity against the real fake cloud on 127.0.0.1, a real sled store and a memory door: a
//! cloud that lies, breaks or pages badly never removes people it did not explicitly revoke, a mass
//! removal is held, and one user's bad data never holds up anyone else (README, "Roster integrity").

use std::sync::Arc;
use std::time::Duration;

use doorsync::cli::sync::{EXIT_CLOUD_FAILED, exit_status};
use doorsync::clock::ManualClock;
use doorsync::cloud::sim::{BodyFault, Fault, RosterFault, SimHandle};
use doorsync::cloud::{CloudClient, CloudSettings, wire};
use doorsync::config::builtin_profile;
use doorsync::domain::{Policy, UserKey};
use doorsync::door::memory::MemoryDoor;
use doorsync::store::Store;
use doorsync::sync::engine::{Engine, EngineDoor, EngineSettings, PassOptions, PassReport, Progress};
use doorsync::sync::guard::GuardSettings;
use doorsync::sync::status;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::harness::{cloud_settings, memory_door, names_on, sim};
use crate::processes;
use crate::processes::{doorsync, json};

const USERS: usize = 30;

struct Rig {
    sim: SimHandle,
    engine: Engine,
    door: Arc<MemoryDoor>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn engine(
    dir: &std::path::Path,
    settings: CloudSettings,
    door: &Arc<MemoryDoor>,
    clock: &Arc<ManualClock>,
    guard: GuardSettings,
) -> Engine {
    let store = Store::open(dir).unwrap();
    Engine::new(
        store,
        Arc::new(CloudClient::new(settings).unwrap()),
        clock.clone(),
        vec![EngineDoor {
            name: "lobby".into(),
            profile: builtin_profile("generic-face-v1").unwrap(),
            door: door.clone(),
        }],
        EngineSettings {
            max_concurrency: 4,
            guard,
            ..Default::default()
        },
    )
}

/// A fake cloud with 30 users and an engine whose one door already holds all of them.
async fn converged_rig(tweak: impl FnOnce(&mut CloudSettings)) -> Rig {
    let sim = sim(USERS).await;
    let dir = tempfile::tempdir().unwrap();
    let door = memory_door();
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let mut settings = cloud_settings(&sim.base_url());
    tweak(&mut settings);
    let engine = engine(dir.path(), settings, &door, &clock, GuardSettings::default());
    let rig = Rig {
        sim,
        engine,
        door,
        clock,
        _dir: dir,
    };
    let first = rig.pass().await;
    assert!(first.converged && first.pull_error.is_none(), "{first:?}");
    assert_eq!(rig.on_door(), USERS);
    rig
}

impl Rig {
    async fn pass_with(&self, options: PassOptions) -> PassReport {
        let quiet = |_: Progress| {};
        self.engine.pass(&options, &quiet).await.unwrap()
    }

    async fn pass(&self) -> PassReport {
        self.pass_with(PassOptions::default()).await
    }

    fn on_door(&self) -> usize {
        self.door.user_ids().len()
    }

    /// Whether the door holds `user_id` under the id the agent gave them.
    fn holds(&self, user_id: &str) -> bool {
        let ids = self.engine.store().door_ids("lobby").unwrap();
        ids.get(&UserKey::new("IDENTITY", user_id))
            .is_some_and(|id| self.door.user_ids().contains(id))
    }
}

/// The pull failed naming `needle`, `sync` would exit 3, and nobody left the door.
fn assert_incomplete_kept_everyone(rig: &Rig, report: &PassReport, needle: &str) {
    let error = report.pull_error.as_deref().unwrap_or_default();
    assert!(error.contains(needle), "pull_error {error:?} does not name {needle:?}");
    assert_eq!(exit_status(report), EXIT_CLOUD_FAILED, "{report:?}");
    assert_eq!(rig.on_door(), USERS, "nobody may be removed ({needle})");
    assert_eq!(
        rig.engine.store().users().unwrap().0.len(),
        USERS,
        "the cached roster stays in force"
    );
}

#[tokio::test]
async fn a_roster_walk_that_does_not_add_up_removes_nobody_and_names_the_inconsistency() {
    let rig = converged_rig(|_| {}).await;
    let cases = [
        (RosterFault::EmptyPages, "short (0 users)"),
        (RosterFault::EmptyPage { page_no: 2 }, "page 2 is short"),
        (RosterFault::OnlyFirst { users: 5 }, "only 5 of the 30"),
        (RosterFault::Overlap, "listed twice"),
        (RosterFault::TotalChanges, "the total changed"),
        (RosterFault::Total(json!(-1)), "negative"),
        (RosterFault::Total(json!(1_000_000_000_000u64)), "more than a walk"),
        (
            RosterFault::Item {
                index: 3,
                item: json!({"userId": "", "userType": "IDENTITY"}),
            },
            "empty or missing userId",
        ),
        (
            RosterFault::Item {
                index: 0,
                item: json!({"userType": "IDENTITY"}),
            },
            "empty or missing userId",
        ),
    ];
    for (fault, needle) in cases {
        rig.sim.set_roster_fault(Some(fault));
        let report = rig.pass().await;
        assert_incomplete_kept_everyone(&rig, &report, needle);
        assert!(
            report
                .pull_error
                .as_deref()
                .unwrap_or_default()
                .contains("roster incomplete")
        );
    }
    rig.sim.set_roster_fault(None);
    // A page repeated (a gateway that ignores our paging parameter).
    rig.sim.set_roster_ignores_page_no(true);
    let report = rig.pass().await;
    assert_incomplete_kept_everyone(&rig, &report, "repeats an earlier page");
    rig.sim.set_roster_ignores_page_no(false);
    let healthy = rig.pass().await;
    assert!(healthy.pull_error.is_none() && healthy.converged, "{healthy:?}");
}

#[tokio::test]
async fn both_names_of_the_total_are_accepted() {
    let rig = converged_rig(|_| {}).await;
    for both in [false, true] {
        rig.sim.set_roster_fault(Some(RosterFault::TotalNamed { both }));
        let report = rig.pass().await;
        assert!(report.pull_error.is_none(), "both={both}: {report:?}");
        assert_eq!(report.pull.as_ref().map(|p| p.users_total), Some(USERS as u64));
    }
}

#[tokio::test]
async fn endless_pages_end_as_an_incomplete_pull() {
    let rig = converged_rig(|_| {}).await;
    rig.sim.set_roster_fault(Some(RosterFault::Endless));
    let report = rig.pass().await;
    assert_incomplete_kept_everyone(&rig, &report, "pages without reaching its end");
    assert!(
        report.pull_error.unwrap_or_default().contains("after 1 walk:"),
        "a runaway walk is not repeated"
    );
}

#[tokio::test]
async fn explicit_revocations_still_apply_during_an_incomplete_pull() {
    let rig = converged_rig(|_| {}).await;
    rig.sim.set_status("u-0002", Some("transferDeleted"));
    rig.sim.set_policy("u-0003", Policy::Deny);
    let mut gone = rig.sim.users().into_iter().find(|u| u.key.user_id == "u-0004").unwrap();
    gone.has_face = false;
    rig.sim.upsert_user(gone);
    rig.sim.set_roster_fault(Some(RosterFault::OnlyFirst { users: 10 }));
    let report = rig.pass().await;
    let error = report.pull_error.as_deref().unwrap_or_default();
    assert!(error.contains("only 10 of the 30"), "{error}");
    assert_eq!(rig.on_door(), USERS - 3, "exactly the three explicit revocations went");
    for revoked in ["u-0002", "u-0003", "u-0004"] {
        assert!(!rig.holds(revoked), "{revoked} must be removed");
    }
    for kept in ["u-0001", "u-0011", "u-0030"] {
        assert!(rig.holds(kept), "{kept} (unlisted by the broken walk) must stay");
    }
}

#[tokio::test]
async fn a_really_empty_roster_is_held_visible_and_applied_only_when_confirmed() {
    let rig = converged_rig(|_| {}).await;
    for n in 1..=USERS {
        rig.sim.remove_from_roster(&format!("u-{n:04}"));
    }
    let report = rig.pass().await;
    assert!(report.pull_error.is_none(), "{report:?}");
    let held = report.removals_held.clone().expect("removals_held in the sync report");
    assert_eq!(held.count, USERS as u64);
    assert_eq!(rig.on_door(), USERS, "a mass removal is held, not applied");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["removals_held"]["count"], USERS);
    let s = status::collect(rig.engine.store(), &["lobby"], false).unwrap();
    assert_eq!(s.removals_held.map(|h| h.count), Some(USERS as u64));
    assert_eq!(s.roster, "complete");

    // Another pull inside the hold: still held.
    rig.clock.advance(SignedDuration::from_mins(5));
    assert_eq!(rig.pass().await.removals_held.map(|h| h.count), Some(USERS as u64));
    assert_eq!(rig.on_door(), USERS);

    let confirmed = rig
        .pass_with(PassOptions {
            confirm_removals: true,
            ..Default::default()
        })
        .await;
    assert!(confirmed.removals_held.is_none(), "{confirmed:?}");
    assert_eq!(rig.on_door(), 0, "confirmed removals are applied at once");
}

#[tokio::test]
async fn held_removals_apply_once_pulls_agree_for_the_hold_and_a_few_go_at_once() {
    let rig = converged_rig(|_| {}).await;
    // Three of thirty is a decision, not a fault: they go at once.
    for id in ["u-0001", "u-0002", "u-0003"] {
        rig.sim.remove_from_roster(id);
    }
    let report = rig.pass().await;
    assert!(report.removals_held.is_none(), "{report:?}");
    assert_eq!(rig.on_door(), USERS - 3);
    // Twenty more at once are held until pulls spanning removal_hold (10 min) agree.
    for n in 4..=23 {
        rig.sim.remove_from_roster(&format!("u-{n:04}"));
    }
    assert_eq!(rig.pass().await.removals_held.map(|h| h.count), Some(20));
    assert_eq!(rig.on_door(), USERS - 3);
    rig.clock.advance(SignedDuration::from_mins(11));
    let due = rig.pass().await;
    assert!(due.removals_held.is_none(), "{due:?}");
    assert_eq!(rig.on_door(), USERS - 23);
}

#[tokio::test]
async fn a_new_store_that_cannot_reach_the_cloud_removes_nobody_from_the_door() {
    let rig = converged_rig(|_| {}).await;
    // A replaced gateway: a new, empty store with a wrong app secret, and a gateway that refuses the
    // signature with HTTP 400 as the real one does.
    rig.sim.set_signature_refusal_status(400);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = cloud_settings(&rig.sim.base_url());
    settings.app_secret = doorsync::domain::Secret::new(b"not-the-secret".to_vec());
    let fresh = engine(dir.path(), settings, &rig.door, &rig.clock, GuardSettings::default());
    let quiet = |_: Progress| {};
    let verified = PassOptions {
        verify: true,
        ..Default::default()
    };
    let report = fresh.pass(&verified, &quiet).await.unwrap();
    let error = report.pull_error.clone().unwrap_or_default();
    for needle in ["HTTP 400", "Invalid Signature", "app secret", "clock"] {
        assert!(error.contains(needle), "{needle} missing from {error}");
    }
    assert_eq!(rig.on_door(), USERS, "the door keeps everyone");
    let verify = report.doors[0].verify.clone().unwrap();
    assert_eq!((verify.unknown_kept, verify.unknown_deleted), (USERS as u64, 0));
    let s = status::collect(fresh.store(), &["lobby"], false).unwrap();
    assert_eq!(s.roster, "none yet");
    assert_eq!(s.doors[0].unknown_users.len(), USERS);
    assert!(s.to_string().contains("roster: none yet"));

    // The cloud gone altogether: the same.
    rig.sim.set_body_fault(
        wire::PATH_ROSTER,
        Some(BodyFault::Status(503, "Service Unavailable".into())),
    );
    let report = fresh.pass(&verified, &quiet).await.unwrap();
    assert!(report.pull_error.is_some());
    assert_eq!(rig.on_door(), USERS);
}

#[tokio::test]
async fn one_users_bad_image_or_record_fails_that_user_only_and_revocations_still_apply() {
    let rig = converged_rig(|_| {}).await;
    let big_name = format!("Eve\u{0}\u{1b}[31m{}", "x".repeat(1024 * 1024));
    let cases = [
        (
            "u-0010",
            json!({"imageUrl": "file:///etc/passwd"}),
            "user IDENTITY:u-0010: image URL scheme `file` is not allowed",
        ),
        (
            "u-0011",
            json!({"imageUrl": "ftp://127.0.0.1/u-0011.jpg"}),
            "image URL scheme `ftp` is not allowed",
        ),
        (
            "u-0012",
            json!({"imageUrl": "http://evil.example/u-0012.jpg"}),
            "`evil.example` is not in cloud.image_hosts",
        ),
        (
            "u-0013",
            json!({"imageUrl": "{base}/offhost/u-0013.jpg"}),
            "`localhost` is not in cloud.image_hosts",
        ),
        (
            "u-0014",
            json!({"imageUrl": "{base}/redirect/3/u-0014.jpg"}),
            "redirects more than 3 times",
        ),
        (
            "u-0015",
            json!({"imageUrl": "", "imageBase64": "%%% not base64"}),
            "not base64",
        ),
        (
            "u-0016",
            json!({"expireTime": "2026/13/45 25:61"}),
            "expireTime of user IDENTITY:u-0016",
        ),
        ("u-0017", json!({"policy": "MAYBE"}), "policy `MAYBE`"),
    ];
    for (user, patch, _) in &cases {
        let mut patch = patch.clone();
        patch["faceId"] = json!(format!("changed-{user}"));
        rig.sim.set_face_patch(user, patch);
    }
    rig.sim.set_image("u-0018", b"this is not an image".to_vec());
    rig.sim.set_image("u-0019", vec![0xFF; 3 * 1024 * 1024]);
    // Two redirects are fine.
    rig.sim.set_face_patch(
        "u-0020",
        json!({"imageUrl": "{base}/redirect/1/u-0020.jpg", "faceId": "moved"}),
    );
    rig.sim
        .set_face_patch("u-0021", json!({"userName": big_name, "faceId": "renamed"}));
    // And in the same pass, a revocation.
    rig.sim.set_status("u-0002", Some("transferDeleted"));

    let report = rig.pass().await;
    assert!(report.pull_error.is_none(), "{report:?}");
    assert!(!rig.holds("u-0002"), "the revocation went out despite the bad users");
    assert_eq!(rig.on_door(), USERS - 1, "every failed user keeps their previous face");
    for (user, _, needle) in &cases {
        let why = report
            .failed
            .get(&format!("IDENTITY:{user}"))
            .cloned()
            .unwrap_or_default();
        assert!(why.contains(needle), "{user}: {why:?} lacks {needle:?}");
        assert!(!why.contains("cloud settings"), "{why}");
    }
    for user in ["u-0018", "u-0019"] {
        assert!(
            report.failed.contains_key(&format!("IDENTITY:{user}")),
            "{user}: {:?}",
            report.failed
        );
    }
    assert!(!report.failed.contains_key("IDENTITY:u-0020"), "{:?}", report.failed);
    let text = doorsync::cli::sync::render(&report);
    assert!(text.contains("user failed IDENTITY:u-0010"), "{text}");
    for name in names_on(&rig.door) {
        assert!(!name.chars().any(char::is_control), "{name:?}");
    }
    assert!(names_on(&rig.door).iter().any(|n| n.starts_with("Eve[31mxxx")));
}

#[tokio::test]
async fn broken_answers_and_storms_remove_nobody_and_name_the_cause() {
    let rig = converged_rig(|s| s.request_timeout = Duration::from_secs(2)).await;
    let raw = |body: &str| BodyFault::Raw(body.to_string());
    let cases = [
        (
            raw("{\"id\":\"1\",\"code\":200,\"data\":{\"userList\":["),
            "not the JSON envelope",
        ),
        (raw("{\"id\":\"1\",\"data\":{}}"), "missing field `code`"),
        (
            raw("{\"id\":\"1\",\"code\":\"200\",\"data\":{}}"),
            "not the JSON envelope",
        ),
        (raw("{\"id\":\"1\",\"code\":200,\"data\":null}"), "has no data"),
        (
            raw("{\"id\":\"1\",\"code\":200,\"data\":\"a string\"}"),
            "unexpected shape",
        ),
        (
            raw("{\"id\":\"1\",\"code\":200,\"data\":{\"userList\":7}}"),
            "unexpected shape",
        ),
        (
            raw("{\"id\":\"1\",\"code\":200,\"data\":{\"userListTotal\":1e30,\"userList\":[]}}"),
            "unexpected shape",
        ),
        (BodyFault::Status(403, "Request Limited".into()), "HTTP 403"),
        (BodyFault::Status(500, "Internal Error".into()), "HTTP 500"),
        (BodyFault::Status(503, "Service Unavailable".into()), "HTTP 503"),
        (BodyFault::ResetMidBody, "network error"),
        (BodyFault::Hang, "timed out"),
    ];
    for (fault, needle) in cases {
        rig.sim.set_body_fault(wire::PATH_ROSTER, Some(fault));
        let report = rig.pass().await;
        assert_incomplete_kept_everyone(&rig, &report, needle);
    }
    rig.sim.set_body_fault(wire::PATH_ROSTER, None);
    // A seeded storm of injected faults on every page: still nobody removed.
    rig.sim.push_fault(wire::PATH_ROSTER, Fault::ServerError, 10);
    let report = rig.pass().await;
    assert_incomplete_kept_everyone(&rig, &report, "HTTP 503");
    rig.sim.clear_faults(wire::PATH_ROSTER);
    assert_eq!(
        rig.engine.store().users().unwrap().0.len(),
        USERS,
        "the store still reads"
    );
}

#[tokio::test]
async fn a_roster_response_over_the_cap_has_its_own_message() {
    let rig = converged_rig(|_| {}).await;
    // Beyond what a page of 20 users may take (twice the image cap plus framing), but not an image.
    rig.sim.set_name("u-0001", &"n".repeat(5 * 1024 * 1024));
    let report = rig.pass().await;
    assert_incomplete_kept_everyone(&rig, &report, "the response exceeds");
    assert!(
        !report
            .pull_error
            .unwrap_or_default()
            .contains("image_download_max_bytes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exits_3_on_a_broken_roster_and_confirm_removals_applies_a_held_mass_removal() {
    let sim = sim(12).await;
    let dir = tempfile::tempdir().unwrap();
    let door = processes::start_door(dir.path(), &["--no-pacing"]).await;
    let config = processes::write_config(dir.path(), &sim.base_url(), &door.link, 115_200);
    let on_door = || doorsync::door::sim::DoorDump::read(&door.db).unwrap().users.len();
    assert!(doorsync(&config, &["sync", "--json"]).await.status.success());
    assert_eq!(on_door(), 12);

    sim.set_roster_fault(Some(RosterFault::OnlyFirst { users: 2 }));
    let out = doorsync(&config, &["sync", "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "an incomplete pull exits 3");
    let pass = json(&out);
    assert!(
        pass["pull_error"]
            .as_str()
            .unwrap_or_default()
            .contains("roster incomplete"),
        "{pass}"
    );
    assert_eq!(on_door(), 12);

    sim.set_roster_fault(None);
    for n in 1..=12 {
        sim.remove_from_roster(&format!("u-{n:04}"));
    }
    let out = doorsync(&config, &["sync", "--json"]).await;
    assert!(out.status.success(), "exit {}", out.status);
    assert_eq!(json(&out)["removals_held"]["count"], 12);
    assert_eq!(on_door(), 12, "held, not applied");
    let status = json(&doorsync(&config, &["status", "--json"]).await);
    assert_eq!(status["removals_held"]["count"], 12, "{status}");
    assert_eq!(status["roster"], "complete");
    let text = String::from_utf8_lossy(&doorsync(&config, &["status"]).await.stdout).to_string();
    assert!(text.contains("removals HELD: 12"), "{text}");

    let out = doorsync(&config, &["sync", "--confirm-removals", "--json"]).await;
    assert!(out.status.success(), "exit {}", out.status);
    assert!(json(&out)["removals_held"].is_null());
    assert_eq!(on_door(), 0, "confirmed removals are applied at once");
}
