//! osdp_POLL (0x60, OSDP v2.2 §6.1): no data; the PD answers osdp_ACK or a queued report.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0x60;

/// osdp_POLL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Poll;

impl Poll {
    pub(crate) fn encode(&self, _out: &mut Vec<u8>) {}

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, 0).map(|()| Poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_poll_has_no_data() {
        let mut out = Vec::new();
        Poll.encode(&mut out);
        assert!(out.is_empty());
        assert_eq!(Poll::decode(&[]), Ok(Poll));
        assert_eq!(
            Poll::decode(&[0]),
            Err(MessageError::BadLength {
                code: CODE,
                want: 0,
                got: 1
            })
        );
    }
}
