//! `doorsync demo`: the embedded default — fake cloud and simulated door, a real pass, a summary.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many users the fake cloud serves.
    #[arg(long, default_value_t = 20)]
    pub users: u32,
    /// Print one JSON object on standard output and nothing else.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("demo is not built yet")
}
