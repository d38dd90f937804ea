//! `doorsync simulate cloud|door`: the fakes on their own, for bench tests and technicians' dry runs.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SimulateCommand {
    /// Serve the fake Alibaba IoT face-access API over HTTP.
    Cloud(CloudSimArgs),
}

#[derive(Debug, clap::Args)]
pub struct CloudSimArgs {}

pub async fn run(_cmd: SimulateCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("simulate is not built yet")
}
