//! osdp_FTSTAT (0x7A, OSDP v2.2 §7.25): FtAction u8, FtDelay u16 LE (ms), FtStatusDetail i16 LE,
//! FtUpdateMsgMax u16 LE.

use crate::osdp::{MessageError, expect_len};

pub(crate) const CODE: u8 = 0x7A;
pub(crate) const DATA_LEN: usize = 7;

/// FtAction bit 0: other commands may be interleaved with the transfer.
#[cfg(any(test, feature = "sim"))]
pub(crate) const ACTION_INTERLEAVE: u8 = 0x01;
/// FtAction bit 2: a poll response is waiting.
#[cfg(any(test, feature = "sim"))]
pub(crate) const ACTION_POLL_RESPONSE_WAITING: u8 = 0x04;

/// FtStatusDetail, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtStatus {
    /// 0: fragment accepted, go on.
    Ok,
    /// 1: file processed.
    Processed,
    /// 2: PD rebooting; expect a full reset.
    Rebooting,
    /// 3: PD still finishing; keep sending zero-length fragments.
    Finishing,
    /// -1: aborted.
    Aborted,
    /// -2: contents not recognised.
    Unrecognised,
    /// -3: data malformed.
    Malformed,
    /// Any other value.
    Other(i16),
}

impl From<i16> for FtStatus {
    fn from(v: i16) -> Self {
        match v {
            0 => FtStatus::Ok,
            1 => FtStatus::Processed,
            2 => FtStatus::Rebooting,
            3 => FtStatus::Finishing,
            -1 => FtStatus::Aborted,
            -2 => FtStatus::Unrecognised,
            -3 => FtStatus::Malformed,
            other => FtStatus::Other(other),
        }
    }
}

impl From<FtStatus> for i16 {
    fn from(s: FtStatus) -> i16 {
        match s {
            FtStatus::Ok => 0,
            FtStatus::Processed => 1,
            FtStatus::Rebooting => 2,
            FtStatus::Finishing => 3,
            FtStatus::Aborted => -1,
            FtStatus::Unrecognised => -2,
            FtStatus::Malformed => -3,
            FtStatus::Other(v) => v,
        }
    }
}

impl FtStatus {
    /// Negative statuses end the transfer.
    pub fn is_error(self) -> bool {
        i16::from(self) < 0
    }
}

/// osdp_FTSTAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtStat {
    pub action: u8,
    pub delay_ms: u16,
    pub status: FtStatus,
    /// 0 = no change; otherwise the largest message the PD wants for later fragments.
    pub update_msg_max: u16,
}

impl FtStat {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.action);
        out.extend_from_slice(&self.delay_ms.to_le_bytes());
        out.extend_from_slice(&i16::from(self.status).to_le_bytes());
        out.extend_from_slice(&self.update_msg_max.to_le_bytes());
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        expect_len(CODE, data, DATA_LEN)?;
        Ok(FtStat {
            action: data[0],
            delay_ms: u16::from_le_bytes([data[1], data[2]]),
            status: FtStatus::from(i16::from_le_bytes([data[3], data[4]])),
            update_msg_max: u16::from_le_bytes([data[5], data[6]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ftstat_worked_example() {
        // docs/osdp.md §2: FTSTAT data 01 00 00 00 00 00 00.
        let st = FtStat::decode(&[1, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            st,
            FtStat {
                action: ACTION_INTERLEAVE,
                delay_ms: 0,
                status: FtStatus::Ok,
                update_msg_max: 0
            }
        );
    }

    #[test]
    fn test_ftstat_signed_status_and_le_fields() {
        let st = FtStat::decode(&[0, 0x2C, 0x01, 0xFE, 0xFF, 0x00, 0x01]).unwrap();
        assert_eq!(
            (st.delay_ms, st.status, st.update_msg_max),
            (300, FtStatus::Unrecognised, 256)
        );
        assert!(st.status.is_error());
        let mut out = Vec::new();
        st.encode(&mut out);
        assert_eq!(out, [0, 0x2C, 0x01, 0xFE, 0xFF, 0x00, 0x01]);
        assert_eq!(
            FtStat::decode(&[0; 6]),
            Err(MessageError::Truncated {
                code: CODE,
                need: 7,
                got: 6
            })
        );
    }
}
