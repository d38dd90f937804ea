//! A minimal door for the unit tests: `DoorDb` + `FileAssembler` behind the scripted PD, with knobs for
//! the behaviours `OsdpDoor` must cope with (replies via POLL, stale replies, silence, drops, reboots).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::door::db::{DoorAnswer, DoorDb, DoorDbLimits, FileAssembler, FragmentProgress};
use crate::door::vendor::MfgReply;
use crate::osdp::Command;
use crate::osdp::reply::{FtStat, FtStatus, MfgRep, Nak, NakCode, Reply};
use crate::serial::test_pd::basic_reply;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    Fragment {
        ft_type: u8,
        offset: u32,
        len: usize,
        at: Instant,
    },
    Mfg {
        op: u8,
    },
    Abort,
}

/// What the peer does differently from a well-behaved door.
#[derive(Debug, Clone)]
pub(super) struct Knobs {
    /// Capability 10 (receive buffer).
    pub rx_buffer: u16,
    /// ACK queries and deliver the MFGREP on the next POLL (LibOSDP's Python binding can only do that).
    pub answer_via_poll: bool,
    /// Deliver an MFGREP with another request id (a late duplicate) before the real one.
    pub stale_reply_first: bool,
    /// ACK queries and never answer them.
    pub ignore_queries: bool,
    /// Go silent when this fragment (1-based count) arrives, for `silent_for`.
    pub drop_at_fragment: Option<usize>,
    pub silent_for: Duration,
    /// Lose the partial file when going silent (a reboot).
    pub reboot_on_drop: bool,
    /// FTSTAT status sent after the last fragment instead of the door's result (1: LibOSDP).
    pub final_status: Option<i16>,
    /// Sent the fragment count after each fragment.
    pub on_fragment: Option<UnboundedSender<usize>>,
    /// FtDelay and FtUpdateMsgMax of every FTSTAT.
    pub ft_delay_ms: u16,
    pub update_msg_max: u16,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            rx_buffer: 1024,
            answer_via_poll: false,
            stale_reply_first: false,
            ignore_queries: false,
            drop_at_fragment: None,
            silent_for: Duration::from_secs(3),
            reboot_on_drop: false,
            final_status: None,
            on_fragment: None,
            ft_delay_ms: 0,
            update_msg_max: 0,
        }
    }
}

/// A hostile door's script: `Some(answer)` replaces the door's own answer to a command (`Some(None)`:
/// stay silent); `None` lets the door answer. It runs with the peer locked, so it must not lock the peer.
pub(super) type Hook = Box<dyn FnMut(&Command) -> Option<Option<Reply>> + Send>;

pub(super) struct Peer {
    pub vendor_code: [u8; 3],
    pub hook: Option<Hook>,
    pub db: DoorDb,
    pub knobs: Knobs,
    pub seen: Vec<Seen>,
    assembler: FileAssembler,
    queued: VecDeque<MfgReply>,
    fragments: usize,
    silent_until: Option<Instant>,
}

pub(super) type SharedPeer = Arc<Mutex<Peer>>;

pub(super) fn limits() -> DoorDbLimits {
    DoorDbLimits {
        capacity_users: 100,
        max_record_file_bytes: 8192,
        max_face_jpeg_bytes: 65536,
    }
}

impl Peer {
    pub(super) fn new(vendor_code: [u8; 3], knobs: Knobs) -> SharedPeer {
        let db = DoorDb::new(limits());
        Arc::new(Mutex::new(Peer {
            vendor_code,
            hook: None,
            assembler: FileAssembler::new(db.max_file_bytes()),
            db,
            knobs,
            seen: Vec::new(),
            queued: VecDeque::new(),
            fragments: 0,
            silent_until: None,
        }))
    }

    fn mfgrep(&self, reply: &MfgReply) -> Reply {
        Reply::MfgRep(MfgRep {
            vendor_code: self.vendor_code,
            data: reply.encode().unwrap_or_default(),
        })
    }

    pub(super) fn handle(&mut self, command: &Command) -> Option<Reply> {
        let now = Instant::now();
        if let Some(until) = self.silent_until {
            if now < until {
                return None;
            }
            self.silent_until = None;
        }
        if let Some(hook) = self.hook.as_mut()
            && let Some(answer) = hook(command)
        {
            return answer;
        }
        match command {
            Command::Poll => Some(match self.queued.pop_front() {
                Some(r) => self.mfgrep(&r),
                None => Reply::Ack,
            }),
            Command::Abort => {
                self.seen.push(Seen::Abort);
                self.assembler.abort();
                Some(Reply::Ack)
            }
            Command::FileTransfer(ft) => {
                self.fragments += 1;
                if self.knobs.drop_at_fragment == Some(self.fragments) {
                    self.knobs.drop_at_fragment = None;
                    self.silent_until = Some(now + self.knobs.silent_for);
                    if self.knobs.reboot_on_drop {
                        self.assembler = FileAssembler::new(self.db.max_file_bytes());
                    }
                    return None;
                }
                self.seen.push(Seen::Fragment {
                    ft_type: ft.ft_type,
                    offset: ft.offset,
                    len: ft.data.len(),
                    at: now,
                });
                if let Some(tx) = &self.knobs.on_fragment {
                    let _ = tx.send(self.fragments);
                }
                let status = match self
                    .assembler
                    .on_fragment(ft.ft_type, ft.size_total, ft.offset, &ft.data)
                {
                    Ok(FragmentProgress::Incomplete { .. }) => 0,
                    Ok(FragmentProgress::Complete(file)) => {
                        let result = self.db.apply_file(file.ft_type, &file.bytes);
                        self.knobs.final_status.unwrap_or(result.ftstat_status())
                    }
                    Err(e) => e.ftstat_status(),
                };
                Some(Reply::FtStat(FtStat {
                    action: 1,
                    delay_ms: self.knobs.ft_delay_ms,
                    status: FtStatus::from(status),
                    update_msg_max: self.knobs.update_msg_max,
                }))
            }
            Command::Mfg(m) => {
                if m.vendor_code != self.vendor_code {
                    return Some(Reply::Nak(Nak::new(NakCode::UnableToProcess)));
                }
                self.seen.push(Seen::Mfg {
                    op: m.data.first().copied().unwrap_or(0),
                });
                match self.db.handle_mfg(&m.data) {
                    DoorAnswer::Ack => Some(Reply::Ack),
                    DoorAnswer::Nak(code) => Some(Reply::Nak(Nak::new(NakCode::from(code)))),
                    DoorAnswer::Reply(_) if self.knobs.ignore_queries => Some(Reply::Ack),
                    DoorAnswer::Reply(reply) => {
                        let stale = MfgReply {
                            request_id: reply.request_id.wrapping_add(0x4000),
                            reply: reply.reply.clone(),
                        };
                        match (self.knobs.answer_via_poll, self.knobs.stale_reply_first) {
                            (false, false) => Some(self.mfgrep(&reply)),
                            (false, true) => {
                                self.queued.push_back(reply);
                                Some(self.mfgrep(&stale))
                            }
                            (true, stale_first) => {
                                if stale_first {
                                    self.queued.push_back(stale);
                                }
                                self.queued.push_back(reply);
                                Some(Reply::Ack)
                            }
                        }
                    }
                }
            }
            other => basic_reply(other, self.knobs.rx_buffer),
        }
    }
}
