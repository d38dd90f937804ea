//! `doorsync run`: the daemon — pull loop, expiry timer, door workers, cloud outbox, control socket —
//! until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use super::ConfigArgs;
use crate::agent::{self, Daemon, DaemonConfig, doors, shutdown};
use crate::clock::SystemClock;
use crate::cloud::{CloudClient, CloudSettings};

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// At start-up, re-pull every user and image ignoring caches, read back every door and repair
    /// every difference (without wiping any door).
    #[arg(long)]
    pub force_refresh: bool,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config.config)?;
    // The store first: a second daemon must fail here, before it touches a serial port.
    let store = agent::open_store(&config.store.path)?;
    let cloud = CloudClient::new(CloudSettings::from_config(&config.cloud)?)?;
    let factory = doors::default_factory();
    let (doors, failed) = doors::open_all(factory.as_ref(), &config.doors, &config.lines).await;
    if failed.len() == config.doors.len() {
        let reasons: Vec<String> = failed.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "no door could be opened, so there is nothing to run:\n  {}",
            reasons.join("\n  ")
        );
    }
    let shutdown = shutdown::signals().context("installing the SIGTERM/SIGINT handlers")?;
    let daemon = Daemon {
        config: DaemonConfig::from_config(&config, args.force_refresh),
        store,
        cloud: Arc::new(cloud),
        clock: Arc::new(SystemClock),
        doors,
        events: None,
    };
    agent::run(daemon, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
