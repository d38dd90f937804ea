//! Secure Channel in the CP session: after osdp_ID/osdp_CAP a door configured with an SCBK runs the
//! CHLNG/SCRYPT handshake, and from then on every command is sealed and every reply must carry a valid
//! MAC. There is no downgrade: a refused handshake or a wrong cryptogram leaves the PD offline (retried
//! every `probe_interval`), and a plain-text reply or a failed MAC inside the session ends it and
//! restarts the link (SQN 0, discovery, a new handshake).
//!
//! The handshake packets travel as `Purpose::Discover` (they are the last discovery step): timeouts and
//! NAK 0x04 pace them exactly like osdp_ID/osdp_CAP.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::{Event, Outstanding, PdSession, PdState, Phase, Purpose};
use crate::osdp::decoder::Frame;
use crate::osdp::reply::{PdCap, Reply};
use crate::osdp::sc::packet::{code as sc_code, scb};
use crate::osdp::sc::{self, CpChannel, ScError, ScFrame, Scbk};
use crate::osdp::wire::{self, MARK, PacketRepr};

/// How a session secures its PD (part of [`SessionConfig`](super::SessionConfig)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureConfig {
    /// The PD's base key (never printed: [`Scbk`]'s `Debug` is redacted).
    pub scbk: Scbk,
    /// Handshake with SCBK-D (a PD in install mode) instead of `scbk`.
    pub install_mode: bool,
    /// Seed for RND.A in tests; `None` draws from the OS.
    pub rng_seed: Option<u64>,
}

impl SecureConfig {
    pub fn new(scbk: Scbk) -> Self {
        SecureConfig {
            scbk,
            install_mode: false,
            rng_seed: None,
        }
    }
}

/// The session's secure-channel state.
#[derive(Debug)]
pub(super) struct SecureLink {
    channel: CpChannel,
    rng: StdRng,
    /// Why the last handshake failed; cleared when one succeeds.
    failure: Option<ScError>,
}

impl SecureLink {
    pub(super) fn new(config: &SecureConfig) -> Self {
        SecureLink {
            channel: CpChannel::new(config.scbk.clone(), config.install_mode),
            rng: config.rng_seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
            failure: None,
        }
    }
}

impl PdSession {
    /// True while a secure session is established (every packet MACed).
    pub(crate) fn secure_channel_open(&self) -> bool {
        self.secure.as_ref().is_some_and(|s| s.channel.is_open())
    }

    /// Why the last handshake failed (no key material in it), until one succeeds.
    pub(crate) fn secure_failure(&self) -> Option<&ScError> {
        self.secure.as_ref().and_then(|s| s.failure.as_ref())
    }

    /// Bytes of a command packet with `data_len` DATA bytes (Secure Channel adds SCB, MAC and padding).
    pub(super) fn packet_len(&self, data_len: usize) -> usize {
        let plain = wire::HEADER_LEN + 1 + data_len + self.check_len();
        if self.secure.is_some() {
            plain + sc::overhead_bytes(data_len)
        } else {
            plain
        }
    }

    /// Largest command DATA under Secure Channel for `max_packet` bytes, or `None` in plain text.
    pub(super) fn secure_max_data(&self, max_packet: usize) -> Option<usize> {
        self.secure.as_ref().map(|_| sc::max_data_bytes(max_packet))
    }

    /// The bytes for `repr`: sealed inside an open session, plain text otherwise (discovery).
    pub(super) fn encode_command(&mut self, repr: &PacketRepr<'_>) -> Result<Vec<u8>, String> {
        match self.secure.as_mut() {
            Some(s) if s.channel.is_open() => s
                .channel
                .seal_command(repr.address, repr.sqn, repr.code, repr.data)
                .map_err(|e| e.to_string()),
            _ => repr.to_vec().map_err(|e| e.to_string()),
        }
    }

    /// SQN 0 starts over: the PD drops its session, so do we.
    pub(super) fn secure_reset(&mut self) {
        if let Some(s) = self.secure.as_mut() {
            s.channel.reset();
        }
    }

    /// osdp_CAP answered: go online in plain text, or start the handshake first.
    pub(super) fn discovery_done(&mut self, now: Instant, pdcap: PdCap) {
        self.pdcap = Some(pdcap.clone());
        let Some(s) = self.secure.as_mut() else {
            self.announce_online(pdcap);
            return;
        };
        let mut rnd_a = [0u8; 8];
        s.rng.fill_bytes(&mut rnd_a);
        let sqn = self.next_sqn;
        match s.channel.challenge(self.config.address, sqn, rnd_a) {
            Ok(bytes) => self.outstanding_bytes(now, sc_code::CHLNG, sqn, bytes),
            Err(e) => self.handshake_failed(now, e),
        }
    }

    pub(super) fn announce_online(&mut self, pdcap: PdCap) {
        self.set_state(PdState::Online);
        let pdid = self.pdid.unwrap_or_default();
        self.events.push_back(Event::Online { pdid, pdcap });
    }

    fn outstanding_bytes(&mut self, now: Instant, code: u8, sqn: u8, packet: Vec<u8>) {
        let mut bytes = Vec::with_capacity(packet.len() + 1);
        if self.config.send_mark {
            bytes.push(MARK);
        }
        bytes.extend_from_slice(&packet);
        self.outstanding = Some(Outstanding {
            purpose: Purpose::Discover,
            code,
            sqn,
            bytes,
            transmissions: 0,
            phase: Phase::Due(now),
        });
    }

    fn handshake_outstanding(&self) -> Option<u8> {
        match &self.outstanding {
            Some(Outstanding {
                purpose: Purpose::Discover,
                code,
                sqn,
                phase: Phase::AwaitingReply { .. },
                ..
            }) if *code == sc_code::CHLNG || *code == sc_code::SCRYPT => Some(*sqn),
            _ => None,
        }
    }

    /// Handle `frame` if Secure Channel owns it; false lets the plain-text path have it.
    pub(super) fn secure_frame(&mut self, now: Instant, frame: &Frame) -> bool {
        if self.secure.is_none() {
            return false;
        }
        let packet = frame.packet();
        if !packet.is_reply() || packet.address() != self.config.address {
            return false;
        }
        let handshake = self.handshake_outstanding();
        let open = self.secure_channel_open();
        if !packet.has_scb() {
            // osdp_BUSY is plain even inside a session; the normal path resends.
            if packet.code() == crate::osdp::reply::busy::CODE {
                return false;
            }
            if handshake == Some(packet.sqn()) {
                self.handshake_failed(now, refusal(frame));
                return true;
            }
            if open {
                self.session_lost(now, ScError::PlainText);
                return true;
            }
            return false;
        }
        let parsed = ScFrame::parse(frame.as_bytes());
        let Ok(sf) = parsed else {
            if let Err(e) = parsed {
                self.session_lost(now, e);
            }
            return true;
        };
        let Some(out_sqn) = self.outstanding.as_ref().map(|o| o.sqn) else {
            return true;
        };
        if sf.sqn != out_sqn {
            // A stale reply: leave the MAC chain untouched.
            return true;
        }
        if handshake.is_some() {
            self.handshake_step(now, &sf);
        } else if open {
            let opened = self.secure.as_mut().map(|s| s.channel.open_reply(&sf));
            match opened {
                Some(Ok((code, data))) => {
                    let repr = PacketRepr {
                        address: sf.address,
                        reply: true,
                        sqn: sf.sqn,
                        use_crc: true,
                        code,
                        data: &data,
                    };
                    self.handle_packet(now, &repr);
                }
                Some(Err(e)) => self.session_lost(now, e),
                None => {}
            }
        }
        true
    }

    fn handshake_step(&mut self, now: Instant, sf: &ScFrame<'_>) {
        let address = self.config.address;
        self.last_heard = now;
        self.next_sqn = crate::osdp::next_sqn(sf.sqn);
        let sqn = self.next_sqn;
        let Some(s) = self.secure.as_mut() else { return };
        match sf.scb_type {
            scb::CCRYPT => match s.channel.answer_ccrypt(sf, address, sqn) {
                Ok(bytes) => self.outstanding_bytes(now, sc_code::SCRYPT, sqn, bytes),
                Err(e) => self.handshake_failed(now, e),
            },
            scb::RMAC_I => match s.channel.accept_rmac_i(sf) {
                Ok(()) => {
                    s.failure = None;
                    self.outstanding = None;
                    self.idle_since = now;
                    tracing::info!(address, "osdp secure channel established");
                    let pdcap = self.pdcap.clone().unwrap_or_default();
                    self.announce_online(pdcap);
                }
                Err(e) => self.handshake_failed(now, e),
            },
            other => self.handshake_failed(now, ScError::UnexpectedScb { scb_type: other }),
        }
    }

    /// No downgrade: the PD is offline until a handshake succeeds; discovery is retried after the
    /// probe pause (`probe_interval`, doubling while offline up to `offline_probe_max`).
    fn handshake_failed(&mut self, now: Instant, err: ScError) {
        tracing::warn!(address = self.config.address, error = %err, "osdp secure channel handshake failed");
        if let Some(s) = self.secure.as_mut() {
            s.channel.reset();
            s.failure = Some(err);
        }
        self.rediscover_later(now);
        if self.state != PdState::Offline {
            self.set_state(PdState::Offline);
            self.events.push_back(Event::Offline);
        }
    }

    /// A failed MAC, a plain-text answer or a malformed secure packet inside the session: the PD (or the
    /// line) lost the session. Restart the link and handshake again; never continue in plain text.
    fn session_lost(&mut self, now: Instant, err: ScError) {
        tracing::info!(address = self.config.address, error = %err, "osdp secure session lost, re-handshaking");
        self.secure_reset();
        if let Some(Outstanding {
            purpose: Purpose::User(id),
            ..
        }) = self.outstanding.take()
        {
            self.events.push_back(Event::Failed {
                id,
                reason: super::FailReason::LinkRestarted,
            });
        }
        self.restart_link(now, now);
    }
}

/// What a plain-text answer to a handshake step means.
fn refusal(frame: &Frame) -> ScError {
    match frame.repr().ok().map(|r| Reply::decode(r.code, r.data)) {
        Some(Ok(Reply::Nak(_))) => ScError::Refused,
        _ => ScError::PlainText,
    }
}
