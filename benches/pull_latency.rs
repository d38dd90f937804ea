//! Removal latency while the pull's detail calls run (issue 10 item 6): the real engine with the
//! daemon's roster cadence (`roster_interval` = `poll_interval`), the fake cloud on 127.0.0.1 answering
//! every API request after `PULL_BENCH_LATENCY_MS` (default 50), one `MemoryDoor`, sled in a temp dir.
//!
//! The door is first filled with every user (no added latency), then a pull loop runs as the daemon's
//! does (the next pull `poll_interval` after the previous one ended). In the second steady-state pull,
//! `PULL_BENCH_EVENT_S` seconds after it started (default 40, inside its detail phase), the bench takes
//! one user off the roster and sets DENY on two: one whose detail call this pull already made (so only
//! the next pull sees it) and the last in roster order (this pull reaches it later). It prints the time
//! from that change to each user being off the door, and the cloud requests of one steady-state pull.
//!
//! Run: `cargo bench --bench pull_latency` (`PULL_BENCH_USERS`, default 10000; `PULL_BENCH_POLL_S`,
//! default 2; `PULL_BENCH_CONCURRENCY`, default 8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_cloud.rs"]
mod fake_cloud;
#[path = "support/runtime.rs"]
mod runtime;

use std::sync::Arc;
use std::time::{Duration, Instant};

use doorsync::cloud::sim::SimHandle;
use doorsync::cloud::wire;
use doorsync::domain::{Policy, UserKey};
use doorsync::door::memory::MemoryDoor;
use doorsync::sync::engine::{Engine, EngineSettings, PassOptions};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn requests(cloud: &SimHandle) -> (u64, u64) {
    (
        cloud.request_count(wire::PATH_ROSTER),
        cloud.request_count(wire::PATH_IMAGE_GET),
    )
}

fn on_door(engine: &Engine, door: &MemoryDoor, key: &UserKey) -> bool {
    let ids = engine.store().door_ids("lobby").unwrap();
    ids.get(key).is_some_and(|id| door.user_ids().contains(id))
}

async fn run(users: usize, latency_ms: u64, poll: Duration, concurrency: usize, event_after: Duration) {
    let cloud = fake_cloud::start(users, 0).await;
    let (engine, door, _store_dir) = fake_cloud::engine(
        &cloud,
        EngineSettings {
            max_concurrency: concurrency,
            roster_interval: Some(poll),
            ..EngineSettings::default()
        },
    );
    let engine = Arc::new(engine);
    let started = Instant::now();
    let fill = engine.pass(&PassOptions::default(), &|_| {}).await.unwrap();
    assert!(fill.converged, "{fill:?}");
    assert_eq!(door.user_ids().len(), users);
    println!(
        "{users} users on the door after {:.1} s (no added latency)",
        started.elapsed().as_secs_f64()
    );

    cloud.set_latency_ms(latency_ms);
    let steady_start = Instant::now();
    let before = requests(&cloud);
    let (report, _) = engine.pull(false).await.unwrap();
    let after = requests(&cloud);
    assert!(!report.changed);
    println!(
        "steady-state pull, nothing changed: {:.1} s, {} roster pages + {} /face/paas/image/get = {} cloud \
         requests, {} image downloads",
        steady_start.elapsed().as_secs_f64(),
        after.0 - before.0,
        after.1 - before.1,
        after.0 - before.0 + after.1 - before.1,
        report.images_downloaded
    );

    // The daemon's loop: the next pull `poll` after the previous one ended.
    tokio::time::sleep(poll).await;
    let looping = engine.clone();
    let pulls = tokio::spawn(async move {
        loop {
            let t = Instant::now();
            let r = looping.pull(false).await;
            println!(
                "  pull took {:.1} s: {:?}",
                t.elapsed().as_secs_f64(),
                r.map(|(r, _)| (r.removed_implicitly, r.changed))
            );
            tokio::time::sleep(poll).await;
        }
    });
    tokio::time::sleep(event_after).await;
    let sim_users = cloud.users();
    let removed = sim_users[users / 2].key.clone();
    let denied_seen = sim_users[1].key.clone();
    let denied_ahead = sim_users[users - 1].key.clone();
    for k in [&removed, &denied_seen, &denied_ahead] {
        assert!(on_door(&engine, &door, k));
    }
    let changed_at = Instant::now();
    cloud.remove_from_roster(&removed.user_id);
    cloud.set_policy(&denied_seen.user_id, Policy::Deny);
    cloud.set_policy(&denied_ahead.user_id, Policy::Deny);
    let mut pending = vec![
        ("roster removal", removed),
        ("DENY, detail call not yet made in this pull", denied_ahead),
        ("DENY, detail call already made in this pull", denied_seen),
    ];
    while !pending.is_empty() {
        pending.retain(|(what, key)| {
            if on_door(&engine, &door, key) {
                return true;
            }
            println!(
                "{what}: off the door {:.2} s after the change in the cloud",
                changed_at.elapsed().as_secs_f64()
            );
            false
        });
        assert!(
            changed_at.elapsed() < Duration::from_secs(1800),
            "not removed: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pulls.abort();
    cloud.shutdown().await;
}

fn main() {
    let users = env_or("PULL_BENCH_USERS", 10_000) as usize;
    let latency_ms = env_or("PULL_BENCH_LATENCY_MS", 50);
    let poll = Duration::from_secs(env_or("PULL_BENCH_POLL_S", 2));
    let concurrency = env_or("PULL_BENCH_CONCURRENCY", 8) as usize;
    let event_after = Duration::from_secs(env_or("PULL_BENCH_EVENT_S", 40));
    let rt = runtime::runtime();
    println!(
        "{users} users, {latency_ms} ms per API request, poll_interval {} s, concurrency {concurrency}",
        poll.as_secs()
    );
    rt.block_on(run(users, latency_ms, poll, concurrency, event_after));
}
