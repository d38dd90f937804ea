//! `doorsync sync`: one pass now — through the running daemon (progress streamed back), or with the
//! store opened here when none runs. Exit 0 only if every door converged and the cloud answered.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::ConfigArgs;
use super::progress::ProgressView;
use crate::agent::control::{self, Request};
use crate::agent::{Standalone, doors};
use crate::sync::engine::{PassOptions, PassReport, Progress};

/// Exit status when a door did not converge (offline, or users failed on it).
pub(crate) const EXIT_NOT_CONVERGED: u8 = 2;
/// Exit status when the doors converged to the cached desired state but the cloud pull failed.
pub const EXIT_CLOUD_FAILED: u8 = 3;

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Re-pull every user and image ignoring caches, read back every door and repair every difference
    /// (without wiping any door).
    #[arg(long)]
    pub force_refresh: bool,
    /// Sync only this door (the pull still covers the whole roster).
    #[arg(long, value_name = "NAME")]
    pub door: Option<String>,
    /// Print one JSON object on standard output instead of text (progress still goes to standard error).
    #[arg(long)]
    pub json: bool,
    /// Apply the removals the mass-removal guard holds (many users gone from the roster at once), if
    /// this pull still finds them gone.
    #[arg(long)]
    pub confirm_removals: bool,
}

pub(crate) async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config.config)?;
    if let Some(door) = &args.door
        && config.door(door).is_none()
    {
        let names: Vec<&str> = config.doors.iter().map(|d| d.name.as_str()).collect();
        anyhow::bail!(
            "no door named {door:?} in {} (doors: {})",
            args.config.config.display(),
            names.join(", ")
        );
    }
    let view = ProgressView::new();
    let report = match control::connect(&config.control_socket_path()).await? {
        Some(stream) => {
            let request = Request::Sync {
                force_refresh: args.force_refresh,
                door: args.door.clone(),
                confirm_removals: args.confirm_removals,
            };
            let value = control::call(stream, &request, |p| view.show(&p.message, p.done, p.total)).await?;
            serde_json::from_value::<PassReport>(value).context("the daemon's sync answer")?
        }
        None => {
            let factory = doors::default_factory();
            let local = Standalone::open(&config, Some(factory.as_ref())).await?;
            let options = PassOptions {
                force_refresh: args.force_refresh,
                verify: args.force_refresh,
                door: args.door.clone(),
                confirm_removals: args.confirm_removals,
            };
            let show = |p: Progress| view.show(&p.message, p.done, p.total);
            let engine = &local.engine;
            doors::with_drivers(
                async {
                    let report = engine.pass(&options, &show).await?;
                    if report.pull_error.is_none() {
                        // The cloud answers: send what waited in the outbox while we are here.
                        engine.flush_outbox().await?;
                    }
                    anyhow::Ok(report)
                },
                local.drivers,
            )
            .await?
        }
    };
    view.finish();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::from(exit_status(&report)))
}

pub fn exit_status(report: &PassReport) -> u8 {
    if !report.converged {
        EXIT_NOT_CONVERGED
    } else if report.pull_error.is_some() {
        EXIT_CLOUD_FAILED
    } else {
        0
    }
}

/// The text report.
pub fn render(r: &PassReport) -> String {
    let mut out = String::new();
    match (&r.pull, &r.pull_error) {
        (Some(p), _) => out.push_str(&format!(
            "cloud: {} users, {} images downloaded ({} KiB), {} unchanged, {} failed, {} gone{}\n",
            p.users_total,
            p.images_downloaded,
            p.image_bytes_downloaded / 1024,
            p.images_skipped,
            p.users_failed,
            p.users_gone,
            if r.force_refresh { " (force refresh)" } else { "" }
        )),
        (None, Some(e)) => out.push_str(&format!(
            "cloud: FAILED: {e}\n  the doors were corrected from the cached desired state\n"
        )),
        (None, None) => {}
    }
    if let Some(h) = &r.removals_held {
        out.push_str(&format!(
            "removals HELD: {} users gone from the roster at once are kept on the doors (first seen {}, \
             applied at {} if pulls keep agreeing; `doorsync sync --confirm-removals` applies them now)\n",
            h.count, h.first_seen_at, h.until
        ));
    }
    for (who, why) in &r.failed {
        out.push_str(&format!("user failed {who}: {why}\n"));
    }
    if r.removed_at_once > 0 {
        out.push_str(&format!("removed at once from doors: {} users\n", r.removed_at_once));
    }
    for d in &r.doors {
        let a = &d.apply;
        out.push_str(&format!(
            "door {}: {} — {} deleted, {} records, {} faces ({} KiB) sent, {} pending, {} failed\n",
            d.name,
            if d.converged { "converged" } else { "NOT converged" },
            a.deleted,
            a.upserted,
            a.faces_sent,
            a.image_bytes_sent / 1024,
            a.pending,
            a.failed.len()
        ));
        if let Some(v) = &d.verify {
            if v.matched {
                out.push_str("  read back: matches the record\n");
            } else {
                out.push_str(&format!(
                    "  read back: differed in {} buckets — {} unknown users deleted, {} missing and {} different re-sent{}\n",
                    v.buckets_differing,
                    v.unknown_deleted,
                    v.missing,
                    v.mismatched,
                    match d.confirmed {
                        Some(true) => "; now matches",
                        Some(false) => "; STILL differs",
                        None => "",
                    }
                ));
            }
        }
        let mut errors: Vec<&String> = [&d.verify_error, &a.error].into_iter().flatten().collect();
        errors.dedup();
        for e in errors {
            out.push_str(&format!("  error: {e}\n"));
        }
        for (who, why) in &a.failed {
            out.push_str(&format!("  failed {who}: {why}\n"));
        }
    }
    out
}
