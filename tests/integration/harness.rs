//! The daemon in-process with real parts: the fake cloud on 127.0.0.1, sled in a temp dir, the control
//! socket, and `MemoryDoor`s (whose knobs simulate slow lines, outages and resets).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use doorsync::agent::control::{self, Request};
use doorsync::agent::{self, AgentError, Daemon, DaemonConfig, DaemonDoor, DaemonEvent};
use doorsync::clock::Clock;
use doorsync::cloud::sim::{SimCloud, SimConfig, SimHandle};
use doorsync::cloud::{CloudClient, CloudSettings};
use doorsync::config::builtin_profile;
use doorsync::domain::Secret;
use doorsync::door::db::DoorDbLimits;
use doorsync::door::memory::MemoryDoor;
use doorsync::testkit::{daemon_config, sim_cloud_settings};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

pub const KEY: &str = "24681357";
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
/// Only guards against a hung test; no assertion depends on how long anything takes.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

pub async fn sim(users: usize) -> SimHandle {
    sim_with(SimConfig::new(KEY, Secret::new(SECRET.to_vec()), users)).await
}

pub async fn sim_with(config: SimConfig) -> SimHandle {
    SimCloud::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

/// Client settings for the fake cloud at `base_url`: plain HTTP, images from 127.0.0.1, 5–20 ms backoff.
pub fn local_cloud_settings(base_url: &str) -> CloudSettings {
    let mut s = sim_cloud_settings(base_url, KEY, SECRET);
    s.retry.base_backoff = Duration::from_millis(5);
    s.retry.max_backoff = Duration::from_millis(20);
    s
}

/// [`local_cloud_settings`] as the daemon tests run them: at most 2 attempts, 10 s per request.
pub fn cloud_settings(base_url: &str) -> CloudSettings {
    let mut s = local_cloud_settings(base_url);
    s.retry.max_attempts = 2;
    s.request_timeout = Duration::from_secs(10);
    s
}

pub fn memory_door() -> Arc<MemoryDoor> {
    Arc::new(MemoryDoor::new(DoorDbLimits {
        capacity_users: 1000,
        max_record_file_bytes: 64 * 1024,
        max_face_jpeg_bytes: 64 * 1024,
    }))
}

pub struct Running {
    pub socket: PathBuf,
    pub events: broadcast::Receiver<DaemonEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

pub struct Options {
    pub poll_interval: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            // Pulls happen at start-up and on `sync` requests only, so tests decide when.
            poll_interval: Duration::from_secs(3600),
            clock: Arc::new(doorsync::clock::SystemClock),
        }
    }
}

/// [`start`] with default options on a new store in a temp dir (keep the `TempDir` while the daemon runs)
/// and a new [`memory_door`], after its first pass has settled.
pub async fn settled(sim: &SimHandle) -> (tempfile::TempDir, Arc<MemoryDoor>, Running) {
    let dir = tempfile::tempdir().unwrap();
    let door = memory_door();
    let mut d = start(dir.path(), &sim.base_url(), door.clone(), Options::default()).await;
    d.settle().await;
    (dir, door, d)
}

/// Starts the daemon on `store_dir` with one door named `lobby`, waiting until its socket listens.
pub async fn start(store_dir: &Path, cloud_url: &str, door: Arc<MemoryDoor>, options: Options) -> Running {
    let store = agent::open_store(store_dir).unwrap();
    let socket = store_dir.join("doorsync.sock");
    let (tx, mut events) = broadcast::channel(4096);
    let daemon = Daemon {
        config: DaemonConfig {
            poll_interval: options.poll_interval,
            max_concurrency: 4,
            door_retry: (Duration::from_millis(20), Duration::from_millis(200)),
            outbox_retry: (Duration::from_millis(20), Duration::from_millis(200)),
            ..daemon_config(socket.clone())
        },
        store,
        cloud: Arc::new(CloudClient::new(cloud_settings(cloud_url)).unwrap()),
        clock: options.clock,
        doors: vec![DaemonDoor {
            name: "lobby".into(),
            profile: builtin_profile("generic-face-v1").unwrap(),
            door,
            driver: None,
        }],
        events: Some(tx),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(agent::run(daemon, async {
        let _ = stop_rx.await;
    }));
    wait_for(&mut events, |e| matches!(e, DaemonEvent::Ready { .. })).await;
    Running {
        socket,
        events,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

impl Running {
    /// Sends one request over the real control socket.
    pub async fn request(&self, request: Request) -> Result<serde_json::Value, control::ControlError> {
        let stream = control::connect(&self.socket).await.unwrap().expect("daemon listening");
        control::call(stream, &request, |_| {}).await
    }

    /// Asks for a pass and returns its report.
    pub async fn sync(&self, force_refresh: bool) -> doorsync::sync::engine::PassReport {
        let value = self
            .request(Request::Sync {
                force_refresh,
                door: None,
                confirm_removals: false,
            })
            .await
            .unwrap();
        serde_json::from_value(value).unwrap()
    }

    /// One pass through the socket, which must converge; later waits only see newer events.
    pub async fn settle(&mut self) -> doorsync::sync::engine::PassReport {
        let pass = self.sync(false).await;
        assert!(pass.converged, "{pass:?}");
        self.fresh();
        pass
    }

    /// Forgets the events so far: the next wait sees only what happens from now on.
    pub fn fresh(&mut self) {
        self.events = self.events.resubscribe();
    }

    /// Graceful shutdown, as on SIGTERM; returns once the store is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(HANG_GUARD, task)
                .await
                .expect("daemon did not stop")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The next event matching `want` (earlier ones are skipped).
pub async fn wait_for(
    events: &mut broadcast::Receiver<DaemonEvent>,
    want: impl FnMut(&DaemonEvent) -> bool,
) -> DaemonEvent {
    wait_for_within(HANG_GUARD, events, want).await
}

/// [`wait_for`] with another guard: under paused time the guard is virtual time too.
pub async fn wait_for_within(
    guard: Duration,
    events: &mut broadcast::Receiver<DaemonEvent>,
    mut want: impl FnMut(&DaemonEvent) -> bool,
) -> DaemonEvent {
    tokio::time::timeout(guard, async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("daemon events closed"),
            }
        }
    })
    .await
    .expect("the awaited daemon event never came")
}

/// Waits until the door worker reports `lobby` converged.
pub async fn converged(events: &mut broadcast::Receiver<DaemonEvent>) {
    wait_for(
        events,
        |e| matches!(e, DaemonEvent::DoorSynced { report } if report.converged),
    )
    .await;
}

/// Polls `cond` (cheap, in-memory) until it holds.
pub async fn until(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(HANG_GUARD, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition never held");
}

/// Display names of the people the door holds.
pub fn names_on(door: &MemoryDoor) -> Vec<String> {
    let db = door.snapshot();
    let mut names: Vec<String> = door
        .user_ids()
        .into_iter()
        .filter_map(|id| db.record(id).map(|r| r.display_name.clone()))
        .collect();
    names.sort();
    names
}

/// The name the fake cloud gives `user_id`.
pub fn name_of(sim: &SimHandle, user_id: &str) -> String {
    sim.users().into_iter().find(|u| u.key.user_id == user_id).unwrap().name
}

/// A user the fake cloud grants (permission, in the roster, no expiry) with a face, as `upsert_user` takes it.
pub fn granted_user(key: doorsync::domain::UserKey, name: &str) -> doorsync::cloud::sim::SimUser {
    doorsync::cloud::sim::SimUser {
        key,
        name: name.into(),
        status: None,
        expire_at: None,
        policy: doorsync::domain::Policy::Permission,
        face_version: 1,
        has_face: true,
        in_roster: true,
        image_override: None,
    }
}

/// A technician enrols a "Stranger" (door id 900) on the unit by hand, behind the agent's back.
pub fn enrol_stranger(door: &MemoryDoor) {
    use doorsync::door::vendor;
    let stranger = doorsync::domain::DoorRecord {
        id: doorsync::domain::DoorUserId(900),
        policy: doorsync::domain::Policy::Permission,
        expire_at: None,
        face: doorsync::domain::FaceRef {
            sha256: vendor::sha256(b"stranger"),
            len_bytes: 8,
        },
        display_name: "Stranger".into(),
    };
    let file = vendor::encode_record_file(&[stranger]).unwrap();
    door.tamper(|db| db.apply_file(vendor::FT_TYPE_RECORDS, &file));
}
