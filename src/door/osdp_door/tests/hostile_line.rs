//! The hostile door below OSDP (garbage, bad LEN, bad CRC, wrong SQN, another address) through the
//! line script of `line.rs`: every call ends within the session's retry bound or the connect wait.

use std::time::Duration;

use super::hostile::{bounded, seed_two_users, user_count};
use super::line::{Line, packet, run_line_pd};
use super::*;
use crate::door::FailureClass;
use crate::osdp::Reply;

/// A door behind a line script (see `line.rs`).
fn on_line(line: Line) -> (Arc<OsdpDoor>, SharedPeer) {
    let (cp, pd) = tokio::io::duplex(64 * 1024);
    let profile = profile();
    let peer = Peer::new(profile.vendor_code, Knobs::default());
    tokio::spawn(run_line_pd(pd, ADDR, peer.clone(), line));
    let (door, driver) = OsdpDoor::over(cp, ADDR, &profile, OsdpDoorOptions::default());
    tokio::spawn(driver.run());
    (Arc::new(door), peer)
}

/// Honest until the door is online and has two users, then `bad` for every reply.
pub(super) fn turns_bad(
    mut bad: impl FnMut(u8, Option<Reply>) -> Vec<u8> + Send + 'static,
) -> (Line, Arc<std::sync::atomic::AtomicBool>) {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on = flag.clone();
    let line: Line = Box::new(move |_, sqn, honest| {
        if on.load(std::sync::atomic::Ordering::SeqCst) {
            bad(sqn, honest)
        } else {
            honest.map(|r| packet(ADDR, sqn, &r)).unwrap_or_default()
        }
    });
    (line, flag)
}

#[tokio::test(start_paused = true)]
async fn garbage_bad_lengths_bad_crcs_wrong_sqns_and_other_addresses_stay_bounded() {
    type Bad = fn(u8, Option<Reply>) -> Vec<u8>;
    let cases: [(&str, Bad); 6] = [
        ("garbage bytes", |_, _| {
            (0..200u32).map(|i| (i * 37 % 251) as u8).collect()
        }),
        ("LEN 0xFFFF", |_, _| vec![0x53, 0x81, 0xFF, 0xFF, 0x04, 0x40, 0, 0]),
        ("shorter than a header", |_, _| vec![0x53, 0x81, 0x03, 0x00]),
        ("bad CRC", |sqn, r| {
            let mut p = packet(ADDR, sqn, &r.unwrap_or(Reply::Ack));
            let last = p.len() - 1;
            p[last] ^= 0xFF;
            p
        }),
        ("wrong SQN", |sqn, r| {
            packet(ADDR, sqn % 3 + 1, &r.unwrap_or(Reply::Ack))
        }),
        ("another address", |sqn, r| {
            packet(ADDR + 4, sqn, &r.unwrap_or(Reply::Ack))
        }),
    ];
    for (name, bad) in cases {
        let (line, flag) = turns_bad(bad);
        let (door, peer) = on_line(line);
        seed_two_users(&door).await;
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let (result, took) = bounded(door.digest()).await;
        let err = result.unwrap_err();
        assert!(
            matches!(err.class(), FailureClass::Reconnect | FailureClass::Resend),
            "{name}: {err}"
        );
        // Retries of one command (4 × 200 ms) or, at worst, the wait for the link to come back.
        let bound = OsdpDoorOptions::default().connect_wait + Duration::from_secs(1);
        assert!(took <= bound, "{name}: {took:?}");
        assert_eq!(user_count(&peer), 2, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn one_bad_crc_is_cured_by_the_session_resend() {
    let mut spoiled = false;
    let (line, flag) = turns_bad(move |sqn, r| {
        let mut p = packet(ADDR, sqn, &r.unwrap_or(Reply::Ack));
        if !spoiled {
            spoiled = true;
            let last = p.len() - 1;
            p[last] ^= 0xFF;
        }
        p
    });
    let (door, _) = on_line(line);
    seed_two_users(&door).await;
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    let (result, took) = bounded(door.digest()).await;
    assert_eq!(result.unwrap().user_count, 2);
    assert!(
        took < Duration::from_millis(200),
        "resent at once, not after the reply timeout: {took:?}"
    );
}
