//! The PD side of Secure Channel, for the simulated door: answers osdp_CHLNG with osdp_CCRYPT, checks
//! the server cryptogram in osdp_SCRYPT, answers osdp_RMAC_I, then opens commands and seals replies.

use super::crypto::SessionKeys;
use super::packet::{Draft, KEY_SCBK, KEY_SCBK_D, ScFrame, code, scb};
use super::session::{Established, Side};
use super::{ScError, Scbk, scbk_d};

#[derive(Debug)]
enum State {
    Idle,
    Challenged {
        keys: SessionKeys,
        rnd_a: [u8; 8],
        rnd_b: [u8; 8],
    },
    Open(Established),
}

/// The PD's Secure Channel.
#[derive(Debug)]
pub struct PdChannel {
    scbk: Option<Scbk>,
    install_mode: bool,
    state: State,
}

impl PdChannel {
    /// `scbk`: the PD's own key; `install_mode`: also accept SCBK-D when the CP asks for it. A PD with no
    /// key and not in install mode refuses every handshake.
    pub fn new(scbk: Option<Scbk>, install_mode: bool) -> Self {
        PdChannel {
            scbk,
            install_mode,
            state: State::Idle,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    #[cfg(test)]
    pub(crate) fn install_mode(&self) -> bool {
        self.install_mode
    }

    pub(crate) fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// osdp_KEYSET took effect: the new key from now on, install mode left, session ended.
    pub(crate) fn set_key(&mut self, scbk: Scbk) {
        self.scbk = Some(scbk);
        self.install_mode = false;
        self.reset();
    }

    /// osdp_CHLNG → osdp_CCRYPT reply packet (cUID, RND.B, client cryptogram).
    pub fn on_chlng(
        &mut self,
        frame: &ScFrame<'_>,
        sqn: u8,
        rnd_b: [u8; 8],
        cuid: [u8; 8],
    ) -> Result<Vec<u8>, ScError> {
        self.state = State::Idle;
        if frame.scb_type != scb::CHLNG || frame.code != code::CHLNG {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        }
        let rnd_a: [u8; 8] = frame.data.try_into().map_err(|_| ScError::Malformed)?;
        let wants_default = frame.scb_data.first() == Some(&KEY_SCBK_D);
        // Like LibOSDP: a PD with its own key and not in install mode ignores a request for SCBK-D.
        let (base, kk) = match (&self.scbk, self.install_mode, wants_default) {
            (_, true, true) | (None, true, false) => (scbk_d(), KEY_SCBK_D),
            (Some(k), _, _) => (k.clone(), KEY_SCBK),
            (None, false, _) => return Err(ScError::NoKey),
        };
        let keys = SessionKeys::derive(&base, &rnd_a);
        let mut data = Vec::with_capacity(32);
        data.extend_from_slice(&cuid);
        data.extend_from_slice(&rnd_b);
        data.extend_from_slice(&keys.client_cryptogram(&rnd_a, &rnd_b));
        let packet = Draft::new(frame.address, true, sqn, &[scb::CCRYPT, kk], code::CCRYPT, &data, false)?.finish();
        self.state = State::Challenged { keys, rnd_a, rnd_b };
        Ok(packet)
    }

    /// osdp_SCRYPT → osdp_RMAC_I reply packet; `Err` when the server cryptogram is wrong (the caller answers
    /// NAK 0x05 as LibOSDP does).
    pub fn on_scrypt(&mut self, frame: &ScFrame<'_>, sqn: u8) -> Result<Vec<u8>, ScError> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let State::Challenged { keys, rnd_a, rnd_b } = state else {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        };
        if frame.scb_type != scb::SCRYPT || frame.code != code::SCRYPT {
            return Err(ScError::UnexpectedScb {
                scb_type: frame.scb_type,
            });
        }
        let server = keys.server_cryptogram(&rnd_a, &rnd_b);
        if frame.data != server {
            return Err(ScError::CryptogramMismatch);
        }
        let rmac = keys.initial_rmac(&server);
        let packet = Draft::new(
            frame.address,
            true,
            sqn,
            &[scb::RMAC_I, 0x01],
            code::RMAC_I,
            &rmac,
            false,
        )?
        .finish();
        self.state = State::Open(Established::new(keys, rmac));
        Ok(packet)
    }

    /// Check and decrypt a command. Any failure ends the session.
    pub fn open_command(&mut self, frame: &ScFrame<'_>) -> Result<(u8, Vec<u8>), ScError> {
        let result = match &mut self.state {
            State::Open(s) => s.open(Side::Pd, frame),
            _ => Err(ScError::NotOpen),
        };
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// A reply packet inside the session.
    pub fn seal_reply(&mut self, address: u8, sqn: u8, code: u8, data: &[u8]) -> Result<Vec<u8>, ScError> {
        match &mut self.state {
            State::Open(s) => s.seal(Side::Pd, address, sqn, code, data),
            _ => Err(ScError::NotOpen),
        }
    }
}
