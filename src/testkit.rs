//! Shared builders for tests and benches: the daemon's and the cloud client's settings for the fakes, door
//! records, JPEG-shaped face bytes, OSDP command and reply packets and a bare CP driver.
//!
//! Unit tests, the integration tests, the benches and `doorsync demo` use these instead of copying them;
//! they panic on failure as tests do, and the agent itself never uses them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_serial::SerialStream;

use crate::agent::DaemonConfig;
use crate::cloud::CloudSettings;
use crate::domain::{DoorRecord, DoorUserId, FaceRef, Policy, Secret};
use crate::door::vendor::{self, MfgCommand};
use crate::osdp::command::filetransfer::HEADER_LEN;
use crate::osdp::command::{FileTransfer, Mfg};
use crate::osdp::reply::FtStatus;
use crate::osdp::{Command, Event, PacketRepr, PdSession, Reply, SessionConfig, WireError};

/// Only guards against a hung peer; no assertion depends on how long anything takes.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// Client settings for the fake cloud (`cloud::sim`) at `base_url` with its app key and secret: plain HTTP
/// and images from 127.0.0.1 allowed, everything else the defaults.
pub fn sim_cloud_settings(base_url: &str, app_key: &str, app_secret: &[u8]) -> CloudSettings {
    let mut settings = CloudSettings::new(base_url, app_key, Secret::new(app_secret.to_vec()), "sim-device-0001");
    settings.allow_insecure_http = true;
    settings.image_hosts = vec!["127.0.0.1".into()];
    settings
}

/// The daemon's settings that the demo, the benches and the in-process tests start from: one pull at
/// start-up (hour-long poll and verify intervals), 8 cloud requests in flight, the default removal guard,
/// door reconnects 100 ms → 2 s, outbox retries 200 ms → 5 s, 10 s shutdown grace.
pub fn daemon_config(socket_path: PathBuf) -> DaemonConfig {
    DaemonConfig {
        socket_path,
        poll_interval: Duration::from_secs(3600),
        verify_interval: Duration::from_secs(3600),
        max_concurrency: 8,
        guard: Default::default(),
        force_refresh: false,
        door_retry: (Duration::from_millis(100), Duration::from_secs(2)),
        outbox_retry: (Duration::from_millis(200), Duration::from_secs(5)),
        shutdown_grace: Duration::from_secs(10),
        urgent_delete_wait: crate::sync::engine::DEFAULT_URGENT_DELETE_WAIT,
    }
}

/// A door record for `jpeg`: permitted, no expiry. Override fields with `DoorRecord { .., ..door_record() }`.
pub fn door_record(id: u32, jpeg: &[u8], name: &str) -> DoorRecord {
    DoorRecord {
        id: DoorUserId(id),
        policy: Policy::Permission,
        expire_at: None,
        face: FaceRef {
            sha256: vendor::sha256(jpeg),
            len_bytes: jpeg.len() as u32,
        },
        display_name: name.to_owned(),
    }
}

/// A JPEG-shaped byte string (SOI, pseudo-random body from `seed`, EOI) of `len` bytes: doors check
/// sha256s, not pixels.
pub fn jpeg(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut out = vec![0xFF, 0xD8];
    out.extend((0..len - 4).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    out.extend([0xFF, 0xD9]);
    out
}

/// A well-formed reply packet from `address` with the given SQN (CRC mode, no mark byte).
pub fn reply_packet(address: u8, sqn: u8, reply: &Reply) -> Result<Vec<u8>, WireError> {
    let data = reply.encode();
    PacketRepr {
        address,
        reply: true,
        sqn,
        use_crc: true,
        code: reply.code(),
        data: &data,
    }
    .to_vec()
}

/// A command packet to `address` with the given SQN as a CP sends it (mark byte, CRC mode).
pub fn command_packet(address: u8, sqn: u8, command: &Command) -> Vec<u8> {
    let data = command.encode().unwrap();
    let mut v = vec![0xFF];
    v.extend(
        PacketRepr {
            address,
            reply: false,
            sqn,
            use_crc: true,
            code: command.code(),
            data: &data,
        }
        .to_vec()
        .unwrap(),
    );
    v
}

/// A tiny CP runtime: the crate's session (address 1) over a real serial port or a pty master. It sends
/// the next command the instant the last one is answered and nothing else (no queries, no keep-alive
/// while busy) — the CP's floor, and the raw control tests need.
pub struct Cp<S = SerialStream> {
    pub session: PdSession,
    port: S,
}

impl Cp<SerialStream> {
    /// Opens `link` as a serial port at `baud` and brings the PD online.
    pub async fn connect(link: &Path, baud: u32) -> Cp<SerialStream> {
        Cp::over(crate::serial::open(link, baud).unwrap()).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Cp<S> {
    /// Brings the PD on `port` online (osdp_ID, osdp_CAP).
    pub async fn over(port: S) -> Cp<S> {
        let mut cp = Cp {
            session: PdSession::new(SessionConfig::new(1), Instant::now()),
            port,
        };
        cp.run_until(|ev| matches!(ev, Event::Online { .. })).await;
        cp
    }

    /// Runs the session until `done` accepts one of its events; panics after [`HANG_GUARD`].
    pub async fn run_until(&mut self, mut done: impl FnMut(Event) -> bool) {
        let work = async {
            let mut buf = [0u8; 4096];
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
                    n = self.port.read(&mut buf) => {
                        let n = n.unwrap();
                        self.session.handle_bytes(Instant::now(), &buf[..n]);
                    }
                    () = tokio::time::sleep(wait) => {}
                }
            }
        };
        tokio::time::timeout(HANG_GUARD, work).await.expect("CP session hung");
    }

    /// Sends one command and returns its reply; panics if the session gives up on it.
    pub async fn exchange(&mut self, cmd: Command) -> Reply {
        let id = self.session.submit(cmd).unwrap();
        let mut got = None;
        self.run_until(|ev| match ev {
            Event::Reply { id: i, reply } if i == id => {
                got = Some(reply);
                true
            }
            Event::Failed { id: i, reason } if i == id => panic!("command failed: {reason}"),
            _ => false,
        })
        .await;
        got.unwrap()
    }

    /// A vendor command in osdp_MFG with `vendor_code`; the PD's reply.
    pub async fn mfg(&mut self, vendor_code: [u8; 3], request_id: u16, command: vendor::Command) -> Reply {
        let data = MfgCommand { request_id, command }.encode().unwrap();
        self.exchange(Command::Mfg(Mfg { vendor_code, data })).await
    }

    /// The largest file fragment the PD's capabilities allow.
    pub fn fragment_bytes(&self) -> usize {
        self.session.max_command_data_bytes() - HEADER_LEN
    }

    /// Sends `file[from..to]` in the largest fragments allowed; the last FTSTAT. Panics on a refusal.
    pub async fn send_file(&mut self, ft_type: u8, file: &[u8], from: usize, to: usize) -> FtStatus {
        let max = self.fragment_bytes();
        let mut status = FtStatus::Ok;
        let mut offset = from;
        while offset < to {
            let end = (offset + max).min(to);
            let reply = self
                .exchange(Command::FileTransfer(FileTransfer {
                    ft_type,
                    size_total: file.len() as u32,
                    offset: offset as u32,
                    data: file[offset..end].to_vec(),
                }))
                .await;
            let Reply::FtStat(st) = reply else {
                panic!("expected FTSTAT, got {reply:?}")
            };
            assert!(!st.status.is_error(), "door refused the file: {st:?}");
            status = st.status;
            offset = end;
        }
        status
    }
}
