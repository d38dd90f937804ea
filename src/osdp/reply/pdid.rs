//! osdp_PDID (0x45, OSDP v2.2 §7.4): vendor code (3), model (1), version (1), serial number (4, LE),
//! firmware major, minor, build (3).

use crate::osdp::{MessageError, expect_len};

pub const CODE: u8 = 0x45;
pub(crate) const DATA_LEN: usize = 12;

/// The PD's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PdId {
    /// Wire order.
    pub vendor_code: [u8; 3],
    pub model: u8,
    pub version: u8,
    pub serial_number: u32,
    /// Major, minor, build.
    pub firmware: [u8; 3],
}

impl PdId {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.vendor_code);
        out.push(self.model);
        out.push(self.version);
        out.extend_from_slice(&self.serial_number.to_le_bytes());
        out.extend_from_slice(&self.firmware);
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, DATA_LEN)?;
        Ok(PdId {
            vendor_code: [data[0], data[1], data[2]],
            model: data[3],
            version: data[4],
            serial_number: u32::from_le_bytes([data[5], data[6], data[7], data[8]]),
            firmware: [data[9], data[10], data[11]],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pdid_layout() {
        let data = hex::decode("123456070278563412010203").unwrap();
        let id = PdId::decode(&data).unwrap();
        assert_eq!(
            id,
            PdId {
                vendor_code: [0x12, 0x34, 0x56],
                model: 7,
                version: 2,
                serial_number: 0x1234_5678,
                firmware: [1, 2, 3]
            }
        );
        let mut out = Vec::new();
        id.encode(&mut out);
        assert_eq!(out, data);
        assert_eq!(
            PdId::decode(&data[..11]),
            Err(MessageError::Truncated {
                code: CODE,
                need: 12,
                got: 11
            })
        );
    }
}
