//! Packets with a security control block (OSDP v2.2 §5.7 with CTRL bit 3): the SCB types, a parsed view
//! of a check-verified frame, and the builder that places SCB, DATA, MAC and CRC-16.

use crate::osdp::wire::{self, HEADER_LEN, REPLY_BIT, SOM, ctrl};

use super::ScError;

/// SEC_BLK_TYPE values.
pub(crate) mod scb {
    /// osdp_CHLNG (CP): SCB data is the key selector.
    pub(crate) const CHLNG: u8 = 0x11;
    /// osdp_CCRYPT (PD).
    pub(crate) const CCRYPT: u8 = 0x12;
    /// osdp_SCRYPT (CP).
    pub(crate) const SCRYPT: u8 = 0x13;
    /// osdp_RMAC_I (PD): SCB data 0x01 = accepted, 0xFF = refused.
    pub(crate) const RMAC_I: u8 = 0x14;
    /// CP command with MAC, no DATA.
    pub(crate) const CMD_MAC: u8 = 0x15;
    /// PD reply with MAC, no DATA.
    pub(crate) const REPLY_MAC: u8 = 0x16;
    /// CP command with MAC and encrypted DATA.
    pub(crate) const CMD_ENC: u8 = 0x17;
    /// PD reply with MAC and encrypted DATA.
    pub(crate) const REPLY_ENC: u8 = 0x18;
}

/// Handshake command and reply codes.
pub(crate) mod code {
    pub(crate) const CHLNG: u8 = 0x76;
    pub(crate) const CCRYPT: u8 = 0x76;
    pub(crate) const SCRYPT: u8 = 0x77;
    pub(crate) const RMAC_I: u8 = 0x78;
}

/// Key selector in the handshake SCB: 0x01 = the PD's SCBK, 0x00 = SCBK-D (install mode).
pub(crate) const KEY_SCBK: u8 = 0x01;
pub(crate) const KEY_SCBK_D: u8 = 0x00;

/// Bytes of the MAC on the wire.
pub(crate) const MAC_LEN: usize = 4;

/// One check-verified frame that carries an SCB, split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScFrame<'a> {
    pub address: u8,
    pub reply: bool,
    pub sqn: u8,
    pub scb_type: u8,
    pub scb_data: &'a [u8],
    pub code: u8,
    /// DATA as on the wire (still encrypted for types 0x17/0x18).
    pub data: &'a [u8],
    /// The 4 MAC bytes (types 0x15–0x18).
    pub mac: Option<[u8; MAC_LEN]>,
    /// SOM through the end of DATA: what the MAC covers.
    pub mac_input: &'a [u8],
}

/// True for SCB types that carry a MAC.
pub(crate) fn has_mac(scb_type: u8) -> bool {
    (scb::CMD_MAC..=scb::REPLY_ENC).contains(&scb_type)
}

impl<'a> ScFrame<'a> {
    /// Split `bytes` (one whole packet whose CRC the decoder verified) into its SC fields.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ScError> {
        let header = bytes.get(..HEADER_LEN).ok_or(ScError::Malformed)?;
        let ctrl_byte = header[4];
        if header[0] != SOM || ctrl_byte & ctrl::SCB == 0 {
            return Err(ScError::NotSecure);
        }
        if ctrl_byte & ctrl::CRC == 0 {
            return Err(ScError::Malformed);
        }
        let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
        if len != bytes.len() {
            return Err(ScError::Malformed);
        }
        let scb_len = usize::from(*bytes.get(HEADER_LEN).ok_or(ScError::Malformed)?);
        if scb_len < 2 {
            return Err(ScError::Malformed);
        }
        let scb_type = *bytes.get(HEADER_LEN + 1).ok_or(ScError::Malformed)?;
        let code_at = HEADER_LEN + scb_len;
        let mac_len = if has_mac(scb_type) { MAC_LEN } else { 0 };
        let end_of_data = len.checked_sub(2 + mac_len).ok_or(ScError::Malformed)?;
        if end_of_data <= code_at {
            return Err(ScError::Malformed);
        }
        let mac = if mac_len > 0 {
            let m = bytes
                .get(end_of_data..end_of_data + MAC_LEN)
                .ok_or(ScError::Malformed)?;
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        Ok(ScFrame {
            address: header[1] & !REPLY_BIT,
            reply: header[1] & REPLY_BIT != 0,
            sqn: ctrl_byte & ctrl::SQN_MASK,
            scb_type,
            scb_data: bytes.get(HEADER_LEN + 2..code_at).ok_or(ScError::Malformed)?,
            code: bytes[code_at],
            data: bytes.get(code_at + 1..end_of_data).ok_or(ScError::Malformed)?,
            mac,
            mac_input: bytes.get(..end_of_data).ok_or(ScError::Malformed)?,
        })
    }
}

/// A packet under construction: everything up to the end of DATA with LEN already final.
pub(crate) struct Draft {
    bytes: Vec<u8>,
    with_mac: bool,
}

impl Draft {
    /// Lay out SOM, ADDR, LEN, CTRL (CRC-16 and SCB bits set), SCB, CODE and DATA.
    pub(crate) fn new(
        address: u8,
        reply: bool,
        sqn: u8,
        scb: &[u8],
        code: u8,
        data: &[u8],
        with_mac: bool,
    ) -> Result<Self, ScError> {
        let scb_len = 1 + scb.len();
        let len = HEADER_LEN + scb_len + 1 + data.len() + if with_mac { MAC_LEN } else { 0 } + 2;
        let len16 = u16::try_from(len).map_err(|_| ScError::TooLarge { len })?;
        let scb_len8 = u8::try_from(scb_len).map_err(|_| ScError::Malformed)?;
        if address > wire::BROADCAST_ADDR || sqn > ctrl::SQN_MASK {
            return Err(ScError::Malformed);
        }
        let mut bytes = Vec::with_capacity(len + 1);
        let [lo, hi] = len16.to_le_bytes();
        bytes.extend_from_slice(&[
            SOM,
            address | if reply { REPLY_BIT } else { 0 },
            lo,
            hi,
            sqn | ctrl::CRC | ctrl::SCB,
            scb_len8,
        ]);
        bytes.extend_from_slice(scb);
        bytes.push(code);
        bytes.extend_from_slice(data);
        Ok(Draft { bytes, with_mac })
    }

    /// What the MAC covers.
    pub(crate) fn mac_input(&self) -> &[u8] {
        &self.bytes
    }

    /// Append the first 4 bytes of `mac` (drafts made `with_mac`) and the CRC-16.
    pub(crate) fn finish_with_mac(mut self, mac: &[u8; 16]) -> Vec<u8> {
        debug_assert!(self.with_mac);
        self.bytes.extend_from_slice(&mac[..MAC_LEN]);
        self.finish()
    }

    /// Append the CRC-16 (handshake packets, which carry no MAC).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let crc = wire::crc16(&self.bytes).to_le_bytes();
        self.bytes.extend_from_slice(&crc);
        self.bytes
    }
}
