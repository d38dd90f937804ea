//! Session behaviour driven with a synthetic clock and the PD-side link as the peer.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::osdp::command::Mfg;
use crate::osdp::pd::{PdInput, PdLink};
use crate::osdp::reply::Nak;
use crate::osdp::reply::{CapRecord, MfgRep};
use crate::testkit::reply_packet;

const MS: Duration = Duration::from_millis(1);

fn pdid() -> PdId {
    PdId {
        vendor_code: [0x12, 0x34, 0x56],
        model: 1,
        version: 2,
        serial_number: 7,
        firmware: [1, 0, 0],
    }
}

fn pdcap() -> PdCap {
    let rec = |function, compliance, items| CapRecord {
        function,
        compliance,
        items,
    };
    PdCap {
        records: vec![rec(8, 1, 0), rec(9, 1, 0), rec(10, 0, 1), rec(16, 2, 0)],
    }
}

/// The standard PD answer: PDID, PDCAP, ACK for everything else.
fn standard(cmd: &Command) -> Reply {
    match cmd {
        Command::Id => Reply::PdId(pdid()),
        Command::Cap => Reply::PdCap(pdcap()),
        _ => Reply::Ack,
    }
}

struct Bench {
    s: PdSession,
    pd: PdLink,
    t: Instant,
    events: Vec<Event>,
}

impl Bench {
    fn new() -> Self {
        let t = Instant::now();
        Bench {
            s: PdSession::new(SessionConfig::new(1), t),
            pd: PdLink::new(1, 256),
            t,
            events: Vec::new(),
        }
    }

    fn online() -> Self {
        let mut b = Bench::new();
        for _ in 0..2 {
            let tx = b.tx().unwrap();
            b.answer(&tx, standard);
        }
        assert_eq!(b.s.state(), PdState::Online);
        b
    }

    fn advance(&mut self, d: Duration) {
        self.t += d;
    }

    fn tx(&mut self) -> Option<Vec<u8>> {
        let out = self.s.poll_transmit(self.t);
        self.drain();
        out
    }

    fn drain(&mut self) {
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    /// Let the PD answer `tx` (after 2 ms) and feed the answer to the session.
    fn answer(&mut self, tx: &[u8], f: impl FnOnce(&Command) -> Reply) -> Vec<u8> {
        self.advance(2 * MS);
        self.pd.handle_bytes(self.t, tx);
        let bytes = match self.pd.poll_input().unwrap() {
            PdInput::Command { to, command } => self.pd.reply(to, &f(&command)).unwrap(),
            PdInput::Transmit(bytes) => bytes,
        };
        self.s.handle_bytes(self.t, &bytes);
        self.drain();
        bytes
    }

    /// Reply bytes built by hand (not through the PD cache).
    fn inject(&mut self, sqn: u8, reply: &Reply) {
        let bytes = reply_packet(1, sqn, reply).unwrap();
        self.advance(2 * MS);
        self.s.handle_bytes(self.t, &bytes);
        self.drain();
    }
}

/// (SQN, CODE, DATA) of a transmitted command, mark stripped.
fn parse(tx: &[u8]) -> (u8, u8, Vec<u8>) {
    assert_eq!(tx[0], 0xFF, "mark byte first");
    let r = PacketRepr::parse_bytes(&tx[1..]).unwrap();
    assert!(!r.reply);
    assert_eq!(r.address, 1);
    (r.sqn, r.code, r.data.to_vec())
}

#[test]
fn discovery_sends_id_then_cap_and_reports_online_with_what_it_learned() {
    let mut b = Bench::new();
    assert_eq!(b.s.poll_at(), Some(b.t));
    let tx = b.tx().unwrap();
    assert_eq!(parse(&tx), (0, 0x61, vec![0]));
    assert_eq!(b.s.state(), PdState::IdDiscovery);
    b.answer(&tx, standard);
    assert_eq!(b.s.state(), PdState::CapDiscovery);
    let tx = b.tx().unwrap();
    assert_eq!(parse(&tx), (1, 0x62, vec![0]));
    b.answer(&tx, standard);
    assert_eq!(b.s.state(), PdState::Online);
    assert_eq!(
        b.events,
        vec![Event::Online {
            pdid: pdid(),
            pdcap: pdcap()
        }]
    );
    assert_eq!(b.s.pdid(), Some(&pdid()));
    // Profile cap 1440, PD buffer 256, minus our mark byte.
    assert_eq!(b.s.max_packet_bytes(), 255);
    assert_eq!(b.s.max_command_data_bytes(), 255 - 8);
}

#[test]
fn sqn_runs_0_1_2_3_1_across_discovery_and_keepalive_polls() {
    let mut b = Bench::new();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let tx = loop {
            if let Some(tx) = b.tx() {
                break tx;
            }
            b.t = b.s.poll_at().unwrap();
        };
        seen.push(parse(&tx).0);
        b.answer(&tx, standard);
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 1]);
}

#[test]
fn lost_reply_is_resent_with_identical_bytes_then_the_command_fails() {
    let mut b = Bench::online();
    let id =
        b.s.submit(Command::Mfg(Mfg {
            vendor_code: [0x12, 0x34, 0x56],
            data: vec![1, 2, 3, 4],
        }))
        .unwrap();
    let first = b.tx().unwrap();
    assert_eq!(b.tx(), None, "one command outstanding at a time");
    for _ in 0..3 {
        b.advance(199 * MS);
        assert_eq!(b.tx(), None);
        b.advance(MS);
        assert_eq!(b.tx().as_deref(), Some(&first[..]));
    }
    b.advance(200 * MS);
    let next = b.tx().unwrap();
    assert_eq!(
        b.events.last(),
        Some(&Event::Failed {
            id,
            reason: FailReason::Timeout { attempts: 4 }
        })
    );
    // After an unanswered command the link restarts with SQN 0.
    assert_eq!(parse(&next).0, 0);
    assert_eq!(parse(&next).1, 0x61);
}

#[test]
fn resend_answered_from_the_pd_cache_completes_the_command_once() {
    let mut b = Bench::online();
    let id =
        b.s.submit(Command::Mfg(Mfg {
            vendor_code: [1, 2, 3],
            data: vec![],
        }))
        .unwrap();
    let tx = b.tx().unwrap();
    // The PD executes and answers, but the answer is lost.
    b.pd.handle_bytes(b.t, &tx);
    let Some(PdInput::Command { to, .. }) = b.pd.poll_input() else {
        panic!()
    };
    let lost = b.pd.reply(to, &Reply::Ack).unwrap();
    b.advance(200 * MS);
    let again = b.tx().unwrap();
    assert_eq!(again, tx);
    let cached = b.answer(&again, |_| panic!("PD must not execute a repeated SQN"));
    assert_eq!(cached, lost);
    assert_eq!(b.events.last(), Some(&Event::Reply { id, reply: Reply::Ack }));
}

#[test]
fn silent_pd_goes_offline_after_8s_and_returns_online_after_a_reply() {
    let mut b = Bench::online();
    let went_silent = b.t;
    b.events.clear();
    // Nobody answers: follow the session's own deadlines.
    while b.s.state() != PdState::Offline {
        b.t = b.s.poll_at().unwrap();
        let _ = b.tx();
    }
    assert_eq!(b.t - went_silent, Duration::from_secs(8));
    assert_eq!(b.events, vec![Event::Offline]);
    assert!(matches!(
        b.s.submit(Command::Poll),
        Err(SubmitError::NotOnline {
            state: PdState::Offline
        })
    ));
    // While offline it keeps probing with osdp_ID at SQN 0.
    let probe = loop {
        b.t = b.s.poll_at().unwrap();
        if let Some(tx) = b.tx() {
            break tx;
        }
    };
    assert_eq!(parse(&probe), (0, 0x61, vec![0]));
    b.answer(&probe, standard);
    let tx = b.tx().unwrap();
    b.answer(&tx, standard);
    assert_eq!(b.s.state(), PdState::Online);
    assert!(matches!(b.events.last(), Some(Event::Online { .. })));
}

#[test]
fn nak_unexpected_sqn_restarts_discovery_with_sqn_0() {
    let mut b = Bench::online();
    let id = b.s.submit(Command::Abort).unwrap();
    let tx = b.tx().unwrap();
    let sqn = parse(&tx).0;
    b.inject(
        sqn,
        &Reply::Nak(Nak {
            code: NakCode::UnexpectedSequence,
            detail: vec![1],
        }),
    );
    assert_eq!(
        b.events.last(),
        Some(&Event::Failed {
            id,
            reason: FailReason::LinkRestarted
        })
    );
    assert_eq!(b.s.state(), PdState::IdDiscovery);
    let tx = b.tx().unwrap();
    assert_eq!(parse(&tx), (0, 0x61, vec![0]));
    b.answer(&tx, standard);
    assert_eq!(parse(&b.tx().unwrap()).1, 0x62);
}

#[test]
fn pd_refusing_cap_still_comes_online_with_profile_limits() {
    let mut b = Bench::new();
    let tx = b.tx().unwrap();
    b.answer(&tx, standard);
    let tx = b.tx().unwrap();
    b.answer(&tx, |_| Reply::Nak(Nak::new(NakCode::UnknownCommand)));
    assert_eq!(b.s.state(), PdState::Online);
    assert_eq!(b.s.max_packet_bytes(), 1440);
}

#[test]
fn nak_04_to_discovery_is_paced_by_the_probe_interval() {
    let mut b = Bench::new();
    let tx = b.tx().unwrap();
    b.inject(parse(&tx).0, &Reply::Nak(Nak::new(NakCode::UnexpectedSequence)));
    assert_eq!(b.tx(), None);
    b.advance(Duration::from_secs(1));
    assert_eq!(parse(&b.tx().unwrap()), (0, 0x61, vec![0]));
}

#[test]
fn explicit_restart_fails_the_pending_command_and_rediscovers() {
    let mut b = Bench::online();
    let id = b.s.submit(Command::Abort).unwrap();
    let _ = b.tx().unwrap();
    b.s.restart(b.t);
    b.drain();
    assert_eq!(
        b.events.last(),
        Some(&Event::Failed {
            id,
            reason: FailReason::LinkRestarted
        })
    );
    assert_eq!(parse(&b.tx().unwrap()), (0, 0x61, vec![0]));
}

#[test]
fn busy_reply_resends_the_same_bytes_after_the_busy_delay() {
    let mut b = Bench::online();
    let id =
        b.s.submit(Command::Mfg(Mfg {
            vendor_code: [1, 2, 3],
            data: vec![5],
        }))
        .unwrap();
    let tx = b.tx().unwrap();
    b.answer(&tx, |_| Reply::Busy);
    assert_eq!(b.tx(), None);
    b.advance(99 * MS);
    assert_eq!(b.tx(), None);
    b.advance(MS);
    let again = b.tx().unwrap();
    assert_eq!(again, tx);
    b.answer(&again, |_| {
        Reply::MfgRep(MfgRep {
            vendor_code: [1, 2, 3],
            data: vec![6],
        })
    });
    let want = Reply::MfgRep(MfgRep {
        vendor_code: [1, 2, 3],
        data: vec![6],
    });
    assert_eq!(b.events.last(), Some(&Event::Reply { id, reply: want }));
}

#[test]
fn nak_other_fails_the_command_but_the_link_stays_up() {
    let mut b = Bench::online();
    let id =
        b.s.submit(Command::Mfg(Mfg {
            vendor_code: [1, 2, 3],
            data: vec![],
        }))
        .unwrap();
    let tx = b.tx().unwrap();
    b.answer(&tx, |_| Reply::Nak(Nak::new(NakCode::UnableToProcess)));
    let reason = FailReason::Nak(Nak::new(NakCode::UnableToProcess));
    assert_eq!(b.events.last(), Some(&Event::Failed { id, reason }));
    assert_eq!(b.s.state(), PdState::Online);
    assert!(b.s.submit(Command::Abort).is_ok());
    assert_eq!(parse(&b.tx().unwrap()).0, next_sqn(parse(&tx).0));
}

#[test]
fn mfgrep_answering_a_keepalive_poll_is_delivered_as_unsolicited() {
    let mut b = Bench::online();
    b.advance(150 * MS);
    let tx = b.tx().unwrap();
    assert_eq!(parse(&tx).1, 0x60);
    let report = Reply::MfgRep(MfgRep {
        vendor_code: [0x12, 0x34, 0x56],
        data: b"done".to_vec(),
    });
    b.answer(&tx, |_| report.clone());
    assert_eq!(b.events.last(), Some(&Event::Unsolicited(report)));
}

#[test]
fn submit_is_refused_before_online_while_pending_and_when_too_large() {
    let mut b = Bench::new();
    assert!(matches!(
        b.s.submit(Command::Poll),
        Err(SubmitError::NotOnline { state: PdState::Init })
    ));
    let mut b = Bench::online();
    b.s.submit(Command::Abort).unwrap();
    assert_eq!(b.s.submit(Command::Abort), Err(SubmitError::Busy));
    let tx = b.tx().unwrap();
    b.answer(&tx, standard);
    let big = Command::Mfg(Mfg {
        vendor_code: [0; 3],
        data: vec![0; 250],
    });
    assert_eq!(b.s.submit(big), Err(SubmitError::TooLarge { len: 261, max: 255 }));
}

#[test]
fn replies_for_other_addresses_and_echoed_commands_are_ignored() {
    let mut b = Bench::online();
    b.s.submit(Command::Abort).unwrap();
    let tx = b.tx().unwrap();
    // RS-485 echo of our own command, then a reply from PD 2.
    b.s.handle_bytes(b.t, &tx);
    let other = PacketRepr {
        address: 2,
        reply: true,
        sqn: parse(&tx).0,
        use_crc: true,
        code: 0x40,
        data: &[],
    };
    b.s.handle_bytes(b.t, &other.to_vec().unwrap());
    b.drain();
    assert!(b.events.iter().all(|e| !matches!(e, Event::Reply { .. })));
}

#[test]
fn checksum_mode_session_reaches_online_and_pd_answers_in_kind() {
    let t = Instant::now();
    let config = SessionConfig {
        use_crc: false,
        send_mark: false,
        ..SessionConfig::new(1)
    };
    let mut b = Bench {
        s: PdSession::new(config, t),
        pd: PdLink::new(1, 256),
        t,
        events: Vec::new(),
    };
    let tx = b.tx().unwrap();
    // Annex E gives checksum 0x44 for this ID to address 0; address 1 adds one to the sum.
    assert_eq!(tx, hex::decode("5301080000610043").unwrap());
    let r = PacketRepr::parse_bytes(&tx).unwrap();
    assert!(!r.use_crc);
    let answer = b.answer(&tx, standard);
    assert!(!PacketRepr::parse_bytes(&answer).unwrap().use_crc);
    let tx = b.tx().unwrap();
    b.answer(&tx, standard);
    assert_eq!(b.s.state(), PdState::Online);
}

#[test]
fn secure_channel_reply_is_ignored_not_misparsed() {
    let mut b = Bench::online();
    b.advance(150 * MS);
    let tx = b.tx().unwrap();
    assert_eq!(parse(&tx).1, 0x60);
    // A PD ACK inside a secure session (docs/osdp.md §7): SCB present, so it must not count as the reply.
    b.s.handle_bytes(
        b.t,
        &hex::decode("53810E000E02164 0F5E7DF51691F".replace(' ', "")).unwrap(),
    );
    b.drain();
    b.advance(200 * MS);
    assert_eq!(b.tx(), Some(tx), "the poll is still unanswered and is resent");
}

#[derive(Debug, Clone, Copy)]
enum PdBehaviour {
    Answer,
    Silent,
    Busy,
    Report,
}

fn behaviour() -> impl Strategy<Value = PdBehaviour> {
    prop_oneof![
        4 => Just(PdBehaviour::Answer),
        3 => Just(PdBehaviour::Silent),
        1 => Just(PdBehaviour::Busy),
        1 => Just(PdBehaviour::Report),
    ]
}

proptest! {
    /// Nothing happens before `poll_at`: a session polled 1 ms early neither sends nor reports nor
    /// changes state, and at `poll_at` time it is safe to act.
    #[test]
    fn poll_at_is_always_the_earliest_deadline(script in proptest::collection::vec((behaviour(), any::<bool>()), 1..60)) {
        let mut b = Bench::new();
        for (what, submit) in script {
            if submit && b.s.can_submit() {
                b.s.submit(Command::Mfg(Mfg { vendor_code: [1, 2, 3], data: vec![1] })).unwrap();
            }
            let at = b.s.poll_at().unwrap();
            if at > b.t + MS {
                let state = b.s.state();
                let events = b.events.len();
                b.t = at - MS;
                prop_assert_eq!(b.tx(), None);
                prop_assert_eq!(b.s.state(), state);
                prop_assert_eq!(b.events.len(), events);
            }
            b.t = b.t.max(at);
            if let Some(tx) = b.tx() {
                match what {
                    PdBehaviour::Silent => {}
                    PdBehaviour::Answer => { b.answer(&tx, standard); }
                    PdBehaviour::Busy => { b.answer(&tx, |_| Reply::Busy); }
                    PdBehaviour::Report => {
                        b.answer(&tx, |c| if matches!(c, Command::Poll) {
                            Reply::MfgRep(MfgRep { vendor_code: [1, 2, 3], data: vec![] })
                        } else { standard(c) });
                    }
                }
            }
            prop_assert!(b.s.poll_at().is_some());
        }
    }
}

mod retransmit;
