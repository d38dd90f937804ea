//! osdp_BUSY (0x79, OSDP v2.2 §7.18): no data, sent with SQN 0; the CP resends the same command later.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0x79;

/// osdp_BUSY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Busy;

impl Busy {
    pub(crate) fn encode(&self, _out: &mut Vec<u8>) {}

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, 0).map(|()| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_busy_has_no_data() {
        assert_eq!(Busy::decode(&[]), Ok(Busy));
        assert!(Busy::decode(&[1]).is_err());
    }
}
