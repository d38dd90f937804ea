//! `doorsync check-config`: validate the configuration and firmware profiles, all problems at once.

use std::process::ExitCode;

use clap::Args;

use super::ConfigArgs;

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Treat missing secret and port files as warnings (for checking a config on a build machine).
    #[arg(long)]
    pub no_files: bool,
}

pub fn run(_args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("check-config is not built yet")
}
