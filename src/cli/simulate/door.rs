//! `doorsync simulate door`: the simulated door on a serial port or on a pseudo-terminal of its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{ArgGroup, Args};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{OSDP_BAUD_RATES, load_profile, read_scbk};
use crate::door::sim::{FaultRates, SimDoor, SimDoorConfig, SimSecure};
use crate::serial::{self, pty::Pty};

/// Arguments of `simulate door`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("line").required(true).args(["port", "pty_link"])),
    after_help = "Prints one line when ready, nothing else unless -v. Signals: SIGTERM/SIGINT stop it (the db \
                  file is always durable); SIGUSR1 reboots it (the link restarts; only a --db-file database \
                  survives); SIGUSR2 makes it go silent, or speak again."
)]
pub struct DoorSimArgs {
    /// Serve on this existing tty: a real port (/dev/ttyUSB0) or one end of
    /// `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B`.
    #[arg(long, value_name = "PATH")]
    pub port: Option<PathBuf>,
    /// Create a pseudo-terminal, symlink its slave at PATH (replacing a stale link) and serve on it; the
    /// agent then opens PATH as its serial port. Removed again on exit.
    #[arg(long, value_name = "PATH")]
    pub pty_link: Option<PathBuf>,
    /// Line rate in baud: opens --port at this rate and paces the simulated line to it.
    #[arg(long, default_value_t = 115_200, value_parser = parse_baud)]
    pub baud: u32,
    /// OSDP address the door answers (0-126).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=126))]
    pub address: u8,
    /// Firmware profile: a built-in name (generic-face-v1, libosdp-reference) or a profile TOML path.
    /// Sets the vendor code, receive buffer, osdp_MFG limit, capacity and face size limit.
    #[arg(long, default_value = "generic-face-v1", value_name = "NAME|PATH")]
    pub profile: String,
    /// Keep the door's database in this JSON file (face images beside it in FILE.faces/): loaded at
    /// start, written durably before each acknowledged change is answered. Tests read it as the dump.
    #[arg(long, value_name = "FILE")]
    pub db_file: Option<PathBuf>,
    /// Answer MFG queries with osdp_ACK and send the osdp_MFGREP as the reply to the next osdp_POLL (as
    /// a LibOSDP PD must).
    #[arg(long)]
    pub deferred_replies: bool,
    /// Fraction (0-1) of received bytes the line loses.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, value_name = "X")]
    pub drop_rate: f64,
    /// Fraction (0-1) of received bytes that arrive with one bit flipped.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, value_name = "X")]
    pub corrupt_rate: f64,
    /// Fraction (0-1) of commands answered osdp_BUSY instead of being executed.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate, value_name = "X")]
    pub busy_rate: f64,
    /// Seed of the fault RNG (same seed and traffic, same faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Answer as fast as possible instead of pacing the line to --baud (use on a real UART, which paces itself).
    #[arg(long)]
    pub no_pacing: bool,
    /// With pacing: milliseconds from a command's last byte to the reply's first byte.
    #[arg(long, default_value_t = 1.0, value_parser = parse_turnaround, value_name = "MS")]
    pub turnaround_ms: f64,
    /// Speak OSDP Secure Channel with the key in FILE (mode 0600, 32 hex characters); only osdp_ID and
    /// osdp_CAP are then answered in plain text. With --install-mode, FILE is where a key installed by
    /// osdp_KEYSET is written (and is loaded if it exists).
    #[arg(long, value_name = "FILE")]
    pub scbk_file: Option<PathBuf>,
    /// A door fresh from the factory: Secure Channel with the default key SCBK-D until osdp_KEYSET.
    #[arg(long)]
    pub install_mode: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a fraction in 0..=1"))
    }
}

fn parse_baud(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("{s:?} is not a baud rate"))?;
    if OSDP_BAUD_RATES.contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not an OSDP baud rate (one of {OSDP_BAUD_RATES:?})"))
    }
}

fn parse_turnaround(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=200.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} ms is not in 0..=200 (a PD must answer within 200 ms)"))
    }
}

pub async fn run(args: DoorSimArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let profile = load_profile(&args.profile, &cwd).map_err(|e| anyhow!("{e}"))?;
    let mut cfg = SimDoorConfig::new(args.address, profile);
    cfg.db_file = args.db_file.clone();
    cfg.deferred_replies = args.deferred_replies;
    cfg.faults = FaultRates {
        drop_rate: args.drop_rate,
        corrupt_rate: args.corrupt_rate,
        busy_rate: args.busy_rate,
    };
    cfg.seed = args.seed;
    cfg.baud = (!args.no_pacing).then_some(args.baud);
    cfg.turnaround = Duration::from_secs_f64(args.turnaround_ms / 1000.0);
    cfg.secure = secure_settings(&args)?;
    match (&args.port, &args.pty_link) {
        (Some(port), None) => {
            let stream = serial::open(port, args.baud)?;
            serve(cfg, stream, port, &args).await
        }
        (None, Some(link)) => {
            let pty = Pty::open().context("creating a pseudo-terminal")?;
            replace_link(link, pty.slave_path())?;
            let result = serve(cfg, pty, link, &args).await;
            if let Err(e) = std::fs::remove_file(link) {
                tracing::debug!(link = %link.display(), error = %e, "could not remove the pty link");
            }
            result
        }
        _ => bail!("give exactly one of --port and --pty-link"),
    }
}

/// The Secure Channel settings of `--scbk-file` / `--install-mode`.
fn secure_settings(args: &DoorSimArgs) -> anyhow::Result<Option<SimSecure>> {
    let scbk = match &args.scbk_file {
        Some(f) if !args.install_mode || f.exists() => Some(read_scbk(f).map_err(|e| anyhow!("{e}"))?),
        _ => None,
    };
    if scbk.is_none() && !args.install_mode {
        return Ok(None);
    }
    Ok(Some(SimSecure {
        scbk,
        install_mode: args.install_mode,
        key_file: args.scbk_file.clone(),
    }))
}

/// Points `link` at `target`, replacing an existing symlink but never a real file.
fn replace_link(link: &Path, target: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::remove_file(link).with_context(|| format!("removing the stale link {}", link.display()))?
        }
        Ok(_) => bail!("refusing to replace {}: it exists and is not a symlink", link.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", link.display())),
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

async fn serve<S>(cfg: SimDoorConfig, stream: S, shown: &Path, args: &DoorSimArgs) -> anyhow::Result<ExitCode>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut ready = format!(
        "simulated door listening on {} (address {}, {} baud, profile {}",
        shown.display(),
        cfg.address,
        args.baud,
        cfg.profile.name
    );
    if args.no_pacing {
        ready.push_str(", no pacing");
    }
    if cfg.deferred_replies {
        ready.push_str(", deferred replies");
    }
    if let Some(f) = &cfg.db_file {
        ready.push_str(&format!(", db file {}", f.display()));
    }
    ready.push(')');
    let (door, driver) = SimDoor::new(cfg, stream)?;
    let handler = |kind: SignalKind, name: &str| signal(kind).with_context(|| format!("installing the {name} handler"));
    let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
    let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
    let mut usr1 = handler(SignalKind::user_defined1(), "SIGUSR1")?;
    let mut usr2 = handler(SignalKind::user_defined2(), "SIGUSR2")?;
    println!("{ready}");
    let mut served = std::pin::pin!(driver.run());
    let mut silent = false;
    loop {
        // Every change is durable before it is answered, so stopping between two awaits loses nothing.
        tokio::select! {
            result = &mut served => {
                result?;
                break;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => {
                door.reboot()?;
                tracing::info!("simulated door rebooted (SIGUSR1)");
            }
            _ = usr2.recv() => {
                silent = !silent;
                if silent { door.silence() } else { door.resume() }
                tracing::info!(silent, "simulated door silence toggled (SIGUSR2)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
