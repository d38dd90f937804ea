//! `doorsync status`: users, faces and per-door state — from the daemon if one runs, else the store.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::ConfigArgs;
use crate::agent::control::{self, Request};
use crate::config::{Config, FileChecks};
use crate::store::Store;
use crate::sync::status::{self, StatusReport};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (config, _warnings) = Config::load(&args.config.config, FileChecks::WarnOnly)?;
    let mut report = match control::connect(&config.control_socket_path()).await? {
        Some(stream) => {
            let value = control::call(stream, &Request::Status, |_| {}).await?;
            serde_json::from_value::<StatusReport>(value).context("the daemon's status answer")?
        }
        None => {
            let store = Store::open(&config.store.path)?;
            let doors: Vec<&str> = config.doors.iter().map(|d| d.name.as_str()).collect();
            status::collect(&store, &doors, false)?
        }
    };
    for d in &mut report.doors {
        d.secure_channel = config.doors.iter().any(|c| c.name == d.name && c.scbk_file.is_some());
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
