//! OSDP Secure Channel (OSDP v2.2 Annex D, AES-128), sans-IO: key derivation, the CHLNG / CCRYPT /
//! SCRYPT / RMAC_I handshake and the MAC chain with DATA encryption on every later packet, for the CP
//! ([`CpChannel`]) and the PD ([`PdChannel`], used by the simulated door).
//!
//! Key material lives only in [`Scbk`] / session-key types that are zeroized on drop and whose `Debug`
//! prints nothing of it; no [`ScError`] carries a key byte. Any failure ends the session: the caller
//! restarts with SQN 0 and a new handshake, never falls back to plain text.

mod cp;
mod crypto;
pub(crate) mod packet;
#[cfg(any(test, feature = "sim"))]
mod pd;
mod session;

#[cfg(test)]
mod tests;

pub use cp::CpChannel;
pub use crypto::{Key16, SessionKeys, encrypted_len};
pub use packet::ScFrame;
#[cfg(any(test, feature = "sim"))]
pub use pd::PdChannel;

use thiserror::Error;

/// A Secure Channel Base Key (16 bytes; zeroized on drop, never printed).
pub(crate) type Scbk = Key16;

/// SCBK-D, the default key a PD in install mode accepts: `30 31 … 3F`.
pub fn scbk_d() -> Scbk {
    Key16::new(*b"0123456789:;<=>?")
}

impl Key16 {
    /// A key from exactly 16 bytes (e.g. what a 0600 key file held).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes).ok().map(Key16::new)
    }
}

/// Bytes Secure Channel adds to a command packet with `data_len` DATA bytes: the SCB (2), the MAC (4) and
/// the encryption padding (DATA grows to the next multiple of 16 strictly above its length).
pub(crate) const fn overhead_bytes(data_len: usize) -> usize {
    let pad = if data_len == 0 {
        0
    } else {
        encrypted_len(data_len) - data_len
    };
    2 + packet::MAC_LEN + pad
}

/// Largest DATA that fits a packet of `max_packet` bytes (SOM through CRC-16) under Secure Channel.
pub(crate) const fn max_data_bytes(max_packet: usize) -> usize {
    // header 5, SCB 2, CODE 1, MAC 4, CRC 2 around the encrypted DATA.
    let room = max_packet.saturating_sub(5 + 2 + 1 + packet::MAC_LEN + 2);
    // Encrypted DATA of n bytes holds at most n - 1 plain bytes (the 0x80 always follows).
    (room / 16 * 16).saturating_sub(1)
}

/// Why a Secure Channel step failed. Carries no key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScError {
    #[error("the door's cryptogram does not match — wrong SCBK for this door?")]
    CryptogramMismatch,
    #[error(
        "the door refused the handshake (it holds a different SCBK, is not in install mode, or has no secure channel)"
    )]
    Refused,
    #[error("the door's initial R-MAC does not match")]
    BadInitialRmac,
    #[error("message authentication failed (MAC mismatch): the packet was altered or the session is stale")]
    MacMismatch,
    #[error("encrypted data has a bad length or padding")]
    BadPadding,
    #[error("the door answered in plain text inside the secure session")]
    PlainText,
    #[error("the door has no key for a secure channel (no SCBK, not in install mode)")]
    NoKey,
    #[error("secure channel packet is malformed")]
    Malformed,
    #[error("packet carries no security block")]
    NotSecure,
    #[error("unexpected security block type {scb_type:#04x} in this state")]
    UnexpectedScb { scb_type: u8 },
    #[error("no secure session is open")]
    NotOpen,
    #[error("secure packet of {len} bytes is too large")]
    TooLarge { len: usize },
}
