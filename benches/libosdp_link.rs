//! Face push to the LibOSDP door: 50 faces of ~20 KB over a pseudo-terminal to the LibOSDP 3.2.9 PD of
//! `tests/interop/libosdp_pd.py`, through the agent's door link (`OsdpDoor`, each face confirmed by
//! FACE_STATUS) and through the bare CP session (the CP's floor). Reports goodput (JPEG bytes/s)
//! against the 11,520 B/s of a 115,200-baud line, the fragment size LibOSDP's 256-byte buffer allows,
//! the ideal for that size, and the bytes on the wire (a pty has no baud pacing, so the 115,200-baud
//! figure is computed from them plus the turnaround time measured here).
//!
//! `cargo bench --bench libosdp_link` (needs LibOSDP, see `tests/integration/interop/peer.rs`).
//! Env: `LIBOSDP_BENCH_FACES` (50), `LIBOSDP_BENCH_STOCK_FACES` (5; faces for the run with LibOSDP's
//! stock 20 ms refresh, 0 to skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/integration/interop/link.rs"]
#[allow(dead_code)]
mod link;
#[path = "../tests/integration/interop/peer.rs"]
#[allow(dead_code)]
mod peer;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, Profile};
use doorsync::door::db::{DoorDb, DoorDbLimits};
use doorsync::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult};
use doorsync::door::{Door as _, OsdpDoor, OsdpDoorOptions};
use doorsync::osdp::SessionConfig;
use doorsync::serial::pty::Pty;
use doorsync::testkit::{door_record, jpeg};

const LINE_BYTES_PER_S: f64 = 11_520.0; // 115,200 baud, 10 bits per byte
const FACE_BYTES: usize = 20_480;

struct Run {
    faces: usize,
    jpeg_bytes: u64,
    fragments: u64,
    fragment: usize,
    secs: f64,
    wire_tx: u64,
    wire_rx: u64,
}

fn people(faces: usize) -> (Vec<DoorRecord>, Vec<Vec<u8>>) {
    let jpegs: Vec<Vec<u8>> = (0..faces as u32)
        .map(|i| jpeg(i + 1, FACE_BYTES - 512 + (i as usize * 41) % 1024))
        .collect();
    let records = jpegs
        .iter()
        .enumerate()
        .map(|(i, j)| door_record(i as u32 + 1, j, &format!("Bench user {i}")))
        .collect();
    (records, jpegs)
}

fn model(records: &[DoorRecord], jpegs: &[Vec<u8>]) -> DoorDb {
    let mut db = DoorDb::new(DoorDbLimits {
        capacity_users: 10_000,
        max_record_file_bytes: 8192,
        max_face_jpeg_bytes: 65_536,
    });
    db.apply_file(FT_TYPE_RECORDS, &vendor::encode_record_file(records).unwrap());
    for (r, j) in records.iter().zip(jpegs) {
        assert_eq!(
            db.apply_file(FT_TYPE_FACE, &vendor::encode_face_file(r.id, j).unwrap()),
            FileResult::Applied
        );
    }
    db
}

async fn start_door(python: &Path, refresh_ms: &str) -> (peer::LibosdpPeer, Pty, Profile) {
    let profile = builtin_profile("libosdp-reference").unwrap();
    let pty = Pty::open().unwrap();
    let vendor = profile.vendor_code.map(|b| format!("{b:02x}")).join(":");
    let args = ["--vendor-code", vendor.as_str(), "--refresh-ms", refresh_ms];
    let door = peer::LibosdpPeer::start(python, pty.slave_path(), &args).await;
    (door, pty, profile)
}

/// Through the agent's door link: `OsdpDoor::put_face`, each face confirmed by FACE_STATUS.
async fn run_agent(python: &Path, faces: usize, refresh_ms: &str) -> Run {
    let (door, pty, profile) = start_door(python, refresh_ms).await;
    let (agent, driver) = OsdpDoor::over(pty, 1, &profile, OsdpDoorOptions::default());
    tokio::spawn(driver.run());
    assert!(
        agent.wait_online(Duration::from_secs(30)).await,
        "LibOSDP door never came online"
    );
    let (records, jpegs) = people(faces);
    agent.upsert_users(&records).await.unwrap();
    let before = agent.stats();
    let start = Instant::now();
    for (r, j) in records.iter().zip(&jpegs) {
        agent.put_face(r.id, r.face, Bytes::from(j.clone())).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let after = agent.stats();
    // Not a test, but a number is only worth reporting if the faces landed.
    assert_eq!(agent.digest().await.unwrap(), model(&records, &jpegs).digest());
    assert_eq!(after.retries, 0, "a clean pty needs no resend");
    let json = door.stop();
    assert_eq!(json.users.iter().filter(|u| u.face.is_some()).count(), faces);
    Run {
        faces,
        jpeg_bytes: jpegs.iter().map(|j| j.len() as u64).sum(),
        fragments: after.fragments - before.fragments,
        fragment: after.fragment_bytes as usize,
        secs,
        wire_tx: after.bytes_written - before.bytes_written,
        wire_rx: after.bytes_read - before.bytes_read,
    }
}

/// The bare CP session, next fragment as soon as FTSTAT is in, no confirmation: the CP's floor.
async fn run_session(python: &Path, faces: usize, refresh_ms: &str) -> Run {
    let (door, pty, profile) = start_door(python, refresh_ms).await;
    let mut config = SessionConfig::new(1);
    config.max_packet_bytes = usize::from(profile.osdp.max_packet_bytes);
    let mut link = link::Link::connect(pty, config, profile.vendor_code).await;
    let fragment = link::fragment_size(&link.session);
    let (records, jpegs) = people(faces);
    link.upsert(&records, 8192).await;
    let (tx0, rx0) = (link.wire_tx, link.wire_rx);
    let start = Instant::now();
    let mut fragments = 0u64;
    for (r, j) in records.iter().zip(&jpegs) {
        let file = link.put_face(r.id.0, j).await;
        fragments += file.len().div_ceil(fragment) as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let (wire_tx, wire_rx) = (link.wire_tx - tx0, link.wire_rx - rx0);
    assert_eq!(link.digest().await, model(&records, &jpegs).digest());
    let json = door.stop();
    assert_eq!(json.users.iter().filter(|u| u.face.is_some()).count(), faces);
    Run {
        faces,
        jpeg_bytes: jpegs.iter().map(|j| j.len() as u64).sum(),
        fragments,
        fragment,
        secs,
        wire_tx,
        wire_rx,
    }
}

fn report(label: &str, r: &Run) {
    let goodput = r.jpeg_bytes as f64 / r.secs;
    let wire = (r.wire_tx + r.wire_rx) as f64;
    // A fragment costs its command packet (mark, header, CODE, FT header, data, CRC) and the 15-byte
    // osdp_FTSTAT on a half-duplex line: the best any CP can do with this fragment size.
    let per_fragment = (1 + 5 + 1 + 11 + r.fragment + 2 + 15) as f64;
    let ideal = r.fragment as f64 / per_fragment;
    let line_secs = wire / LINE_BYTES_PER_S;
    // On a real line the pty time (CP + LibOSDP turnaround, bytes delivered at once) comes on top.
    let est_secs = line_secs + r.secs;
    println!(
        "libosdp_link/{label}: {} faces, {} JPEG bytes, {} fragments of ≤{} bytes",
        r.faces, r.jpeg_bytes, r.fragments, r.fragment
    );
    println!(
        "  pty (no pacing): {:.2} s, goodput {:.0} B/s = {:.1}% of 11,520 B/s, {:.2} ms per fragment",
        r.secs,
        goodput,
        100.0 * goodput / LINE_BYTES_PER_S,
        1000.0 * r.secs / r.fragments as f64
    );
    println!(
        "  wire: {} bytes CP→PD + {} bytes PD→CP = {:.3} bytes per JPEG byte",
        r.wire_tx,
        r.wire_rx,
        wire / r.jpeg_bytes as f64
    );
    println!(
        "  at 115,200 baud: line time {:.1} s → {:.1}% of line rate; with the turnaround measured here {:.1} s → {:.1}%",
        line_secs,
        100.0 * r.jpeg_bytes as f64 / line_secs / LINE_BYTES_PER_S,
        est_secs,
        100.0 * r.jpeg_bytes as f64 / est_secs / LINE_BYTES_PER_S
    );
    println!(
        "  ideal for {}-byte fragments: {:.1}% of line rate",
        r.fragment,
        100.0 * ideal
    );
}

fn main() {
    let python = match peer::find_python() {
        Ok(p) => p,
        Err(why) => {
            println!("libosdp_link: skipped: {why}");
            return;
        }
    };
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let faces = env("LIBOSDP_BENCH_FACES", 50);
    report("agent/refresh-1ms", &rt.block_on(run_agent(&python, faces, "1")));
    report("session/refresh-1ms", &rt.block_on(run_session(&python, faces, "1")));
    let stock = env("LIBOSDP_BENCH_STOCK_FACES", 5);
    if stock > 0 {
        report(
            "agent/refresh-20ms-stock",
            &rt.block_on(run_agent(&python, stock, "20")),
        );
    }
}
