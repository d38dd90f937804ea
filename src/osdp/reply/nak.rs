//! osdp_NAK (0x41, OSDP v2.2 §7.2, error codes table 7.2-1): one error code, optionally detail bytes.

use std::fmt;

use crate::osdp::MessageError;

pub(crate) const CODE: u8 = 0x41;

/// NAK error code (docs/osdp.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NakCode {
    NoError,
    MessageCheck,
    CommandLength,
    UnknownCommand,
    UnexpectedSequence,
    SecureChannelUnsupported,
    EncryptionRequired,
    BioTypeUnsupported,
    BioFormatUnsupported,
    UnableToProcess,
    Other(u8),
}

impl From<u8> for NakCode {
    fn from(b: u8) -> Self {
        match b {
            0x00 => NakCode::NoError,
            0x01 => NakCode::MessageCheck,
            0x02 => NakCode::CommandLength,
            0x03 => NakCode::UnknownCommand,
            0x04 => NakCode::UnexpectedSequence,
            0x05 => NakCode::SecureChannelUnsupported,
            0x06 => NakCode::EncryptionRequired,
            0x07 => NakCode::BioTypeUnsupported,
            0x08 => NakCode::BioFormatUnsupported,
            0x09 => NakCode::UnableToProcess,
            other => NakCode::Other(other),
        }
    }
}

impl From<NakCode> for u8 {
    fn from(c: NakCode) -> u8 {
        match c {
            NakCode::NoError => 0x00,
            NakCode::MessageCheck => 0x01,
            NakCode::CommandLength => 0x02,
            NakCode::UnknownCommand => 0x03,
            NakCode::UnexpectedSequence => 0x04,
            NakCode::SecureChannelUnsupported => 0x05,
            NakCode::EncryptionRequired => 0x06,
            NakCode::BioTypeUnsupported => 0x07,
            NakCode::BioFormatUnsupported => 0x08,
            NakCode::UnableToProcess => 0x09,
            NakCode::Other(b) => b,
        }
    }
}

impl fmt::Display for NakCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            NakCode::NoError => "no error",
            NakCode::MessageCheck => "message check (CRC/checksum) error",
            NakCode::CommandLength => "command length error",
            NakCode::UnknownCommand => "unknown command or missing capability",
            NakCode::UnexpectedSequence => "unexpected sequence number",
            NakCode::SecureChannelUnsupported => "secure channel not supported",
            NakCode::EncryptionRequired => "encryption required / security conditions not met",
            NakCode::BioTypeUnsupported => "biometric type not supported",
            NakCode::BioFormatUnsupported => "biometric format not supported",
            NakCode::UnableToProcess => "unable to process the command record",
            NakCode::Other(_) => "unknown NAK code",
        };
        write!(f, "NAK {:#04x} ({text})", u8::from(*self))
    }
}

/// osdp_NAK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nak {
    pub code: NakCode,
    /// Detail bytes after the code (LibOSDP puts the expected SQN after 0x04).
    pub detail: Vec<u8>,
}

impl Nak {
    pub fn new(code: NakCode) -> Self {
        Nak {
            code,
            detail: Vec::new(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.code.into());
        out.extend_from_slice(&self.detail);
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        match data {
            [code, detail @ ..] => Ok(Nak {
                code: NakCode::from(*code),
                detail: detail.to_vec(),
            }),
            [] => Err(MessageError::Truncated {
                code: CODE,
                need: 1,
                got: 0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_nak_codes_roundtrip_through_u8() {
        for b in 0..=255u8 {
            assert_eq!(u8::from(NakCode::from(b)), b);
        }
        assert_eq!(NakCode::from(0x04), NakCode::UnexpectedSequence);
        assert_eq!(
            NakCode::from(0x09).to_string(),
            "NAK 0x09 (unable to process the command record)"
        );
    }

    #[test]
    fn test_nak_with_detail() {
        assert_eq!(
            Nak::decode(&[0x04, 0x02]),
            Ok(Nak {
                code: NakCode::UnexpectedSequence,
                detail: vec![2]
            })
        );
        assert_eq!(
            Nak::decode(&[]),
            Err(MessageError::Truncated {
                code: CODE,
                need: 1,
                got: 0
            })
        );
    }
}
