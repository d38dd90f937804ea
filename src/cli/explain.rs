//! `doorsync explain`: why one person is (not) on each door — from the daemon if one runs, else the store.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::{ConfigArgs, UserArgs};
use crate::agent::control::{self, Request};
use crate::clock::{Clock as _, SystemClock, trust};
use crate::config::{Config, FileChecks};
use crate::store::Store;
use crate::sync::explain::{self, Explanation};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub user: UserArgs,
    /// Only this configured door.
    #[arg(long)]
    pub door: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let key = args.user.key()?;
    let (config, _warnings) = Config::load(&args.config.config, FileChecks::WarnOnly)?;
    if let Some(d) = &args.door
        && !config.doors.iter().any(|c| &c.name == d)
    {
        anyhow::bail!("--door {d}: no such door in {}", args.config.config.display());
    }
    let report: Explanation = match control::connect(&config.control_socket_path()).await? {
        Some(stream) => {
            let request = Request::Explain {
                key,
                door: args.door.clone(),
            };
            let value = control::call(stream, &request, |_| {}).await?;
            serde_json::from_value(value).context("the daemon's explain answer")?
        }
        None => {
            let store = Store::open(&config.store.path)?;
            let doors: Vec<_> = config
                .doors
                .iter()
                .filter(|d| args.door.as_ref().is_none_or(|n| n == &d.name))
                .map(|d| (d.name.as_str(), &d.profile))
                .collect();
            // The daemon's trust rule without a cloud reading: never before the persisted mark, never
            // more than a day past it (README "Clock trust"). Read-only: the mark is not advanced.
            let mark = store.clock_status()?.mark.map(|at| trust::Reading {
                at,
                age: jiff::SignedDuration::ZERO,
            });
            let now = trust::decide(SystemClock.now(), mark, None).now;
            explain::explain(&store, &key, &doors, now, false)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
