//! osdp_KEYSET (0x75, OSDP v2.2 §6.19, Annex D): install a new Secure Channel Base Key. Only valid inside
//! a secure session (its DATA is encrypted on the wire).

use crate::osdp::MessageError;
use crate::osdp::sc::Scbk;

pub(crate) const CODE: u8 = 0x75;

/// Key type 0x01: the SCBK.
pub(crate) const KEY_TYPE_SCBK: u8 = 0x01;

/// osdp_KEYSET with a 16-byte SCBK. `Debug` never prints the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    pub scbk: Scbk,
}

impl KeySet {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[KEY_TYPE_SCBK, 16]);
        out.extend_from_slice(self.scbk.bytes());
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        match data {
            [KEY_TYPE_SCBK, 16, key @ ..] => {
                Scbk::from_slice(key)
                    .map(|scbk| KeySet { scbk })
                    .ok_or(MessageError::BadLength {
                        code: CODE,
                        want: 18,
                        got: data.len(),
                    })
            }
            [_, _, ..] => Err(MessageError::BadField {
                code: CODE,
                what: "key type must be 0x01 (SCBK) with length 16",
            }),
            _ => Err(MessageError::Truncated {
                code: CODE,
                need: 18,
                got: data.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_keyset_layout_and_refusals() {
        let ks = KeySet {
            scbk: Scbk::new([0xAB; 16]),
        };
        let mut out = Vec::new();
        ks.encode(&mut out);
        assert_eq!(&out[..2], &[0x01, 0x10]);
        assert_eq!(out.len(), 18);
        assert_eq!(KeySet::decode(&out), Ok(ks.clone()));
        assert!(!format!("{ks:?}").contains("171"));
        assert!(KeySet::decode(&out[..17]).is_err());
        assert!(KeySet::decode(&[0x02, 0x10]).is_err());
    }
}
