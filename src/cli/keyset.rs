//! `doorsync door keyset`: install a door's Secure Channel base key. Connects in a secure session (with
//! the current key, or SCBK-D for a door in install mode), sends osdp_KEYSET with the new key, then
//! reconnects with the new key to confirm. Prints what it did, never the key.
//!
//! Exit status: 0 when the new key is confirmed, [`EXIT_NO_ANSWER`] when the door could not be reached
//! or refused, 1 for unusable arguments or files.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use super::door::{EXIT_NO_ANSWER, line_profile};
use crate::config::read_scbk;
use crate::osdp::command::KeySet;
use crate::osdp::sc::{Scbk, scbk_d};
use crate::osdp::{Command, Reply, SecureConfig, SessionConfig};
use crate::serial::link::{self, LinkError, Priority};
use crate::serial::{self as serial_port};

#[derive(Debug, Args)]
pub struct KeysetArgs {
    /// Serial port of the door.
    #[arg(long)]
    pub port: PathBuf,
    /// OSDP address of the PD (0–126).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=126))]
    pub address: u8,
    /// Line speed.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// File (mode 0600, 32 hex characters) with the key to install.
    #[arg(long)]
    pub new_scbk_file: PathBuf,
    /// File with the key the door holds now.
    #[arg(long, conflicts_with = "install_mode", required_unless_present = "install_mode")]
    pub current_scbk_file: Option<PathBuf>,
    /// The door is new (install mode): connect with the default key SCBK-D.
    #[arg(long)]
    pub install_mode: bool,
    /// Firmware profile (packet limits).
    #[arg(long, default_value = "generic-face-v1")]
    pub profile: String,
    /// How long to wait for each secure connection.
    #[arg(long, default_value = "5s", value_parser = crate::clock::duration_text::parse)]
    pub timeout: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `door keyset --json` prints.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeysetReport {
    pub port: String,
    pub address: u8,
    /// `"install-mode"` (SCBK-D) or `"current-key"`.
    pub connected_with: &'static str,
    /// The door acknowledged osdp_KEYSET.
    pub key_sent: bool,
    /// A new secure session with the new key succeeded.
    pub confirmed: bool,
    pub error: Option<String>,
}

/// Result of one secure connection attempt.
enum Outcome {
    Done(Result<Reply, LinkError>),
    Unreachable(String),
}

/// What [`keyset_on`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysetOutcome {
    /// The door acknowledged osdp_KEYSET.
    pub key_sent: bool,
    /// A new secure session with the new key succeeded.
    pub confirmed: bool,
    pub error: Option<String>,
}

/// One secure session over `stream`: connect (discovery + handshake), run `command` if any, close.
async fn session<S>(
    stream: &mut S,
    mut config: SessionConfig,
    secure: SecureConfig,
    timeout: Duration,
    command: Option<Command>,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let address = config.address;
    config.secure = Some(secure);
    let (handle, driver) = link::link(stream, config);
    let work = async {
        if !handle.wait_online(timeout).await {
            let status = handle.status();
            let why = match status.secure_error {
                Some(e) => format!("secure channel handshake failed: {e}"),
                None => format!(
                    "no secure session with address {address} within {} (state {})",
                    crate::clock::duration_text::format(timeout),
                    status.state
                ),
            };
            return Outcome::Unreachable(why);
        }
        match command {
            Some(c) => Outcome::Done(handle.request(c, Priority::Urgent).await),
            None => Outcome::Done(Ok(Reply::Ack)),
        }
    };
    tokio::select! {
        out = work => out,
        ended = driver.run() => Outcome::Unreachable(match ended {
            Ok(()) => "the link driver stopped".into(),
            Err(e) => e.to_string(),
        }),
    }
}

/// Install `new_key` on the PD at `config.address` over `stream`: a secure session with `current`
/// (SCBK-D in install mode, or the door's key), osdp_KEYSET, then a fresh session (SQN 0) with the new key.
pub async fn keyset_on<S>(
    stream: &mut S,
    config: SessionConfig,
    current: SecureConfig,
    new_key: Scbk,
    timeout: Duration,
) -> KeysetOutcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut out = KeysetOutcome {
        key_sent: false,
        confirmed: false,
        error: None,
    };
    let command = Command::KeySet(KeySet { scbk: new_key.clone() });
    match session(stream, config.clone(), current, timeout, Some(command)).await {
        Outcome::Done(Ok(Reply::Ack)) => out.key_sent = true,
        Outcome::Done(Ok(other)) => out.error = Some(format!("the door answered osdp_KEYSET with {}", other.name())),
        Outcome::Done(Err(e)) => {
            out.error = Some(format!(
                "osdp_KEYSET not acknowledged ({e}); the door may hold either key: check with \
                 `door probe --scbk-file` using each"
            ))
        }
        Outcome::Unreachable(why) => out.error = Some(why),
    }
    if out.key_sent {
        match session(stream, config, SecureConfig::new(new_key), timeout, None).await {
            Outcome::Done(Ok(_)) => out.confirmed = true,
            Outcome::Done(Err(e)) => out.error = Some(format!("reconnecting with the new key: {e}")),
            Outcome::Unreachable(why) => out.error = Some(format!("reconnecting with the new key: {why}")),
        }
    }
    out
}

pub(crate) async fn run(args: KeysetArgs) -> anyhow::Result<ExitCode> {
    let profile = line_profile(args.baud, &args.profile)?;
    let new_key = read_scbk(&args.new_scbk_file)?;
    let (current, connected_with) = match &args.current_scbk_file {
        Some(path) => (SecureConfig::new(read_scbk(path)?), "current-key"),
        None => {
            let mut c = SecureConfig::new(scbk_d());
            c.install_mode = true;
            (c, "install-mode")
        }
    };
    if current.scbk == new_key {
        anyhow::bail!("the new key is the key the door already holds; choose a new one");
    }
    if new_key == scbk_d() {
        anyhow::bail!("the new key is the default install key SCBK-D; generate a random key");
    }
    let mut stream = serial_port::open(&args.port, args.baud)?;
    let config = crate::door::OsdpDoor::line_session_config(args.address, &profile, args.baud);
    let outcome = keyset_on(&mut stream, config, current, new_key, args.timeout).await;
    let report = KeysetReport {
        port: args.port.display().to_string(),
        address: args.address,
        connected_with,
        key_sent: outcome.key_sent,
        confirmed: outcome.confirmed,
        error: outcome.error,
    };
    print_report(&args, &report)?;
    Ok(if report.confirmed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO_ANSWER)
    })
}

fn print_report(args: &KeysetArgs, r: &KeysetReport) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let how = if r.connected_with == "install-mode" {
        "the default install key (SCBK-D)"
    } else {
        "the current key"
    };
    if r.confirmed {
        println!(
            "door at address {} on {}: connected with {how}, installed the key from {}, reconnected with it: confirmed",
            r.address,
            r.port,
            args.new_scbk_file.display()
        );
        println!(
            "next: set scbk_file = \"{}\" for this door in doorsync.toml",
            args.new_scbk_file.display()
        );
    } else if let Some(e) = &r.error {
        eprintln!("error: door at address {} on {}: {e}", r.address, r.port);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_report_json_has_no_key_field() {
        let r = KeysetReport {
            port: "/dev/ttyS1".into(),
            address: 1,
            connected_with: "install-mode",
            key_sent: true,
            confirmed: true,
            error: None,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("scbk") && json.contains("\"confirmed\":true"), "{json}");
    }
}
