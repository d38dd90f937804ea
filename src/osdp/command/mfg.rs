//! osdp_MFG (0x80, OSDP v2.2 §6.24): 3-byte vendor code (wire order) + vendor-defined data.

use crate::osdp::{MessageError, split_vendor};

pub(crate) const CODE: u8 = 0x80;

/// osdp_MFG. The vendor code is kept as bytes in wire order (compare bytes, not integers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mfg {
    pub vendor_code: [u8; 3],
    pub data: Vec<u8>,
}

impl Mfg {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.vendor_code);
        out.extend_from_slice(&self.data);
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        let (vendor_code, rest) = split_vendor(CODE, data)?;
        Ok(Mfg {
            vendor_code,
            data: rest.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mfg_worked_example_data() {
        // docs/osdp.md §2: MFG addr 1, vendor 12 34 56, data 01 02 03 04.
        let mfg = Mfg {
            vendor_code: [0x12, 0x34, 0x56],
            data: vec![1, 2, 3, 4],
        };
        let mut out = Vec::new();
        mfg.encode(&mut out);
        assert_eq!(out, [0x12, 0x34, 0x56, 1, 2, 3, 4]);
        assert_eq!(Mfg::decode(&out), Ok(mfg));
        assert_eq!(
            Mfg::decode(&[0x12, 0x34]),
            Err(MessageError::Truncated {
                code: CODE,
                need: 3,
                got: 2
            })
        );
    }
}
