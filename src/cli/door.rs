//! `doorsync door probe`: the installer's first check of a door's wiring, address and baud — identity
//! (osdp_PDID), capabilities (osdp_PDCAP) and, where the PD speaks the vendor extension, its user count
//! and DIGEST.
//!
//! Exit status: 0 when the PD answered discovery, [`EXIT_NO_ANSWER`] when it did not (the message names
//! port, address and baud), 1 when the port could not be used. `--json` prints one [`ProbeReport`].
//! Either way the report carries a [`Diagnosis`] when something is wrong: what was seen on the line and
//! what to check next.

mod diagnosis;

pub(crate) use diagnosis::Diagnosis;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::config::{OSDP_BAUD_RATES, load_profile};
use crate::door::{Door as _, OsdpDoor, OsdpDoorOptions};
use crate::osdp::command::filetransfer::HEADER_LEN as FT_HEADER_LEN;
use crate::osdp::reply::{PdCap, PdId};

/// Exit status when the PD did not answer.
pub(crate) const EXIT_NO_ANSWER: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum DoorCommand {
    /// Talk to any OSDP PD: identity, capabilities, and user count/digest where it speaks the extension.
    Probe(ProbeArgs),
    /// Install a door's Secure Channel key (osdp_KEYSET) and confirm it by reconnecting with it.
    Keyset(super::keyset::KeysetArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Serial port of the door (e.g. /dev/ttyS1, or a pseudo-terminal path).
    #[arg(long)]
    pub port: PathBuf,
    /// Line speed (9600, 19200, 38400, 57600, 115200 or 230400).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// OSDP address of the PD (0–126).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=126))]
    pub address: u8,
    /// Firmware profile (built-in name or path): vendor code of the extension and packet limits.
    #[arg(long, default_value = "generic-face-v1")]
    pub profile: String,
    /// How long to wait for the PD to answer discovery.
    #[arg(long, default_value = "3s", value_parser = crate::clock::duration_text::parse)]
    pub timeout: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Probe inside a Secure Channel session with this key (mode 0600, 32 hex characters).
    #[arg(long)]
    pub scbk_file: Option<PathBuf>,
}

pub(crate) async fn run(cmd: DoorCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DoorCommand::Probe(args) => probe(args).await,
        DoorCommand::Keyset(args) => super::keyset::run(args).await,
    }
}

/// What `door probe --json` prints. Fields are stable; absent parts are `null`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProbeReport {
    pub port: String,
    pub baud: u32,
    pub address: u8,
    /// Whether the PD answered discovery (osdp_ID and osdp_CAP, and the handshake with `--scbk-file`).
    pub online: bool,
    /// Whether the probe ran inside an OSDP Secure Channel session.
    pub secure_channel: bool,
    pub error: Option<String>,
    pub identity: Option<Identity>,
    pub capabilities: Vec<Capability>,
    /// Capability 10, bytes.
    pub receive_buffer_bytes: Option<u16>,
    /// Largest osdp_FILETRANSFER fragment the agent would send to this PD with this profile.
    pub max_fragment_bytes: Option<usize>,
    /// `null` when the PD does not speak the doorsync extension (see `vendor_extension_error`).
    pub vendor_extension: Option<VendorExtension>,
    pub vendor_extension_error: Option<String>,
    /// The likely cause when something is wrong (no bytes, bad CRCs, another address, NAK, BUSY, …).
    pub diagnosis: Option<Diagnosis>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Identity {
    /// Wire order, `AA:BB:CC`.
    pub vendor_code: String,
    pub model: u8,
    pub version: u8,
    pub serial_number: u32,
    /// `major.minor.build`.
    pub firmware: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Capability {
    pub function: u8,
    pub name: &'static str,
    pub compliance: u8,
    pub items: u8,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct VendorExtension {
    pub vendor_code: String,
    pub protocol_version: u8,
    pub user_count: u32,
    pub face_count: u32,
    pub capacity_users: u32,
    pub max_record_file_bytes: u32,
    pub max_face_jpeg_bytes: u32,
    /// Hex of the DIGEST reply (PROTOCOL.md §5).
    pub digest: String,
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn capability_name(function: u8) -> &'static str {
    match function {
        1 => "contact status monitoring",
        2 => "output control",
        3 => "card data format",
        4 => "reader LED control",
        5 => "reader audible output",
        6 => "reader text output",
        7 => "time keeping",
        8 => "check character support",
        9 => "communication security",
        10 => "receive buffer size",
        11 => "largest combined message size",
        12 => "smart card support",
        13 => "readers",
        14 => "biometrics",
        15 => "secure PIN entry",
        16 => "OSDP version",
        _ => "unknown",
    }
}

fn identity(id: &PdId) -> Identity {
    Identity {
        vendor_code: colon_hex(&id.vendor_code),
        model: id.model,
        version: id.version,
        serial_number: id.serial_number,
        firmware: format!("{}.{}.{}", id.firmware[0], id.firmware[1], id.firmware[2]),
    }
}

fn capabilities(cap: &PdCap) -> Vec<Capability> {
    cap.records
        .iter()
        .map(|r| Capability {
            function: r.function,
            name: capability_name(r.function),
            compliance: r.compliance,
            items: r.items,
        })
        .collect()
}

/// What a technician verb on a door line checks first: `--baud` is an OSDP line speed, and the
/// `--profile` (a built-in name or a file, relative to the working directory) loads.
pub(crate) fn line_profile(baud: u32, profile: &str) -> anyhow::Result<crate::domain::Profile> {
    if !OSDP_BAUD_RATES.contains(&baud) {
        anyhow::bail!("--baud {baud} is not an OSDP line speed (use one of {OSDP_BAUD_RATES:?})");
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    Ok(load_profile(profile, &cwd)?)
}

async fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let profile = line_profile(args.baud, &args.profile)?;
    let mut report = ProbeReport {
        port: args.port.display().to_string(),
        baud: args.baud,
        address: args.address,
        online: false,
        secure_channel: false,
        error: None,
        identity: None,
        capabilities: Vec::new(),
        receive_buffer_bytes: None,
        max_fragment_bytes: None,
        vendor_extension: None,
        vendor_extension_error: None,
        diagnosis: None,
    };
    let options = OsdpDoorOptions {
        query_timeout: Duration::from_secs(2),
        ..OsdpDoorOptions::default()
    };
    let secure = args.scbk_file.as_deref().map(crate::config::read_scbk).transpose()?;
    let opened = crate::serial::open(&args.port, args.baud).map(|stream| {
        let mut session = OsdpDoor::line_session_config(args.address, &profile, args.baud);
        session.secure = secure.map(crate::osdp::SecureConfig::new);
        OsdpDoor::with_session(stream, session, &profile, options)
    });
    let (door, driver) = match opened {
        Ok(pair) => pair,
        Err(e) if args.json => {
            report.error = Some(e.to_string());
            println!("{}", serde_json::to_string(&report)?);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let ask = async {
        if !door.wait_online(args.timeout).await {
            return door
                .link_status()
                .secure_error
                .map(|e| Err(format!("secure channel handshake failed: {e}")));
        }
        let extension = match door.info().await {
            Ok(info) => door
                .digest()
                .await
                .map(|digest| (info, digest))
                .map_err(|e| (format!("INFO answered but DIGEST failed: {e}"), e)),
            Err(e) => Err((e.to_string(), e)),
        };
        Some(Ok((door.link_status(), extension)))
    };
    let found = tokio::select! {
        found = ask => found,
        ended = driver.run() => {
            let reason = match ended {
                Ok(()) => "the link driver stopped".to_owned(),
                Err(e) => e.to_string(),
            };
            report.error = Some(format!("{}: {reason}", report.port));
            None
        }
    };
    let found = match found {
        Some(Err(e)) => {
            report.error = Some(e);
            None
        }
        Some(Ok(f)) => Some(f),
        None => None,
    };
    if let Some((status, extension)) = found {
        report.online = true;
        report.secure_channel = status.secure_channel;
        report.identity = status.pdid.as_ref().map(identity);
        if let Some(cap) = &status.pdcap {
            report.capabilities = capabilities(cap);
            report.receive_buffer_bytes = cap.receive_buffer_bytes();
        }
        report.max_fragment_bytes = status.max_command_data_bytes.checked_sub(FT_HEADER_LEN);
        match extension {
            Ok((info, digest)) => {
                report.vendor_extension = Some(VendorExtension {
                    vendor_code: colon_hex(&profile.vendor_code),
                    protocol_version: info.protocol_version,
                    user_count: digest.user_count,
                    face_count: info.face_count,
                    capacity_users: info.capacity_users,
                    max_record_file_bytes: info.max_record_file_bytes,
                    max_face_jpeg_bytes: info.max_face_jpeg_bytes,
                    digest: hex::encode(digest.digest),
                })
            }
            Err((text, e)) => {
                report.diagnosis = diagnosis::online(&status, &profile, Some(&e));
                report.vendor_extension_error = Some(text);
            }
        }
        if report.diagnosis.is_none() {
            report.diagnosis = diagnosis::online(&status, &profile, None);
        }
    } else {
        report.diagnosis = diagnosis::offline(&door.link_status(), &door.wire_stats(), args.address);
    }
    if !report.online && report.error.is_none() {
        let cause = report.diagnosis.as_ref().map_or_else(
            || "check the wiring (RS-485 A/B swapped?), the PD's address and its baud rate".to_owned(),
            |d| d.message.clone(),
        );
        report.error = Some(format!(
            "PD at address {} on {} at {} baud did not come online within {}: {cause}",
            report.address,
            report.port,
            report.baud,
            crate::clock::duration_text::format(args.timeout)
        ));
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.online {
        print!("{}", text(&report));
    } else if let Some(e) = &report.error {
        eprintln!("error: {e}");
    }
    Ok(if report.online {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO_ANSWER)
    })
}

fn text(r: &ProbeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "PD at address {} on {} ({} baud): online, secure_channel: {}",
        r.address, r.port, r.baud, r.secure_channel
    );
    if let Some(id) = &r.identity {
        let _ = writeln!(out, "identity (osdp_PDID)");
        let _ = writeln!(out, "  vendor code     {}", id.vendor_code);
        let _ = writeln!(out, "  model           {}", id.model);
        let _ = writeln!(out, "  version         {}", id.version);
        let _ = writeln!(
            out,
            "  serial number   {} (0x{:08X})",
            id.serial_number, id.serial_number
        );
        let _ = writeln!(out, "  firmware        {}", id.firmware);
    }
    let _ = writeln!(out, "capabilities (osdp_PDCAP)");
    for c in &r.capabilities {
        let _ = writeln!(
            out,
            "  {:>2} {:<30} compliance {:>3}  items {:>3}",
            c.function, c.name, c.compliance, c.items
        );
    }
    if let Some(rx) = r.receive_buffer_bytes {
        let _ = writeln!(out, "  receive buffer {rx} bytes");
    }
    if let Some(f) = r.max_fragment_bytes {
        let _ = writeln!(out, "  file fragments the agent would send: {f} bytes");
    }
    match (&r.vendor_extension, &r.vendor_extension_error) {
        (Some(v), _) => {
            let _ = writeln!(
                out,
                "vendor extension (doorsync v{}, vendor code {})",
                v.protocol_version, v.vendor_code
            );
            let _ = writeln!(
                out,
                "  users {} of {}, faces {}",
                v.user_count, v.capacity_users, v.face_count
            );
            let _ = writeln!(out, "  digest {}", v.digest);
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "vendor extension: not spoken ({e})");
        }
        (None, None) => {}
    }
    if let Some(d) = &r.diagnosis {
        let _ = writeln!(out, "diagnosis: {}", d.message);
    }
    out
}
