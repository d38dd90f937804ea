//! Process entry: parse the command line, set up logging, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use doorsync::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    doorsync::cloud::install_crypto_provider();
    cli::logging::init(&cli.log);
    match cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
