//! Revocation and expiry latency through the real daemon: the fake cloud on 127.0.0.1, the daemon
//! in-process with `OsdpDoor` over a pseudo-terminal to the simulated door paced at the line rate,
//! sled in a temp dir, requests over the control socket.
//!
//! 1. Revocation mid-transfer: while the first pass is still sending faces, `revoke` one user who is
//!    already on the door; reports revoke → door ack (the daemon's measure and the socket round trip)
//!    and how many faces were still to go.
//! 2. Offline expiry: with the cloud shut down, users expire one after another; reports `expire_at` →
//!    door ack of the delete for each.
//!
//! Run: `cargo bench --bench revocation` (`REVOKE_BENCH_USERS=N`, default 12; `REVOKE_BENCH_BAUD=B`,
//! default 115200; add `--profile dev` to reuse the debug build).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/runtime.rs"]
mod runtime;

use std::sync::Arc;
use std::time::{Duration, Instant};

use doorsync::agent::control::{self, Request};
use doorsync::agent::{self, Daemon, DaemonConfig, DaemonDoor, DaemonEvent};
use doorsync::clock::SystemClock;
use doorsync::cloud::CloudClient;
use doorsync::cloud::sim::{SimCloud, SimConfig};
use doorsync::config::builtin_profile;
use doorsync::domain::Secret;
use doorsync::door::sim::{SimDoor, SimDoorConfig};
use doorsync::door::{OsdpDoor, OsdpDoorOptions};
use doorsync::serial::pty::Pty;
use doorsync::sync::engine::{RemovalCause, RevokeReport};
use doorsync::testkit::{daemon_config, sim_cloud_settings};
use jiff::Timestamp;
use tokio::sync::broadcast;

const KEY: &str = "24681357";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn next(events: &mut broadcast::Receiver<DaemonEvent>, want: impl Fn(&DaemonEvent) -> bool) -> DaemonEvent {
    loop {
        match events.recv().await {
            Ok(e) if want(&e) => return e,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

async fn run(users: usize, baud: u32) {
    let cloud = SimCloud::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig::new(KEY, Secret::new(SECRET.to_vec()), users),
    )
    .await
    .unwrap();
    let profile = builtin_profile("generic-face-v1").unwrap();
    let pty = Pty::open().unwrap();
    let slave = pty.slave_path().to_path_buf();
    let mut door_cfg = SimDoorConfig::new(1, profile.clone());
    door_cfg.baud = Some(baud);
    let (sim_door, sim_driver) = SimDoor::new(door_cfg, pty).unwrap();
    let sim_task = tokio::spawn(sim_driver.run());
    let (osdp, link) = OsdpDoor::open(&slave, baud, 1, &profile, OsdpDoorOptions::default()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = agent::open_store(dir.path()).unwrap();
    let socket = dir.path().join("doorsync.sock");
    let mut settings = sim_cloud_settings(&cloud.base_url(), KEY, SECRET);
    settings.retry.max_attempts = 1;
    let (tx, mut events) = broadcast::channel(4096);
    let daemon = Daemon {
        config: DaemonConfig {
            outbox_retry: (Duration::from_secs(1), Duration::from_secs(10)),
            ..daemon_config(socket.clone())
        },
        store,
        cloud: Arc::new(CloudClient::new(settings).unwrap()),
        clock: Arc::new(SystemClock),
        doors: vec![DaemonDoor {
            name: "lobby".into(),
            profile,
            door: Arc::new(osdp),
            driver: Some(Box::pin(async move {
                let _ = link.run().await;
            })),
        }],
        events: Some(tx),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon_task = tokio::spawn(agent::run(daemon, async {
        let _ = stop_rx.await;
    }));
    next(&mut events, |e| matches!(e, DaemonEvent::Ready { .. })).await;

    // 1. Revocation while the first transfer runs.
    let started = Instant::now();
    while sim_door.counters().faces_applied < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let db = sim_door.snapshot();
    let on_door = db.user_ids().find(|id| db.face_jpeg(*id).is_some()).unwrap();
    let name = db.record(on_door).unwrap().display_name.clone();
    let victim = cloud.users().into_iter().find(|u| u.name == name).unwrap().key;
    let faces_before = sim_door.counters().faces_applied;
    let sent = Instant::now();
    let stream = control::connect(&socket).await.unwrap().unwrap();
    let value = control::call(stream, &Request::Revoke { key: victim.clone() }, |_| {})
        .await
        .unwrap();
    let round_trip = sent.elapsed();
    let report: RevokeReport = serde_json::from_value(value).unwrap();
    let faces_at_ack = sim_door.counters().faces_applied;
    assert!(
        sim_door.snapshot().record(on_door).is_none(),
        "the revoked user is gone"
    );
    println!(
        "revocation mid-transfer ({users} users, {baud} baud): door ack {} ms after revoke (daemon's measure), \
         {:.0} ms socket round trip; faces on the door {faces_before} -> {faces_at_ack} of {}, transfer still running",
        report.doors[0].latency_ms.unwrap(),
        round_trip.as_secs_f64() * 1000.0,
        users - 1,
    );
    next(
        &mut events,
        |e| matches!(e, DaemonEvent::DoorSynced { report } if report.converged && report.apply.faces_sent > 0),
    )
    .await;
    println!(
        "first pass converged after {:.1} s ({} face files applied, the revoked user's included)",
        started.elapsed().as_secs_f64(),
        sim_door.counters().faces_applied
    );

    // 2. Offline expiry: expiries 2 s apart, then the cloud goes away.
    let base = Timestamp::now().as_second() + 3;
    let expiring: Vec<String> = cloud
        .users()
        .into_iter()
        .filter(|u| u.key != victim)
        .take(3)
        .map(|u| u.key.user_id)
        .collect();
    for (i, id) in expiring.iter().enumerate() {
        cloud.set_expire(id, Some(Timestamp::from_second(base + 2 * i as i64).unwrap()));
    }
    let stream = control::connect(&socket).await.unwrap().unwrap();
    control::call(
        stream,
        &Request::Sync {
            force_refresh: false,
            door: None,
            confirm_removals: false,
        },
        |_| {},
    )
    .await
    .unwrap();
    cloud.shutdown().await;
    let mut latencies = Vec::new();
    while latencies.len() < expiring.len() {
        if let DaemonEvent::Removed { removal, .. } = next(&mut events, |e| {
            matches!(
                e,
                DaemonEvent::Removed {
                    cause: RemovalCause::Expired,
                    ..
                }
            )
        })
        .await
        {
            latencies.push(removal.latency_ms.unwrap());
        }
    }
    println!("offline expiry (cloud stopped): expire_at -> door ack of the delete: {latencies:?} ms");

    let _ = stop_tx.send(());
    daemon_task.await.unwrap().unwrap();
    sim_door.shutdown();
    let _ = sim_task.await;
}

fn main() {
    let users = env_or("REVOKE_BENCH_USERS", 12) as usize;
    let baud = env_or("REVOKE_BENCH_BAUD", 115_200) as u32;
    let rt = runtime::runtime();
    rt.block_on(run(users, baud));
}
