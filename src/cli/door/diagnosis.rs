//! `door probe`'s diagnosis: from what the line and the PD did, the one cause a technician should look
//! at first, and what to check next.

use serde::Serialize;

use crate::config::MFG_PACKET_OVERHEAD_BYTES;
use crate::domain::Profile;
use crate::door::{DoorError, Misconfig};
use crate::osdp::NakCode;
use crate::serial::link::{LinkStatus, WireStats};

/// What `door probe` found wrong (`diagnosis` in `--json`; `null` when nothing was).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Diagnosis {
    pub kind: DiagnosisKind,
    /// What was seen and what to check next, in one sentence or two.
    pub message: String,
}

/// Stable names of the causes (`diagnosis.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DiagnosisKind {
    /// Not one byte came back.
    NoBytes,
    /// Bytes came back but never formed a packet that passed its check.
    Undecodable,
    /// A PD answered, from another address.
    OtherAddress,
    /// The PD answered osdp_NAK.
    Nak,
    /// The PD answered only osdp_BUSY.
    Busy,
    /// The PD wants OSDP Secure Channel.
    SecureChannelRequired,
    /// osdp_PDID / osdp_PDCAP passed their check but did not decode.
    MalformedReply,
    /// The doorsync extension answers with (or refuses) another vendor code than the profile's.
    VendorCodeMismatch,
    /// The PD's receive buffer cannot hold the packets the profile needs.
    ReceiveBufferTooSmall,
    /// The vendor extension reported a configuration problem.
    DoorMisconfigured,
}

fn diagnosis(kind: DiagnosisKind, message: String) -> Option<Diagnosis> {
    Some(Diagnosis { kind, message })
}

/// What to check after a NAK with `code`.
fn nak_advice(code: NakCode) -> &'static str {
    match code {
        NakCode::MessageCheck => "the PD saw bad check bytes: check the line for noise, termination and grounding",
        NakCode::CommandLength => {
            "the PD refuses the command length: choose a profile whose packet sizes match the door"
        }
        NakCode::UnknownCommand => "the PD does not support the command: check the door's firmware",
        NakCode::UnexpectedSequence => "the PD lost the sequence: another controller may be polling the same line",
        NakCode::UnableToProcess => "the PD could not process the command: check the profile's vendor code",
        _ => "check the door's manual for this code",
    }
}

/// The first cause that explains a PD that did not come online.
pub(crate) fn offline(status: &LinkStatus, wire: &WireStats, address: u8) -> Option<Diagnosis> {
    let d = &status.diagnostics;
    if let Some(code) = d
        .last_nak
        .filter(|c| matches!(c, NakCode::SecureChannelUnsupported | NakCode::EncryptionRequired))
    {
        return diagnosis(
            DiagnosisKind::SecureChannelRequired,
            format!(
                "the PD answered {code}: it requires OSDP Secure Channel; configure the door's secure channel \
                 key in the agent or turn secure channel off on the door"
            ),
        );
    }
    if d.replies > 0 {
        if let Some(what) = &d.last_malformed {
            return diagnosis(
                DiagnosisKind::MalformedReply,
                format!(
                    "the PD answered, but its {what}; {} malformed replies in all: the door's OSDP firmware \
                     is faulty or not OSDP v2.2, check its version with the vendor",
                    d.malformed_replies
                ),
            );
        }
        if let Some(code) = d.last_nak {
            return diagnosis(
                DiagnosisKind::Nak,
                format!("the PD answered {code} ({} NAKs): {}", d.naks, nak_advice(code)),
            );
        }
        if d.busy_replies > 0 {
            return diagnosis(
                DiagnosisKind::Busy,
                format!(
                    "the PD answered osdp_BUSY {} times and nothing else: it is still starting up or stuck; \
                     wait, or power-cycle the door",
                    d.busy_replies
                ),
            );
        }
    }
    if let Some(other) = d.foreign_address.filter(|_| d.replies == 0) {
        return diagnosis(
            DiagnosisKind::OtherAddress,
            format!(
                "a PD answered from address {other}, not {address} ({} replies): use --address {other} or \
                 set the door's OSDP address to {address}",
                d.foreign_replies
            ),
        );
    }
    if wire.bytes_read == 0 {
        return diagnosis(
            DiagnosisKind::NoBytes,
            "not one byte came back: check the door's power, the RS-485 wiring, and that --port is the port \
             the door is wired to"
                .to_owned(),
        );
    }
    if d.replies == 0 {
        return diagnosis(
            DiagnosisKind::Undecodable,
            format!(
                "{} bytes came back but no valid OSDP reply ({} packets failed their check, {} bytes skipped): \
                 check that the door's baud rate matches --baud, RS-485 A/B polarity, and noise or \
                 termination on the line",
                wire.bytes_read, status.decode.malformed, status.decode.skipped_bytes
            ),
        );
    }
    None
}

/// The first cause that explains a PD that came online but cannot be used with `profile`.
pub(crate) fn online(status: &LinkStatus, profile: &Profile, extension: Option<&DoorError>) -> Option<Diagnosis> {
    let needed = usize::from(profile.osdp.max_mfg_data_bytes) + usize::from(MFG_PACKET_OVERHEAD_BYTES);
    if let Some(rx) = status.pdcap.as_ref().and_then(|c| c.receive_buffer_bytes())
        && rx > 0
        && usize::from(rx) < needed
    {
        return diagnosis(
            DiagnosisKind::ReceiveBufferTooSmall,
            format!(
                "the PD's receive buffer is {rx} bytes (osdp_PDCAP capability 10), but profile `{}` sends \
                 osdp_MFG packets of up to {needed} bytes: choose a profile with a smaller \
                 osdp.max_mfg_data_bytes, or check the door's firmware",
                profile.name
            ),
        );
    }
    match extension? {
        DoorError::Misconfigured(m @ (Misconfig::VendorCodeMismatch { .. } | Misconfig::VendorCodeRefused { .. })) => {
            diagnosis(DiagnosisKind::VendorCodeMismatch, m.to_string())
        }
        DoorError::Misconfigured(Misconfig::SecureChannel(code)) => diagnosis(
            DiagnosisKind::SecureChannelRequired,
            format!(
                "the PD answered {code} to the vendor extension: configure the door's secure channel key in \
                 the agent or turn secure channel off on the door"
            ),
        ),
        DoorError::Misconfigured(m) => diagnosis(DiagnosisKind::DoorMisconfigured, m.to_string()),
        DoorError::Nak { code } => diagnosis(
            DiagnosisKind::Nak,
            format!("the PD answered {code} to the vendor extension: {}", nak_advice(*code)),
        ),
        _ => None,
    }
}
