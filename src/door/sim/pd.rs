//! The sans-IO simulated door: OSDP bytes and `now` in, reply bytes and "persist now" out.
//!
//! [`SimPd`] wires `osdp::PdLink` (framing, SQN, reply cache, automatic NAKs) to a [`DoorDb`] and its
//! [`FileAssembler`], answers osdp_ID/CAP from the profile, and injects faults. It never reads a clock,
//! sleeps or touches a file: the runtime feeds it, drains [`SimPd::poll_output`] in order, and must make
//! the database durable at every [`PdOutput::Persist`] before writing any reply that follows it
//! (PROTOCOL.md rule 4, "durable before answered").

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use super::SimDoorConfig;
use super::faults::FaultInjector;
use crate::door::db::{DoorAnswer, DoorDb, FileAssembler, FragmentProgress};
use crate::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult, MfgCommand, Op};
use crate::osdp::command::{Command, FileTransfer, Mfg};
use crate::osdp::reply::ftstat::{ACTION_INTERLEAVE, ACTION_POLL_RESPONSE_WAITING};
use crate::osdp::reply::pdcap::{FN_CHECK_CHARACTER, FN_LARGEST_COMBINED_MESSAGE, FN_OSDP_VERSION, FN_RECEIVE_BUFFER};
use crate::osdp::reply::{CapRecord, FtStat, FtStatus, MfgRep, Nak, NakCode, PdCap, PdId, Reply};
use crate::osdp::sc::{PdChannel, Scbk};
use crate::osdp::{PdInput, PdLink, ReplyTo};

/// Reports queued for later polls beyond this many are dropped, oldest first (a CP that never polls
/// must not grow the door's memory without bound).
const MAX_QUEUED_REPORTS: usize = 64;

/// What the runtime must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PdOutput {
    /// The database changed: make it durable before transmitting anything that follows.
    Persist,
    /// Reply bytes to write. `at` is the instant the command was complete (turnaround counts from it).
    Transmit { at: Instant, bytes: Vec<u8> },
    /// osdp_KEYSET installed this SCBK (already in use after the reply before it): store it.
    KeyChanged(Scbk),
}

/// How long the door stays silent (reads nothing, answers nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Silence {
    UntilResumed,
}

/// What the door saw and did, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Bytes read from the line, before faults.
    pub bytes_received: u64,
    /// Bytes written to the line.
    pub bytes_sent: u64,
    pub bytes_dropped: u64,
    pub bytes_corrupted: u64,
    /// Bytes that arrived while the door was silent (or rebooting) and were ignored.
    pub bytes_ignored: u64,
    /// FtData bytes of every osdp_FILETRANSFER executed (resent fragments count again).
    pub file_payload_bytes: u64,
    /// Commands executed, by OSDP name (`osdp_POLL`, …); those answered osdp_BUSY and resends answered
    /// from the reply cache are not.
    pub commands: BTreeMap<&'static str, u64>,
    /// Replies sent from the link layer without executing: cached replies to resent SQNs, automatic NAKs.
    pub link_replies: u64,
    pub busy_replies: u64,
    pub naks: u64,
    /// osdp_MFGREP held back and delivered as the reply to a later osdp_POLL.
    pub deferred_reports: u64,
    pub files_completed: u64,
    pub record_files_applied: u64,
    pub faces_applied: u64,
    pub files_rejected: u64,
    /// DELETE commands executed (each may name up to 15 ids).
    pub deletes_applied: u64,
    pub clears_applied: u64,
    /// When the last DELETE took effect (the instant its command was complete).
    pub last_delete_at: Option<Instant>,
    /// When the last face file was complete (all bytes present), applied or not.
    pub last_face_file_at: Option<Instant>,
    pub reboots: u64,
}

/// The door: link, database, file assembler, deferred reports, faults.
#[derive(Debug)]
pub(crate) struct SimPd {
    address: u8,
    max_packet_bytes: usize,
    max_mfg_data_bytes: usize,
    vendor_code: [u8; 3],
    identity: PdId,
    caps: PdCap,
    deferred_replies: bool,
    link: PdLink,
    seed: u64,
    db: DoorDb,
    assembler: FileAssembler,
    reports: VecDeque<MfgRep>,
    faults: FaultInjector,
    silence: Option<Silence>,
    outputs: VecDeque<PdOutput>,
    counters: SimCounters,
}

impl SimPd {
    /// A door configured by `config` holding `db` (a new one holds an empty `DoorDb` for `config.limits()`).
    pub(crate) fn new(config: &SimDoorConfig, db: DoorDb) -> Self {
        let max_packet = config.profile.osdp.max_packet_bytes;
        let [lo, hi] = max_packet.to_le_bytes();
        let caps = PdCap {
            records: vec![
                cap(FN_CHECK_CHARACTER, 1, 0),
                cap(FN_RECEIVE_BUFFER, lo, hi),
                cap(FN_LARGEST_COMBINED_MESSAGE, lo, hi),
                cap(FN_OSDP_VERSION, 2, 0),
            ],
        };
        let id = config.identity;
        Self {
            address: config.address,
            max_packet_bytes: usize::from(max_packet),
            max_mfg_data_bytes: usize::from(config.profile.osdp.max_mfg_data_bytes),
            vendor_code: config.profile.vendor_code,
            identity: PdId {
                vendor_code: config.profile.vendor_code,
                model: id.model,
                version: id.version,
                serial_number: id.serial_number,
                firmware: id.firmware,
            },
            caps,
            deferred_replies: config.deferred_replies,
            link: secure_link(
                PdLink::new(config.address, usize::from(max_packet)),
                config
                    .secure
                    .as_ref()
                    .map(|s| PdChannel::new(s.scbk.clone(), s.install_mode)),
                config.seed,
            ),
            seed: config.seed,
            assembler: FileAssembler::new(db.max_file_bytes()),
            db,
            reports: VecDeque::new(),
            faults: FaultInjector::new(config.faults, config.seed),
            silence: None,
            outputs: VecDeque::new(),
            counters: SimCounters::default(),
        }
    }

    pub(crate) fn db(&self) -> &DoorDb {
        &self.db
    }

    /// For tests that change what the door holds behind the agent's back (the caller persists).
    #[cfg(test)]
    pub(crate) fn db_mut(&mut self) -> &mut DoorDb {
        &mut self.db
    }

    pub(crate) fn counters(&self) -> &SimCounters {
        &self.counters
    }

    /// The runtime reports bytes it wrote.
    pub(crate) fn record_sent(&mut self, n: usize) {
        self.counters.bytes_sent += n as u64;
    }

    #[cfg(test)]
    pub(crate) fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    #[cfg(test)]
    pub(crate) fn faults_mut(&mut self) -> &mut FaultInjector {
        &mut self.faults
    }

    #[cfg(test)]
    pub(crate) fn set_deferred_replies(&mut self, on: bool) {
        self.deferred_replies = on;
    }

    /// Stop reading and answering until `silence` ends; `None` ends a silence now.
    pub(crate) fn set_silence(&mut self, silence: Option<Silence>) {
        self.silence = silence;
    }

    pub(crate) fn is_silent(&self) -> bool {
        matches!(self.silence, Some(Silence::UntilResumed))
    }

    /// Power-cycle: the link forgets its SQN (the CP must restart with SQN 0), any file in progress and
    /// queued reports are lost, unsent replies are dropped, and the door comes back holding `db` (what
    /// survived: the persisted database, or an empty one).
    pub(crate) fn reboot(&mut self, db: DoorDb) {
        let channel = self.link.take_secure();
        self.link = secure_link(PdLink::new(self.address, self.max_packet_bytes), channel, self.seed);
        self.assembler = FileAssembler::new(db.max_file_bytes());
        self.db = db;
        self.reports.clear();
        self.outputs.clear();
        self.counters.reboots += 1;
    }

    /// Bytes read from the line at `now` (with pacing: the instant the last of them would have arrived).
    pub(crate) fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        self.counters.bytes_received += bytes.len() as u64;
        if self.is_silent() {
            self.counters.bytes_ignored += bytes.len() as u64;
            return;
        }
        if self.silence.is_some() {
            self.silence = None;
        }
        let (bytes, damage) = self.faults.on_received(bytes);
        self.counters.bytes_dropped += damage.dropped;
        self.counters.bytes_corrupted += damage.corrupted;
        self.link.handle_bytes(now, &bytes);
        self.drain(now);
    }

    /// Run the inter-character timer; call at [`SimPd::poll_at`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.link.handle_timeout(now);
        self.drain(now);
    }

    /// When [`SimPd::handle_timeout`] has work.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.link.poll_at()
    }

    /// The next thing the runtime must do.
    pub(crate) fn poll_output(&mut self) -> Option<PdOutput> {
        self.outputs.pop_front()
    }

    fn drain(&mut self, now: Instant) {
        while let Some(input) = self.link.poll_input() {
            match input {
                PdInput::Transmit(bytes) => {
                    self.counters.link_replies += 1;
                    self.outputs.push_back(PdOutput::Transmit { at: now, bytes });
                }
                PdInput::Command { to, command } => self.execute(now, to, command),
            }
        }
    }

    fn execute(&mut self, now: Instant, to: ReplyTo, command: Command) {
        if self.faults.answer_busy() {
            self.counters.busy_replies += 1;
            self.send(now, to, &Reply::Busy);
            return;
        }
        *self.counters.commands.entry(command.name()).or_default() += 1;
        let reply = match command {
            Command::Poll => match self.reports.pop_front() {
                Some(report) => {
                    self.counters.deferred_reports += 1;
                    Reply::MfgRep(report)
                }
                None => Reply::Ack,
            },
            Command::Id => Reply::PdId(self.identity),
            Command::Cap => Reply::PdCap(self.caps.clone()),
            Command::AcuRxSize(_) => Reply::Ack,
            Command::Abort => {
                self.assembler.abort();
                Reply::Ack
            }
            Command::FileTransfer(ft) => self.file_transfer(now, &ft),
            Command::Mfg(mfg) => self.mfg(now, &mfg),
            Command::KeySet(ks) if self.link.secure_open() => {
                // Answer under the old key first; the PD then ends the session and leaves install mode.
                self.send(now, to, &Reply::Ack);
                self.link.set_key(ks.scbk.clone());
                self.outputs.push_back(PdOutput::KeyChanged(ks.scbk));
                return;
            }
            Command::KeySet(_) => Reply::Nak(Nak::new(NakCode::EncryptionRequired)),
        };
        self.send(now, to, &reply);
    }

    fn send(&mut self, now: Instant, to: ReplyTo, reply: &Reply) {
        if matches!(reply, Reply::Nak(_)) {
            self.counters.naks += 1;
        }
        match self.link.reply(to, reply) {
            Ok(bytes) => self.outputs.push_back(PdOutput::Transmit { at: now, bytes }),
            Err(err) => {
                tracing::warn!(address = self.address, reply = reply.name(), error = %err, "sim door cannot encode reply")
            }
        }
    }

    fn nak(code: NakCode) -> Reply {
        Reply::Nak(Nak::new(code))
    }

    fn mfg(&mut self, now: Instant, mfg: &Mfg) -> Reply {
        if mfg.vendor_code != self.vendor_code {
            // PROTOCOL.md §2: another vendor's command is refused and does nothing.
            return Self::nak(NakCode::UnableToProcess);
        }
        if mfg.data.len() > self.max_mfg_data_bytes {
            // As LibOSDP does for vendor data beyond its limit.
            return Self::nak(NakCode::CommandLength);
        }
        match self.db.handle_mfg(&mfg.data) {
            DoorAnswer::Ack => {
                match MfgCommand::peek_header(&mfg.data).map(|(op, _)| op) {
                    Some(op) if op == Op::Delete as u8 => {
                        self.counters.deletes_applied += 1;
                        self.counters.last_delete_at = Some(now);
                    }
                    Some(op) if op == Op::Clear as u8 => self.counters.clears_applied += 1,
                    _ => {}
                }
                self.outputs.push_back(PdOutput::Persist);
                Reply::Ack
            }
            DoorAnswer::Nak(code) => Self::nak(NakCode::from(code)),
            DoorAnswer::Reply(reply) => {
                let data = match reply.encode() {
                    Ok(data) => data,
                    Err(err) => {
                        tracing::warn!(address = self.address, error = %err, "sim door cannot encode MFGREP");
                        return Self::nak(NakCode::UnableToProcess);
                    }
                };
                let report = MfgRep {
                    vendor_code: self.vendor_code,
                    data,
                };
                if self.deferred_replies {
                    if self.reports.len() >= MAX_QUEUED_REPORTS {
                        self.reports.pop_front();
                    }
                    self.reports.push_back(report);
                    Reply::Ack
                } else {
                    Reply::MfgRep(report)
                }
            }
        }
    }

    fn file_limit(&self, ft_type: u8) -> Option<u32> {
        let limits = self.db.limits();
        match ft_type {
            FT_TYPE_RECORDS => Some(limits.max_record_file_bytes),
            FT_TYPE_FACE => Some(
                limits
                    .max_face_jpeg_bytes
                    .saturating_add(vendor::FACE_FILE_HEADER_BYTES as u32),
            ),
            _ => None,
        }
    }

    fn ftstat(&self, status: i16) -> Reply {
        let mut action = ACTION_INTERLEAVE;
        if !self.reports.is_empty() {
            action |= ACTION_POLL_RESPONSE_WAITING;
        }
        Reply::FtStat(FtStat {
            action,
            delay_ms: 0,
            status: FtStatus::from(status),
            update_msg_max: 0,
        })
    }

    fn file_transfer(&mut self, now: Instant, ft: &FileTransfer) -> Reply {
        self.counters.file_payload_bytes += ft.data.len() as u64;
        let Some(limit) = self.file_limit(ft.ft_type) else {
            self.assembler.abort();
            return self.ftstat(FileResult::UnknownType.ftstat_status());
        };
        if ft.size_total > limit {
            self.assembler.abort();
            return self.ftstat(FileResult::TooLarge.ftstat_status());
        }
        let file = match self
            .assembler
            .on_fragment(ft.ft_type, ft.size_total, ft.offset, &ft.data)
        {
            Err(err) => {
                tracing::debug!(address = self.address, error = %err, "sim door refused a fragment");
                return self.ftstat(err.ftstat_status());
            }
            Ok(FragmentProgress::Incomplete { .. }) => return self.ftstat(0),
            Ok(FragmentProgress::Complete(file)) => file,
        };
        let result = self.db.apply_file(file.ft_type, &file.bytes);
        self.counters.files_completed += 1;
        if file.ft_type == FT_TYPE_FACE {
            self.counters.last_face_file_at = Some(now);
        }
        match (result, file.ft_type) {
            (FileResult::Applied, FT_TYPE_FACE) => self.counters.faces_applied += 1,
            (FileResult::Applied, _) => self.counters.record_files_applied += 1,
            _ => self.counters.files_rejected += 1,
        }
        if result == FileResult::Applied {
            self.outputs.push_back(PdOutput::Persist);
        }
        tracing::debug!(
            address = self.address,
            ft_type = file.ft_type,
            ?result,
            "sim door file complete"
        );
        self.ftstat(result.ftstat_status())
    }
}

fn cap(function: u8, compliance: u8, items: u8) -> CapRecord {
    CapRecord {
        function,
        compliance,
        items,
    }
}

/// `link` with a Secure Channel when the door has one (RND.B seeded like the faults, for reproducibility).
fn secure_link(link: PdLink, channel: Option<PdChannel>, seed: u64) -> PdLink {
    match channel {
        Some(mut c) => {
            c.reset();
            link.with_secure(c, Some(seed))
        }
        None => link,
    }
}
