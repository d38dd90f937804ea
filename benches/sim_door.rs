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

use std::path::Path;
use std::time::{Duration, Instant};

use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId, FaceRef, Policy};
use doorsync::door::sim::{SimDoor, SimDoorConfig};
use doorsync::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS};
use doorsync::osdp::command::FileTransfer;
use doorsync::osdp::command::filetransfer::HEADER_LEN;
use doorsync::osdp::{Command, Event, PdSession, Reply, SessionConfig};
use doorsync::serial::pty::Pty;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_serial::SerialStream;

const FACE_BYTES: usize = 20 * 1024;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Cp {
    session: PdSession,
    port: SerialStream,
    buf: Vec<u8>,
}

impl Cp {
    async fn step_until(&mut self, mut done: impl FnMut(Event) -> bool) {
        loop {
            let now = Instant::now();
            if let Some(bytes) = self.session.poll_transmit(now) {
                self.port.write_all(&bytes).await.unwrap();
            }
            while let Some(ev) = self.session.poll_event() {
                if done(ev) {
                    return;
                }
            }
            let wait = self
                .session
                .poll_at()
                .map_or(Duration::from_millis(50), |t| t.saturating_duration_since(now));
            tokio::select! {
                n = self.port.read(&mut self.buf) => {
                    let n = n.unwrap();
                    self.session.handle_bytes(Instant::now(), &self.buf[..n]);
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn exchange(&mut self, cmd: Command) -> Reply {
        let id = self.session.submit(cmd).unwrap();
        let mut got = None;
        self.step_until(|ev| match ev {
            Event::Reply { id: i, reply } if i == id => {
                got = Some(reply);
                true
            }
            Event::Failed { id: i, reason } if i == id => panic!("{reason}"),
            _ => false,
        })
        .await;
        got.unwrap()
    }

    async fn send_file(&mut self, ft_type: u8, file: &[u8]) -> usize {
        let max = self.session.max_command_data_bytes() - HEADER_LEN;
        for (i, chunk) in file.chunks(max).enumerate() {
            let reply = self
                .exchange(Command::FileTransfer(FileTransfer {
                    ft_type,
                    size_total: file.len() as u32,
                    offset: (i * max) as u32,
                    data: chunk.to_vec(),
                }))
                .await;
            let Reply::FtStat(st) = reply else { panic!("{reply:?}") };
            assert!(!st.status.is_error(), "{st:?}");
        }
        max
    }
}

fn face(i: u32) -> Vec<u8> {
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..FACE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn run(profile: &str, baud: u32, faces: u32) {
    let pty = Pty::open().unwrap();
    let slave = pty.slave_path().to_path_buf();
    let mut cfg = SimDoorConfig::new(1, builtin_profile(profile).unwrap());
    cfg.baud = Some(baud);
    cfg.profile.capacity_users = cfg.profile.capacity_users.max(faces);
    let (door, driver) = SimDoor::new(cfg, pty).unwrap();
    let task = tokio::spawn(driver.run());
    let mut cp = Cp {
        session: PdSession::new(SessionConfig::new(1), Instant::now()),
        port: doorsync::serial::open(Path::new(&slave), baud).unwrap(),
        buf: vec![0; 4096],
    };
    cp.step_until(|ev| matches!(ev, Event::Online { .. })).await;

    let images: Vec<Vec<u8>> = (0..faces).map(face).collect();
    let records: Vec<DoorRecord> = images
        .iter()
        .enumerate()
        .map(|(i, jpeg)| DoorRecord {
            id: DoorUserId(i as u32 + 1),
            policy: Policy::Permission,
            expire_at: None,
            face: FaceRef {
                sha256: vendor::sha256(jpeg),
                len_bytes: jpeg.len() as u32,
            },
            display_name: format!("user {i}"),
        })
        .collect();
    for file in vendor::encode_record_files(&records, door.snapshot().limits().max_record_file_bytes).unwrap() {
        cp.send_file(FT_TYPE_RECORDS, &file).await;
    }

    let before = door.counters();
    let started = Instant::now();
    let mut fragment = 0;
    let mut file_bytes = 0usize;
    for (i, jpeg) in images.iter().enumerate() {
        let file = vendor::encode_face_file(DoorUserId(i as u32 + 1), jpeg).unwrap();
        file_bytes += file.len();
        fragment = cp.send_file(FT_TYPE_FACE, &file).await;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("generic-face-v1", baud, faces).await;
        run("libosdp-reference", baud, faces).await;
    });
}
