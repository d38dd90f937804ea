//! Byte-level tests of the sans-IO simulated door, and of the runtime over an in-memory duplex pipe.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::config::builtin_profile;
use crate::domain::{DoorRecord, DoorUserId};
use crate::door::vendor::{
    self, Command as VCmd, FT_TYPE_FACE, FT_TYPE_RECORDS, MfgCommand, MfgReply, Reply as VReply,
};
use crate::osdp::command::{Command, FileTransfer, Mfg};
use crate::osdp::reply::ftstat::ACTION_INTERLEAVE;
use crate::osdp::reply::{FtStatus, NakCode, Reply};
use crate::osdp::{PacketRepr, next_sqn};
use crate::testkit::{command_packet as packet, door_record};

const VENDOR: [u8; 3] = [0x02, 0x44, 0x53];

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '|'], "")).unwrap()
}

fn config(profile: &str) -> SimDoorConfig {
    SimDoorConfig::new(1, builtin_profile(profile).unwrap())
}

/// A scripted CP in front of a [`SimPd`], on a synthetic clock.
struct Bench {
    pd: SimPd,
    t: Instant,
    sqn: u8,
    /// Every output in order, `Persist` included, as text: "persist" or the reply name.
    log: Vec<String>,
}

impl Bench {
    fn new(config: &SimDoorConfig) -> Self {
        Self {
            pd: SimPd::new(config, config.empty_db()),
            t: Instant::now(),
            sqn: 0,
            log: Vec::new(),
        }
    }

    /// Feeds raw bytes and returns every reply (address, sqn, decoded reply).
    fn feed(&mut self, bytes: &[u8]) -> Vec<(u8, u8, Reply)> {
        self.t += Duration::from_millis(5);
        self.pd.handle_bytes(self.t, bytes);
        let mut replies = Vec::new();
        while let Some(out) = self.pd.poll_output() {
            match out {
                PdOutput::Persist => self.log.push("persist".into()),
                PdOutput::KeyChanged(_) => self.log.push("key changed".into()),
                PdOutput::Transmit { at, bytes } => {
                    assert_eq!(at, self.t);
                    let repr = PacketRepr::parse_bytes(&bytes).unwrap();
                    assert!(repr.reply);
                    let reply = Reply::decode(repr.code, repr.data).unwrap();
                    self.log.push(reply.name().into());
                    replies.push((repr.address, repr.sqn, reply));
                }
            }
        }
        replies
    }

    /// Sends one command with the next SQN and returns its single reply.
    fn send(&mut self, command: &Command) -> Reply {
        let sqn = self.sqn;
        let mut replies = self.feed(&packet(1, sqn, command));
        assert_eq!(replies.len(), 1, "{replies:?}");
        let (address, got_sqn, reply) = replies.remove(0);
        assert_eq!(address, 1);
        if reply != Reply::Busy {
            assert_eq!(got_sqn, sqn);
            self.sqn = next_sqn(sqn);
        } else {
            assert_eq!(got_sqn, 0, "osdp_BUSY goes out with SQN 0");
        }
        reply
    }

    fn mfg(&mut self, request_id: u16, command: VCmd) -> Reply {
        let data = MfgCommand { request_id, command }.encode().unwrap();
        self.send(&Command::Mfg(Mfg {
            vendor_code: VENDOR,
            data,
        }))
    }

    fn fragment(&mut self, ft_type: u8, file: &[u8], offset: usize, len: usize) -> (u8, FtStatus) {
        let end = (offset + len).min(file.len());
        match self.send(&Command::FileTransfer(FileTransfer {
            ft_type,
            size_total: file.len() as u32,
            offset: offset as u32,
            data: file[offset..end].to_vec(),
        })) {
            Reply::FtStat(st) => (st.action, st.status),
            other => panic!("expected FTSTAT, got {other:?}"),
        }
    }
}

fn record(id: u32, jpeg: &[u8]) -> DoorRecord {
    DoorRecord {
        expire_at: Some(Timestamp::from_second(1_893_456_000).unwrap()),
        ..door_record(id, jpeg, &format!("user {id}"))
    }
}

fn mfg_reply(reply: &Reply) -> MfgReply {
    match reply {
        Reply::MfgRep(rep) => {
            assert_eq!(rep.vendor_code, VENDOR);
            MfgReply::decode(&rep.data).unwrap()
        }
        other => panic!("expected MFGREP, got {other:?}"),
    }
}

#[test]
fn test_pdid_and_pdcap_come_from_the_profile() {
    let mut b = Bench::new(&config("generic-face-v1"));
    // docs/osdp.md §2 worked example: ID, addr 1, SQN 0.
    let replies = b.feed(&hex("53 01 09 00 04 61 00 60 23"));
    let Reply::PdId(id) = &replies[0].2 else {
        panic!("{replies:?}")
    };
    let mut data = Vec::new();
    id.encode(&mut data);
    assert_eq!(data, hex("024453 01 01 01005344 010000"));
    b.sqn = 1;
    let Reply::PdCap(cap) = b.send(&Command::Cap) else {
        panic!()
    };
    let mut data = Vec::new();
    cap.encode(&mut data);
    // CRC-16, receive buffer 1024, largest combined message 1024, OSDP version 2.
    assert_eq!(data, hex("080100 0A0004 0B0004 100200"));
    assert_eq!(cap.receive_buffer_bytes(), Some(1024));

    let mut b = Bench::new(&config("libosdp-reference"));
    b.send(&Command::Id);
    let Reply::PdCap(cap) = b.send(&Command::Cap) else {
        panic!()
    };
    assert_eq!(cap.receive_buffer_bytes(), Some(256));
}

#[test]
fn test_poll_is_acked_with_the_worked_example_bytes() {
    let cfg = config("generic-face-v1");
    let mut pd = SimPd::new(&cfg, cfg.empty_db());
    let t = Instant::now();
    pd.handle_bytes(t, &hex("53 01 09 00 04 61 00 60 23"));
    while pd.poll_output().is_some() {}
    pd.handle_bytes(t, &hex("FF 53 01 08 00 05 60 8B 33"));
    assert_eq!(
        pd.poll_output(),
        Some(PdOutput::Transmit {
            at: t,
            bytes: hex("53 81 08 00 05 40 39 35")
        })
    );
}

#[test]
fn delete_between_fragments_applies_at_once_and_the_transfer_continues() {
    let mut b = Bench::new(&config("generic-face-v1"));
    b.send(&Command::Id);
    let face1 = vec![0xA5; 3000];
    let records = vendor::encode_record_file(&[record(1, &face1), record(2, b"two"), record(3, b"three")]).unwrap();
    assert_eq!(b.fragment(FT_TYPE_RECORDS, &records, 0, 900).1, FtStatus::Processed);
    let file = vendor::encode_face_file(DoorUserId(1), &face1).unwrap();

    let (action, status) = b.fragment(FT_TYPE_FACE, &file, 0, 1000);
    assert_eq!(status, FtStatus::Ok);
    assert_ne!(action & ACTION_INTERLEAVE, 0, "other commands may be interleaved");
    b.log.clear();
    assert_eq!(b.mfg(7, VCmd::Delete(vec![DoorUserId(2)])), Reply::Ack);
    // Durable before answered: the runtime is told to persist before the ACK goes out.
    assert_eq!(b.log, ["persist", "osdp_ACK"]);
    assert!(
        b.pd.db().record(DoorUserId(2)).is_none(),
        "the delete applied before the file finished"
    );
    assert_eq!(b.pd.counters().last_delete_at, Some(b.t));

    assert_eq!(b.fragment(FT_TYPE_FACE, &file, 1000, 1000).1, FtStatus::Ok);
    assert_eq!(b.fragment(FT_TYPE_FACE, &file, 2000, 1000).1, FtStatus::Ok);
    assert_eq!(b.fragment(FT_TYPE_FACE, &file, 3000, 1000).1, FtStatus::Processed);
    assert_eq!(b.pd.db().face_jpeg(DoorUserId(1)), Some(&face1[..]));
    let c = b.pd.counters();
    assert_eq!(
        (c.faces_applied, c.deletes_applied, c.file_payload_bytes),
        (1, 1, records.len() as u64 + 3045)
    );
    assert!(c.last_delete_at < c.last_face_file_at);
}

#[test]
fn face_file_for_a_user_deleted_during_its_transfer_fails_as_unknown_user() {
    let mut b = Bench::new(&config("generic-face-v1"));
    b.send(&Command::Id);
    let face = vec![7; 500];
    let records = vendor::encode_record_file(&[record(4, &face)]).unwrap();
    b.fragment(FT_TYPE_RECORDS, &records, 0, 900);
    let file = vendor::encode_face_file(DoorUserId(4), &face).unwrap();
    b.fragment(FT_TYPE_FACE, &file, 0, 300);
    assert_eq!(b.mfg(1, VCmd::Delete(vec![DoorUserId(4)])), Reply::Ack);
    assert_eq!(b.fragment(FT_TYPE_FACE, &file, 300, 300).1, FtStatus::Aborted);
    assert_eq!(b.pd.db().user_count(), 0);
    assert_eq!(b.pd.counters().files_rejected, 1);
}

#[test]
fn resent_fragment_does_not_complete_the_file_early() {
    let mut b = Bench::new(&config("generic-face-v1"));
    b.send(&Command::Id);
    let face = vec![9; 1955];
    let records = vendor::encode_record_file(&[record(1, &face)]).unwrap();
    b.fragment(FT_TYPE_RECORDS, &records, 0, 900);
    let file = vendor::encode_face_file(DoorUserId(1), &face).unwrap();
    assert_eq!(file.len(), 2000);
    b.fragment(FT_TYPE_FACE, &file, 0, 1000);
    // A CP that lost the FTSTAT resends the fragment under a new SQN: byte count says 2000, coverage 1000.
    assert_eq!(b.fragment(FT_TYPE_FACE, &file, 0, 1000).1, FtStatus::Ok);
    assert_eq!(b.fragment(FT_TYPE_FACE, &file, 500, 500).1, FtStatus::Ok);
    assert!(b.pd.db().face_jpeg(DoorUserId(1)).is_none());

    // The same SQN again gets the cached FTSTAT without being executed a second time.
    let last = FileTransfer {
        ft_type: FT_TYPE_FACE,
        size_total: 2000,
        offset: 1000,
        data: file[1000..].to_vec(),
    };
    let bytes = packet(1, b.sqn, &Command::FileTransfer(last));
    let first = b.feed(&bytes);
    assert!(matches!(&first[0].2, Reply::FtStat(st) if st.status == FtStatus::Processed));
    let executed = b.pd.counters().commands["osdp_FILETRANSFER"];
    assert_eq!(b.feed(&bytes), first);
    assert_eq!(b.pd.counters().commands["osdp_FILETRANSFER"], executed);
    assert_eq!(b.pd.counters().faces_applied, 1);
}

#[test]
fn deferred_replies_ack_the_query_and_answer_it_on_the_next_poll() {
    let mut cfg = config("generic-face-v1");
    cfg.deferred_replies = true;
    let mut b = Bench::new(&cfg);
    b.send(&Command::Id);
    assert_eq!(b.mfg(0x0101, VCmd::Info), Reply::Ack);
    assert_eq!(b.mfg(0x0102, VCmd::Digest), Reply::Ack);
    // The FTSTAT of a file transfer says a poll response is waiting.
    let records = vendor::encode_record_file(&[record(1, b"f")]).unwrap();
    let (action, _) = b.fragment(FT_TYPE_RECORDS, &records, 0, 10);
    assert_eq!(action, 0x05);

    let first = mfg_reply(&b.send(&Command::Poll));
    assert_eq!(first.request_id, 0x0101);
    assert!(matches!(first.reply, VReply::Info(_)));
    let second = mfg_reply(&b.send(&Command::Poll));
    assert!(matches!(second.reply, VReply::Digest(d) if d.user_count == 0));
    assert_eq!(b.send(&Command::Poll), Reply::Ack);
    // DELETE is answered when done, never deferred.
    assert_eq!(b.mfg(3, VCmd::Delete(vec![DoorUserId(1)])), Reply::Ack);
    assert_eq!(b.send(&Command::Poll), Reply::Ack);
    assert_eq!(b.pd.counters().deferred_reports, 2);

    // Without the mode the reply comes at once.
    b.pd.set_deferred_replies(false);
    assert_eq!(mfg_reply(&b.mfg(4, VCmd::Info)).request_id, 4);
}

#[test]
fn busy_door_answers_busy_with_sqn_zero_and_executes_the_resend_later() {
    let mut cfg = config("generic-face-v1");
    cfg.faults.busy_rate = 1.0;
    let mut b = Bench::new(&cfg);
    assert_eq!(b.send(&Command::Id), Reply::Busy);
    b.pd.faults_mut().set_rates(FaultRates::default());
    assert!(matches!(b.send(&Command::Id), Reply::PdId(_)));
    let records = vendor::encode_record_file(&[record(1, b"f")]).unwrap();
    b.fragment(FT_TYPE_RECORDS, &records, 0, 900);

    b.pd.faults_mut().set_rates(FaultRates {
        busy_rate: 1.0,
        ..FaultRates::default()
    });
    let delete = MfgCommand {
        request_id: 9,
        command: VCmd::Delete(vec![DoorUserId(1)]),
    }
    .encode()
    .unwrap();
    let bytes = packet(
        1,
        b.sqn,
        &Command::Mfg(Mfg {
            vendor_code: VENDOR,
            data: delete,
        }),
    );
    assert_eq!(b.feed(&bytes)[0].2, Reply::Busy);
    assert!(
        b.pd.db().record(DoorUserId(1)).is_some(),
        "a BUSY command is not executed"
    );
    b.pd.faults_mut().set_rates(FaultRates::default());
    // The CP resends the same bytes (same SQN): now it runs.
    assert_eq!(b.feed(&bytes)[0].2, Reply::Ack);
    assert!(b.pd.db().record(DoorUserId(1)).is_none());
    assert_eq!(b.pd.counters().busy_replies, 2);
}

#[test]
fn reboot_forgets_the_link_and_an_unbacked_database() {
    let cfg = config("generic-face-v1");
    let mut b = Bench::new(&cfg);
    b.send(&Command::Id);
    let records = vendor::encode_record_file(&[record(1, b"f")]).unwrap();
    b.fragment(FT_TYPE_RECORDS, &records, 0, 900);
    assert_eq!(b.pd.db().user_count(), 1);

    b.pd.reboot(cfg.empty_db());
    // The CP carries on with its next SQN: the rebooted door wants 0 and says so.
    let replies = b.feed(&packet(1, b.sqn, &Command::Poll));
    let Reply::Nak(nak) = &replies[0].2 else {
        panic!("{replies:?}")
    };
    assert_eq!(
        (nak.code, nak.detail.as_slice()),
        (NakCode::UnexpectedSequence, &[0u8][..])
    );
    b.sqn = 0;
    assert!(matches!(b.send(&Command::Id), Reply::PdId(_)));
    assert_eq!(b.pd.db().user_count(), 0);
    assert_eq!(b.pd.counters().reboots, 1);
}

#[test]
fn silent_door_ignores_everything_until_resumed() {
    let mut b = Bench::new(&config("generic-face-v1"));
    b.pd.set_silence(Some(Silence::UntilResumed));
    assert!(b.feed(&packet(1, 0, &Command::Id)).is_empty());
    b.pd.set_silence(None);
    assert_eq!(b.feed(&packet(1, 0, &Command::Id)).len(), 1);
    assert!(b.pd.counters().bytes_ignored > 0);
}

#[test]
fn foreign_vendor_code_and_oversized_mfg_data_are_nakked_and_change_nothing() {
    let mut b = Bench::new(&config("generic-face-v1"));
    b.send(&Command::Id);
    let records = vendor::encode_record_file(&[record(1, b"f")]).unwrap();
    b.fragment(FT_TYPE_RECORDS, &records, 0, 900);
    let delete = MfgCommand {
        request_id: 1,
        command: VCmd::Delete(vec![DoorUserId(1)]),
    }
    .encode()
    .unwrap();
    let other = b.send(&Command::Mfg(Mfg {
        vendor_code: [0x12, 0x34, 0x56],
        data: delete,
    }));
    assert!(matches!(other, Reply::Nak(n) if n.code == NakCode::UnableToProcess));
    let long = b.send(&Command::Mfg(Mfg {
        vendor_code: VENDOR,
        data: vec![0x10; 65],
    }));
    assert!(matches!(long, Reply::Nak(n) if n.code == NakCode::CommandLength));
    let short = b.send(&Command::Mfg(Mfg {
        vendor_code: VENDOR,
        data: vec![0x10],
    }));
    assert!(matches!(short, Reply::Nak(n) if n.code == NakCode::UnableToProcess));
    assert_eq!(b.pd.db().user_count(), 1);
    assert_eq!(b.pd.counters().naks, 3);
}

#[test]
fn unknown_file_types_oversized_files_and_abort_are_handled_per_protocol() {
    let mut b = Bench::new(&config("generic-face-v1"));
    b.send(&Command::Id);
    assert_eq!(b.fragment(0x01, &[0; 10], 0, 10).1, FtStatus::Unrecognised);
    // Record files above INFO's limit (8192) and faces above 45 + 40960 bytes are refused up front.
    assert_eq!(
        b.fragment(FT_TYPE_RECORDS, &vec![0; 8193], 0, 100).1,
        FtStatus::Malformed
    );
    assert_eq!(
        b.fragment(FT_TYPE_FACE, &vec![0; 41_006], 0, 100).1,
        FtStatus::Malformed
    );
    // A complete but corrupt file is discarded whole.
    assert_eq!(b.fragment(FT_TYPE_RECORDS, &[0; 50], 0, 50).1, FtStatus::Malformed);

    let records = vendor::encode_record_file(&[record(1, b"f")]).unwrap();
    b.fragment(FT_TYPE_RECORDS, &records, 0, 20);
    assert_eq!(b.send(&Command::Abort), Reply::Ack);
    // After the abort the tail alone does not complete the file.
    assert_eq!(b.fragment(FT_TYPE_RECORDS, &records, 20, 900).1, FtStatus::Ok);
    assert_eq!(b.pd.db().user_count(), 0);
}

#[test]
fn every_received_byte_dropped_means_no_answer() {
    let mut cfg = config("generic-face-v1");
    cfg.faults.drop_rate = 1.0;
    let mut b = Bench::new(&cfg);
    assert!(b.feed(&packet(1, 0, &Command::Id)).is_empty());
    let c = b.pd.counters();
    assert_eq!(c.bytes_dropped, c.bytes_received);
}

proptest! {
    #[test]
    fn sim_pd_never_panics_on_arbitrary_bytes(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
        faulty: bool,
        deferred: bool,
        seed: u64,
    ) {
        let mut cfg = config("libosdp-reference");
        cfg.deferred_replies = deferred;
        cfg.seed = seed;
        if faulty {
            cfg.faults = FaultRates { drop_rate: 0.05, corrupt_rate: 0.05, busy_rate: 0.2 };
        }
        let mut pd = SimPd::new(&cfg, cfg.empty_db());
        let mut t = Instant::now();
        for chunk in chunks {
            t += Duration::from_millis(7);
            pd.handle_bytes(t, &chunk);
            if let Some(at) = pd.poll_at() {
                pd.handle_timeout(at.max(t));
            }
            while pd.poll_output().is_some() {}
        }
    }

    #[test]
    fn sim_pd_never_panics_on_valid_frames_with_arbitrary_commands(
        commands in proptest::collection::vec(crate::osdp::command::tests::any_command(), 0..30),
        sqns in proptest::collection::vec(0u8..4, 30),
    ) {
        let cfg = config("generic-face-v1");
        let mut pd = SimPd::new(&cfg, cfg.empty_db());
        let t = Instant::now();
        for (cmd, sqn) in commands.iter().zip(sqns) {
            if let Ok(data) = cmd.encode() {
                let repr = PacketRepr { address: 1, reply: false, sqn, use_crc: true, code: cmd.code(), data: &data };
                if let Ok(bytes) = repr.to_vec() {
                    pd.handle_bytes(t, &bytes);
                }
            }
            while pd.poll_output().is_some() {}
        }
    }
}

mod runtime;
