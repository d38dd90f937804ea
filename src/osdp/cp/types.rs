//! Vocabulary of the CP session: its configuration, link states, events and errors.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::osdp::MessageError;
use crate::osdp::reply::{Nak, NakCode, PdCap, PdId, Reply};

/// Tunables of one PD session. Defaults follow docs/osdp.md §1/§3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// PD address 0x00–0x7E (0x7F = broadcast/config).
    pub address: u8,
    /// CRC-16 (true, default) or the legacy 8-bit checksum.
    pub use_crc: bool,
    /// Prepend the 0xFF mark byte to every command (LibOSDP's CP does).
    pub send_mark: bool,
    /// Largest packet we send (the hardware profile's cap); the PD's capabilities 10/11 may lower it.
    pub max_packet_bytes: usize,
    /// Largest reply packet we accept.
    pub max_reply_bytes: usize,
    /// A reply missing for this long counts as lost.
    pub reply_timeout: Duration,
    /// Resends after the first transmission before the command fails.
    pub max_retries: u8,
    /// A PD silent this long is Offline.
    pub offline_after: Duration,
    /// Keep-alive osdp_POLL period while online and idle.
    pub poll_interval: Duration,
    /// Pause before resending a command the PD answered with osdp_BUSY.
    pub busy_delay: Duration,
    /// Pause between discovery attempts after a failed one (also the offline probe period).
    pub probe_interval: Duration,
    /// While the PD is offline the probe pause doubles after each failed attempt up to this (never
    /// below `probe_interval`). The bus raises it when PDs share a line.
    pub offline_probe_max: Duration,
    /// Secure Channel: `Some` for a door with an SCBK (then nothing goes in plain text after discovery).
    pub secure: Option<super::SecureConfig>,
}

impl SessionConfig {
    pub fn new(address: u8) -> Self {
        SessionConfig {
            address,
            use_crc: true,
            send_mark: true,
            max_packet_bytes: 1440,
            max_reply_bytes: 1440,
            reply_timeout: Duration::from_millis(200),
            max_retries: 3,
            offline_after: Duration::from_secs(8),
            poll_interval: Duration::from_millis(150),
            busy_delay: Duration::from_millis(100),
            probe_interval: Duration::from_secs(1),
            offline_probe_max: Duration::from_secs(1),
            secure: None,
        }
    }
}

/// Link state of one PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PdState {
    /// Created, nothing sent yet.
    Init,
    /// osdp_ID sent with SQN 0 (link start or restart).
    IdDiscovery,
    /// osdp_CAP sent after a valid PDID.
    CapDiscovery,
    /// Discovery done; commands may be submitted.
    Online,
    /// Silent for `offline_after`; probing with SQN 0 every `probe_interval`.
    Offline,
}

impl fmt::Display for PdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PdState::Init => "init",
            PdState::IdDiscovery => "id-discovery",
            PdState::CapDiscovery => "cap-discovery",
            PdState::Online => "online",
            PdState::Offline => "offline",
        })
    }
}

/// Identifies a submitted command in later events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

/// Why a submitted command did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FailReason {
    #[error("no reply after {attempts} transmissions")]
    Timeout { attempts: u8 },
    #[error("PD answered {}", .0.code)]
    Nak(Nak),
    #[error("PD answered with a malformed reply: {0}")]
    BadReply(MessageError),
    #[error("link restarted (PD reported an unexpected sequence number)")]
    LinkRestarted,
    #[error("PD went offline")]
    Offline,
}

/// What the session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The reply to a submitted command (never a NAK: that is `Failed`).
    Reply {
        id: CommandId,
        reply: Reply,
    },
    Failed {
        id: CommandId,
        reason: FailReason,
    },
    /// Discovery finished (after start, a restart, or offline).
    Online {
        pdid: PdId,
        pdcap: PdCap,
    },
    Offline,
    /// A report that came as the answer to a keep-alive osdp_POLL (e.g. a queued osdp_MFGREP).
    Unsolicited(Reply),
}

/// Why [`PdSession::submit`](super::PdSession::submit) refused a command; the caller keeps ordering and retries.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("PD is not online (state {state})")]
    NotOnline { state: PdState },
    #[error("another command is outstanding")]
    Busy,
    #[error("command packet of {len} bytes exceeds the PD's {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("cannot encode command: {0}")]
    Encode(#[from] MessageError),
}

/// What the PD sent that tells a technician what is wrong with the link (`door probe`'s diagnosis).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkDiagnostics {
    /// Check-verified replies from this PD's address.
    pub replies: u64,
    /// Check-verified replies from another address, and the last such address.
    pub foreign_replies: u64,
    pub foreign_address: Option<u8>,
    pub naks: u64,
    pub last_nak: Option<NakCode>,
    pub busy_replies: u64,
    /// Replies that passed the check but whose DATA did not decode (e.g. a truncated osdp_PDID).
    pub malformed_replies: u64,
    /// The last of those: reply name and what was wrong.
    pub last_malformed: Option<String>,
    /// Same-SQN resends after a NAK 0x01 or a reply that failed its check.
    pub check_resends: u64,
}
