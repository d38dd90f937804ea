//! osdp_MFG exchanges of the vendor extension (PROTOCOL.md §6): request ids, and matching each
//! osdp_MFGREP to its request whether it is the direct reply, the reply to an explicit osdp_POLL, or a
//! report delivered on a keep-alive poll. Replies nobody waits for (late, duplicated) are ignored.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::mfg_exchange::{ExchangeTimes, MfgAction, MfgExchange};
use super::mfg_route::{MfgRoutes, Routed};
use super::{OsdpDoor, door_error};
use crate::domain::DoorUserId;
use crate::door::DoorError;
use crate::door::vendor::{self, Command as VCmd, MfgCommand, MfgReply, Reply as VReply};
use crate::door::{FaceStatus, Misconfig};
use crate::osdp::command::Mfg;
use crate::osdp::reply::MfgRep;
use crate::osdp::{Command, Reply};
use crate::serial::link::Priority;

/// Requests waiting for their osdp_MFGREP: the sans-IO table of `mfg_route.rs` behind a lock (the
/// driver's poll sink and the querying tasks both route replies), each answer handed over by a oneshot.
#[derive(Debug)]
pub(super) struct Waiters {
    routes: Mutex<MfgRoutes<oneshot::Sender<MfgReply>>>,
}

impl Waiters {
    pub(super) fn new(vendor_code: [u8; 3]) -> Self {
        Self {
            routes: Mutex::new(MfgRoutes::new(vendor_code)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MfgRoutes<oneshot::Sender<MfgReply>>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the reply to `cmd` until the returned guard is dropped.
    fn register(&self, cmd: MfgCommand) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        let request_id = cmd.request_id;
        self.lock().register(cmd, tx);
        Waiter {
            waiters: self,
            request_id,
            rx,
        }
    }

    /// Hands any osdp_MFGREP among `reply` to the request it answers.
    pub(super) fn route_reply(&self, reply: &Reply) {
        match reply {
            Reply::MfgRep(rep) => self.route(rep),
            other => tracing::debug!(reply = other.name(), "osdp poll report ignored"),
        }
    }

    fn route(&self, rep: &MfgRep) {
        let routed = self.lock().route(rep);
        match routed {
            Routed::Answer { waiter, reply } => {
                let _ = waiter.send(reply);
            }
            Routed::OtherVendor(vendor_code) => {
                tracing::debug!(?vendor_code, "osdp_MFGREP of another vendor ignored")
            }
            Routed::Undecodable(error) => {
                tracing::warn!(%error, "osdp_MFGREP ignored: not a vendor-extension reply")
            }
            Routed::WrongOp { request_id } => {
                tracing::debug!(request_id, "osdp_MFGREP with a matching id but another op ignored")
            }
            Routed::Unexpected { request_id } => {
                tracing::debug!(request_id, "late or duplicate osdp_MFGREP ignored")
            }
        }
    }

    /// The other vendor code seen since the last call, if any.
    fn take_other_vendor_code(&self) -> Option<[u8; 3]> {
        self.lock().take_other_vendor_code()
    }
}

struct Waiter<'a> {
    waiters: &'a Waiters,
    request_id: u16,
    rx: oneshot::Receiver<MfgReply>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.waiters.lock().forget(self.request_id);
    }
}

impl OsdpDoor {
    /// One vendor command and its reply. The command is resent with the same request id when no reply
    /// came for `query_resend_after` (less jitter, [`crate::retry`]; every command is idempotent); `DoorError::Timeout` after `query_timeout`.
    pub(super) async fn exchange(&self, command: VCmd, priority: Priority) -> Result<VReply, DoorError> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let cmd = MfgCommand { request_id, command };
        let data = cmd.encode()?;
        if data.len() > self.max_mfg_data {
            return Err(DoorError::Protocol(vendor::VendorError::TooLong {
                what: "osdp_MFG vendor data",
                got: data.len(),
                max: self.max_mfg_data,
            }));
        }
        let mfg = Command::Mfg(Mfg {
            vendor_code: self.vendor_code,
            data,
        });
        let mut waiter = self.replies.register(cmd.clone());
        self.replies.take_other_vendor_code();
        let times = ExchangeTimes {
            timeout: self.options.query_timeout,
            resend_after: self.options.query_resend_after,
            poll_interval: self.options.reply_poll_interval,
        };
        let mut schedule = MfgExchange::new(times, Instant::now().into_std(), rand::random());
        loop {
            if let Ok(reply) = waiter.rx.try_recv() {
                return Ok(reply.reply);
            }
            match schedule.poll(Instant::now().into_std()) {
                MfgAction::Send => {
                    if let Some(done) = self.send_mfg(&mfg, &cmd.command, priority).await? {
                        return Ok(done);
                    }
                }
                // The PD ACKed and queued its answer: fetch it rather than wait for a keep-alive poll.
                MfgAction::Poll => {
                    let reply = self.link.request(Command::Poll, priority).await.map_err(door_error)?;
                    self.replies.route_reply(&reply);
                }
                MfgAction::WaitUntil(at) => {
                    match tokio::time::timeout_at(Instant::from_std(at), &mut waiter.rx).await {
                        Ok(Ok(reply)) => return Ok(reply.reply),
                        Ok(Err(_)) => return Err(self.no_answer()),
                        Err(_) => {}
                    }
                }
                MfgAction::GiveUp => {
                    tracing::info!(request_id, op = ?cmd.command.op(), "door did not answer a vendor command in time");
                    return Err(self.no_answer());
                }
            }
        }
    }

    /// The error for a query whose reply never came: a door answering with another vendor code is
    /// misconfigured, not slow.
    fn no_answer(&self) -> DoorError {
        match self.replies.take_other_vendor_code() {
            Some(door_vendor_code) => DoorError::Misconfigured(Misconfig::VendorCodeMismatch {
                profile: self.profile_name.clone(),
                profile_vendor_code: self.vendor_code,
                door_vendor_code,
            }),
            None => DoorError::Timeout,
        }
    }

    /// Sends the osdp_MFG once. `Some` when the direct reply settles the exchange (ACK to DELETE/CLEAR).
    async fn send_mfg(&self, mfg: &Command, command: &VCmd, priority: Priority) -> Result<Option<VReply>, DoorError> {
        let reply = self.link.request(mfg.clone(), priority).await;
        match reply.map_err(|e| self.mfg_error(e))? {
            Reply::Ack => Ok(match command {
                VCmd::Delete(_) => Some(VReply::Deleted),
                VCmd::Clear => Some(VReply::Cleared),
                _ => None,
            }),
            Reply::MfgRep(rep) => {
                // Possibly ours, possibly a late answer to an earlier request: routing sorts it out.
                self.replies.route(&rep);
                Ok(None)
            }
            other => Err(DoorError::Protocol(vendor::VendorError::BadValue {
                field: "reply code to osdp_MFG",
                value: u64::from(other.code()),
            })),
        }
    }

    pub(super) async fn query_face_status(&self, id: DoorUserId) -> Result<FaceStatus, DoorError> {
        match self.exchange(VCmd::FaceStatus(id), Priority::Normal).await? {
            VReply::FaceStatus(s) if s.id == id => Ok(s),
            VReply::FaceStatus(s) => Err(DoorError::Protocol(vendor::VendorError::BadValue {
                field: "FACE_STATUS id",
                value: u64::from(s.id.0),
            })),
            VReply::Failed { status, .. } => Err(DoorError::Rejected { status }),
            _ => Err(DoorError::Protocol(vendor::VendorError::BadValue {
                field: "FACE_STATUS reply",
                value: 0,
            })),
        }
    }
}
