//! osdp_MFGREP (0x90, OSDP v2.2 §7.17): 3-byte vendor code (wire order) + vendor-defined data; may come as
//! the reply to osdp_MFG or, queued, to a later osdp_POLL.

use crate::osdp::{MessageError, split_vendor};

pub(crate) const CODE: u8 = 0x90;

/// osdp_MFGREP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfgRep {
    pub vendor_code: [u8; 3],
    pub data: Vec<u8>,
}

impl MfgRep {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.vendor_code);
        out.extend_from_slice(&self.data);
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        let (vendor_code, rest) = split_vendor(CODE, data)?;
        Ok(MfgRep {
            vendor_code,
            data: rest.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mfgrep_vendor_code_in_wire_order() {
        let rep = MfgRep::decode(&[0x12, 0x34, 0x56, 0xAA]).unwrap();
        assert_eq!(
            rep,
            MfgRep {
                vendor_code: [0x12, 0x34, 0x56],
                data: vec![0xAA]
            }
        );
        let mut out = Vec::new();
        rep.encode(&mut out);
        assert_eq!(out, [0x12, 0x34, 0x56, 0xAA]);
        assert!(MfgRep::decode(&[]).is_err());
    }
}
