//! `doorsync demo`: the embedded default — the fake cloud on 127.0.0.1, a real signed client, real
//! face normalisation and a real sled store in a temp dir, then a summary of what happened.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use jiff::Timestamp;
use serde::Serialize;

use crate::cloud::sim::{SimCloud, SimConfig};
use crate::cloud::{CloudClient, CloudSettings};
use crate::config::builtin_profile;
use crate::domain::Secret;
use crate::store::Store;
use crate::sync::pull::{PullOptions, PullReport, pull};

const DEMO_APP_KEY: &str = "24681357";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many users the fake cloud serves.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// Print one JSON object on standard output and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// `doorsync demo --json` prints this object.
#[derive(Debug, Serialize)]
pub struct DemoSummary {
    pub users_desired: u64,
    pub users_stored: u64,
    pub users_failed: u64,
    pub images_downloaded: u64,
    pub image_bytes_downloaded: u64,
    pub faces_stored: u64,
    pub refresh_images_downloaded: u64,
    pub pull_ms: u64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let say = |line: &str| {
        if !args.json {
            println!("{line}");
        }
    };
    let dir = tempfile::tempdir().context("creating the demo's temp dir")?;
    let secret = Secret::new(b"demo-secret-0123456789abcdef".to_vec());
    let sim_config = SimConfig::new(DEMO_APP_KEY, secret.clone(), args.users as usize);
    let device_iot_id = sim_config.device_iot_id.clone();
    let sim = SimCloud::start("127.0.0.1:0".parse()?, sim_config)
        .await
        .context("starting the fake cloud")?;
    say(&format!(
        "fake cloud: {} ({} users, APP-signed requests only)",
        sim.base_url(),
        args.users
    ));

    let mut settings = CloudSettings::new(sim.base_url(), DEMO_APP_KEY, secret, device_iot_id);
    settings.allow_insecure_http = true;
    settings.image_hosts = vec!["127.0.0.1".into()];
    settings.max_concurrency = 8;
    let cloud = CloudClient::new(settings)?;
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir)?;
    say(&format!("store: sled at {}", store_dir.display()));
    let profile = builtin_profile("generic-face-v1").context("the built-in generic-face-v1 profile")?;
    let profiles = [profile];
    let options = PullOptions {
        force_refresh: false,
        max_concurrency: 8,
    };

    let started = Instant::now();
    let first = pull(&cloud, &store, &profiles, Timestamp::now(), options).await?;
    let pull_ms = millis(started.elapsed());
    say(&format!(
        "pull: {} users, {} images downloaded ({} KiB), {} failed, in {} ms",
        first.users_total,
        first.images_downloaded,
        first.image_bytes_downloaded / 1024,
        first.users_failed,
        pull_ms
    ));
    let (users, _) = store.users()?;
    if !args.json {
        for u in users.iter().take(5) {
            let face = u.faces.get(&profiles[0].name);
            println!(
                "  {:<16} {:<12} expires {:<20} face {} ({} bytes)",
                u.key.to_string(),
                u.display_name,
                u.expire_at.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
                face.map(|f| f.sha256_hex()[..12].to_string())
                    .unwrap_or_else(|| "-".into()),
                face.map_or(0, |f| f.len_bytes)
            );
        }
        if users.len() > 5 {
            println!("  … and {} more", users.len() - 5);
        }
    }
    let again: PullReport = pull(&cloud, &store, &profiles, Timestamp::now(), options).await?;
    say(&format!(
        "second pull: {} images downloaded, {} unchanged (content-addressed faces are not fetched again)",
        again.images_downloaded, again.images_skipped
    ));
    let summary = DemoSummary {
        users_desired: first.users_total,
        users_stored: users.len() as u64,
        users_failed: first.users_failed,
        images_downloaded: first.images_downloaded,
        image_bytes_downloaded: first.image_bytes_downloaded,
        faces_stored: store.face_count() as u64,
        refresh_images_downloaded: again.images_downloaded,
        pull_ms,
    };
    sim.shutdown().await;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
