//! Crash safety (docs/ARCHITECTURE.md §3, invariant 3): `doorsync run` as a real process, SIGKILLed at seeded random
//! points of its passes while the fake cloud changes underneath (revocations, roster removals, new
//! faces), restarted each time; it must always come back on its store and converge with no revoked
//! user on the door. The door is `doorsync simulate door` (its own process, file-backed, paced at 230 400 baud), and
//! convergence is read from its db file, never inferred from timing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use doorsync::cloud::sim::{SimHandle, SimUser};
use doorsync::domain::Policy;
use doorsync::door::sim::DoorDump;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::process::{Child, Command};

use crate::harness::{self, HANG_GUARD, sim};
use crate::processes::{DoorProcess, doorsync, json, start_door, write_config};

const USERS: usize = 8;
const BAUD: &str = "230400";
const BAUD_NUM: u32 = 230_400;
const KILLS: usize = 24;
/// Every this many kills the daemon is left to converge (and checked) before the next kill.
const SETTLE_EVERY: usize = 6;

struct Files {
    config: PathBuf,
    door_db: PathBuf,
    logs: PathBuf,
}

/// `doorsync run`, its stderr appended to the run log (shown when an assertion fails).
fn start_daemon(files: &Files, run: usize) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.logs)
        .unwrap();
    use std::io::Write as _;
    writeln!(&log, "--- run {run} ---").unwrap();
    Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["-v", "run", "--config"])
        .arg(&files.config)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn logs(files: &Files) -> String {
    let text = std::fs::read_to_string(&files.logs).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(60).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The names (set to user ids) of the people the cloud says may pass.
fn allowed(sim: &SimHandle) -> BTreeSet<String> {
    sim.users()
        .into_iter()
        .filter(|u| u.in_roster && u.policy == Policy::Permission && u.has_face)
        .map(|u| u.name)
        .collect()
}

/// Who the door holds with the face its record announces, by its db file.
fn on_door(db: &Path) -> (BTreeSet<String>, bool) {
    let dump = DoorDump::read(db).unwrap();
    let faces_complete = dump
        .users
        .iter()
        .all(|u| u.face.as_ref().is_some_and(|f| f.sha256 == u.record_face_sha256));
    (dump.users.into_iter().map(|u| u.display_name).collect(), faces_complete)
}

/// One random change in the cloud: revoke, re-grant, drop from or return to the roster, new face.
fn change_cloud(sim: &SimHandle, rng: &mut StdRng) -> String {
    let users = sim.users();
    let pick: &SimUser = &users[rng.random_range(0..users.len())];
    let id = pick.key.user_id.clone();
    let out_of_roster = users.iter().filter(|u| !u.in_roster).count();
    match rng.random_range(0..5) {
        0 | 1 if pick.policy == Policy::Permission => {
            sim.set_policy(&id, Policy::Deny);
            format!("revoke {id}")
        }
        0 | 1 => {
            sim.set_policy(&id, Policy::Permission);
            format!("re-grant {id}")
        }
        // Few at a time: most of the roster gone at once is the mass-gone stop, not a revocation.
        2 if pick.in_roster && out_of_roster < 2 => {
            sim.remove_from_roster(&id);
            format!("remove {id} from the roster")
        }
        2 | 3 if !pick.in_roster => {
            let mut back = pick.clone();
            back.in_roster = true;
            sim.upsert_user(back);
            format!("return {id} to the roster")
        }
        _ => {
            sim.regenerate_image(&id);
            format!("new face for {id}")
        }
    }
}

/// Waits until the daemon's control socket answers (its signal handlers are installed by then).
async fn ready(files: &Files, daemon: &mut Child) {
    let socket = files.config.parent().unwrap().join("store").join("doorsync.sock");
    tokio::time::timeout(HANG_GUARD, async {
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            if let Some(exit) = daemon.try_wait().unwrap() {
                panic!("the daemon exited ({exit}) before it listened:\n{}", logs(files));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the daemon never listened on its control socket");
}

/// Waits until the door holds exactly who may pass, each with their announced face.
async fn converged(sim: &SimHandle, files: &Files, daemon: &mut Child, when: &str) {
    converged_to(allowed(sim), files, daemon, when).await;
}

/// Waits until the door holds exactly `want`, each with their announced face.
async fn converged_to(want: BTreeSet<String>, files: &Files, daemon: &mut Child, when: &str) {
    let reached = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let (held, faces) = on_door(&files.door_db);
            if held == want && faces {
                return;
            }
            if let Some(exit) = daemon.try_wait().unwrap() {
                panic!("the daemon exited ({exit}) {when}:\n{}", logs(files));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if reached.is_err() {
        panic!(
            "the door never converged {when}: holds {:?}, should hold {want:?}\n{}",
            on_door(&files.door_db).0,
            logs(files)
        );
    }
}

/// The fake cloud (user names = user ids, as the door's db file is read by name), a paced door process
/// and the agent's files.
async fn setup(dir: &Path) -> (SimHandle, DoorProcess, Files) {
    let sim = sim(USERS).await;
    for u in sim.users() {
        sim.set_name(&u.key.user_id, &u.key.user_id);
    }
    // Paced at a fast rate, so a face takes a fraction of a second and kills land mid-transfer.
    let door = start_door(dir, &["--baud", BAUD]).await;
    let files = Files {
        config: write_config(dir, &sim.base_url(), &door.link, BAUD_NUM),
        door_db: door.db.clone(),
        logs: dir.join("daemon.log"),
    };
    (sim, door, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_daemon_restarts_on_its_store_and_converges_with_no_revoked_user_on_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _door, files) = setup(dir.path()).await;
    let mut rng = StdRng::seed_from_u64(0x00D0_0125);

    let mut daemon = start_daemon(&files, 0);
    converged(&sim, &files, &mut daemon, "on the first start").await;
    let mut history = Vec::new();
    let mut mid_pass = 0;
    for kill in 1..=KILLS {
        // Change the cloud, then kill at a random point of the pass that follows start-up (roster pull,
        // deletes, record files, face transfers): a restart repeats whatever was not acknowledged.
        for _ in 0..rng.random_range(1..=3) {
            history.push(change_cloud(&sim, &mut rng));
        }
        if kill > 1 {
            daemon = start_daemon(&files, kill);
        }
        let delay = Duration::from_millis(rng.random_range(0..1500));
        if kill % SETTLE_EVERY == 0 {
            converged(
                &sim,
                &files,
                &mut daemon,
                &format!("before kill {kill} after {history:?}"),
            )
            .await;
        } else {
            tokio::time::sleep(delay).await;
        }
        if let Some(exit) = daemon.try_wait().unwrap() {
            panic!(
                "run {kill}: the daemon exited by itself ({exit}) — could it not open its store?\n{}",
                logs(&files)
            );
        }
        daemon.kill().await.unwrap();
        daemon.wait().await.unwrap();
        let (held, faces) = on_door(&files.door_db);
        if held != allowed(&sim) || !faces {
            mid_pass += 1;
        }
    }
    // Shown, not asserted (it depends on timing): how many kills left work undone on the door.
    eprintln!("{mid_pass} of {KILLS} kills left the door short of desired state");

    // The last restart: it converges, and nobody the cloud revoked or removed is left on the door.
    let mut daemon = start_daemon(&files, KILLS + 1);
    ready(&files, &mut daemon).await;
    converged(
        &sim,
        &files,
        &mut daemon,
        &format!("after {KILLS} kills and {history:?}"),
    )
    .await;
    let (held, _) = on_door(&files.door_db);
    for u in sim
        .users()
        .iter()
        .filter(|u| !u.in_roster || u.policy != Policy::Permission)
    {
        assert!(
            !held.contains(&u.name),
            "{} was revoked or removed but is on the door",
            u.name
        );
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exit = tokio::time::timeout(HANG_GUARD, daemon.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}\n{}", logs(&files));

    // The store after all those kills: readable, and its record of the door matches the door.
    let out = tokio::time::timeout(
        HANG_GUARD,
        Command::new(env!("CARGO_BIN_EXE_doorsync"))
            .args(["status", "--json", "--config"])
            .arg(&files.config)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "status reads the store: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["doors"][0]["users_applied"], held.len(), "{status}");
    assert_eq!(status["doors"][0]["pending"], 0, "{status}");
    assert_eq!(status["doors"][0]["failed"], serde_json::json!({}), "{status}");
}

/// Rounds of the revocation crash loop.
const REVOKE_ROUNDS: usize = 6;

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, sig).unwrap();
}

/// Local revocations under SIGKILL: each round the cloud grants a newcomer the agent has not pulled,
/// a technician revokes them (daemon running or stopped, seeded), sometimes while the door is away
/// (SIGSTOP: the line stays, the door does not answer) and then also revokes someone the door holds.
/// The cloud's delete is acknowledged but not yet in effect, so every later roster still grants
/// them. `revoke` must never exit 0 while the door holds the user, and after the kills the door must
/// hold exactly the cloud's grants minus every local revocation, read from the door's db file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_revocations_of_unpulled_users_and_during_door_outages_survive_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, door, files) = setup(dir.path()).await;
    let mut rng = StdRng::seed_from_u64(0x00D0_0126);
    let mut revoked: BTreeSet<String> = BTreeSet::new();
    let want = |sim: &SimHandle, revoked: &BTreeSet<String>| -> BTreeSet<String> {
        allowed(sim).difference(revoked).cloned().collect()
    };
    let mut daemon = start_daemon(&files, 0);
    converged(&sim, &files, &mut daemon, "on the first start").await;
    let mut history = Vec::new();
    for round in 1..=REVOKE_ROUNDS {
        let newcomer = format!("n-{round:04}");
        sim.upsert_user(harness::granted_user(
            doorsync::domain::UserKey::new("IDENTITY", newcomer.clone()),
            &newcomer,
        ));
        let daemon_running = rng.random_bool(0.5);
        let outage = rng.random_bool(0.5);
        history.push(format!(
            "round {round}: daemon {}, door {}",
            if daemon_running { "running" } else { "stopped" },
            if outage { "away" } else { "there" }
        ));
        if daemon_running {
            ready(&files, &mut daemon).await;
        } else {
            daemon.kill().await.unwrap();
            daemon.wait().await.unwrap();
        }
        if outage {
            signal(&door.child, nix::sys::signal::Signal::SIGSTOP);
        }
        let mut targets = vec![newcomer.clone()];
        if outage && let Some(held) = on_door(&files.door_db).0.into_iter().find(|n| !revoked.contains(n)) {
            targets.push(held);
        }
        for user in &targets {
            let held_before = on_door(&files.door_db).0.contains(user);
            let out = doorsync(
                &files.config,
                &["revoke", "--user-type", "IDENTITY", "--user-id", user, "--json"],
            )
            .await;
            let report = json(&out);
            revoked.insert(user.clone());
            let reached = report["all_doors_reached"] == true;
            assert_eq!(out.status.code(), Some(if reached { 0 } else { 2 }), "{report}");
            if outage && held_before {
                assert!(
                    !reached,
                    "a door that did not answer held {user}: {report}\n{history:?}"
                );
                assert_eq!(report["doors"][0]["door"], "lobby");
            }
            if reached {
                assert!(
                    !on_door(&files.door_db).0.contains(user),
                    "revoke exited 0 but the door holds {user}: {report}\n{history:?}"
                );
            }
        }
        if outage {
            signal(&door.child, nix::sys::signal::Signal::SIGCONT);
        }
        // The cloud acknowledged the delete but its roster still grants the newcomer as before.
        if let Some(mut u) = sim.users().into_iter().find(|u| u.key.user_id == newcomer) {
            u.has_face = true;
            sim.upsert_user(u);
        }
        if !daemon_running {
            daemon = start_daemon(&files, round);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
        daemon.kill().await.unwrap();
        daemon.wait().await.unwrap();
        daemon = start_daemon(&files, round);
    }
    ready(&files, &mut daemon).await;
    let out = doorsync(&files.config, &["sync", "--json"]).await;
    assert_eq!(json(&out)["pull"]["tombstones_lifted"], 0, "{history:?}");
    converged_to(
        want(&sim, &revoked),
        &files,
        &mut daemon,
        &format!("after {REVOKE_ROUNDS} rounds: {history:?}"),
    )
    .await;
    let (held, _) = on_door(&files.door_db);
    assert!(held.is_disjoint(&revoked), "revoked but on the door: {held:?}");
    signal(&daemon, nix::sys::signal::Signal::SIGTERM);
    let exit = tokio::time::timeout(HANG_GUARD, daemon.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}\n{}", logs(&files));
}
