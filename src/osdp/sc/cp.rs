//! The CP side of Secure Channel: sends osdp_CHLNG, checks the PD's client cryptogram in osdp_CCRYPT,
//! answers with osdp_SCRYPT, checks osdp_RMAC_I, then seals commands and opens replies.

use super::crypto::{BLOCK, SessionKeys};
use super::packet::{Draft, KEY_SCBK, KEY_SCBK_D, ScFrame, code, scb};
use super::session::{Established, Side};
use super::{ScError, Scbk, scbk_d};

#[derive(Debug)]
enum State {
    Idle,
    Challenged {
        rnd_a: [u8; 8],
    },
    Scrypted {
        keys: SessionKeys,
        expected_rmac: [u8; BLOCK],
    },
    Open(Established),
}

/// The CP's Secure Channel with one PD.
#[derive(Debug)]
pub struct CpChannel {
    scbk: Scbk,
    install_mode: bool,
    state: State,
}

impl CpChannel {
    /// `install_mode`: ask for SCBK-D (a PD fresh from the factory) instead of `scbk`.
    pub fn new(scbk: Scbk, install_mode: bool) -> Self {
        CpChannel {
            scbk,
            install_mode,
            state: State::Idle,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Forget the session (after SQN 0, a failure, or KEYSET).
    pub(crate) fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Use `scbk` (no longer SCBK-D) from the next handshake on: after a successful osdp_KEYSET.
    #[cfg(test)]
    pub(crate) fn rekey(&mut self, scbk: Scbk) {
        self.scbk = scbk;
        self.install_mode = false;
        self.reset();
    }

    fn base_key(&self) -> Scbk {
        if self.install_mode { scbk_d() } else { self.scbk.clone() }
    }

    /// Step 1: the osdp_CHLNG packet carrying `rnd_a`.
    pub fn challenge(&mut self, address: u8, sqn: u8, rnd_a: [u8; 8]) -> Result<Vec<u8>, ScError> {
        let kk = if self.install_mode { KEY_SCBK_D } else { KEY_SCBK };
        let packet = Draft::new(address, false, sqn, &[scb::CHLNG, kk], code::CHLNG, &rnd_a, false)?.finish();
        self.state = State::Challenged { rnd_a };
        Ok(packet)
    }

    /// Step 2 → 3: check osdp_CCRYPT's client cryptogram and build osdp_SCRYPT.
    pub fn answer_ccrypt(&mut self, frame: &ScFrame<'_>, address: u8, sqn: u8) -> Result<Vec<u8>, ScError> {
        let State::Challenged { rnd_a } = self.state else {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        };
        self.state = State::Idle;
        if frame.scb_type != scb::CCRYPT || frame.code != code::CCRYPT {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        }
        let data = frame.data;
        if data.len() != 32 {
            return Err(ScError::Malformed);
        }
        let mut rnd_b = [0u8; 8];
        rnd_b.copy_from_slice(&data[8..16]);
        let keys = SessionKeys::derive(&self.base_key(), &rnd_a);
        // Not secret: the cryptogram is on the wire; equality here is not a timing oracle for the key.
        if keys.client_cryptogram(&rnd_a, &rnd_b)[..] != data[16..32] {
            return Err(ScError::CryptogramMismatch);
        }
        let server = keys.server_cryptogram(&rnd_a, &rnd_b);
        let kk = if self.install_mode { KEY_SCBK_D } else { KEY_SCBK };
        let packet = Draft::new(address, false, sqn, &[scb::SCRYPT, kk], code::SCRYPT, &server, false)?.finish();
        let expected_rmac = keys.initial_rmac(&server);
        self.state = State::Scrypted { keys, expected_rmac };
        Ok(packet)
    }

    /// Step 4: check osdp_RMAC_I; the session is open afterwards.
    pub fn accept_rmac_i(&mut self, frame: &ScFrame<'_>) -> Result<(), ScError> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let State::Scrypted { keys, expected_rmac } = state else {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        };
        if frame.scb_type != scb::RMAC_I || frame.code != code::RMAC_I {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        }
        if frame.scb_data.first() != Some(&0x01) {
            return Err(ScError::Refused);
        }
        if frame.data != expected_rmac {
            return Err(ScError::BadInitialRmac);
        }
        self.state = State::Open(Established::new(keys, expected_rmac));
        Ok(())
    }

    /// A command packet inside the session (MAC, DATA encrypted when present).
    pub fn seal_command(&mut self, address: u8, sqn: u8, code: u8, data: &[u8]) -> Result<Vec<u8>, ScError> {
        match &mut self.state {
            State::Open(s) => s.seal(Side::Cp, address, sqn, code, data),
            _ => Err(ScError::NotOpen),
        }
    }

    /// Check and decrypt a reply. Any failure ends the session.
    pub fn open_reply(&mut self, frame: &ScFrame<'_>) -> Result<(u8, Vec<u8>), ScError> {
        let result = match &mut self.state {
            State::Open(s) => s.open(Side::Cp, frame),
            _ => Err(ScError::NotOpen),
        };
        if result.is_err() {
            self.reset();
        }
        result
    }
}
