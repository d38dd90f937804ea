//! How close the simulated door's paced line comes to a real one: pushes face files through a
//! `SimDoor` on a pseudo-terminal with baud pacing, driven by the crate's CP session over the real
//! serial stack, and reports payload goodput as a fraction of the line rate and line time used.
//!
//! This is the line model's floor, not `OsdpDoor`'s figure: the CP here sends the next fragment the
//! instant FTSTAT arrives and nothing else (no queries, no keep-alive while busy).
//!
//! Run: `cargo bench --bench sim_door` (`SIM_BENCH_FACES=N`, default 50; `SIM_BENCH_BAUD=B`, default
//! 115200; add `--profile dev` to reuse the debug build on a busy machine).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/runtime.rs"]
mod runtime;

use std::path::Path;
use std::time::Instant;

use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId};
use doorsync::door::sim::{SimDoor, SimDoorConfig};
use doorsync::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS};
use doorsync::serial::pty::Pty;
use doorsync::testkit::{Cp, door_record, jpeg};

const FACE_BYTES: usize = 20 * 1024;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run(profile: &str, baud: u32, faces: u32) {
    let pty = Pty::open().unwrap();
    let slave = pty.slave_path().to_path_buf();
    let mut cfg = SimDoorConfig::new(1, builtin_profile(profile).unwrap());
    cfg.baud = Some(baud);
    cfg.profile.capacity_users = cfg.profile.capacity_users.max(faces);
    let (door, driver) = SimDoor::new(cfg, pty).unwrap();
    let task = tokio::spawn(driver.run());
    let mut cp = Cp::connect(Path::new(&slave), baud).await;

    let images: Vec<Vec<u8>> = (0..faces).map(|i| jpeg(i + 1, FACE_BYTES)).collect();
    let records: Vec<DoorRecord> = images
        .iter()
        .enumerate()
        .map(|(i, jpeg)| door_record(i as u32 + 1, jpeg, &format!("user {i}")))
        .collect();
    for file in vendor::encode_record_files(&records, door.snapshot().limits().max_record_file_bytes).unwrap() {
        cp.send_file(FT_TYPE_RECORDS, &file, 0, file.len()).await;
    }

    let before = door.counters();
    let started = Instant::now();
    let fragment = cp.fragment_bytes();
    let mut file_bytes = 0usize;
    for (i, jpeg) in images.iter().enumerate() {
        let file = vendor::encode_face_file(DoorUserId(i as u32 + 1), jpeg).unwrap();
        file_bytes += file.len();
        cp.send_file(FT_TYPE_FACE, &file, 0, file.len()).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = door.counters();
    assert_eq!(after.faces_applied - before.faces_applied, u64::from(faces));

    let line_rate = f64::from(baud) / 10.0;
    let wire = (after.bytes_received - before.bytes_received) + (after.bytes_sent - before.bytes_sent);
    let model_floor = wire as f64 / line_rate;
    println!(
        "{profile:<18} {baud:>6} baud  {faces} faces x {FACE_BYTES} B, fragment {fragment} B: {elapsed:.2} s, \
         goodput {:.0} B/s = {:.1}% of {line_rate:.0} B/s; wire bytes both ways {wire} = {model_floor:.2} s of line \
         ({:.1}% of elapsed)",
        file_bytes as f64 / elapsed,
        100.0 * file_bytes as f64 / elapsed / line_rate,
        100.0 * model_floor / elapsed,
    );
    door.shutdown();
    task.await.unwrap().unwrap();
}

fn main() {
    let faces = env_or("SIM_BENCH_FACES", 50) as u32;
    let baud = env_or("SIM_BENCH_BAUD", 115_200) as u32;
    let rt = runtime::runtime();
    rt.block_on(async {
        run("generic-face-v1", baud, faces).await;
        run("libosdp-reference", baud, faces).await;
    });
}
