//! Face-push goodput over the door link: `OsdpDoor` → pseudo-terminal → simulated door paced to 115200
//! baud (10 bits per byte, 1 ms PD turnaround), so the figures are what an RS-485 line would give.
//!
//! Goodput = JPEG bytes of the faces / elapsed time of the pushes (each confirmed by FACE_STATUS) /
//! 11,520 B/s. Compared with the ideal of the fragment size on a half-duplex line: per fragment the CP
//! sends mark + header + code + FILETRANSFER header + CRC (20 bytes) around the data and the PD answers
//! a 15-byte FTSTAT, plus the PD's turnaround.
//!
//! Each profile runs twice on the same paced line: in clear, and inside an OSDP Secure Channel session
//! (SCB, 4-byte MAC and AES padding on every fragment; the fragment shrinks to keep the packet within
//! the PD's buffer). The run ends with the CPU cost of Secure Channel per fragment (seal on the CP, open
//! on the PD), measured in-process without the line.
//!
//! Run: `cargo bench --bench door_link` (about 200 s: the line rate is the point). Face counts can be
//! changed with `DOOR_LINK_FACES=generic,libosdp` (default `50,10`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/people.rs"]
mod people;
#[path = "support/runtime.rs"]
mod runtime;

use std::time::{Duration, Instant};

use doorsync::config::builtin_profile;
use doorsync::domain::DoorRecord;
use doorsync::door::sim::{DEFAULT_TURNAROUND, SimDoor, SimDoorConfig, SimSecure};
use doorsync::door::{Door, OsdpDoor, OsdpDoorOptions, vendor};
use doorsync::osdp::SecureConfig;
use doorsync::osdp::sc::{CpChannel, Key16, PdChannel, ScFrame};
use doorsync::serial::pty::Pty;

const BAUD: u32 = 115_200;
const LINE_BYTES_PER_S: f64 = BAUD as f64 / 10.0;
/// Mark, SOM..CTRL, CODE, FILETRANSFER header, CRC.
const FRAGMENT_OVERHEAD: f64 = (1 + 5 + 1 + 11 + 2) as f64;
/// An FTSTAT reply: SOM..CTRL, CODE, 7 data bytes, CRC.
const FTSTAT_BYTES: f64 = (5 + 1 + 7 + 2) as f64;

struct Run {
    profile: &'static str,
    secure: bool,
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

const KEY: [u8; 16] = [0x2B; 16];

async fn run(profile_name: &'static str, faces: usize, secure: bool) -> Run {
    let profile = builtin_profile(profile_name).unwrap();
    let pty = Pty::open().unwrap();
    let path = pty.slave_path().to_path_buf();
    let mut cfg = SimDoorConfig::new(1, profile.clone());
    cfg.baud = Some(BAUD);
    let mut session = OsdpDoor::line_session_config(1, &profile, BAUD);
    if secure {
        cfg.secure = Some(SimSecure {
            scbk: Some(Key16::new(KEY)),
            ..SimSecure::default()
        });
        session.secure = Some(SecureConfig::new(Key16::new(KEY)));
    }
    let (sim, sim_driver) = SimDoor::new(cfg, pty).unwrap();
    tokio::spawn(sim_driver.run());
    let stream = doorsync::serial::open(&path, BAUD).unwrap();
    let (door, driver) = OsdpDoor::with_session(stream, session, &profile, OsdpDoorOptions::default());
    tokio::spawn(driver.run());
    assert!(
        door.wait_online(Duration::from_secs(10)).await,
        "simulated door never came online"
    );
    assert_eq!(door.link_status().secure_channel, secure);

    let people = people::people("bench-face", faces);
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
        secure,
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
    let rt = runtime::runtime();
    let (generic, libosdp) = face_counts();
    let runs = rt.block_on(async {
        vec![
            run("generic-face-v1", generic, false).await,
            run("generic-face-v1", generic, true).await,
            run("libosdp-reference", libosdp, false).await,
            run("libosdp-reference", libosdp, true).await,
        ]
    });

    println!(
        "door link: OsdpDoor -> pty -> simulated door paced to {BAUD} baud ({} B/s), PD turnaround {} ms",
        LINE_BYTES_PER_S,
        DEFAULT_TURNAROUND.as_millis()
    );
    println!(
        "{:<18} {:>6} {:>5} {:>9} {:>8} {:>9} {:>10} {:>7} {:>8} {:>8} {:>7} {:>9} {:>9}",
        "profile",
        "mode",
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
            "{:<18} {:>6} {:>5} {:>9} {:>8} {:>8.1}s {:>6.0} B/s {:>6.1}% {:>7.1}% {:>7.1}% {:>7} {:>9} {:>9}",
            r.profile,
            if r.secure { "SC" } else { "clear" },
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
    for pair in runs.chunks(2) {
        if let [clear, sc] = pair {
            println!(
                "{}: Secure Channel goodput is {:.1}% of clear ({}-byte vs {}-byte fragments)",
                clear.profile,
                100.0 * sc.goodput() / clear.goodput(),
                sc.fragment,
                clear.fragment
            );
        }
    }
    sc_cpu();
}

/// CPU time of Secure Channel per fragment: the CP seals a FILETRANSFER of `data` bytes and the PD opens
/// it (MAC + AES-CBC both ways), no line involved.
fn sc_cpu() {
    for data_len in [1007usize, 239] {
        let (mut cp, mut pd) = secure_pair();
        let data = vec![0x5Au8; data_len];
        let n = 2000u32;
        let started = Instant::now();
        for i in 0..n {
            let sqn = (i % 3 + 1) as u8;
            let packet = cp.seal_command(1, sqn, 0x7C, &data).unwrap();
            let frame = ScFrame::parse(&packet).unwrap();
            pd.open_command(&frame).unwrap();
            let reply = pd.seal_reply(1, sqn, 0x7A, &[1, 0, 0, 0, 0, 0, 0]).unwrap();
            cp.open_reply(&ScFrame::parse(&reply).unwrap()).unwrap();
        }
        let per = started.elapsed() / n;
        println!(
            "Secure Channel CPU per {data_len}-byte fragment exchange (seal+open command, seal+open FTSTAT): {:.1} us",
            per.as_secs_f64() * 1e6
        );
    }
}

fn secure_pair() -> (CpChannel, PdChannel) {
    let mut cp = CpChannel::new(Key16::new(KEY), false);
    let mut pd = PdChannel::new(Some(Key16::new(KEY)), false);
    let chlng = cp.challenge(1, 1, [1; 8]).unwrap();
    let ccrypt = pd
        .on_chlng(&ScFrame::parse(&chlng).unwrap(), 1, [2; 8], [0; 8])
        .unwrap();
    let scrypt = cp.answer_ccrypt(&ScFrame::parse(&ccrypt).unwrap(), 1, 2).unwrap();
    let rmac = pd.on_scrypt(&ScFrame::parse(&scrypt).unwrap(), 2).unwrap();
    cp.accept_rmac_i(&ScFrame::parse(&rmac).unwrap()).unwrap();
    (cp, pd)
}
