//! `doorsync status`: users, faces and per-door state read from the local store.

use std::process::ExitCode;

use clap::Args;

use super::ConfigArgs;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("status is not built yet")
}
