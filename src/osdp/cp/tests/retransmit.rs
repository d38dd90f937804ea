//! Same-SQN retransmission (NAK 0x01, replies failing their check), BUSY bounded by the offline
//! timeout, and the diagnostics a technician reads.

use super::*;

fn mfg() -> Command {
    Command::Mfg(Mfg {
        vendor_code: [1, 2, 3],
        data: vec![7],
    })
}

/// A reply packet from `address` with the given SQN, its CRC broken when `corrupt`.
fn reply_bytes(address: u8, sqn: u8, reply: &Reply, corrupt: bool) -> Vec<u8> {
    let mut bytes = reply_packet(address, sqn, reply).unwrap();
    if corrupt {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x5A;
    }
    bytes
}

#[test]
fn nak_01_resends_the_same_packet_at_once_then_fails_after_max_retries() {
    let mut b = Bench::online();
    let id = b.s.submit(mfg()).unwrap();
    let first = b.tx().unwrap();
    let sqn = parse(&first).0;
    for _ in 0..3 {
        b.inject(sqn, &Reply::Nak(Nak::new(NakCode::MessageCheck)));
        // No wait for the reply timeout: the same bytes, same SQN, now.
        assert_eq!(b.tx().as_deref(), Some(&first[..]));
    }
    assert_eq!(b.s.diagnostics().check_resends, 3);
    b.inject(sqn, &Reply::Nak(Nak::new(NakCode::MessageCheck)));
    let reason = FailReason::Nak(Nak::new(NakCode::MessageCheck));
    assert_eq!(b.events.last(), Some(&Event::Failed { id, reason }));
    assert_eq!(b.s.diagnostics().last_nak, Some(NakCode::MessageCheck));
    assert_eq!(b.s.state(), PdState::Online);
}

#[test]
fn nak_01_then_a_good_reply_completes_the_command_once() {
    let mut b = Bench::online();
    let id = b.s.submit(mfg()).unwrap();
    let first = b.tx().unwrap();
    b.inject(parse(&first).0, &Reply::Nak(Nak::new(NakCode::MessageCheck)));
    let again = b.tx().unwrap();
    assert_eq!(again, first);
    b.answer(&again, |_| Reply::Ack);
    assert_eq!(b.events.last(), Some(&Event::Reply { id, reply: Reply::Ack }));
}

#[test]
fn a_reply_failing_its_crc_makes_the_session_resend_at_once() {
    let mut b = Bench::online();
    let id = b.s.submit(mfg()).unwrap();
    let first = b.tx().unwrap();
    let sqn = parse(&first).0;
    b.advance(2 * MS);
    let t = b.t;
    b.s.handle_bytes(t, &reply_bytes(1, sqn, &Reply::Ack, true));
    assert_eq!(b.tx().as_deref(), Some(&first[..]));
    assert_eq!(b.s.decode_stats().malformed, 1);
    b.advance(2 * MS);
    let t = b.t;
    b.s.handle_bytes(t, &reply_bytes(1, sqn, &Reply::Ack, false));
    b.drain();
    assert_eq!(b.events.last(), Some(&Event::Reply { id, reply: Reply::Ack }));
}

#[test]
fn crc_failures_forever_end_in_a_timeout_after_max_retries() {
    let mut b = Bench::online();
    let id = b.s.submit(mfg()).unwrap();
    let first = b.tx().unwrap();
    let sqn = parse(&first).0;
    let mut sent = 1;
    for _ in 0..20 {
        b.advance(2 * MS);
        let t = b.t;
        b.s.handle_bytes(t, &reply_bytes(1, sqn, &Reply::Ack, true));
        if b.tx().is_some() {
            sent += 1;
        }
    }
    assert_eq!(sent, 4, "first transmission and max_retries resends");
    b.advance(200 * MS);
    let _ = b.tx();
    assert!(
        b.events
            .iter()
            .any(|e| matches!(e, Event::Failed { id: i, reason: FailReason::Timeout { .. } } if *i == id))
    );
}

#[test]
fn busy_forever_is_offline_after_the_offline_timeout() {
    let mut b = Bench::online();
    let started = b.t;
    let id = b.s.submit(mfg()).unwrap();
    let mut tx = b.tx().unwrap();
    loop {
        b.answer(&tx, |_| Reply::Busy);
        assert!(
            b.t - started < Duration::from_secs(9),
            "BUSY held the command past the offline timeout"
        );
        let next = loop {
            b.t = b.s.poll_at().unwrap();
            if let Some(next) = b.tx() {
                break Some(next);
            }
            if b.s.state() == PdState::Offline {
                break None;
            }
        };
        match next {
            Some(next) if b.s.state() != PdState::Offline => tx = next,
            _ => break,
        }
    }
    assert_eq!(b.s.state(), PdState::Offline);
    assert!(b.events.contains(&Event::Failed {
        id,
        reason: FailReason::Offline
    }));
    assert!(b.s.diagnostics().busy_replies > 10);
}

#[test]
fn diagnostics_name_a_foreign_address_and_a_malformed_pdid() {
    let mut b = Bench::new();
    let tx = b.tx().unwrap();
    let sqn = parse(&tx).0;
    b.advance(2 * MS);
    let t = b.t;
    b.s.handle_bytes(t, &reply_bytes(5, sqn, &Reply::PdId(pdid()), false));
    assert_eq!(b.s.diagnostics().foreign_address, Some(5));
    assert_eq!(b.s.diagnostics().foreign_replies, 1);
    // A PDID two bytes short passes the CRC but not the decoder.
    let short = Reply::Other {
        code: crate::osdp::reply::pdid::CODE,
        data: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    };
    b.inject(sqn, &short);
    assert_eq!(b.s.diagnostics().malformed_replies, 1);
    let what = b.s.diagnostics().last_malformed.clone().unwrap();
    assert!(what.starts_with("osdp_PDID"), "{what}");
    assert_ne!(b.s.state(), PdState::Online);
}
