//! The scripted hostile door (`peer.rs`, `line.rs`, the hooks of `hostile.rs`) on a real pseudo-terminal,
//! under a real sync pass: the engine with a sled store in a temp dir, the door opened by its tty path
//! through `OsdpDoor::open` like `/dev/ttyS1`. Each case first syncs two users honestly, then turns the
//! door hostile and runs a verified pass, and asserts that the pass ends within the bound PROTOCOL.md
//! §8.1 gives for that case (the test's own deadline: that bound plus a generous slack), with a clear
//! error, the store intact (nothing recorded as deleted, nothing lost) and the door's users unchanged.
//!
//! Real time, not paused: tokio's paused clock jumps to the next timer whenever the runtime idles,
//! which on a pty (the kernel hands bytes over asynchronously) fires reply timeouts before the bytes
//! arrive. So the bounds here are hang guards only; exact timings are the paused-clock tests' job
//! (`hostile.rs`, `hostile_line.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::hostile::{differs_everywhere, ftstat_says, list_page, mfgrep_with, on_mfg};
use super::hostile_line::turns_bad;
use super::line::{Line, packet, run_line_pd};
use super::peer::Hook;
use super::*;
use crate::clock::ManualClock;
use crate::door::vendor::Reply as VReply;
use crate::osdp::Reply;
use crate::osdp::reply::{Nak, NakCode};
use crate::serial::pty::Pty;
use crate::store::Store;
use crate::sync::engine::{Engine, EngineDoor, EngineSettings, PassOptions, PassReport, Progress};
use crate::sync::testutil::{FakeCloud, now};

const BAUD: u32 = 115_200;
const DOOR: &str = "door0";
/// Added to every case's bound for the test's deadline: the machine may be loaded; a hang is not.
const SLACK: Duration = Duration::from_secs(30);
/// The FtDelay cap of the rig's profile: small, so the FtDelay case obeys a few dozen in real time.
const MAX_FT_DELAY_MS: u32 = 100;

fn pty_profile() -> Profile {
    let mut p = profile();
    p.osdp.max_ft_delay_ms = MAX_FT_DELAY_MS;
    p
}

fn quiet(_: Progress) {}

/// What the agent and the door hold: the part of the world a hostile door must not change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    applied: BTreeMap<DoorUserId, AppliedEntry>,
    ids: BTreeMap<UserKey, DoorUserId>,
    users: Vec<UserKey>,
    tombstones: usize,
    /// The door's own database: each id with its record and the sha256 of its face.
    on_door: BTreeMap<DoorUserId, (Option<DoorRecord>, Option<[u8; 32]>)>,
}

impl Held {
    fn of(engine: &Engine, peer: &SharedPeer) -> Held {
        let store = engine.store();
        let p = peer.lock().unwrap();
        Held {
            applied: store.applied(DOOR).unwrap(),
            ids: store.door_ids(DOOR).unwrap(),
            users: store.users().unwrap().0.into_iter().map(|u| u.key).collect(),
            tombstones: store.tombstones().unwrap().len(),
            on_door: p
                .db
                .user_ids()
                .map(|id| (id, (p.db.record(id).cloned(), p.db.face_jpeg(id).map(vendor::sha256))))
                .collect(),
        }
    }

    /// Everything in `self` is still in `later`, unchanged (`later` may hold more: a user added since).
    fn kept_in(&self, later: &Held) {
        for (id, entry) in &self.applied {
            assert_eq!(later.applied.get(id), Some(entry), "applied state of {id:?} changed");
        }
        for (key, id) in &self.ids {
            assert_eq!(later.ids.get(key), Some(id), "door id of {key} changed");
        }
        for key in &self.users {
            assert!(later.users.contains(key), "user {key} lost from the store");
        }
        assert_eq!(later.tombstones, self.tombstones, "nothing revoked");
        for (id, held) in &self.on_door {
            assert_eq!(later.on_door.get(id), Some(held), "door's user {id:?} changed");
        }
    }
}

/// How the PD answers on its end of the pty.
enum Pd {
    /// `PdLink` (sequencing, same-SQN replay) in front of the peer: a well-framed door whose hook lies.
    Session,
    /// The peer's answers turned into whatever bytes the line script says (`line.rs`).
    Line(Line),
}

struct Rig {
    _dir: tempfile::TempDir,
    engine: Engine,
    cloud: Arc<FakeCloud>,
    door: Arc<OsdpDoor>,
    peer: SharedPeer,
    /// Set by [`Rig::synced`]: what the honest first pass left.
    before: Option<Held>,
}

impl Rig {
    /// A store, a cloud with two users and the door on a fresh pty; `hook` is the door's script from
    /// the first command on (`None`: honest until a test installs one).
    fn new(pd: Pd, hook: Option<Hook>) -> Rig {
        let profile = pty_profile();
        let pty = Pty::open().unwrap();
        let path = pty.slave_path().to_path_buf();
        let peer = Peer::new(profile.vendor_code, Knobs::default());
        peer.lock().unwrap().hook = hook;
        match pd {
            Pd::Session => {
                let p = peer.clone();
                tokio::spawn(run_pd(pty, ADDR, move |c| p.lock().unwrap().handle(c)));
            }
            Pd::Line(line) => {
                tokio::spawn(run_line_pd(pty, ADDR, peer.clone(), line));
            }
        }
        let (door, driver) = OsdpDoor::open(&path, BAUD, ADDR, &profile, OsdpDoorOptions::default()).unwrap();
        tokio::spawn(driver.run());
        let door = Arc::new(door);
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(FakeCloud::with_users(2));
        let engine = Engine::new(
            Store::open(dir.path()).unwrap(),
            cloud.clone(),
            Arc::new(ManualClock::new(now())),
            vec![EngineDoor {
                name: DOOR.into(),
                profile,
                door: door.clone(),
            }],
            EngineSettings::default(),
        );
        Rig {
            _dir: dir,
            engine,
            cloud,
            door,
            peer,
            before: None,
        }
    }

    /// [`Rig::new`] after an honest first pass that put both users and their faces on the door.
    async fn synced(pd: Pd) -> Rig {
        let mut rig = Rig::new(pd, None);
        rig.converge("the honest first pass").await;
        let before = Held::of(&rig.engine, &rig.peer);
        assert_eq!(before.applied.len(), 2);
        assert_eq!(before.on_door.len(), 2);
        assert!(before.on_door.values().all(|(r, f)| r.is_some() && f.is_some()));
        rig.before = Some(before);
        rig
    }

    /// Honest passes until the door holds the desired state. More than one only when a loaded machine
    /// stalled the test past a reply timeout (the setup must not depend on the machine's speed).
    async fn converge(&self, case: &str) -> PassReport {
        let mut last = None;
        for _ in 0..3 {
            let (report, _) = self.pass(PassOptions::default(), case, SLACK).await;
            if report.converged {
                return report;
            }
            last = Some(report);
        }
        panic!("{case}: no convergence in 3 passes: {last:?}");
    }

    fn turn_hostile(&self, hook: Hook) {
        self.peer.lock().unwrap().hook = Some(hook);
    }

    /// One pass under the test's deadline (`bound` + [`SLACK`]); the report and the real time it took.
    async fn pass(&self, options: PassOptions, case: &str, bound: Duration) -> (PassReport, Duration) {
        let started = Instant::now();
        let report = tokio::time::timeout(bound + SLACK, self.engine.pass(&options, &quiet))
            .await
            .unwrap_or_else(|_| panic!("{case}: the pass must end within {bound:?} (+ {SLACK:?} slack)"))
            .unwrap();
        (report, started.elapsed())
    }

    /// The verified pass a technician's `sync --force-refresh` or a due verification would run.
    async fn hostile_pass(&self, case: &str, bound: Duration) -> PassReport {
        let options = PassOptions {
            verify: true,
            ..PassOptions::default()
        };
        let (report, took) = self.pass(options, case, bound).await;
        eprintln!(
            "{case}: pass ended after {took:?} (bound {bound:?}): {}",
            errors(&report)
        );
        report
    }

    /// A verified pass that must end unconverged with an error containing `says`, leaving the store and
    /// the door as the honest pass left them.
    async fn refused(&self, case: &str, bound: Duration, says: &str) {
        let report = self.hostile_pass(case, bound).await;
        assert!(!report.converged, "{case}");
        let errors = errors(&report);
        assert!(errors.contains(says), "{case}: {errors}");
        self.assert_intact(case);
    }

    /// The store and the door hold what the honest pass left, unchanged.
    fn assert_intact(&self, case: &str) {
        let before = self.before.as_ref().expect("Rig::synced");
        let now = Held::of(&self.engine, &self.peer);
        before.kept_in(&now);
        assert_eq!(&now, before, "{case}: store or door changed");
    }

    fn session(&self) -> crate::osdp::SessionConfig {
        OsdpDoor::line_session_config(ADDR, &pty_profile(), BAUD)
    }
}

/// Every error the door's sync reported, joined: verification, apply, per-user failures.
fn errors(report: &PassReport) -> String {
    let mut out = Vec::new();
    for d in &report.doors {
        out.extend(d.verify_error.clone());
        out.extend(d.apply.error.clone());
        out.extend(d.apply.failed.iter().map(|(k, v)| format!("{k}: {v}")));
    }
    out.join("; ")
}

/// Worst case of one query that is answered: resends until `query_timeout`.
fn query_bound() -> Duration {
    OsdpDoorOptions::default().query_timeout
}

/// Exchanges of a verified pass before LIST: DIGEST, 13 bucket-digest pages, INFO (+ apply's INFO).
const VERIFY_EXCHANGES: u32 = 1 + 13 + 2;

#[tokio::test]
async fn pty_list_saying_more_forever_stops_at_info_user_count_plus_margin() {
    let rig = Rig::synced(Pd::Session).await;
    rig.turn_hostile(differs_everywhere(2, |id, bucket, cursor| {
        list_page(id, bucket, Some(cursor + 64), vec![hostile::entry(cursor + 1)])
    }));
    // LIST stops after INFO's 2 users + the margin: at most 2 + 64 + 1 pages.
    let pages = 2 + LIST_MARGIN_USERS + 1;
    let bound = query_bound() * (VERIFY_EXCHANGES + pages);
    rig.refused("LIST more=1 forever", bound, "INFO reports 2 users").await;
}

#[tokio::test]
async fn pty_list_cursor_going_backwards_is_refused_after_one_page() {
    let rig = Rig::synced(Pd::Session).await;
    rig.turn_hostile(differs_everywhere(2, |id, bucket, cursor| {
        list_page(id, bucket, Some(if cursor == 0 { 100 } else { 5 }), vec![])
    }));
    let bound = query_bound() * (VERIFY_EXCHANGES + 2);
    rig.refused("LIST cursor backwards", bound, "cursor 5, not after cursor 100")
        .await;
}

#[tokio::test]
async fn pty_digest_claiming_100000_users_is_a_mismatch_that_removes_and_forgets_nobody() {
    let rig = Rig::synced(Pd::Session).await;
    // LIST is honest (the door answers it): it holds exactly the two users, whatever DIGEST claims.
    rig.turn_hostile(differs_everywhere(100_000, |_, _, _| None));
    // 64 buckets differ: one LIST page each, twice (the read-back and the confirmation).
    let bound = query_bound() * 2 * (VERIFY_EXCHANGES + 64);
    let report = rig.hostile_pass("DIGEST 100,000", bound).await;
    assert!(!report.converged, "a door whose digest never matches is not confirmed");
    let door = &report.doors[0];
    let verify = door.verify.as_ref().expect("the read-back ran");
    assert!(!verify.matched);
    assert_eq!(verify.buckets_differing, 64);
    assert_eq!(verify.repairs(), 0, "{verify:?}");
    assert_eq!(door.confirmed, Some(false));
    rig.assert_intact("DIGEST 100,000");
}

#[tokio::test]
async fn pty_ft_delay_65535_is_obeyed_only_up_to_max_ft_delay_and_the_face_lands() {
    let rig = Rig::synced(Pd::Session).await;
    rig.peer.lock().unwrap().knobs.ft_delay_ms = u16::MAX;
    rig.cloud.add("u3", None);
    // Every fragment of u3's record and face (at most 64 KiB in 1 KB packets) waits the cap at most.
    let cap = Duration::from_millis(u64::from(MAX_FT_DELAY_MS));
    let fragments = 2 + 65_536 / FRAGMENT as u32;
    let bound = cap * fragments + query_bound() * (VERIFY_EXCHANGES + 2 * fragments);
    let report = rig.hostile_pass("FtDelay 65535", bound).await;
    assert!(report.converged, "{}", errors(&report));
    assert!(rig.door.stats().ft_delays_capped > 0);
    let after = Held::of(&rig.engine, &rig.peer);
    rig.before.as_ref().unwrap().kept_in(&after);
    assert_eq!(after.on_door.len(), 3, "u3 was delivered");
}

#[tokio::test]
async fn pty_busy_forever_is_offline_after_the_offline_timeout() {
    let rig = Rig::synced(Pd::Session).await;
    rig.turn_hostile(Box::new(|_| Some(Some(Reply::Busy))));
    let session = rig.session();
    let bound = session.offline_after + session.reply_timeout;
    rig.refused("BUSY forever", bound, "offline").await;
    assert!(rig.door.link_status().diagnostics.busy_replies > 0);
}

#[tokio::test]
async fn pty_nak_storms_end_in_a_clear_error_naming_the_cause() {
    let cases: [(u8, &str); 6] = [
        (0x01, "NAK"),
        (0x02, "NAK"),
        (0x03, "NAK"),
        (0x05, "Secure Channel"),
        (0x06, "requires OSDP Secure Channel"),
        (0x09, "generic-face-v1"),
    ];
    for (code, says) in cases {
        let rig = Rig::synced(Pd::Session).await;
        rig.turn_hostile(on_mfg(move |_| Some(Some(Reply::Nak(Nak::new(NakCode::from(code)))))));
        // A NAK 0x01 is resent (bounded tries) and then takes the link down; the others end at once.
        let session = rig.session();
        let case = format!("NAK {code:#04x} storm");
        let bound = session.offline_after + OsdpDoorOptions::default().connect_wait;
        rig.refused(&case, bound, says).await;
    }
}

#[tokio::test]
async fn pty_garbage_and_bogus_lengths_on_the_line_end_the_pass_as_link_trouble() {
    type Bad = fn(u8, Option<Reply>) -> Vec<u8>;
    let cases: [(&str, Bad); 4] = [
        ("garbage bytes", |_, _| {
            (0..200u32).map(|i| (i * 37 % 251) as u8).collect()
        }),
        ("LEN 0xFFFF", |_, _| vec![0x53, 0x81, 0xFF, 0xFF, 0x04, 0x40, 0, 0]),
        ("shorter than a header", |_, _| vec![0x53, 0x81, 0x03, 0x00]),
        ("another address", |sqn, r| {
            packet(ADDR + 4, sqn, &r.unwrap_or(Reply::Ack))
        }),
    ];
    for (case, bad) in cases {
        let (line, flag) = turns_bad(bad);
        let rig = Rig::synced(Pd::Line(line)).await;
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let session = rig.session();
        let report = rig
            .hostile_pass(case, session.offline_after + OsdpDoorOptions::default().connect_wait)
            .await;
        assert!(!report.converged, "{case}");
        let errors = errors(&report);
        assert!(
            errors.contains("offline") || errors.contains("did not answer"),
            "{case}: {errors}"
        );
        let names = match case {
            "another address" => "the line carried 4 replies from address 5",
            _ => "packets that failed their check",
        };
        assert!(errors.contains(names), "{case}: {errors}");
        rig.assert_intact(case);
    }
}

#[tokio::test]
async fn pty_mfgrep_with_another_vendor_code_names_both_codes() {
    let rig = Rig::synced(Pd::Session).await;
    rig.turn_hostile(on_mfg(|mc| {
        mfgrep_with([0x12, 0x34, 0x56], mc.request_id, VReply::Cleared)
    }));
    rig.refused(
        "MFGREP wrong vendor",
        query_bound() * 2,
        "door answers vendor code 12:34:56",
    )
    .await;
}

#[tokio::test]
async fn pty_ftstat_with_unusual_statuses_fails_the_new_user_and_keeps_the_others() {
    for status in [3i16, 7, -7, i16::MIN] {
        let rig = Rig::synced(Pd::Session).await;
        rig.turn_hostile(ftstat_says(status));
        rig.cloud.add("u3", None);
        let case = format!("FTSTAT status {status}");
        let bound = OsdpDoorOptions::default().resume_wait + query_bound() * (VERIFY_EXCHANGES + 4);
        let report = rig.hostile_pass(&case, bound).await;
        assert!(!report.converged, "{case}");
        let errors = errors(&report);
        assert!(!errors.is_empty(), "{case}");
        let after = Held::of(&rig.engine, &rig.peer);
        rig.before.as_ref().unwrap().kept_in(&after);
        assert_eq!(
            after.on_door.len(),
            2,
            "{case}: nothing was added behind the odd FTSTAT"
        );
    }
}

#[tokio::test]
async fn pty_pdcap_of_odd_length_or_a_truncated_pdid_never_comes_online_and_the_pass_says_why() {
    let cases = super::hostile::malformed_discovery();
    for (case, hook) in cases {
        // Hostile from its first reply, so there is no honest pass: the store must stay empty of doors.
        let rig = Rig::new(Pd::Session, Some(Box::new(hook)));
        let options = PassOptions {
            verify: true,
            ..PassOptions::default()
        };
        let (report, took) = rig
            .pass(options, case, OsdpDoorOptions::default().connect_wait * 2)
            .await;
        eprintln!("{case}: pass ended after {took:?}: {}", errors(&report));
        assert!(!report.converged, "{case}");
        let errors = errors(&report);
        assert!(errors.contains(case), "{case}: {errors}");
        let held = Held::of(&rig.engine, &rig.peer);
        assert!(held.applied.is_empty() && held.on_door.is_empty(), "{case}: {held:?}");
        assert_eq!(held.tombstones, 0);
    }
}

#[tokio::test]
async fn pty_faces_over_the_doors_info_limit_are_re_normalised_to_fit_and_delivered_once() {
    // The profile allows 40 KB faces; this door takes (and its INFO says) 8,000 bytes at most.
    const DOOR_MAX: u32 = 8_000;
    let rig = Rig::new(Pd::Session, None);
    rig.peer.lock().unwrap().db = crate::door::db::DoorDb::new(crate::door::db::DoorDbLimits {
        max_face_jpeg_bytes: DOOR_MAX,
        ..peer::limits()
    });
    rig.converge("INFO max face 8000").await;
    let held = Held::of(&rig.engine, &rig.peer);
    assert_eq!(held.on_door.len(), 2);
    for entry in held.applied.values() {
        let face = entry.face.expect("the face was delivered");
        assert!(face.len_bytes <= DOOR_MAX, "{} > {DOOR_MAX}", face.len_bytes);
    }
    assert_eq!(
        held.applied
            .values()
            .map(|e| e.face.map(|f| f.sha256))
            .collect::<Vec<_>>(),
        held.on_door.values().map(|(_, f)| *f).collect::<Vec<_>>(),
        "the door holds the fitted faces the store records"
    );
    let (second, _) = rig
        .pass(PassOptions::default(), "INFO max face 8000, again", SLACK)
        .await;
    assert!(second.converged);
    assert_eq!(
        second.doors[0].apply,
        crate::sync::apply::ApplyReport::default(),
        "nothing sent again"
    );
}
