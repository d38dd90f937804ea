//! Matching each osdp_MFGREP to the osdp_MFG query waiting for it (PROTOCOL.md §6), as a sans-IO table:
//! queries are registered with a waiter token, replies go in, and out comes the waiter a reply settles
//! or why it settles none. No locks, channels or clock here; `mfg::Waiters` is the thin shell that
//! holds the table behind a lock and hands answers to the waiting task.

use std::collections::HashMap;

use crate::door::vendor::{MfgCommand, MfgReply};
use crate::osdp::reply::MfgRep;

/// What one osdp_MFGREP did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Routed<W> {
    /// It answers a waiting query: the query is done, hand `reply` to `waiter`.
    Answer { waiter: W, reply: MfgReply },
    /// It carries another vendor code (remembered: a profile/door mismatch, see `take_other_vendor_code`).
    OtherVendor([u8; 3]),
    /// Its vendor data is not a vendor-extension reply.
    Undecodable(String),
    /// A query waits under its request id but for another op: the query keeps waiting.
    WrongOp { request_id: u16 },
    /// Nobody waits under its request id (late, duplicated, or never asked).
    Unexpected { request_id: u16 },
}

/// The queries waiting for their osdp_MFGREP, by request id.
#[derive(Debug)]
pub(super) struct MfgRoutes<W> {
    vendor_code: [u8; 3],
    waiting: HashMap<u16, (MfgCommand, W)>,
    other_vendor_code: Option<[u8; 3]>,
}

impl<W> MfgRoutes<W> {
    pub(super) fn new(vendor_code: [u8; 3]) -> Self {
        Self {
            vendor_code,
            waiting: HashMap::new(),
            other_vendor_code: None,
        }
    }

    /// `cmd` waits for its reply; a query still waiting under the same request id is replaced.
    pub(super) fn register(&mut self, cmd: MfgCommand, waiter: W) {
        self.waiting.insert(cmd.request_id, (cmd, waiter));
    }

    /// The query under `request_id` stops waiting (answered elsewhere, timed out, cancelled).
    pub(super) fn forget(&mut self, request_id: u16) -> Option<W> {
        self.waiting.remove(&request_id).map(|(_, w)| w)
    }

    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Routes one osdp_MFGREP.
    pub(super) fn route(&mut self, rep: &MfgRep) -> Routed<W> {
        if rep.vendor_code != self.vendor_code {
            self.other_vendor_code = Some(rep.vendor_code);
            return Routed::OtherVendor(rep.vendor_code);
        }
        let reply = match MfgReply::decode(&rep.data) {
            Ok(r) => r,
            Err(e) => return Routed::Undecodable(e.to_string()),
        };
        let request_id = reply.request_id;
        match self.waiting.get(&request_id) {
            Some((cmd, _)) if reply.answers(cmd) => match self.waiting.remove(&request_id) {
                Some((_, waiter)) => Routed::Answer { waiter, reply },
                None => Routed::Unexpected { request_id },
            },
            Some(_) => Routed::WrongOp { request_id },
            None => Routed::Unexpected { request_id },
        }
    }

    /// The other vendor code seen since the last call, if any.
    pub(super) fn take_other_vendor_code(&mut self) -> Option<[u8; 3]> {
        self.other_vendor_code.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::door::DoorDigest;
    use crate::door::vendor::{Command, Reply};

    const VENDOR: [u8; 3] = [0x02, 0x44, 0x53];

    fn digest_query(request_id: u16) -> MfgCommand {
        MfgCommand {
            request_id,
            command: Command::Digest,
        }
    }

    fn rep(vendor_code: [u8; 3], request_id: u16, reply: Reply) -> MfgRep {
        MfgRep {
            vendor_code,
            data: MfgReply { request_id, reply }.encode().unwrap(),
        }
    }

    fn digest_reply(user_count: u32) -> Reply {
        Reply::Digest(DoorDigest {
            user_count,
            digest: [3; 32],
        })
    }

    #[test]
    fn a_reply_settles_the_query_with_its_request_id_and_op_once() {
        let mut r = MfgRoutes::new(VENDOR);
        r.register(digest_query(7), "seven");
        r.register(digest_query(8), "eight");
        match r.route(&rep(VENDOR, 8, digest_reply(2))) {
            Routed::Answer { waiter, reply } => {
                assert_eq!(waiter, "eight");
                assert_eq!(reply.reply, digest_reply(2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.waiting(), 1);
        assert_eq!(
            r.route(&rep(VENDOR, 8, digest_reply(2))),
            Routed::Unexpected { request_id: 8 },
            "a duplicate finds nobody"
        );
    }

    #[test]
    fn a_reply_for_another_op_leaves_the_query_waiting() {
        let mut r = MfgRoutes::new(VENDOR);
        r.register(digest_query(5), ());
        assert_eq!(
            r.route(&rep(VENDOR, 5, Reply::Cleared)),
            Routed::WrongOp { request_id: 5 }
        );
        assert!(matches!(
            r.route(&rep(VENDOR, 5, digest_reply(1))),
            Routed::Answer { .. }
        ));
    }

    #[test]
    fn a_late_reply_after_forget_is_unexpected() {
        let mut r = MfgRoutes::new(VENDOR);
        r.register(digest_query(9), ());
        assert_eq!(r.forget(9), Some(()));
        assert_eq!(
            r.route(&rep(VENDOR, 9, digest_reply(1))),
            Routed::Unexpected { request_id: 9 }
        );
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn another_vendor_code_is_remembered_once_and_settles_nothing() {
        let mut r = MfgRoutes::new(VENDOR);
        r.register(digest_query(1), ());
        let other = [0x12, 0x34, 0x56];
        assert_eq!(r.route(&rep(other, 1, digest_reply(1))), Routed::OtherVendor(other));
        assert_eq!(r.waiting(), 1);
        assert_eq!(r.take_other_vendor_code(), Some(other));
        assert_eq!(r.take_other_vendor_code(), None);
    }

    #[test]
    fn undecodable_vendor_data_settles_nothing() {
        let mut r = MfgRoutes::new(VENDOR);
        r.register(digest_query(1), ());
        // Byte fixtures: an unknown op, and a DIGEST reply cut short after its status byte.
        for data in [vec![0xEE, 0x01, 0x00, 0x00], vec![0x82, 0x01, 0x00, 0x00, 0x02]] {
            let got = r.route(&MfgRep {
                vendor_code: VENDOR,
                data,
            });
            assert!(matches!(got, Routed::Undecodable(_)), "{got:?}");
        }
        assert_eq!(r.waiting(), 1);
    }
}
