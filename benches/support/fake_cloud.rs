//! The fake cloud and a memory door as the engine benches set them up (shared by `pass_time` and
//! `pull_latency`).

use std::sync::Arc;
use std::time::Duration;

use doorsync::cloud::CloudSettings;
use doorsync::cloud::sim::{SimCloud, SimConfig, SimHandle};
use doorsync::domain::{Profile, Secret};
use doorsync::door::db::DoorDbLimits;
use doorsync::door::memory::MemoryDoor;

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
    let mut settings = CloudSettings::new(cloud.base_url(), KEY, Secret::new(SECRET.to_vec()), "sim-device-0001");
    settings.allow_insecure_http = true;
    settings.image_hosts = vec!["127.0.0.1".into()];
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
