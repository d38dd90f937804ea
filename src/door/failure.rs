//! One classification of door failures: what the caller does next (resend, reconnect, fail this user,
//! or stop because the door is set up wrong), and the configuration problems a technician must fix.

use std::fmt;

use serde::Serialize;

use super::{DoorError, FileResult, Status};
use crate::osdp::NakCode;

/// What to do about a failed door operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The door got garbled or dropped data: the same operation again, now, can succeed (a file
    /// continues from its last acknowledged offset).
    Resend,
    /// The link is down or was restarted: wait for the door to come back, then continue.
    Reconnect,
    /// This user's data cannot go to this door as it is; report it and go on with the others.
    FailUser,
    /// The door and the agent's configuration disagree; nothing works until a technician fixes it.
    /// Reported, never retried in a loop.
    DoorMisconfigured,
}

impl FailureClass {
    /// Whether a sync pass stops at this failure (rather than failing one user and going on).
    pub fn stops_pass(self) -> bool {
        self != FailureClass::FailUser
    }
}

/// A disagreement between a door and the agent's configuration, each with what to check next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misconfig {
    /// INFO's protocol version is not the one this agent speaks.
    ProtocolVersion { door: u8 },
    /// INFO's bucket count is not PROTOCOL.md's 64.
    BucketCount { door: u8 },
    /// INFO's max record file bytes cannot hold even one record.
    RecordFileTooSmall { door_bytes: u32, needed_bytes: usize },
    /// osdp_NAK 0x05 / 0x06: the door wants OSDP Secure Channel (or refuses the one offered).
    SecureChannel(NakCode),
    /// osdp_NAK 0x09 to an osdp_MFG: the door refuses the profile's vendor code.
    VendorCodeRefused {
        profile: String,
        profile_vendor_code: [u8; 3],
    },
    /// The door answers osdp_MFG with osdp_MFGREP of another vendor code.
    VendorCodeMismatch {
        profile: String,
        profile_vendor_code: [u8; 3],
        door_vendor_code: [u8; 3],
    },
    /// The door's answers break a bound of PROTOCOL.md §8 (its firmware does not follow the protocol).
    BoundExceeded { detail: String },
    /// osdp_NAK 0x02 / 0x03: the door refuses the command's length or the command itself.
    CommandRefused(NakCode),
    /// A command does not fit the PD's receive buffer (osdp_PDCAP capability 10) / the profile's packet size.
    PacketTooLarge {
        len: usize,
        max: usize,
        receive_buffer_bytes: Option<u16>,
    },
}

/// Bytes as `AA:BB:CC` (vendor codes, in wire order).
pub(crate) fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

impl fmt::Display for Misconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misconfig::ProtocolVersion { door } => write!(
                f,
                "door speaks doorsync protocol version {door}; this agent speaks {}: update the door's \
                 firmware or the agent",
                crate::door::vendor::PROTOCOL_VERSION
            ),
            Misconfig::BucketCount { door } => write!(
                f,
                "door reports {door} reconciliation buckets; the doorsync protocol has {}: the door's \
                 firmware does not follow firmware-config/PROTOCOL.md",
                crate::door::vendor::BUCKET_COUNT
            ),
            Misconfig::RecordFileTooSmall {
                door_bytes,
                needed_bytes,
            } => write!(
                f,
                "door accepts record files of at most {door_bytes} bytes, too small for one record \
                 ({needed_bytes} bytes): check the door's max record file size setting"
            ),
            Misconfig::SecureChannel(code) => write!(
                f,
                "door requires OSDP Secure Channel ({code}): set up the door's secure channel key in the \
                 agent's door configuration, or turn secure channel off on the door"
            ),
            Misconfig::VendorCodeRefused {
                profile,
                profile_vendor_code,
            } => write!(
                f,
                "door refuses vendor code {} of profile `{profile}` (NAK 0x09): check the profile's \
                 vendor_code against the vendor code `doorsync door probe` shows for this door",
                colon_hex(profile_vendor_code)
            ),
            Misconfig::VendorCodeMismatch {
                profile,
                profile_vendor_code,
                door_vendor_code,
            } => write!(
                f,
                "door answers vendor code {}, profile `{profile}` says {}: fix the profile's vendor_code \
                 or choose the profile of this door",
                colon_hex(door_vendor_code),
                colon_hex(profile_vendor_code)
            ),
            Misconfig::BoundExceeded { detail } => write!(
                f,
                "{detail}; the door's firmware does not follow firmware-config/PROTOCOL.md §8: update it"
            ),
            Misconfig::CommandRefused(code) => write!(
                f,
                "door refuses the command ({code}): check that the door's firmware speaks the doorsync \
                 extension and that the profile's osdp.max_packet_bytes / max_mfg_data_bytes match it"
            ),
            Misconfig::PacketTooLarge {
                len,
                max,
                receive_buffer_bytes: Some(rx),
            } => write!(
                f,
                "a {len}-byte command does not fit the door's receive buffer of {rx} bytes (osdp_PDCAP; \
                 {max} bytes usable): check the door's firmware settings or choose a profile that matches it"
            ),
            Misconfig::PacketTooLarge { len, max, .. } => write!(
                f,
                "a {len}-byte command does not fit the {max}-byte packet limit (the profile's \
                 osdp.max_packet_bytes or the door's largest message): choose a profile that matches the door"
            ),
        }
    }
}

impl DoorError {
    /// What the caller does about this failure.
    pub fn class(&self) -> FailureClass {
        match self {
            DoorError::Offline { .. } | DoorError::Timeout => FailureClass::Reconnect,
            DoorError::Corrupt { .. } => FailureClass::Resend,
            DoorError::Nak { code } => nak_class(*code),
            DoorError::Misconfigured(_) => FailureClass::DoorMisconfigured,
            DoorError::Rejected { status } if *status == Status::StorageFailure => FailureClass::Resend,
            DoorError::Rejected { .. } => FailureClass::FailUser,
            DoorError::FileRejected { result } if *result == FileResult::Corrupt => FailureClass::Resend,
            DoorError::FileRejected { .. } | DoorError::FaceTooLarge { .. } => FailureClass::FailUser,
            DoorError::Protocol(_) => FailureClass::FailUser,
        }
    }
}

/// The class of a NAK that reached the caller (the session already resent after NAK 0x01 and restarted
/// the link after NAK 0x04; the configuration NAKs are mapped to [`Misconfig`] by the OSDP door).
pub(crate) fn nak_class(code: NakCode) -> FailureClass {
    match code {
        NakCode::MessageCheck => FailureClass::Resend,
        NakCode::UnexpectedSequence | NakCode::NoError => FailureClass::Reconnect,
        NakCode::CommandLength
        | NakCode::UnknownCommand
        | NakCode::SecureChannelUnsupported
        | NakCode::EncryptionRequired
        | NakCode::UnableToProcess => FailureClass::DoorMisconfigured,
        NakCode::BioTypeUnsupported | NakCode::BioFormatUnsupported | NakCode::Other(_) => FailureClass::FailUser,
    }
}
