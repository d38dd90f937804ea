//! osdp_ABORT (0xA2, OSDP v2.2 §6.25): no data; cancels a file transfer. The PD answers osdp_ACK.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0xA2;

/// osdp_ABORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Abort;

impl Abort {
    pub(crate) fn encode(&self, _out: &mut Vec<u8>) {}

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, 0).map(|()| Abort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_abort_has_no_data() {
        assert_eq!(Abort::decode(&[]), Ok(Abort));
        assert!(Abort::decode(&[1]).is_err());
    }
}
