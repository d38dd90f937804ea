//! `doorsync user modify`: the entrance user add/update API (`/entrance/paas/user/modify`), queued in
//! the cloud outbox while the cloud is unreachable.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::ConfigArgs;
use crate::agent::Standalone;
use crate::agent::control::{self, Request};
use crate::sync::engine::ModifyReport;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create or update an entrance user in the cloud (queued if the cloud is unreachable).
    Modify(ModifyArgs),
}

#[derive(Debug, Args)]
pub struct ModifyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The user's identityId.
    #[arg(long)]
    pub identity_id: String,
    /// Display name (required by the cloud when the user is created).
    #[arg(long)]
    pub name: String,
    /// Extra information stored with the user (a JSON object is advised); unchanged when omitted.
    #[arg(long)]
    pub ext_info: Option<String>,
    /// Print one JSON object on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::Modify(args) = cmd;
    if args.identity_id.trim().is_empty() {
        anyhow::bail!("--identity-id must not be empty");
    }
    let config = super::load_config(&args.config.config)?;
    let report = match control::connect(&config.control_socket_path()).await? {
        Some(stream) => {
            let request = Request::ModifyUser {
                identity_id: args.identity_id.clone(),
                name: Some(args.name.clone()),
                ext_info: args.ext_info.clone(),
            };
            let value = control::call(stream, &request, |_| {}).await?;
            serde_json::from_value::<ModifyReport>(value).context("the daemon's answer")?
        }
        None => {
            let local = Standalone::open(&config, None).await?;
            local
                .engine
                .modify_user(&args.identity_id, Some(&args.name), args.ext_info.as_deref())
                .await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.sent {
        println!("user {}: modified in the cloud", report.identity_id);
    } else if report.queued {
        println!(
            "user {}: queued; sent when the cloud answers{}",
            report.identity_id,
            report.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
        );
    } else {
        println!(
            "user {}: the cloud refused the change: {}",
            report.identity_id,
            report.error.as_deref().unwrap_or("unknown reason")
        );
    }
    Ok(if report.sent || report.queued {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
