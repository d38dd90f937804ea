//! Tracing set-up: quiet by default (warnings only), `-v` for more, `RUST_LOG` to override, JSON on request.

use tracing_subscriber::EnvFilter;

use super::{LogArgs, LogFormat};

/// Installs the global subscriber writing to standard error. Safe to call once per process.
pub fn init(args: &LogArgs) {
    let default = match args.verbose {
        0 => "warn",
        1 => "info,doorsync=info",
        2 => "info,doorsync=debug",
        _ => "debug,doorsync=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests running several commands in one process) keeps the first subscriber.
    let _ = result;
}
