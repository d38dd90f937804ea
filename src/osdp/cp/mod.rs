//! The control-panel session with one PD (OSDP v2.2 §5.9 sequencing, §5.8 timing): a sans-IO state
//! machine in the style of smoltcp sockets and rumqttc's `MqttState`.
//!
//! The runtime feeds it bytes ([`PdSession::handle_bytes`]) and time, writes what
//! [`PdSession::poll_transmit`] returns, drains [`PdSession::poll_event`], and sleeps until
//! [`PdSession::poll_at`]. Invariants: at most one command is on the wire; a resend is byte-identical
//! (same SQN); SQN runs 0 after (re)start, then 1, 2, 3, 1, …; state changes only through `set_state`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::command::{Command, cap as cap_code};
use super::decoder::{DecodeError, DecodeStats, Decoder};
use super::reply::{NakCode, PdCap, PdId, Reply};
use super::wire::{self, MARK, PacketRepr, WireError};
use super::{MessageError, next_sqn};

mod secure;
#[cfg(test)]
mod secure_tests;
#[cfg(test)]
mod tests;
mod types;

pub use secure::SecureConfig;
pub use types::{CommandId, Event, FailReason, LinkDiagnostics, PdState, SessionConfig, SubmitError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    User(CommandId),
    Discover,
    KeepAlive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Due(Instant),
    AwaitingReply { deadline: Instant },
}

#[derive(Debug, Clone)]
struct Outstanding {
    purpose: Purpose,
    code: u8,
    sqn: u8,
    bytes: Vec<u8>,
    transmissions: u8,
    phase: Phase,
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The CP side of the link to one PD.
#[derive(Debug)]
pub struct PdSession {
    config: SessionConfig,
    state: PdState,
    decoder: Decoder,
    next_sqn: u8,
    outstanding: Option<Outstanding>,
    queued: Option<(CommandId, u8, Vec<u8>)>,
    next_id: u64,
    last_heard: Instant,
    idle_since: Instant,
    discover_at: Option<Instant>,
    /// Discovery attempts that failed since the PD went offline: the probe pause doubles with each,
    /// up to `offline_probe_max`.
    offline_probes: u32,
    pdid: Option<PdId>,
    pdcap: Option<PdCap>,
    events: VecDeque<Event>,
    diagnostics: LinkDiagnostics,
    secure: Option<secure::SecureLink>,
}

impl PdSession {
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let secure = config.secure.as_ref().map(secure::SecureLink::new);
        PdSession {
            decoder: Decoder::new(config.max_reply_bytes),
            config,
            state: PdState::Init,
            next_sqn: 0,
            outstanding: None,
            queued: None,
            next_id: 0,
            last_heard: now,
            idle_since: now,
            discover_at: Some(now),
            offline_probes: 0,
            pdid: None,
            pdcap: None,
            events: VecDeque::new(),
            diagnostics: LinkDiagnostics::default(),
            secure,
        }
    }

    pub(crate) fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn state(&self) -> PdState {
        self.state
    }

    /// What the PD said in osdp_PDID during the last discovery.
    pub fn pdid(&self) -> Option<&PdId> {
        self.pdid.as_ref()
    }

    /// What the PD said in osdp_PDCAP during the last discovery.
    pub fn pdcap(&self) -> Option<&PdCap> {
        self.pdcap.as_ref()
    }

    /// Line-quality counters of the reply decoder.
    pub fn decode_stats(&self) -> &DecodeStats {
        self.decoder.stats()
    }

    /// What the PD sent that a technician can act on (NAKs, BUSY, foreign addresses, resends).
    pub(crate) fn diagnostics(&self) -> &LinkDiagnostics {
        &self.diagnostics
    }

    /// Largest command packet (SOM through check bytes) to send: the profile cap, lowered by the PD's
    /// receive buffer (capability 10, minus the mark byte if we send one) and largest combined message (11).
    pub(crate) fn max_packet_bytes(&self) -> usize {
        let mark = usize::from(self.config.send_mark);
        let mut max = self.config.max_packet_bytes;
        if let Some(cap) = &self.pdcap {
            if let Some(rx) = cap.receive_buffer_bytes().filter(|v| *v > 0) {
                max = max.min(usize::from(rx).saturating_sub(mark));
            }
            if let Some(comb) = cap.largest_combined_message_bytes().filter(|v| *v > 0) {
                max = max.min(usize::from(comb));
            }
        }
        max
    }

    /// Largest command DATA (after CODE) that fits in [`PdSession::max_packet_bytes`].
    pub fn max_command_data_bytes(&self) -> usize {
        let max = self.max_packet_bytes();
        self.secure_max_data(max)
            .unwrap_or_else(|| max.saturating_sub(wire::HEADER_LEN + 1 + self.check_len()))
    }

    fn check_len(&self) -> usize {
        if self.config.use_crc { 2 } else { 1 }
    }

    /// True when [`PdSession::submit`] would accept a command (size aside).
    pub fn can_submit(&self) -> bool {
        self.state == PdState::Online && self.queued.is_none() && !self.user_outstanding()
    }

    fn user_outstanding(&self) -> bool {
        matches!(
            self.outstanding,
            Some(Outstanding {
                purpose: Purpose::User(_),
                ..
            })
        )
    }

    /// Queue one command. Fails unless online and no other submitted command is pending.
    pub fn submit(&mut self, cmd: Command) -> Result<CommandId, SubmitError> {
        if self.state != PdState::Online {
            return Err(SubmitError::NotOnline { state: self.state });
        }
        if !self.can_submit() {
            return Err(SubmitError::Busy);
        }
        let data = cmd.encode()?;
        let len = self.packet_len(data.len());
        let max = self.max_packet_bytes();
        if len > max {
            return Err(SubmitError::TooLarge { len, max });
        }
        let id = CommandId(self.next_id);
        self.next_id += 1;
        tracing::debug!(
            address = self.config.address,
            id = id.0,
            command = cmd.name(),
            "osdp command queued"
        );
        self.queued = Some((id, cmd.code(), data));
        Ok(id)
    }

    /// Restart the link now (SQN 0, osdp_ID, osdp_CAP), e.g. after FTSTAT said the PD reboots. A pending
    /// submitted command fails with [`FailReason::LinkRestarted`].
    pub(crate) fn restart(&mut self, now: Instant) {
        if let Some(Outstanding {
            purpose: Purpose::User(id),
            ..
        }) = self.outstanding.take()
        {
            self.events.push_back(Event::Failed {
                id,
                reason: FailReason::LinkRestarted,
            });
        }
        self.restart_link(now, now);
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which `poll_transmit` has work (a send, a timeout, a state change).
    pub fn poll_at(&self) -> Option<Instant> {
        earliest(self.transmit_at(), self.timer_at())
    }

    /// True while a packet of ours is on the line and its reply is awaited: on a shared (multidrop)
    /// line nobody else may transmit until the reply came or its deadline passed.
    pub(crate) fn awaiting_reply(&self) -> bool {
        matches!(
            self.outstanding,
            Some(Outstanding {
                phase: Phase::AwaitingReply { .. },
                ..
            })
        )
    }

    /// When the session next wants the line to send (a command, a resend, discovery, a keep-alive poll).
    pub(crate) fn transmit_at(&self) -> Option<Instant> {
        match &self.outstanding {
            Some(o) => match o.phase {
                Phase::Due(t) => Some(t),
                Phase::AwaitingReply { .. } => None,
            },
            None => {
                let keep_alive = (self.state == PdState::Online).then(|| {
                    if self.queued.is_some() {
                        self.idle_since
                    } else {
                        self.idle_since + self.config.poll_interval
                    }
                });
                earliest(self.discover_at, keep_alive)
            }
        }
    }

    /// The earliest deadline that needs no line time: the reply timeout, the offline timer, the
    /// decoder's inter-character timer.
    pub(crate) fn timer_at(&self) -> Option<Instant> {
        let reply = match &self.outstanding {
            Some(Outstanding {
                phase: Phase::AwaitingReply { deadline },
                ..
            }) => Some(*deadline),
            _ => None,
        };
        let offline = (self.state != PdState::Offline).then(|| self.last_heard + self.config.offline_after);
        earliest(earliest(reply, offline), self.decoder.poll_at())
    }

    /// Run timers and return the next bytes to write, if any. Call when `poll_at` passes and after
    /// `handle_bytes`/`submit`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.handle_timeout(now);
        if self.outstanding.is_none() {
            self.start_next(now);
        }
        let out = self.outstanding.as_mut()?;
        match out.phase {
            Phase::Due(t) if t <= now => {
                out.transmissions = out.transmissions.saturating_add(1);
                out.phase = Phase::AwaitingReply {
                    deadline: now + self.config.reply_timeout,
                };
                tracing::trace!(address = self.config.address, sqn = out.sqn, code = out.code, "osdp tx");
                Some(out.bytes.clone())
            }
            _ => None,
        }
    }

    /// Expire reply deadlines, the offline timer and the decoder's inter-character timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.decoder.on_idle(now);
        self.drain_frames(now);
        if let Some(out) = self.outstanding.as_mut()
            && let Phase::AwaitingReply { deadline } = out.phase
            && now >= deadline
        {
            if out.transmissions <= self.config.max_retries {
                tracing::debug!(
                    address = self.config.address,
                    sqn = out.sqn,
                    "osdp reply timeout, resending"
                );
                out.phase = Phase::Due(now);
            } else if let Some(out) = self.outstanding.take() {
                self.give_up(now, out);
            }
        }
        if self.state != PdState::Offline && now >= self.last_heard + self.config.offline_after {
            self.go_offline(now);
        }
    }

    /// Feed bytes read from the line at `now`.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        self.decoder.push(now, bytes);
        self.drain_frames(now);
    }

    fn drain_frames(&mut self, now: Instant) {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) if self.secure_frame(now, &frame) => {}
                Ok(Some(frame)) => match frame.repr() {
                    Ok(repr) => self.handle_packet(now, &repr),
                    Err(err) => self.handle_unparseable(&frame, &err),
                },
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!(address = self.config.address, error = %err, "osdp rx malformed");
                    if matches!(err, DecodeError::BadCrc { .. } | DecodeError::BadChecksum { .. }) {
                        self.resend_after_check_failure(now);
                    }
                }
            }
        }
    }

    fn handle_unparseable(&self, frame: &super::decoder::Frame, err: &WireError) {
        tracing::warn!(address = self.config.address, bytes = frame.as_bytes().len(), error = %err, "osdp frame ignored");
    }

    /// OSDP's answer to a garbled packet (ours, NAK 0x01; or the PD's, a failed check): send the same
    /// bytes with the same SQN again at once, within the command's `max_retries`.
    fn resend_after_check_failure(&mut self, now: Instant) {
        let max_retries = self.config.max_retries;
        if let Some(out) = self.outstanding.as_mut()
            && matches!(out.phase, Phase::AwaitingReply { .. })
            && out.transmissions <= max_retries
        {
            self.diagnostics.check_resends += 1;
            tracing::debug!(
                address = self.config.address,
                sqn = out.sqn,
                "osdp check failure, resending"
            );
            out.phase = Phase::Due(now);
        }
    }

    fn handle_packet(&mut self, now: Instant, repr: &PacketRepr<'_>) {
        if repr.reply && repr.address != self.config.address {
            self.diagnostics.foreign_replies += 1;
            self.diagnostics.foreign_address = Some(repr.address);
        }
        if !repr.reply || repr.address != self.config.address {
            return;
        }
        self.diagnostics.replies += 1;
        let Some(out) = self.outstanding.as_mut() else {
            tracing::debug!(
                address = self.config.address,
                code = repr.code,
                "osdp stray reply ignored"
            );
            return;
        };
        if !matches!(out.phase, Phase::AwaitingReply { .. }) {
            return;
        }
        let reply = Reply::decode(repr.code, repr.data);
        if reply == Ok(Reply::Busy) {
            // BUSY carries SQN 0 regardless of the command; resend the same bytes later. It does not
            // count as being heard: a PD busy for `offline_after` is offline (PROTOCOL.md §8).
            self.diagnostics.busy_replies += 1;
            out.transmissions = out.transmissions.saturating_sub(1);
            out.phase = Phase::Due(now + self.config.busy_delay);
            tracing::debug!(address = self.config.address, sqn = out.sqn, "osdp PD busy");
            return;
        }
        if let Ok(Reply::Nak(nak)) = &reply {
            self.diagnostics.naks += 1;
            self.diagnostics.last_nak = Some(nak.code);
            // A PD that could not check our packet may not know its SQN either: resend whatever it says.
            if nak.code == NakCode::MessageCheck && out.transmissions <= self.config.max_retries {
                self.resend_after_check_failure(now);
                return;
            }
        }
        if let Err(err) = &reply {
            self.diagnostics.malformed_replies += 1;
            self.diagnostics.last_malformed = Some(format!("{} ({err})", reply_name(repr.code)));
        }
        if repr.sqn != out.sqn {
            tracing::debug!(
                address = self.config.address,
                got = repr.sqn,
                want = out.sqn,
                "osdp reply with stale SQN"
            );
            return;
        }
        let Some(out) = self.outstanding.take() else { return };
        self.last_heard = now;
        self.idle_since = now;
        self.next_sqn = next_sqn(out.sqn);
        match reply {
            Ok(Reply::Nak(nak)) if nak.code == NakCode::UnexpectedSequence => {
                tracing::info!(
                    address = self.config.address,
                    "osdp NAK unexpected SQN: restarting link"
                );
                let at = match out.purpose {
                    Purpose::User(id) => {
                        self.events.push_back(Event::Failed {
                            id,
                            reason: FailReason::LinkRestarted,
                        });
                        now
                    }
                    Purpose::KeepAlive => now,
                    // A NAK 0x04 to our own SQN-0 discovery would loop at line speed; pace it.
                    Purpose::Discover => now + self.next_probe_pause(),
                };
                self.restart_link(now, at);
            }
            Ok(reply) => self.complete(now, out, reply),
            Err(err) => {
                tracing::warn!(address = self.config.address, error = %err, "osdp malformed reply");
                match out.purpose {
                    Purpose::User(id) => self.events.push_back(Event::Failed {
                        id,
                        reason: FailReason::BadReply(err),
                    }),
                    Purpose::Discover => self.rediscover_later(now),
                    Purpose::KeepAlive => {}
                }
            }
        }
    }

    fn complete(&mut self, now: Instant, out: Outstanding, reply: Reply) {
        match (out.purpose, reply) {
            (Purpose::Discover, Reply::PdId(pdid)) => {
                self.pdid = Some(pdid);
                self.set_state(PdState::CapDiscovery);
                self.send_internal(now, Purpose::Discover, &Command::Cap);
            }
            (Purpose::Discover, Reply::PdCap(pdcap)) => self.discovery_done(now, pdcap),
            (Purpose::Discover, Reply::Nak(nak)) if out.code == cap_code::CODE => {
                // A PD without osdp_CAP support: go on with no capabilities (profile limits apply).
                tracing::warn!(address = self.config.address, nak = %nak.code, "osdp PD refused osdp_CAP");
                self.discovery_done(now, PdCap::default());
            }
            (Purpose::Discover, other) => {
                tracing::warn!(
                    address = self.config.address,
                    reply = other.name(),
                    "osdp discovery got an unexpected reply"
                );
                self.rediscover_later(now);
            }
            (Purpose::KeepAlive, Reply::Ack) => {}
            (Purpose::KeepAlive, Reply::Nak(nak)) => {
                tracing::warn!(address = self.config.address, nak = %nak.code, "osdp PD refused a poll");
            }
            (Purpose::KeepAlive, report) => self.events.push_back(Event::Unsolicited(report)),
            (Purpose::User(id), Reply::Nak(nak)) => {
                self.events.push_back(Event::Failed {
                    id,
                    reason: FailReason::Nak(nak),
                });
            }
            (Purpose::User(id), reply) => self.events.push_back(Event::Reply { id, reply }),
        }
    }

    /// Build the packet for `cmd` with the next SQN and make it outstanding, due now.
    fn send_internal(&mut self, now: Instant, purpose: Purpose, cmd: &Command) {
        match cmd.encode() {
            Ok(data) => self.make_outstanding(now, purpose, cmd.code(), &data),
            Err(err) => {
                tracing::error!(address = self.config.address, error = %err, "osdp internal command unencodable")
            }
        }
    }

    fn make_outstanding(&mut self, now: Instant, purpose: Purpose, code: u8, data: &[u8]) {
        let repr = PacketRepr {
            address: self.config.address,
            reply: false,
            sqn: self.next_sqn,
            use_crc: self.config.use_crc,
            code,
            data,
        };
        let mut bytes = Vec::with_capacity(repr.buffer_len() + 1);
        if self.config.send_mark {
            bytes.push(MARK);
        }
        match self.encode_command(&repr) {
            Ok(packet) => bytes.extend_from_slice(&packet),
            Err(err) => {
                tracing::error!(address = self.config.address, error = %err, "osdp packet unencodable");
                if let Purpose::User(id) = purpose {
                    self.events.push_back(Event::Failed {
                        id,
                        reason: FailReason::BadReply(MessageError::TooLarge { code, len: data.len() }),
                    });
                }
                return;
            }
        }
        self.outstanding = Some(Outstanding {
            purpose,
            code,
            sqn: self.next_sqn,
            bytes,
            transmissions: 0,
            phase: Phase::Due(now),
        });
    }

    fn start_next(&mut self, now: Instant) {
        if let Some(at) = self.discover_at
            && at <= now
        {
            self.discover_at = None;
            self.next_sqn = 0;
            self.secure_reset();
            self.pdid = None;
            self.pdcap = None;
            if self.state != PdState::Offline {
                self.set_state(PdState::IdDiscovery);
            }
            self.send_internal(now, Purpose::Discover, &Command::Id);
            return;
        }
        if self.state != PdState::Online {
            return;
        }
        if let Some((id, code, data)) = self.queued.take() {
            self.make_outstanding(now, Purpose::User(id), code, &data);
        } else if now >= self.idle_since + self.config.poll_interval {
            self.send_internal(now, Purpose::KeepAlive, &Command::Poll);
        }
    }

    fn give_up(&mut self, now: Instant, out: Outstanding) {
        tracing::info!(
            address = self.config.address,
            sqn = out.sqn,
            code = out.code,
            "osdp command unanswered"
        );
        match out.purpose {
            Purpose::User(id) => {
                let reason = FailReason::Timeout {
                    attempts: out.transmissions,
                };
                self.events.push_back(Event::Failed { id, reason });
                // The PD may or may not have acted; only SQN 0 makes the next exchange unambiguous.
                self.restart_link(now, now);
            }
            Purpose::KeepAlive => self.restart_link(now, now),
            Purpose::Discover => self.rediscover_later(now),
        }
    }

    /// Drop any queued work and schedule discovery (SQN 0, ID, CAP) at `at`.
    fn restart_link(&mut self, now: Instant, at: Instant) {
        self.outstanding = None;
        if let Some((id, _, _)) = self.queued.take() {
            self.events.push_back(Event::Failed {
                id,
                reason: FailReason::LinkRestarted,
            });
        }
        self.idle_since = now;
        self.discover_at = Some(at);
        if self.state != PdState::Offline {
            self.set_state(PdState::IdDiscovery);
        }
    }

    /// The pause before the next discovery attempt after a failed one: `probe_interval`, doubling
    /// with each failed attempt while the PD is offline, up to `offline_probe_max` (on a shared line a
    /// dead PD's probes, each costing reply timeouts of line time, must not crowd out the live PDs).
    fn next_probe_pause(&mut self) -> Duration {
        let base = self.config.probe_interval;
        if self.state != PdState::Offline {
            return base;
        }
        let cap = self.config.offline_probe_max.max(base);
        let pause = base
            .checked_mul(1u32 << self.offline_probes.min(16))
            .unwrap_or(cap)
            .min(cap);
        self.offline_probes = self.offline_probes.saturating_add(1);
        pause
    }

    /// Restart the link with discovery after the probe pause.
    fn rediscover_later(&mut self, now: Instant) {
        let at = now + self.next_probe_pause();
        self.restart_link(now, at);
    }

    fn go_offline(&mut self, now: Instant) {
        if let Some(Outstanding {
            purpose: Purpose::User(id),
            ..
        }) = self.outstanding.take()
        {
            self.events.push_back(Event::Failed {
                id,
                reason: FailReason::Offline,
            });
        }
        if let Some((id, _, _)) = self.queued.take() {
            self.events.push_back(Event::Failed {
                id,
                reason: FailReason::Offline,
            });
        }
        self.set_state(PdState::Offline);
        self.offline_probes = 0;
        self.discover_at = Some(now);
        self.events.push_back(Event::Offline);
    }

    fn set_state(&mut self, new: PdState) {
        if new == PdState::Online {
            self.offline_probes = 0;
        }
        if new != self.state {
            tracing::info!(address = self.config.address, from = %self.state, to = %new, "osdp PD state");
            self.state = new;
        }
    }
}

/// The OSDP name of a reply code, for diagnostics.
fn reply_name(code: u8) -> &'static str {
    use super::reply::{ack, busy, ftstat, mfgrep, nak, pdcap, pdid};
    match code {
        ack::CODE => "osdp_ACK",
        nak::CODE => "osdp_NAK",
        pdid::CODE => "osdp_PDID",
        pdcap::CODE => "osdp_PDCAP",
        busy::CODE => "osdp_BUSY",
        ftstat::CODE => "osdp_FTSTAT",
        mfgrep::CODE => "osdp_MFGREP",
        _ => "a reply",
    }
}
