//! osdp_ACK (0x40, OSDP v2.2 §7.1): no data; the command was accepted and nothing is queued.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0x40;

/// osdp_ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ack;

impl Ack {
    pub(crate) fn encode(&self, _out: &mut Vec<u8>) {}

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, 0).map(|()| Ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ack_has_no_data() {
        assert_eq!(Ack::decode(&[]), Ok(Ack));
        assert_eq!(
            Ack::decode(&[0]),
            Err(MessageError::BadLength {
                code: CODE,
                want: 0,
                got: 1
            })
        );
    }
}
