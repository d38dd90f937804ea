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
    /// OSDP address the door answers (0-126). Repeat for several doors on one line (an RS-485 bus):
    /// each answers only its own address, and the line is paced as one half-duplex medium.
    #[arg(long = "address", default_value = "1", value_parser = clap::value_parser!(u8).range(0..=126))]
    pub addresses: Vec<u8>,
    /// Firmware profile: a built-in name (generic-face-v1, libosdp-reference) or a profile TOML path.
    /// Sets the vendor code, receive buffer, osdp_MFG limit, capacity and face size limit.
    #[arg(long, default_value = "generic-face-v1", value_name = "NAME|PATH")]
    pub profile: String,
    /// Keep the door's database in this JSON file (face images beside it in FILE.faces/): loaded at
    /// start, written durably before each acknowledged change is answered. Tests read it as the dump.
    /// With several --address, give one per address, in the same order.
    #[arg(long = "db-file", value_name = "FILE")]
    pub db_files: Vec<PathBuf>,
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
    /// Seed of the fault RNG (same seed and traffic, same faults); the n-th door on a bus uses seed + n.
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
    /// osdp_KEYSET is written (and is loaded if it exists). With several --address: one per address in
    /// the same order, or ADDRESS=FILE for the doors that have a key (the others speak in clear).
    #[arg(long = "scbk-file", value_name = "[ADDRESS=]FILE")]
    pub scbk_files: Vec<PathBuf>,
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

pub(crate) async fn run(args: DoorSimArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let profile = load_profile(&args.profile, &cwd).map_err(|e| anyhow!("{e}"))?;
    let n = args.addresses.len();
    let given = args.db_files.len();
    if given != 0 && given != n {
        bail!("--db-file is given {given} times for {n} --address; give none or one per address, in the same order");
    }
    let scbk_files = scbk_files(&args.scbk_files, &args.addresses)?;
    let mut configs = Vec::with_capacity(n);
    for (i, &address) in args.addresses.iter().enumerate() {
        let mut cfg = SimDoorConfig::new(address, profile.clone());
        cfg.db_file = args.db_files.get(i).cloned();
        cfg.deferred_replies = args.deferred_replies;
        cfg.faults = FaultRates {
            drop_rate: args.drop_rate,
            corrupt_rate: args.corrupt_rate,
            busy_rate: args.busy_rate,
        };
        cfg.seed = args.seed.wrapping_add(i as u64);
        cfg.baud = (!args.no_pacing).then_some(args.baud);
        cfg.turnaround = Duration::from_secs_f64(args.turnaround_ms / 1000.0);
        cfg.secure = secure_settings(scbk_files.get(i).and_then(Option::as_ref), args.install_mode)?;
        configs.push(cfg);
    }
    match (&args.port, &args.pty_link) {
        (Some(port), None) => {
            let stream = serial::open(port, args.baud)?;
            serve(configs, stream, port, &args).await
        }
        (None, Some(link)) => {
            let pty = Pty::open().context("creating a pseudo-terminal")?;
            replace_link(link, pty.slave_path())?;
            let result = serve(configs, pty, link, &args).await;
            if let Err(e) = std::fs::remove_file(link) {
                tracing::debug!(link = %link.display(), error = %e, "could not remove the pty link");
            }
            result
        }
        _ => bail!("give exactly one of --port and --pty-link"),
    }
}

/// Each address's `--scbk-file` (in address order): all given plainly, one per address, or as
/// ADDRESS=FILE for some of them.
fn scbk_files(given: &[PathBuf], addresses: &[u8]) -> anyhow::Result<Vec<Option<PathBuf>>> {
    let keyed: Vec<Option<(u8, PathBuf)>> = given
        .iter()
        .map(|g| {
            let s = g.to_str()?;
            let (a, f) = s.split_once('=')?;
            Some((a.parse().ok()?, PathBuf::from(f)))
        })
        .collect();
    if keyed.iter().all(Option::is_none) {
        if !given.is_empty() && given.len() != addresses.len() {
            bail!(
                "--scbk-file is given {} times for {} --address; give one per address, or ADDRESS=FILE",
                given.len(),
                addresses.len()
            );
        }
        return Ok(addresses
            .iter()
            .enumerate()
            .map(|(i, _)| given.get(i).cloned())
            .collect());
    }
    let keyed: Vec<(u8, PathBuf)> = keyed.into_iter().flatten().collect();
    if keyed.len() != given.len() {
        bail!("mixing --scbk-file FILE and --scbk-file ADDRESS=FILE; use ADDRESS=FILE for every one");
    }
    if let Some((a, _)) = keyed.iter().find(|(a, _)| !addresses.contains(a)) {
        bail!("--scbk-file {a}=…: no --address {a}");
    }
    Ok(addresses
        .iter()
        .map(|a| keyed.iter().find(|(k, _)| k == a).map(|(_, f)| f.clone()))
        .collect())
}

/// The Secure Channel settings of `--scbk-file` / `--install-mode` for one door.
fn secure_settings(scbk_file: Option<&PathBuf>, install_mode: bool) -> anyhow::Result<Option<SimSecure>> {
    let scbk = match scbk_file {
        Some(f) if !install_mode || f.exists() => Some(read_scbk(f).map_err(|e| anyhow!("{e}"))?),
        _ => None,
    };
    if scbk.is_none() && !install_mode {
        return Ok(None);
    }
    Ok(Some(SimSecure {
        scbk,
        install_mode,
        key_file: scbk_file.cloned(),
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

async fn serve<S>(configs: Vec<SimDoorConfig>, stream: S, shown: &Path, args: &DoorSimArgs) -> anyhow::Result<ExitCode>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let addresses: Vec<String> = configs.iter().map(|c| c.address.to_string()).collect();
    let (noun, profile) = match configs.first() {
        Some(c) if configs.len() == 1 => ("simulated door", c.profile.name.clone()),
        Some(c) => ("simulated doors", c.profile.name.clone()),
        None => bail!("no --address given"),
    };
    let mut ready = format!(
        "{noun} listening on {} (address {}, {} baud, profile {profile}",
        shown.display(),
        addresses.join(" "),
        args.baud,
    );
    if args.no_pacing {
        ready.push_str(", no pacing");
    }
    if args.deferred_replies {
        ready.push_str(", deferred replies");
    }
    if !args.db_files.is_empty() {
        let files: Vec<String> = args.db_files.iter().map(|f| f.display().to_string()).collect();
        ready.push_str(&format!(", db file {}", files.join(" ")));
    }
    ready.push(')');
    let (doors, driver) = SimDoor::bus(configs, stream)?;
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
                for door in &doors {
                    door.reboot()?;
                }
                tracing::info!("simulated doors rebooted (SIGUSR1)");
            }
            _ = usr2.recv() => {
                silent = !silent;
                for door in &doors {
                    if silent { door.silence() } else { door.resume() }
                }
                tracing::info!(silent, "simulated door silence toggled (SIGUSR2)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
