//! Pass time through the real engine: the fake cloud on 127.0.0.1 answering every API request
//! (roster pages, face queries) after 50 ms, images served by URL from 127.0.0.1 (URL image mode), sled in a temp dir,
//! one `MemoryDoor` (so the door is not the bottleneck), `Engine::pass` from an empty store, at cloud
//! concurrency 8 and then 1. Each run starts from a fresh store and a fresh door.
//!
//! Run: `cargo bench --bench pass_time` (`PASS_BENCH_USERS=N`, default 1000; `PASS_BENCH_LATENCY_MS=L`,
//! default 50; `PASS_BENCH_CONCURRENCY=8,1` for the list of concurrencies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_cloud.rs"]
mod fake_cloud;
#[path = "support/runtime.rs"]
mod runtime;

use std::time::{Duration, Instant};

use doorsync::sync::engine::{EngineSettings, PassOptions};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn pass(users: usize, latency_ms: u64, concurrency: usize) {
    let cloud = fake_cloud::start(users, latency_ms).await;
    let (engine, door, _store_dir) = fake_cloud::engine(
        &cloud,
        EngineSettings {
            max_concurrency: concurrency,
            verify_interval: Duration::from_secs(3600),
            ..EngineSettings::default()
        },
    );
    let started = Instant::now();
    let report = engine
        .pass(
            &PassOptions {
                force_refresh: false,
                verify: false,
                door: None,
                confirm_removals: false,
            },
            &|_| {},
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(report.converged, "{report:?}");
    let pull = report.pull.as_ref().unwrap();
    println!(
        "{users} users, {latency_ms} ms per request, concurrency {concurrency}: pass {:.1} s \
         ({} image downloads, {} images normalised, {} users on the door)",
        elapsed.as_secs_f64(),
        cloud.request_count("/images"),
        pull.images_downloaded,
        door.user_ids().len(),
    );
    cloud.shutdown().await;
}

fn main() {
    let users = env_or("PASS_BENCH_USERS", 1000) as usize;
    let latency_ms = env_or("PASS_BENCH_LATENCY_MS", 50);
    let concurrencies: Vec<usize> = std::env::var("PASS_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "8,1".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let rt = runtime::runtime();
    for c in concurrencies {
        rt.block_on(pass(users, latency_ms, c));
    }
}
