//! `doorsync simulate cloud|door`: the fakes on their own, for bench tests and technicians' dry runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use crate::cloud::sim::{SimCloud, SimConfig};
use crate::config::read_secret_file;

pub(crate) mod door;

#[derive(Debug, Subcommand)]
pub enum SimulateCommand {
    /// Serve the fake Alibaba IoT face-access API over HTTP.
    Cloud(CloudSimArgs),
    /// Serve a simulated face-recognition door (an OSDP PD speaking the vendor extension).
    Door(door::DoorSimArgs),
}

#[derive(Debug, clap::Args)]
pub struct CloudSimArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// App key the fake gateway accepts (X-Ca-Key).
    #[arg(long)]
    pub app_key: String,
    /// File holding the app secret the fake gateway verifies signatures with.
    #[arg(long)]
    pub app_secret_file: PathBuf,
    /// Number of generated users on the device roster (u-0001, u-0002, …).
    #[arg(long, default_value_t = 45)]
    pub users: usize,
    /// The device iotId whose roster is served.
    #[arg(long, default_value = "sim-device-0001")]
    pub device_iot_id: String,
    /// Delay added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed for generated data and injected faults (same seed, same behaviour).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub(crate) async fn run(cmd: SimulateCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SimulateCommand::Cloud(args) => run_cloud(args).await,
        SimulateCommand::Door(args) => door::run(args).await,
    }
}

async fn run_cloud(args: CloudSimArgs) -> anyhow::Result<ExitCode> {
    let secret = read_secret_file(&args.app_secret_file)?;
    let mut cfg = SimConfig::new(args.app_key, secret, args.users);
    cfg.device_iot_id = args.device_iot_id;
    cfg.latency_ms = args.latency_ms;
    cfg.seed = args.seed;
    let handle = SimCloud::start(args.listen, cfg).await?;
    println!("{}", handle.base_url());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
