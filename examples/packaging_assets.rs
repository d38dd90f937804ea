//! Writes the man pages and shell completions the Debian package ships, generated from the clap
//! definitions so they never drift from the binary: `cargo run --example packaging_assets -- DIR`
//! gives DIR/man/*.1 and DIR/completions/{doorsync.bash,_doorsync,doorsync.fish}.
//! scripts/package runs it; the pages and completions do not depend on the target architecture.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;
use doorsync::cli::Cli;

fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: packaging_assets OUT_DIR")?;
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("writing man pages to {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "doorsync", &completions)
            .with_context(|| format!("writing {shell} completions to {}", completions.display()))?;
    }
    println!("{}", out.display());
    Ok(())
}
