//! osdp_ID (0x61, OSDP v2.2 §6.2): one reporting-type byte, 0x00 = standard; the PD answers osdp_PDID.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0x61;

/// osdp_ID with the standard reporting type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Id;

impl Id {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(0x00);
    }

    /// Any reporting-type byte is accepted; only 0x00 is defined.
    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, 1).map(|()| Id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_id_carries_one_zero_byte() {
        let mut out = Vec::new();
        Id.encode(&mut out);
        assert_eq!(out, [0x00]);
        assert_eq!(Id::decode(&[0x00]), Ok(Id));
        assert_eq!(
            Id::decode(&[]),
            Err(MessageError::Truncated {
                code: CODE,
                need: 1,
                got: 0
            })
        );
    }
}
