//! The command line: clap definitions and dispatch, one file per verb.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub(crate) mod check_config;
#[cfg(feature = "sim")]
pub(crate) mod demo;
pub(crate) mod door;
pub(crate) mod explain;
pub mod keyset;
pub mod logging;
pub(crate) mod progress;
pub(crate) mod revoke;
pub(crate) mod run;
#[cfg(feature = "sim")]
pub(crate) mod simulate;
pub(crate) mod status;
pub mod sync;
pub(crate) mod user;

/// Keeps face-recognition door hardware in step with Alibaba Cloud IoT face access, over OSDP.
#[derive(Debug, Parser)]
#[command(
    name = "doorsync",
    version,
    long_version = crate::build_info::long_version(),
    about,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags shared by every verb.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// More log output (-v info, -vv debug, -vvv trace). `RUST_LOG` overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log line format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the configuration file is.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Path of the doorsync TOML configuration.
    #[arg(long, env = "DOORSYNC_CONFIG", default_value = "/etc/doorsync/doorsync.toml")]
    pub config: PathBuf,
}

/// The person a verb is about, as the cloud names them.
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// The cloud userType of the person.
    #[arg(long, value_parser = ["IDENTITY", "OPEN", "YUNDUN", "PHONE"], ignore_case = true)]
    pub user_type: String,
    /// The cloud userId of the person (the identityId for IDENTITY).
    #[arg(long)]
    pub user_id: String,
}

impl UserArgs {
    /// The store's key for this person; an empty id is refused before anything is looked up.
    pub(crate) fn key(&self) -> anyhow::Result<crate::domain::UserKey> {
        if self.user_id.trim().is_empty() {
            anyhow::bail!("--user-id must not be empty");
        }
        Ok(crate::domain::UserKey::new(
            self.user_type.to_ascii_uppercase(),
            self.user_id.clone(),
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and firmware profiles; print every problem at once.
    CheckConfig(check_config::CheckConfigArgs),
    /// Show users, faces and per-door state from the local store.
    Status(status::StatusArgs),
    /// Run the fake cloud or a simulated door on their own.
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Simulate(simulate::SimulateCommand),
    /// The embedded demo: fake cloud + simulated door, a real pass, a summary.
    #[cfg(feature = "sim")]
    Demo(demo::DemoArgs),
    /// Run the daemon: pull loop, expiry timer, doors, cloud outbox, control socket.
    Run(run::RunArgs),
    /// One pass now (through the daemon if one runs); exit 0 only if every door converged.
    Sync(sync::SyncArgs),
    /// Revoke a user locally: off every reachable door at once, kept off until the cloud re-grants.
    Revoke(revoke::RevokeArgs),
    /// Why a person is (not) on each door, in the order the agent decides it.
    Explain(explain::ExplainArgs),
    /// Entrance users in the cloud.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Technician checks of one door unit on its serial line.
    #[command(subcommand)]
    Door(door::DoorCommand),
}

/// Loads the configuration for a command that works with whatever is there: a missing port is a
/// warning (that door is reported unreachable, the others still work), any other problem an error.
pub(crate) fn load_config(path: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    let (config, warnings) = crate::config::Config::load(path, crate::config::FileChecks::WarnOnly)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// Runs the parsed command; the returned code is the process exit status.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig(args) => check_config::run(args),
        Command::Status(args) => status::run(args).await,
        #[cfg(feature = "sim")]
        Command::Simulate(cmd) => simulate::run(cmd).await,
        #[cfg(feature = "sim")]
        Command::Demo(args) => demo::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Sync(args) => sync::run(args).await,
        Command::Revoke(args) => revoke::run(args).await,
        Command::Explain(args) => explain::run(args).await,
        Command::User(cmd) => user::run(cmd).await,
        Command::Door(cmd) => door::run(cmd).await,
    }
}
