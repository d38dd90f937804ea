//! Sans-IO OSDP: packet views, CRC, the streaming decoder, commands and replies, the CP session state machine.
//!
//! Nothing here performs I/O, sleeps or reads the clock: bytes and `now` come in, bytes and events go out.
//! Secure Channel lives in `sc`: the plain-text layers below report security-block packets as unsupported,
//! and the CP session hands them to its secure channel.

pub(crate) mod bus;
pub mod command;
pub(crate) mod cp;
pub(crate) mod decoder;
#[cfg(any(test, feature = "sim"))]
pub(crate) mod pd;
pub mod reply;
pub mod sc;
pub(crate) mod wire;

pub use command::Command;
pub(crate) use cp::LinkDiagnostics;
pub use cp::{CommandId, Event, FailReason, PdSession, PdState, SecureConfig, SessionConfig, SubmitError};
pub use decoder::{DecodeError, Decoder, Frame};
#[cfg(any(test, feature = "sim"))]
pub use pd::{PdInput, PdLink, ReplyTo};
pub use reply::{NakCode, Reply};
pub use wire::{Packet, PacketRepr, WireError};

use thiserror::Error;

/// What is wrong with the DATA of a command or reply whose packet was intact.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("message {code:#04x} truncated: need {need} data bytes, got {got}")]
    Truncated { code: u8, need: usize, got: usize },
    #[error("message {code:#04x} has {got} data bytes, expected {want}")]
    BadLength { code: u8, want: usize, got: usize },
    #[error("message {code:#04x}: {what}")]
    BadField { code: u8, what: &'static str },
    #[error("unknown command code {code:#04x}")]
    UnknownCommand { code: u8 },
    #[error("message {code:#04x} data of {len} bytes is too large for one packet")]
    TooLarge { code: u8, len: usize },
}

/// Check that `data` has exactly `want` bytes.
pub(crate) fn expect_len(code: u8, data: &[u8], want: usize) -> Result<(), MessageError> {
    match data.len() {
        n if n < want => Err(MessageError::Truncated {
            code,
            need: want,
            got: n,
        }),
        n if n > want => Err(MessageError::BadLength { code, want, got: n }),
        _ => Ok(()),
    }
}

/// Split a 3-byte vendor code off the front of `data`.
pub(crate) fn split_vendor(code: u8, data: &[u8]) -> Result<([u8; 3], &[u8]), MessageError> {
    match data {
        [a, b, c, rest @ ..] => Ok(([*a, *b, *c], rest)),
        _ => Err(MessageError::Truncated {
            code,
            need: 3,
            got: data.len(),
        }),
    }
}

/// Next sequence number after a completed exchange: 0→1, 1→2, 2→3, 3→1 (0 is never reused).
pub(crate) fn next_sqn(sqn: u8) -> u8 {
    if sqn >= 3 { 1 } else { sqn + 1 }
}
