//! osdp_CAP (0x62, OSDP v2.2 §6.3): one reply-type byte, 0x00; the PD answers osdp_PDCAP.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0x62;

/// osdp_CAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Cap;

impl Cap {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(0x00);
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, 1).map(|()| Cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cap_carries_one_zero_byte() {
        let mut out = Vec::new();
        Cap.encode(&mut out);
        assert_eq!(out, [0x00]);
        assert_eq!(Cap::decode(&[0x00]), Ok(Cap));
        assert_eq!(
            Cap::decode(&[0, 0]),
            Err(MessageError::BadLength {
                code: CODE,
                want: 1,
                got: 2
            })
        );
    }
}
