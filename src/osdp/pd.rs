//! The PD side of the link for simulators (OSDP v2.2 §5.9): decodes commands addressed to one PD, answers
//! repeated SQNs from a reply cache without re-executing, NAKs bad SQNs, and builds replies.
//!
//! Unlike LibOSDP 3.2.9, a repeated command (same non-zero SQN as the last answered one) gets the cached
//! reply and is not delivered to the application again. osdp_BUSY is never cached.
//!
//! With a [`PdChannel`] (see [`PdLink::with_secure`]) the link also speaks Secure Channel: it answers the
//! handshake itself, opens sealed commands before the SQN checks and seals every reply but osdp_BUSY.
//! Like LibOSDP with `EnforceSecure`, only osdp_ID and osdp_CAP are taken in plain text; anything else
//! in plain text, or a failed MAC, gets NAK 0x06 and ends the session.

use std::collections::VecDeque;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::command::{Command, cap, id};
use super::decoder::Decoder;
use super::reply::{Nak, NakCode, Reply};
use super::sc::packet::scb;
use super::sc::{PdChannel, ScFrame, Scbk};
use super::wire::{BROADCAST_ADDR, PacketRepr, WireError};
use super::{MessageError, next_sqn};

/// Where a reply goes: the address the command used, its SQN and check mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub address: u8,
    pub sqn: u8,
    pub use_crc: bool,
}

/// What the application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdInput {
    /// A new command; answer it with [`PdLink::reply`].
    Command { to: ReplyTo, command: Command },
    /// Bytes to write now (a cached reply to a repeated command, or an automatic NAK).
    Transmit(Vec<u8>),
}

/// PD-side link state.
#[derive(Debug)]
pub struct PdLink {
    address: u8,
    decoder: Decoder,
    last_sqn: Option<u8>,
    cached: Option<Vec<u8>>,
    inputs: VecDeque<PdInput>,
    secure: Option<Secure>,
}

/// The PD's Secure Channel and what it needs besides.
#[derive(Debug)]
struct Secure {
    channel: PdChannel,
    rng: StdRng,
    /// The last sealed command, to recognise a byte-identical resend (answered from the cache).
    last_command: Option<Vec<u8>>,
}

impl PdLink {
    /// `max_packet_len` is the largest command packet accepted (the PD's receive buffer).
    pub fn new(address: u8, max_packet_len: usize) -> Self {
        PdLink {
            address,
            decoder: Decoder::new(max_packet_len),
            last_sqn: None,
            cached: None,
            inputs: VecDeque::new(),
            secure: None,
        }
    }

    /// Speak Secure Channel with `channel`; `rng_seed` fixes RND.B for tests (`None`: from the OS).
    pub(crate) fn with_secure(mut self, channel: PdChannel, rng_seed: Option<u64>) -> Self {
        self.secure = Some(Secure {
            channel,
            rng: rng_seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
            last_command: None,
        });
        self
    }

    /// Take the secure channel out (e.g. to carry its key across a simulated reboot).
    pub(crate) fn take_secure(&mut self) -> Option<PdChannel> {
        self.secure.take().map(|s| s.channel)
    }

    /// True while a secure session is established.
    pub(crate) fn secure_open(&self) -> bool {
        self.secure.as_ref().is_some_and(|s| s.channel.is_open())
    }

    /// After answering osdp_KEYSET: use `scbk` from now on (leaves install mode, ends the session).
    pub(crate) fn set_key(&mut self, scbk: Scbk) {
        if let Some(s) = self.secure.as_mut() {
            s.channel.set_key(scbk);
        }
    }

    #[cfg(test)]
    pub(crate) fn address(&self) -> u8 {
        self.address
    }

    /// Feed bytes read from the line.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        self.decoder.push(now, bytes);
        self.drain_frames();
    }

    /// Run the inter-character timer (call at [`PdLink::poll_at`]).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.decoder.on_idle(now);
        self.drain_frames();
    }

    /// When [`PdLink::handle_timeout`] has work.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.decoder.poll_at()
    }

    fn drain_frames(&mut self) {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    let packet = frame.packet();
                    let address = packet.address();
                    if packet.is_reply() || (address != self.address && address != BROADCAST_ADDR) {
                        continue;
                    }
                    let to = ReplyTo {
                        address,
                        sqn: packet.sqn(),
                        use_crc: packet.use_crc(),
                    };
                    if self.secure.is_some() {
                        self.handle_secure(to, frame.as_bytes());
                        continue;
                    }
                    match frame.repr() {
                        Ok(repr) => self.handle_command(to, &repr),
                        Err(WireError::Unsupported { .. }) => self.auto_nak(to, NakCode::SecureChannelUnsupported),
                        Err(_) => {}
                    }
                }
                Ok(None) => break,
                Err(err) => tracing::debug!(address = self.address, error = %err, "osdp pd rx malformed"),
            }
        }
    }

    /// The next thing the application must handle.
    pub fn poll_input(&mut self) -> Option<PdInput> {
        self.inputs.pop_front()
    }

    fn handle_secure(&mut self, to: ReplyTo, bytes: &[u8]) {
        let Some(s) = self.secure.as_mut() else { return };
        let Ok(frame) = ScFrame::parse(bytes) else {
            // Plain text: osdp_ID / osdp_CAP only (SQN 0 also ends any session).
            match PacketRepr::parse_bytes(bytes) {
                Ok(repr) if repr.code == id::CODE || repr.code == cap::CODE => {
                    if to.sqn == 0 {
                        s.channel.reset();
                    }
                    self.handle_command(to, &repr);
                }
                Ok(_) => {
                    s.channel.reset();
                    self.auto_nak(to, NakCode::EncryptionRequired);
                }
                Err(_) => {}
            }
            return;
        };
        match frame.scb_type {
            scb::CHLNG | scb::SCRYPT => {
                let result = if frame.scb_type == scb::CHLNG {
                    let mut rnd_b = [0u8; 8];
                    s.rng.fill_bytes(&mut rnd_b);
                    let cuid = [0u8; 8];
                    s.channel.on_chlng(&frame, to.sqn, rnd_b, cuid)
                } else {
                    s.channel.on_scrypt(&frame, to.sqn)
                };
                s.last_command = None;
                match result {
                    Ok(bytes) => {
                        self.last_sqn = Some(to.sqn);
                        self.cached = None;
                        self.inputs.push_back(PdInput::Transmit(bytes));
                    }
                    Err(err) => {
                        tracing::debug!(address = self.address, error = %err, "osdp pd secure channel handshake refused");
                        self.auto_nak(to, NakCode::SecureChannelUnsupported);
                    }
                }
            }
            scb::CMD_MAC | scb::CMD_ENC => {
                if self.last_sqn == Some(to.sqn)
                    && s.last_command.as_deref() == Some(bytes)
                    && let Some(cached) = &self.cached
                {
                    self.inputs.push_back(PdInput::Transmit(cached.clone()));
                    return;
                }
                match s.channel.open_command(&frame) {
                    Ok((code, data)) => {
                        s.last_command = Some(bytes.to_vec());
                        let repr = PacketRepr {
                            address: frame.address,
                            reply: false,
                            sqn: frame.sqn,
                            use_crc: true,
                            code,
                            data: &data,
                        };
                        self.handle_command(to, &repr);
                    }
                    Err(err) => {
                        tracing::debug!(address = self.address, error = %err, "osdp pd secure command refused");
                        self.auto_nak(to, NakCode::EncryptionRequired);
                    }
                }
            }
            _ => {
                s.channel.reset();
                self.auto_nak(to, NakCode::EncryptionRequired);
            }
        }
    }

    fn handle_command(&mut self, to: ReplyTo, repr: &PacketRepr<'_>) {
        if to.sqn == 0 {
            self.last_sqn = None;
            self.cached = None;
        } else if self.last_sqn == Some(to.sqn) {
            if let Some(bytes) = &self.cached {
                self.inputs.push_back(PdInput::Transmit(bytes.clone()));
                return;
            }
        } else if self.last_sqn.map(next_sqn) != Some(to.sqn) {
            let expected = self.last_sqn.map_or(0, next_sqn);
            let nak = Nak {
                code: NakCode::UnexpectedSequence,
                detail: vec![expected],
            };
            if let Ok(bytes) = self.build(to, &Reply::Nak(nak)) {
                self.inputs.push_back(PdInput::Transmit(bytes));
            }
            return;
        }
        match Command::decode(repr.code, repr.data) {
            Ok(command) => self.inputs.push_back(PdInput::Command { to, command }),
            Err(MessageError::UnknownCommand { .. }) => self.auto_nak_cached(to, NakCode::UnknownCommand),
            Err(_) => self.auto_nak_cached(to, NakCode::CommandLength),
        }
    }

    fn auto_nak(&mut self, to: ReplyTo, code: NakCode) {
        if let Ok(bytes) = self.build(to, &Reply::Nak(Nak::new(code))) {
            self.inputs.push_back(PdInput::Transmit(bytes));
        }
    }

    fn auto_nak_cached(&mut self, to: ReplyTo, code: NakCode) {
        if let Ok(bytes) = self.reply(to, &Reply::Nak(Nak::new(code))) {
            self.inputs.push_back(PdInput::Transmit(bytes));
        }
    }

    fn build(&mut self, to: ReplyTo, reply: &Reply) -> Result<Vec<u8>, WireError> {
        let sqn = if *reply == Reply::Busy { 0 } else { to.sqn };
        let data = reply.encode();
        if *reply != Reply::Busy
            && let Some(s) = self.secure.as_mut().filter(|s| s.channel.is_open())
        {
            return s
                .channel
                .seal_reply(to.address, sqn, reply.code(), &data)
                .map_err(|_| WireError::Unsupported {
                    what: "secure channel reply too large",
                });
        }
        PacketRepr {
            address: to.address,
            reply: true,
            sqn,
            use_crc: to.use_crc,
            code: reply.code(),
            data: &data,
        }
        .to_vec()
    }

    /// Encode the reply to a command and remember it for a repeated SQN (osdp_BUSY is not remembered, so
    /// the resend is executed).
    pub fn reply(&mut self, to: ReplyTo, reply: &Reply) -> Result<Vec<u8>, WireError> {
        let bytes = self.build(to, reply)?;
        if *reply != Reply::Busy {
            self.last_sqn = Some(to.sqn);
            self.cached = Some(bytes.clone());
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::command_packet as cmd;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '|'], "")).unwrap()
    }

    #[test]
    fn test_ack_to_poll_matches_worked_example() {
        let t = Instant::now();
        let mut pd = PdLink::new(1, 256);
        pd.handle_bytes(t, &hex("53 01 09 00 04 61 00 60 23"));
        let Some(PdInput::Command {
            to,
            command: Command::Id,
        }) = pd.poll_input()
        else {
            panic!()
        };
        pd.reply(to, &Reply::Ack).unwrap();
        pd.handle_bytes(t, &hex("FF 53 01 08 00 05 60 8B 33"));
        let Some(PdInput::Command {
            to,
            command: Command::Poll,
        }) = pd.poll_input()
        else {
            panic!()
        };
        assert_eq!(pd.reply(to, &Reply::Ack).unwrap(), hex("53 81 08 00 05 40 39 35"));
    }

    #[test]
    fn test_repeated_sqn_gets_cached_reply_without_reexecution() {
        let t = Instant::now();
        let mut pd = PdLink::new(1, 256);
        pd.handle_bytes(t, &cmd(1, 0, &Command::Id));
        let Some(PdInput::Command { to, .. }) = pd.poll_input() else {
            panic!()
        };
        let first = pd.reply(to, &Reply::Ack).unwrap();
        pd.handle_bytes(t, &cmd(1, 0, &Command::Id));
        // SQN 0 always resets, so it is executed again.
        assert!(matches!(pd.poll_input(), Some(PdInput::Command { .. })));
        pd.reply(to, &Reply::Ack).unwrap();
        let mfg = Command::Mfg(crate::osdp::command::Mfg {
            vendor_code: [1, 2, 3],
            data: vec![9],
        });
        pd.handle_bytes(t, &cmd(1, 1, &mfg));
        let Some(PdInput::Command { to, .. }) = pd.poll_input() else {
            panic!()
        };
        let answer = pd.reply(to, &Reply::Ack).unwrap();
        assert_ne!(answer, first);
        pd.handle_bytes(t, &cmd(1, 1, &mfg));
        assert_eq!(pd.poll_input(), Some(PdInput::Transmit(answer)));
        assert_eq!(pd.poll_input(), None);
    }

    #[test]
    fn test_out_of_order_sqn_gets_nak_04_with_expected_sqn() {
        let t = Instant::now();
        let mut pd = PdLink::new(1, 256);
        pd.handle_bytes(t, &cmd(1, 2, &Command::Poll));
        let Some(PdInput::Transmit(bytes)) = pd.poll_input() else {
            panic!()
        };
        let repr = PacketRepr::parse_bytes(&bytes).unwrap();
        assert_eq!(
            (repr.address, repr.reply, repr.sqn, repr.code, repr.data),
            (1, true, 2, 0x41, &[0x04, 0x00][..])
        );
    }

    #[test]
    fn test_other_addresses_and_replies_are_ignored_and_unknown_command_naks() {
        let t = Instant::now();
        let mut pd = PdLink::new(1, 256);
        pd.handle_bytes(t, &cmd(2, 0, &Command::Poll));
        pd.handle_bytes(t, &hex("53 81 08 00 05 40 39 35"));
        assert_eq!(pd.poll_input(), None);
        let unknown = PacketRepr {
            address: 1,
            reply: false,
            sqn: 0,
            use_crc: true,
            code: 0x6A,
            data: &[],
        };
        pd.handle_bytes(t, &unknown.to_vec().unwrap());
        let Some(PdInput::Transmit(bytes)) = pd.poll_input() else {
            panic!()
        };
        assert_eq!(PacketRepr::parse_bytes(&bytes).unwrap().data, &[0x03]);
    }

    #[test]
    fn test_busy_goes_out_with_sqn_zero_and_is_not_cached() {
        let t = Instant::now();
        let mut pd = PdLink::new(1, 256);
        pd.handle_bytes(t, &cmd(1, 0, &Command::Id));
        let Some(PdInput::Command { to, .. }) = pd.poll_input() else {
            panic!()
        };
        pd.reply(to, &Reply::Ack).unwrap();
        pd.handle_bytes(t, &cmd(1, 1, &Command::Poll));
        let Some(PdInput::Command { to, .. }) = pd.poll_input() else {
            panic!()
        };
        let busy = pd.reply(to, &Reply::Busy).unwrap();
        assert_eq!(PacketRepr::parse_bytes(&busy).unwrap().sqn, 0);
        pd.handle_bytes(t, &cmd(1, 1, &Command::Poll));
        assert!(matches!(pd.poll_input(), Some(PdInput::Command { .. })));
    }
}
