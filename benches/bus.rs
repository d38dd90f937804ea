//! Several PDs on one RS-485 line: aggregate face-push goodput with 1, 2 and 4 PDs on one 115200-baud
//! bus (a simulated bus on one pseudo-terminal, paced as one half-duplex medium, 1 ms PD turnaround),
//! each PD's share of the payload, and revocation latency to every PD issued mid-transfer.
//!
//! The same faces are pushed in every run, split evenly over the PDs, all doors at once (one task per
//! door, as the daemon's door workers do). Goodput = JPEG bytes / elapsed / 11,520 B/s. While the
//! pushes run, a revocation (a DELETE of one user id on every door, issued at once) is sent three
//! times; its latency per PD is issue → that door's ack.
//!
//! Run: `cargo bench --bench bus` (about 2 minutes: the line rate is the point). The total face count
//! can be changed with `BUS_FACES=N` (default 12).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/people.rs"]
mod people;
#[path = "support/runtime.rs"]
mod runtime;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId};
use doorsync::door::sim::{SimDoor, SimDoorConfig};
use doorsync::door::{Door, OsdpDoor, OsdpDoorOptions};
use doorsync::serial::link::{self, LineOptions};
use doorsync::serial::pty::Pty;

const BAUD: u32 = 115_200;
const LINE_BYTES_PER_S: f64 = BAUD as f64 / 10.0;
const REVOCATIONS: usize = 3;

struct Run {
    pds: usize,
    jpeg_bytes: u64,
    elapsed: Duration,
    /// File payload bytes each door received (its share of the line).
    payload: Vec<u64>,
    /// Per revocation, each PD's latency.
    revocations: Vec<Vec<Duration>>,
}

async fn run(pds: usize, faces: usize) -> Run {
    let profile = builtin_profile("generic-face-v1").unwrap();
    let pty = Pty::open().unwrap();
    let path = pty.slave_path().to_path_buf();
    let configs = (1..=pds as u8)
        .map(|a| {
            let mut cfg = SimDoorConfig::new(a, profile.clone());
            cfg.baud = Some(BAUD);
            cfg
        })
        .collect();
    let (sims, sim_driver) = SimDoor::bus(configs, pty).unwrap();
    tokio::spawn(sim_driver.run());
    let stream = doorsync::serial::open(&path, BAUD).unwrap();
    let sessions = (1..=pds as u8)
        .map(|a| OsdpDoor::line_session_config(a, &profile, BAUD))
        .collect();
    let (handles, driver) = link::bus(stream, sessions, LineOptions::default());
    tokio::spawn(driver.run());
    let doors: Vec<Arc<OsdpDoor>> = handles
        .into_iter()
        .map(|h| Arc::new(OsdpDoor::on_link(h, &profile, OsdpDoorOptions::default())))
        .collect();
    for d in &doors {
        assert!(
            d.wait_online(Duration::from_secs(10)).await,
            "a simulated door never came online"
        );
    }
    let people = people::people("bus-face", faces);
    let shares: Vec<Vec<(DoorRecord, Bytes)>> = (0..pds)
        .map(|p| people.iter().skip(p).step_by(pds).cloned().collect())
        .collect();
    for (door, mine) in doors.iter().zip(&shares) {
        let records: Vec<DoorRecord> = mine.iter().map(|(r, _)| r.clone()).collect();
        door.upsert_users(&records).await.unwrap();
    }
    let before: Vec<u64> = doors.iter().map(|d| d.stats().file_payload_bytes).collect();
    let started = Instant::now();
    let pushes: Vec<_> = doors
        .iter()
        .zip(shares)
        .map(|(door, mine)| {
            let door = door.clone();
            tokio::spawn(async move {
                for (record, jpeg) in mine {
                    door.put_face(record.id, record.face, jpeg).await.unwrap();
                }
            })
        })
        .collect();
    // Revocations mid-transfer: spaced over the expected transfer time.
    let expected =
        Duration::from_secs_f64(people.iter().map(|(_, j)| j.len()).sum::<usize>() as f64 / LINE_BYTES_PER_S);
    let mut revocations = Vec::new();
    for k in 0..REVOCATIONS {
        tokio::time::sleep(expected / (REVOCATIONS as u32 + 1)).await;
        let gone = [DoorUserId(100_000 + k as u32)];
        let issued = Instant::now();
        let acks = futures::future::join_all(doors.iter().map(|d| async move {
            d.delete_users(&gone).await.unwrap();
            issued.elapsed()
        }))
        .await;
        revocations.push(acks);
    }
    for p in pushes {
        p.await.unwrap();
    }
    let elapsed = started.elapsed();
    for (sim, door) in sims.iter().zip(&doors) {
        assert!(sim.dump().users.iter().all(|u| u.face.is_some()), "every face landed");
        let _ = door;
    }
    for s in &sims {
        s.shutdown();
    }
    Run {
        pds,
        jpeg_bytes: people.iter().map(|(_, j)| j.len() as u64).sum(),
        elapsed,
        payload: doors
            .iter()
            .zip(before)
            .map(|(d, b)| d.stats().file_payload_bytes - b)
            .collect(),
        revocations,
    }
}

fn main() {
    let rt = runtime::runtime();
    let faces = std::env::var("BUS_FACES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n >= 4)
        .unwrap_or(12);
    let runs = rt.block_on(async {
        let mut runs = Vec::new();
        for pds in [1, 2, 4] {
            runs.push(run(pds, faces).await);
        }
        runs
    });
    println!(
        "bus: {faces} faces split over N simulated PDs on one {BAUD}-baud line ({LINE_BYTES_PER_S} B/s), PD turnaround 1 ms"
    );
    println!(
        "{:>3} {:>9} {:>8} {:>10} {:>8}  {:<28} {:>14} {:>14}",
        "PDs", "jpeg B", "elapsed", "goodput", "of line", "payload share per PD", "revoke max", "revoke median"
    );
    for r in &runs {
        let goodput = r.jpeg_bytes as f64 / r.elapsed.as_secs_f64();
        let total: u64 = r.payload.iter().sum();
        let shares: Vec<String> = r
            .payload
            .iter()
            .map(|p| format!("{:.0}%", 100.0 * *p as f64 / total.max(1) as f64))
            .collect();
        let mut all: Vec<Duration> = r.revocations.iter().flatten().copied().collect();
        all.sort();
        let max = all.last().copied().unwrap_or_default();
        let median = all.get(all.len() / 2).copied().unwrap_or_default();
        println!(
            "{:>3} {:>9} {:>7.1}s {:>6.0} B/s {:>7.1}%  {:<28} {:>11} ms {:>11} ms",
            r.pds,
            r.jpeg_bytes,
            r.elapsed.as_secs_f64(),
            goodput,
            100.0 * goodput / LINE_BYTES_PER_S,
            shares.join(" "),
            max.as_millis(),
            median.as_millis()
        );
    }
    for r in &runs {
        for (k, acks) in r.revocations.iter().enumerate() {
            let ms: Vec<String> = acks.iter().map(|d| d.as_millis().to_string()).collect();
            println!(
                "  {} PDs, revocation {}: ack per PD {} ms",
                r.pds,
                k + 1,
                ms.join(" / ")
            );
        }
    }
}
