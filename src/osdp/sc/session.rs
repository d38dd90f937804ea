//! An established Secure Channel session: the session keys and both ends of the MAC chain, shared by the
//! CP and PD sides (they differ only in which MAC seeds which direction).

use super::ScError;
use super::crypto::{BLOCK, SessionKeys, not};
use super::packet::{Draft, MAC_LEN, ScFrame, scb};

/// Which end of the link this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Cp,
    Pd,
}

/// Keys plus the last full C-MAC and R-MAC (the chain's state).
#[derive(Debug)]
pub(super) struct Established {
    keys: SessionKeys,
    last_cmac: [u8; BLOCK],
    last_rmac: [u8; BLOCK],
}

impl Established {
    pub(super) fn new(keys: SessionKeys, initial_rmac: [u8; BLOCK]) -> Self {
        Established {
            keys,
            last_cmac: [0; BLOCK],
            last_rmac: initial_rmac,
        }
    }

    /// The chain value that seeds a packet's MAC (and, inverted, its DATA encryption): a command
    /// continues from the last R-MAC, a reply from the C-MAC of the command it answers.
    fn chain_for(&self, cmd: bool) -> [u8; BLOCK] {
        if cmd { self.last_rmac } else { self.last_cmac }
    }

    fn set_mac(&mut self, cmd: bool, mac: [u8; BLOCK]) {
        if cmd {
            self.last_cmac = mac;
        } else {
            self.last_rmac = mac;
        }
    }

    /// Build a MACed packet from `side`: SCB 0x15/0x16 without DATA, 0x17/0x18 with encrypted DATA.
    pub(super) fn seal(&mut self, side: Side, address: u8, sqn: u8, code: u8, data: &[u8]) -> Result<Vec<u8>, ScError> {
        let cmd = side == Side::Cp;
        let iv = self.chain_for(cmd);
        let (scb_type, body) = match (cmd, data.is_empty()) {
            (true, true) => (scb::CMD_MAC, Vec::new()),
            (false, true) => (scb::REPLY_MAC, Vec::new()),
            (true, false) => (scb::CMD_ENC, self.keys.encrypt(&not(&iv), data)),
            (false, false) => (scb::REPLY_ENC, self.keys.encrypt(&not(&iv), data)),
        };
        let draft = Draft::new(address, !cmd, sqn, &[scb_type], code, &body, true)?;
        let mac = self.keys.mac(&iv, draft.mac_input());
        self.set_mac(cmd, mac);
        Ok(draft.finish_with_mac(&mac))
    }

    /// Check the MAC of a packet from the other side and decrypt its DATA. On success the chain advances;
    /// on failure nothing changes (the caller ends the session).
    pub(super) fn open(&mut self, side: Side, frame: &ScFrame<'_>) -> Result<(u8, Vec<u8>), ScError> {
        let from_cp = side == Side::Pd;
        let (plain_type, enc_type) = if from_cp {
            (scb::CMD_MAC, scb::CMD_ENC)
        } else {
            (scb::REPLY_MAC, scb::REPLY_ENC)
        };
        if (frame.scb_type != plain_type && frame.scb_type != enc_type) || !frame.scb_data.is_empty() {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        }
        let iv = self.chain_for(from_cp);
        let mac = self.keys.mac(&iv, frame.mac_input);
        if frame.mac.as_ref().map(<[u8; MAC_LEN]>::as_slice) != Some(&mac[..MAC_LEN]) {
            return Err(ScError::MacMismatch);
        }
        let data = if frame.scb_type == enc_type {
            self.keys.decrypt(&not(&iv), frame.data).ok_or(ScError::BadPadding)?
        } else if frame.data.is_empty() {
            Vec::new()
        } else {
            // DATA in a "no data" type: the spec's 0x15/0x16 carry none; refuse rather than trust it.
            return Err(ScError::Malformed);
        };
        self.set_mac(from_cp, mac);
        Ok((frame.code, data))
    }
}
