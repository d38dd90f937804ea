//! `doorsync revoke`: local revocation (invariant 4) — off every reachable door at once, a tombstone
//! against stale rosters, and the cloud-side face delete queued. Through the daemon when one runs.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::{ConfigArgs, UserArgs};
use crate::agent::control::{self, Request};
use crate::agent::{Standalone, doors};
use crate::sync::engine::RevokeReport;

/// Exit status when some door could not be reached (the revocation is recorded and will be applied).
pub(crate) const EXIT_DOORS_UNREACHED: u8 = 2;

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub user: UserArgs,
    /// Print one JSON object on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let key = args.user.key()?;
    let config = super::load_config(&args.config.config)?;
    let report = match control::connect(&config.control_socket_path()).await? {
        Some(stream) => {
            let value = control::call(stream, &Request::Revoke { key: key.clone() }, |_| {}).await?;
            serde_json::from_value::<RevokeReport>(value).context("the daemon's revoke answer")?
        }
        None => {
            let factory = doors::default_factory();
            let local = Standalone::open(&config, Some(factory.as_ref())).await?;
            let engine = &local.engine;
            doors::with_drivers(
                async {
                    let mut report = engine.revoke(&key, "doorsync revoke").await?;
                    report.outbox = Some(engine.flush_outbox().await?);
                    anyhow::Ok(report)
                },
                local.drivers,
            )
            .await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::from(if report.all_doors_reached {
        0
    } else {
        EXIT_DOORS_UNREACHED
    }))
}

pub(crate) fn render(r: &RevokeReport) -> String {
    let mut out = format!(
        "revoked {}{}; a tombstone keeps them off every door until the cloud acknowledged the face delete \
         and a later pull shows a new face\n",
        r.user,
        if r.known { "" } else { " (not in the local store)" }
    );
    for d in &r.doors {
        let here = d.removed.contains(&r.user);
        match (&d.error, here) {
            (Some(e), _) => out.push_str(&format!(
                "door {}: NOT reached ({e}); the delete goes first when it answers\n",
                d.door
            )),
            (None, true) => out.push_str(&format!(
                "door {}: removed{}\n",
                d.door,
                d.latency_ms.map(|ms| format!(" in {ms} ms")).unwrap_or_default()
            )),
            (None, false) => out.push_str(&format!("door {}: did not hold them\n", d.door)),
        }
    }
    match &r.outbox {
        None => out.push_str("cloud: face delete queued; the daemon sends it\n"),
        Some(o) if o.error.is_none() && o.remaining == 0 => out.push_str("cloud: face delete sent\n"),
        Some(o) => out.push_str(&format!(
            "cloud: face delete queued ({} calls waiting{})\n",
            o.remaining,
            o.error.as_ref().map(|e| format!("; {e}")).unwrap_or_default()
        )),
    }
    out
}
