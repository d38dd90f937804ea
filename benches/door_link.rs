//! Face-push goodput over the door link: `OsdpDoor` → pseudo-terminal → simulated door paced to 115200
//! baud (10 bits per byte, 1 ms PD turnaround), so the figures are what an RS-485 line would give.
//!
//! Goodput = JPEG bytes of the faces / elapsed time of the pushes (each confirmed by FACE_STATUS) /
//! 11,520 B/s. Compared with the ideal of the fragment size on a half-duplex line: per fragment the CP
//! sends mark + header + code + FILETRANSFER header + CRC (20 bytes) around the data and the PD answers
//! a 15-byte FTSTAT, plus the PD's turnaround.
//!
//! Run: `cargo bench --bench door_link` (about 100 s: the line rate is the point). Face counts can be
//! changed with `DOOR_LINK_FACES=generic,libosdp` (default `50,10`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use doorsync::cloud::sim::face_jpeg;
use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId, FaceRef, Policy};
use doorsync::door::sim::{DEFAULT_TURNAROUND, SimDoor, SimDoorConfig};
use doorsync::door::{Door, OsdpDoor, OsdpDoorOptions, vendor};
use doorsync::serial::pty::Pty;

const BAUD: u32 = 115_200;
const LINE_BYTES_PER_S: f64 = BAUD as f64 / 10.0;
/// Mark, SOM..CTRL, CODE, FILETRANSFER header, CRC.
const FRAGMENT_OVERHEAD: f64 = (1 + 5 + 1 + 11 + 2) as f64;
/// An FTSTAT reply: SOM..CTRL, CODE, 7 data bytes, CRC.
const FTSTAT_BYTES: f64 = (5 + 1 + 7 + 2) as f64;

struct Run {
    profile: &'static str,
    faces: usize,
    jpeg_bytes: u64,
    fragment: u32,
    fragments: u64,
    elapsed: Duration,
    written: u64,
    read: u64,
    retries: u64,
}

impl Run {
    fn goodput(&self) -> f64 {
        self.jpeg_bytes as f64 / self.elapsed.as_secs_f64()
    }

    /// Best case for this fragment size: framing and FTSTAT only, and with the PD's turnaround.
    fn ideal(&self) -> (f64, f64) {
        let f = f64::from(self.fragment);
        let turnaround = DEFAULT_TURNAROUND.as_secs_f64() * LINE_BYTES_PER_S;
        (
            f / (f + FRAGMENT_OVERHEAD + FTSTAT_BYTES),
            f / (f + FRAGMENT_OVERHEAD + FTSTAT_BYTES + turnaround),
        )
    }
}

fn people(n: usize) -> Vec<(DoorRecord, Bytes)> {
    (0..n)
        .map(|i| {
            let jpeg = face_jpeg(&format!("bench-face-{i}"));
            let record = DoorRecord {
                id: DoorUserId(i as u32 + 1),
                policy: Policy::Permission,
                expire_at: None,
                face: FaceRef {
                    sha256: vendor::sha256(&jpeg),
                    len_bytes: jpeg.len() as u32,
                },
                display_name: format!("Bench {i}"),
            };
            (record, Bytes::from(jpeg))
        })
        .collect()
}

async fn run(profile_name: &'static str, faces: usize) -> Run {
    let profile = builtin_profile(profile_name).unwrap();
    let pty = Pty::open().unwrap();
    let path = pty.slave_path().to_path_buf();
    let mut cfg = SimDoorConfig::new(1, profile.clone());
    cfg.baud = Some(BAUD);
    let (sim, sim_driver) = SimDoor::new(cfg, pty).unwrap();
    tokio::spawn(sim_driver.run());
    let (door, driver) = OsdpDoor::open(&path, BAUD, 1, &profile, OsdpDoorOptions::default()).unwrap();
    tokio::spawn(driver.run());
    assert!(
        door.wait_online(Duration::from_secs(10)).await,
        "simulated door never came online"
    );

    let people = people(faces);
    let records: Vec<DoorRecord> = people.iter().map(|(r, _)| r.clone()).collect();
    door.upsert_users(&records).await.unwrap();

    let before = door.stats();
    let started = Instant::now();
    for (record, jpeg) in &people {
        door.put_face(record.id, record.face, jpeg.clone()).await.unwrap();
    }
    let elapsed = started.elapsed();
    let after = door.stats();

    let dump = sim.dump();
    for (record, jpeg) in &people {
        let held = dump.user(record.id.0).and_then(|u| u.face.as_ref()).unwrap();
        assert_eq!(
            held.sha256,
            hex::encode(vendor::sha256(jpeg)),
            "face {} landed intact",
            record.id
        );
    }
    sim.shutdown();
    Run {
        profile: profile_name,
        faces,
        jpeg_bytes: people.iter().map(|(_, j)| j.len() as u64).sum(),
        fragment: after.fragment_bytes,
        fragments: after.fragments - before.fragments,
        elapsed,
        written: after.bytes_written - before.bytes_written,
        read: after.bytes_read - before.bytes_read,
        retries: after.retries - before.retries,
    }
}

fn face_counts() -> (usize, usize) {
    let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|n| *n > 0);
    match std::env::var("DOOR_LINK_FACES") {
        Ok(v) => {
            let mut it = v.split(',');
            let g = it.next().and_then(parse).unwrap_or(50);
            let l = it.next().and_then(parse).unwrap_or(10);
            (g, l)
        }
        Err(_) => (50, 10),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (generic, libosdp) = face_counts();
    let runs = rt.block_on(async {
        vec![
            run("generic-face-v1", generic).await,
            run("libosdp-reference", libosdp).await,
        ]
    });

    println!(
        "door link: OsdpDoor -> pty -> simulated door paced to {BAUD} baud ({} B/s), PD turnaround {} ms",
        LINE_BYTES_PER_S,
        DEFAULT_TURNAROUND.as_millis()
    );
    println!(
        "{:<18} {:>5} {:>9} {:>8} {:>9} {:>10} {:>7} {:>8} {:>8} {:>7} {:>9} {:>9}",
        "profile",
        "faces",
        "jpeg B",
        "fragment",
        "elapsed",
        "goodput",
        "of line",
        "ideal",
        "ideal+ta",
        "retries",
        "CP->PD B",
        "PD->CP B"
    );
    for r in &runs {
        let (ideal, ideal_ta) = r.ideal();
        println!(
            "{:<18} {:>5} {:>9} {:>8} {:>8.1}s {:>6.0} B/s {:>6.1}% {:>7.1}% {:>7.1}% {:>7} {:>9} {:>9}",
            r.profile,
            r.faces,
            r.jpeg_bytes,
            r.fragment,
            r.elapsed.as_secs_f64(),
            r.goodput(),
            100.0 * r.goodput() / LINE_BYTES_PER_S,
            100.0 * ideal,
            100.0 * ideal_ta,
            r.retries,
            r.written,
            r.read
        );
    }
    for r in &runs {
        let (_, ideal_ta) = r.ideal();
        println!(
            "{}: {} fragments, {:.1}% of the ideal for {}-byte fragments with turnaround",
            r.profile,
            r.fragments,
            100.0 * (r.goodput() / LINE_BYTES_PER_S) / ideal_ta,
            r.fragment
        );
    }
}
