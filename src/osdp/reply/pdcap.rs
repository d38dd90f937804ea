//! osdp_PDCAP (0x46, OSDP v2.2 §7.5, capability table 7.5-1): records of (function code, compliance
//! level, number of items).

use crate::osdp::MessageError;

pub(crate) const CODE: u8 = 0x46;

/// Function code: check character support (level 1 = CRC-16).
#[cfg(any(test, feature = "sim"))]
pub(crate) const FN_CHECK_CHARACTER: u8 = 8;
/// Function code: receive buffer size (level = low byte, items = high byte).
pub(crate) const FN_RECEIVE_BUFFER: u8 = 10;
/// Function code: largest combined message size (same encoding).
pub(crate) const FN_LARGEST_COMBINED_MESSAGE: u8 = 11;
/// Function code: OSDP version.
#[cfg(any(test, feature = "sim"))]
pub(crate) const FN_OSDP_VERSION: u8 = 16;

/// One capability record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapRecord {
    pub function: u8,
    pub compliance: u8,
    pub items: u8,
}

/// The PD's capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PdCap {
    pub records: Vec<CapRecord>,
}

impl PdCap {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for r in &self.records {
            out.extend_from_slice(&[r.function, r.compliance, r.items]);
        }
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        let (records, rest) = data.as_chunks::<3>();
        if !rest.is_empty() {
            return Err(MessageError::BadLength {
                code: CODE,
                want: data.len() - rest.len(),
                got: data.len(),
            });
        }
        Ok(PdCap {
            records: records
                .iter()
                .map(|[function, compliance, items]| CapRecord {
                    function: *function,
                    compliance: *compliance,
                    items: *items,
                })
                .collect(),
        })
    }

    /// The first record for a function code.
    pub(crate) fn get(&self, function: u8) -> Option<CapRecord> {
        self.records.iter().copied().find(|r| r.function == function)
    }

    fn u16_of(&self, function: u8) -> Option<u16> {
        self.get(function).map(|r| u16::from_le_bytes([r.compliance, r.items]))
    }

    /// Capability 10: the PD's receive buffer in bytes.
    pub fn receive_buffer_bytes(&self) -> Option<u16> {
        self.u16_of(FN_RECEIVE_BUFFER)
    }

    /// Capability 11: the largest combined message in bytes.
    pub(crate) fn largest_combined_message_bytes(&self) -> Option<u16> {
        self.u16_of(FN_LARGEST_COMBINED_MESSAGE)
    }

    /// Capability 8 with level 1: the PD checks CRC-16.
    #[cfg(test)]
    pub(crate) fn supports_crc(&self) -> bool {
        self.get(FN_CHECK_CHARACTER).is_some_and(|r| r.compliance == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_libosdp_default_capabilities() {
        // docs/osdp.md §4: what LibOSDP's PD always reports.
        let data = hex::decode("080100090100 0A0001 100200".replace(' ', "")).unwrap();
        let cap = PdCap::decode(&data).unwrap();
        assert_eq!(cap.records.len(), 4);
        assert_eq!(cap.receive_buffer_bytes(), Some(256));
        assert_eq!(cap.largest_combined_message_bytes(), None);
        assert!(cap.supports_crc());
        let mut out = Vec::new();
        cap.encode(&mut out);
        assert_eq!(out, data);
    }

    #[test]
    fn test_partial_record_is_rejected() {
        assert_eq!(
            PdCap::decode(&[8, 1, 0, 9]),
            Err(MessageError::BadLength {
                code: CODE,
                want: 3,
                got: 4
            })
        );
        assert!(!PdCap::decode(&[8, 0, 0]).unwrap().supports_crc());
    }
}
