//! `doorsync check-config`: validate the configuration and firmware profiles, all problems at once.
//!
//! Output (stdout): one line per problem, key path first (`door[1].baud: …`, warnings as
//! `key: warning: …`), then one summary line. Exit 0 when valid (warnings allowed), 2 when invalid.

use std::process::ExitCode;

use clap::Args;

use super::ConfigArgs;
use crate::config::{Config, FileChecks};

/// Exit status when the configuration is invalid (1 is left for "the check itself failed").
pub(crate) const EXIT_INVALID: u8 = 2;

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Treat missing secret and port files as warnings (for checking a config on a build machine).
    #[arg(long)]
    pub no_files: bool,
}

pub(crate) fn run(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let checks = if args.no_files {
        FileChecks::WarnOnly
    } else {
        FileChecks::Required
    };
    let path = &args.config.config;
    match Config::load(path, checks) {
        Ok((config, warnings)) => {
            for w in &warnings {
                println!("{w}");
            }
            println!(
                "{}: valid ({} door{}, {} warning{})",
                path.display(),
                config.doors.len(),
                plural(config.doors.len()),
                warnings.len(),
                plural(warnings.len()),
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in errors.iter() {
                println!("{e}");
            }
            for w in &errors.warnings {
                println!("{w}");
            }
            let (n, w) = (errors.errors.len(), errors.warnings.len());
            println!(
                "{}: invalid ({n} error{}, {w} warning{})",
                path.display(),
                plural(n),
                plural(w)
            );
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
