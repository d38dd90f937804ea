//! The crate's sans-IO CP session (`osdp::PdSession`) driven over a real pseudo-terminal, with the
//! vendor extension on top: just enough of a door link to talk PROTOCOL.md to the LibOSDP door, plus
//! the raw controls the negative tests need (resend the last packet as is, hand-made fragments).
//!
//! Shared by the interop tests and `benches/libosdp_link.rs` (included there with `#[path]`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use doorsync::domain::{DoorRecord, DoorUserId};
use doorsync::door::vendor::{self, MfgCommand, MfgReply};
use doorsync::door::{BucketDigest, DoorDigest, DoorInfo, DoorListEntry, FaceStatus};
use doorsync::osdp::command::{FileTransfer, Mfg};
use doorsync::osdp::reply::{FtStat, MfgRep};
use doorsync::osdp::{Command, Decoder, Event, FailReason, PdSession, PdState, Reply, SessionConfig};
use doorsync::serial::pty::Pty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// FtFragmentSize the PD's capabilities allow for each osdp_FILETRANSFER.
pub fn fragment_size(session: &PdSession) -> usize {
    session.max_command_data_bytes() - doorsync::osdp::command::filetransfer::HEADER_LEN
}

pub struct Link {
    pty: Pty,
    pub session: PdSession,
    vendor_code: [u8; 3],
    next_request: u16,
    last_tx: Vec<u8>,
    /// osdp_MFGREPs that arrived as answers to keep-alive polls.
    unsolicited: VecDeque<MfgRep>,
    /// Bytes written to / read from the line, mark bytes included.
    pub wire_tx: u64,
    pub wire_rx: u64,
}

impl Link {
    /// Brings the PD online (osdp_ID, osdp_CAP) over `pty`.
    pub async fn connect(pty: Pty, config: SessionConfig, vendor_code: [u8; 3]) -> Link {
        let session = PdSession::new(config, Instant::now());
        let mut link = Link {
            pty,
            session,
            vendor_code,
            next_request: 1,
            last_tx: Vec::new(),
            unsolicited: VecDeque::new(),
            wire_tx: 0,
            wire_rx: 0,
        };
        let start = Instant::now();
        while link.session.state() != PdState::Online {
            assert!(start.elapsed() < Duration::from_secs(30), "PD never came online");
            link.turn().await;
            while let Some(ev) = link.session.poll_event() {
                link.note(ev);
            }
        }
        link
    }

    /// One turn of the runtime loop: transmit what is due, then read until the next deadline.
    async fn turn(&mut self) {
        let now = Instant::now();
        if let Some(tx) = self.session.poll_transmit(now) {
            self.pty.write_all(&tx).await.unwrap();
            self.wire_tx += tx.len() as u64;
            self.last_tx = tx;
        }
        let at = self
            .session
            .poll_at()
            .unwrap_or_else(|| Instant::now() + Duration::from_millis(50));
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout_at(tokio::time::Instant::from_std(at), self.pty.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) => {
                self.wire_rx += n as u64;
                self.session.handle_bytes(Instant::now(), &buf[..n]);
            }
            Ok(Err(e)) => panic!("pty read failed: {e}"),
            Err(_deadline) => self.session.handle_timeout(Instant::now()),
        }
    }

    fn note(&mut self, ev: Event) {
        match ev {
            Event::Unsolicited(Reply::MfgRep(m)) => self.unsolicited.push_back(m),
            Event::Unsolicited(other) => panic!("unexpected poll answer {other:?}"),
            Event::Offline => panic!("PD went offline"),
            _ => {}
        }
    }

    /// Sends one command and waits for its outcome, as the session reports it.
    pub async fn exchange(&mut self, cmd: Command) -> Result<Reply, FailReason> {
        while !self.session.can_submit() {
            self.turn().await;
            while let Some(ev) = self.session.poll_event() {
                self.note(ev);
            }
        }
        let id = self.session.submit(cmd).unwrap();
        loop {
            self.turn().await;
            while let Some(ev) = self.session.poll_event() {
                match ev {
                    Event::Reply { id: got, reply } if got == id => return Ok(reply),
                    Event::Failed { id: got, reason } if got == id => return Err(reason),
                    other => self.note(other),
                }
            }
        }
    }

    /// Writes the last packet again, byte for byte (same SQN), as a CP does when a reply was lost,
    /// and returns the PD's answer to it.
    pub async fn resend_last(&mut self) -> Reply {
        let tx = self.last_tx.clone();
        self.pty.write_all(&tx).await.unwrap();
        self.wire_tx += tx.len() as u64;
        let mut decoder = Decoder::new(1440);
        let mut buf = [0u8; 512];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(2), self.pty.read(&mut buf))
                .await
                .expect("no answer to the resent packet")
                .unwrap();
            self.wire_rx += n as u64;
            decoder.push(Instant::now(), &buf[..n]);
            if let Some(frame) = decoder.next_frame().unwrap() {
                let repr = frame.repr().unwrap();
                return Reply::decode(repr.code, repr.data).unwrap();
            }
        }
    }

    /// One file fragment; the PD's osdp_FTSTAT.
    pub async fn fragment(&mut self, ft_type: u8, size_total: u32, offset: u32, data: &[u8]) -> FtStat {
        let cmd = Command::FileTransfer(FileTransfer {
            ft_type,
            size_total,
            offset,
            data: data.to_vec(),
        });
        match self.exchange(cmd).await {
            Ok(Reply::FtStat(stat)) => stat,
            other => panic!("fragment at {offset}: {other:?}"),
        }
    }

    /// A whole file, in order, in fragments of `fragment` bytes; the last FTSTAT.
    pub async fn send_file(&mut self, ft_type: u8, file: &[u8], fragment: usize) -> FtStat {
        let mut last = None;
        for (i, chunk) in file.chunks(fragment).enumerate() {
            last = Some(
                self.fragment(ft_type, file.len() as u32, (i * fragment) as u32, chunk)
                    .await,
            );
        }
        last.expect("empty file")
    }

    /// The next request id (PROTOCOL.md §6: a new command gets the next id).
    pub fn request_id(&mut self) -> u16 {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        id
    }

    /// osdp_MFG with this vendor data; the session's outcome (osdp_ACK, osdp_MFGREP, or a failure).
    pub async fn mfg_raw(&mut self, vendor_data: &[u8]) -> Result<Reply, FailReason> {
        self.exchange(Command::Mfg(Mfg {
            vendor_code: self.vendor_code,
            data: vendor_data.to_vec(),
        }))
        .await
    }

    /// Sends a vendor command; for DELETE/CLEAR returns `None` once the door ACKed, for queries the
    /// osdp_MFGREP with the same request id.
    pub async fn mfg(&mut self, command: vendor::Command) -> Option<MfgReply> {
        let cmd = MfgCommand {
            request_id: self.request_id(),
            command,
        };
        let vendor_data = cmd.encode().unwrap();
        match cmd.command {
            vendor::Command::Delete(_) | vendor::Command::Clear => match self.mfg_raw(&vendor_data).await {
                Ok(Reply::Ack) => None,
                other => panic!("{:?}: {other:?}", cmd.command),
            },
            _ => Some(self.query_raw(&vendor_data).await),
        }
    }

    /// Sends osdp_MFG vendor data that expects an answer and returns the osdp_MFGREP whose request id
    /// and op match, polling for it (the LibOSDP door ACKs a query and answers on a later POLL).
    pub async fn query_raw(&mut self, vendor_data: &[u8]) -> MfgReply {
        let (op, request_id) = MfgCommand::peek_header(vendor_data).expect("a 3-byte header");
        let mut answer = match self.mfg_raw(vendor_data).await {
            Ok(Reply::Ack) => None,
            Ok(Reply::MfgRep(m)) => Some(m),
            other => panic!("query {op:#04x}: {other:?}"),
        };
        for _ in 0..1000 {
            let rep = match answer.take().or_else(|| self.unsolicited.pop_front()) {
                Some(rep) => rep,
                None => match self.exchange(Command::Poll).await {
                    Ok(Reply::MfgRep(m)) => m,
                    Ok(Reply::Ack) => continue,
                    other => panic!("POLL while waiting for an answer to {op:#04x}: {other:?}"),
                },
            };
            assert_eq!(rep.vendor_code, self.vendor_code, "osdp_MFGREP vendor code");
            let reply = MfgReply::decode(&rep.data).unwrap();
            let data = reply.encode().unwrap();
            if reply.request_id == request_id && data.first() == Some(&(op | 0x80)) {
                return reply;
            }
            // A late answer to an earlier request: ignored, as the agent does.
        }
        panic!("no osdp_MFGREP for {op:#04x} after 1000 polls")
    }
}

/// Typed vendor-extension operations, one call each, as the agent's door link performs them.
impl Link {
    fn reply(&self, reply: Option<MfgReply>) -> vendor::Reply {
        reply.expect("a query is answered with osdp_MFGREP").reply
    }

    pub async fn info(&mut self) -> DoorInfo {
        match self.mfg(vendor::Command::Info).await.map(|r| r.reply) {
            Some(vendor::Reply::Info(i)) => i,
            other => panic!("INFO answered {other:?}"),
        }
    }

    pub async fn digest(&mut self) -> DoorDigest {
        let r = self.mfg(vendor::Command::Digest).await;
        match self.reply(r) {
            vendor::Reply::Digest(d) => d,
            other => panic!("DIGEST answered {other:?}"),
        }
    }

    pub async fn face_status(&mut self, id: u32) -> FaceStatus {
        let r = self.mfg(vendor::Command::FaceStatus(DoorUserId(id))).await;
        match self.reply(r) {
            vendor::Reply::FaceStatus(s) => s,
            other => panic!("FACE_STATUS answered {other:?}"),
        }
    }

    /// All 64 buckets (13 BUCKET_DIGESTS requests, PROTOCOL.md §8 step 4).
    pub async fn bucket_digests(&mut self) -> Vec<BucketDigest> {
        let mut out = Vec::new();
        while out.len() < usize::from(vendor::BUCKET_COUNT) {
            let first_bucket = out.len() as u8;
            let r = self.mfg(vendor::Command::BucketDigests { first_bucket }).await;
            match self.reply(r) {
                vendor::Reply::BucketDigests(page) if !page.buckets.is_empty() => out.extend(page.buckets),
                other => panic!("BUCKET_DIGESTS {first_bucket} answered {other:?}"),
            }
        }
        out
    }

    /// Every user of one bucket, following LIST cursors.
    pub async fn list(&mut self, bucket: u8) -> Vec<DoorListEntry> {
        let (mut out, mut cursor) = (Vec::new(), 0);
        loop {
            let r = self.mfg(vendor::Command::List { bucket, cursor }).await;
            match self.reply(r) {
                vendor::Reply::List(page) => {
                    out.extend(page.entries);
                    match page.next_cursor {
                        Some(c) => cursor = c,
                        None => return out,
                    }
                }
                other => panic!("LIST {bucket} answered {other:?}"),
            }
        }
    }

    /// DELETE in batches of at most 15 ids.
    pub async fn delete(&mut self, ids: &[u32]) {
        for batch in ids.chunks(vendor::MAX_DELETE_IDS) {
            let ids = batch.iter().copied().map(DoorUserId).collect();
            assert_eq!(self.mfg(vendor::Command::Delete(ids)).await, None, "DELETE is ACKed");
        }
    }

    /// Record files within the door's limit; returns the files sent.
    pub async fn upsert(&mut self, records: &[DoorRecord], max_file_bytes: u32) -> Vec<Vec<u8>> {
        let files = vendor::encode_record_files(records, max_file_bytes).unwrap();
        let fragment = fragment_size(&self.session);
        for file in &files {
            self.send_file(vendor::FT_TYPE_RECORDS, file, fragment).await;
        }
        files
    }

    /// One face file; returns it.
    pub async fn put_face(&mut self, id: u32, jpeg: &[u8]) -> Vec<u8> {
        let file = vendor::encode_face_file(DoorUserId(id), jpeg).unwrap();
        let fragment = fragment_size(&self.session);
        self.send_file(vendor::FT_TYPE_FACE, &file, fragment).await;
        file
    }
}
