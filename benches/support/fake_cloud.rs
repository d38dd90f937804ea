//! The fake cloud, a memory door and the engine over them as the engine benches set them up (shared by
//! `pass_time` and `pull_latency`).

use std::sync::Arc;
use std::time::Duration;

use doorsync::clock::SystemClock;
use doorsync::cloud::sim::{SimCloud, SimConfig, SimHandle};
use doorsync::cloud::{CloudClient, CloudSettings};
use doorsync::config::builtin_profile;
use doorsync::domain::{Profile, Secret};
use doorsync::door::db::DoorDbLimits;
use doorsync::door::memory::MemoryDoor;
use doorsync::store::Store;
use doorsync::sync::engine::{Engine, EngineDoor, EngineSettings};
use doorsync::testkit::sim_cloud_settings;
use tempfile::TempDir;

pub const KEY: &str = "24681357";
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The fake cloud on 127.0.0.1 with `users`, answering each request after `latency_ms`.
pub async fn start(users: usize, latency_ms: u64) -> SimHandle {
    let mut config = SimConfig::new(KEY, Secret::new(SECRET.to_vec()), users);
    config.latency_ms = latency_ms;
    SimCloud::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

/// Client settings for `cloud` with `concurrency` requests in flight.
pub fn settings(cloud: &SimHandle, concurrency: usize) -> CloudSettings {
    let mut settings = sim_cloud_settings(&cloud.base_url(), KEY, SECRET);
    settings.max_concurrency = concurrency;
    settings.request_timeout = Duration::from_secs(30);
    settings
}

/// A memory door with `profile`'s capacity and face limit.
pub fn memory_door(profile: &Profile) -> Arc<MemoryDoor> {
    Arc::new(MemoryDoor::new(DoorDbLimits {
        capacity_users: profile.capacity_users,
        max_record_file_bytes: 64 * 1024,
        max_face_jpeg_bytes: profile.image.max_bytes,
    }))
}

/// The engine with `settings` over a client for `cloud` (`settings.max_concurrency` requests in flight), a
/// fresh sled store in a temp dir (kept while the returned `TempDir` lives) and one memory door, "lobby",
/// with the `generic-face-v1` profile.
pub fn engine(cloud: &SimHandle, settings: EngineSettings) -> (Engine, Arc<MemoryDoor>, TempDir) {
    let client = CloudClient::new(self::settings(cloud, settings.max_concurrency)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let profile = builtin_profile("generic-face-v1").unwrap();
    let door = memory_door(&profile);
    let engine = Engine::new(
        store,
        Arc::new(client),
        Arc::new(SystemClock),
        vec![EngineDoor {
            name: "lobby".into(),
            profile,
            door: door.clone(),
        }],
        settings,
    );
    (engine, door, dir)
}
