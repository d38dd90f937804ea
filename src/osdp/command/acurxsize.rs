//! osdp_ACURXSIZE (0x7B, OSDP v2.2 §6.22): the largest reply (bytes, u16 LE) the CP can receive.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0x7B;

/// osdp_ACURXSIZE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcuRxSize {
    pub max_rx_bytes: u16,
}

impl AcuRxSize {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.max_rx_bytes.to_le_bytes());
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, 2)?;
        Ok(AcuRxSize {
            max_rx_bytes: u16::from_le_bytes([data[0], data[1]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_acurxsize_is_little_endian() {
        let mut out = Vec::new();
        AcuRxSize { max_rx_bytes: 0x0100 }.encode(&mut out);
        assert_eq!(out, [0x00, 0x01]);
        assert_eq!(AcuRxSize::decode(&out), Ok(AcuRxSize { max_rx_bytes: 256 }));
        assert_eq!(
            AcuRxSize::decode(&[1]),
            Err(MessageError::Truncated {
                code: CODE,
                need: 2,
                got: 1
            })
        );
    }
}
