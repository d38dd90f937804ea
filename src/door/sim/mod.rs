//! The simulated door: an OSDP Peripheral Device holding a [`DoorDb`](super::db::DoorDb), built on the crate's own sans-IO
//! core (`osdp::PdLink` for framing, SQN and the reply cache; `door::db` for the vendor extension of
//! `firmware-config/PROTOCOL.md`), with seeded fault injection, baud pacing and an optional file-backed
//! database.
//!
//! Layers, each in its own file:
//! - [`pd`]: [`SimPd`](pd::SimPd), the sans-IO door (bytes and `now` in, reply bytes and "persist now" out);
//! - [`pacing`]: [`LinePacer`](pacing::LinePacer), pure arithmetic of a half-duplex line at a baud rate;
//! - [`faults`]: [`FaultInjector`], seeded byte drops/corruption and osdp_BUSY answers;
//! - [`persist`]: [`DbFile`] (atomic JSON + face blobs, durable before answered) and [`DoorDump`];
//! - [`runtime`]: [`SimDoor`] (the Clone handle) and [`SimDoorDriver`] (the future the caller spawns)
//!   over any `AsyncRead + AsyncWrite` stream: a `serial::pty::Pty` master or a port from `serial::open`.
//!
//! Used in-process by tests and the demo, and as a separate process by `doorsync simulate door`.

pub(crate) mod faults;
pub(crate) mod pacing;
pub(crate) mod pd;
pub(crate) mod persist;
pub(crate) mod runtime;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::db::DoorDbLimits;
use crate::domain::Profile;

pub use faults::{FaultInjector, FaultRates};
#[cfg(test)]
pub(crate) use pd::{PdOutput, Silence, SimPd};
pub use persist::{DUMP_FORMAT, DbFile, DoorDump, DumpFace, DumpUser, PersistError};
pub use runtime::{SimDoor, SimDoorDriver};

/// Record files a simulated door accepts, in bytes (PROTOCOL.md's example door uses the same figure).
pub(crate) const DEFAULT_MAX_RECORD_FILE_BYTES: u32 = 8192;
/// Default time from a command's last byte to the first byte of the reply when pacing (a typical PD).
pub const DEFAULT_TURNAROUND: Duration = Duration::from_millis(1);

/// What the door says about itself in osdp_PDID (the vendor code comes from the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimIdentity {
    pub model: u8,
    pub version: u8,
    pub serial_number: u32,
    /// Major, minor, build.
    pub firmware: [u8; 3],
}

impl Default for SimIdentity {
    fn default() -> Self {
        Self {
            model: 1,
            version: 1,
            serial_number: 0x4453_0001,
            firmware: [1, 0, 0],
        }
    }
}

/// Everything a simulated door is started with. [`SimDoorConfig::new`] gives a fault-free, unpaced,
/// in-memory door; set fields to taste.
#[derive(Debug, Clone)]
pub struct SimDoorConfig {
    /// OSDP address 0x00–0x7E the door answers (it also answers the broadcast address 0x7F).
    pub address: u8,
    /// Vendor code, receive buffer (`osdp.max_packet_bytes`), osdp_MFG limit, capacity and face limit.
    pub profile: Profile,
    pub identity: SimIdentity,
    /// INFO's max record file bytes; larger record files are refused with FTSTAT -3.
    pub max_record_file_bytes: u32,
    /// Answer MFG queries with osdp_ACK and send their osdp_MFGREP as the reply to the next osdp_POLL, as
    /// a LibOSDP PD must.
    pub deferred_replies: bool,
    pub faults: FaultRates,
    /// Seed of the fault RNG: the same seed and traffic give the same faults.
    pub seed: u64,
    /// Model a half-duplex line at this rate (10 bits per byte); `None`: answer as fast as possible.
    pub baud: Option<u32>,
    /// With pacing: time from a command's last byte to the reply's first byte.
    pub turnaround: Duration,
    /// Load the database from this JSON file at start and write it, durably, after every change the door
    /// acknowledges. Face images are kept beside it in `<file>.faces/`.
    pub db_file: Option<PathBuf>,
    /// Speak OSDP Secure Channel (then only osdp_ID/osdp_CAP are taken in plain text).
    pub secure: Option<SimSecure>,
}

/// The simulated door's Secure Channel keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSecure {
    /// The door's SCBK; `None` with `install_mode` is a door fresh from the factory.
    pub scbk: Option<crate::osdp::sc::Scbk>,
    /// Accept SCBK-D until an osdp_KEYSET installs a key.
    pub install_mode: bool,
    /// Where a key installed by osdp_KEYSET is written (32 hex characters, mode 0600).
    pub key_file: Option<PathBuf>,
}

impl SimDoorConfig {
    pub fn new(address: u8, profile: Profile) -> Self {
        Self {
            address,
            profile,
            identity: SimIdentity::default(),
            max_record_file_bytes: DEFAULT_MAX_RECORD_FILE_BYTES,
            deferred_replies: false,
            faults: FaultRates::default(),
            seed: 1,
            baud: None,
            turnaround: DEFAULT_TURNAROUND,
            db_file: None,
            secure: None,
        }
    }

    /// The database limits this door enforces.
    pub(crate) fn limits(&self) -> DoorDbLimits {
        DoorDbLimits {
            capacity_users: self.profile.capacity_users,
            max_record_file_bytes: self.max_record_file_bytes,
            max_face_jpeg_bytes: self.profile.image.max_bytes,
        }
    }

    /// Every setting that would make the door misbehave, at once.
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        let mut problems = Vec::new();
        if self.address > 0x7E {
            problems.push(format!("address {} is not in 0..=126", self.address));
        }
        if self.baud == Some(0) {
            problems.push("baud rate 0".to_owned());
        }
        if let Err(e) = self.faults.validate() {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SimError::Config(problems.join("; ")))
        }
    }

    /// An empty database with this door's limits.
    #[cfg(test)]
    pub(crate) fn empty_db(&self) -> super::db::DoorDb {
        super::db::DoorDb::new(self.limits())
    }
}

/// Why the simulated door could not start or had to stop.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("invalid simulated door settings: {0}")]
    Config(String),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error("simulated door line I/O failed: {0}")]
    Io(#[source] std::io::Error),
}
