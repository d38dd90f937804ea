//! `FileSend` driven by hand: FTSTAT fixtures, link failures and a synthetic clock.

use std::time::{Duration, Instant};

use super::*;
use crate::osdp::NakCode;

const FRAG: usize = 1000;

fn limits() -> FileSendLimits {
    FileSendLimits {
        max_ft_delay: Duration::from_secs(2),
        resume_wait: Duration::from_secs(12),
        resume: ResumePolicy::FromLastAck,
    }
}

fn stat(status: i16, delay_ms: u16) -> FtStat {
    FtStat {
        action: 1,
        delay_ms,
        status: FtStatus::from(status),
        update_msg_max: 0,
    }
}

/// The offset and length of the fragment `poll` asks for, or a panic naming what it asked instead.
fn expect_send(s: &mut FileSend, now: Instant) -> (u32, usize) {
    match s.poll(now, Ok(FRAG)) {
        Action::Send { offset, bytes } => (offset, bytes.len()),
        other => panic!("wanted a fragment, got {other:?}"),
    }
}

#[test]
fn fragments_go_out_in_order_and_processed_delivers() {
    let t = Instant::now();
    let mut s = FileSend::new(2500, 0, limits(), t);
    assert_eq!(expect_send(&mut s, t), (0, 1000));
    s.on_ftstat(t, &stat(0, 0));
    assert_eq!(expect_send(&mut s, t), (1000, 1000));
    s.on_ftstat(t, &stat(0, 0));
    assert_eq!(expect_send(&mut s, t), (2000, 500));
    s.on_ftstat(t, &stat(1, 0));
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::Done(Outcome::Delivered)));
}

#[test]
fn a_transfer_resumes_at_the_offset_it_is_given() {
    let t = Instant::now();
    let mut s = FileSend::new(2500, 2000, limits(), t);
    assert_eq!(expect_send(&mut s, t), (2000, 500));
}

#[test]
fn nak_mid_file_waits_for_the_link_and_resends_the_same_offset() {
    let t = Instant::now();
    let mut s = FileSend::new(3000, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(0, 0));
    assert_eq!(expect_send(&mut s, t), (1000, 1000));
    s.on_error(
        t,
        DoorError::Nak {
            code: NakCode::MessageCheck,
        },
    );
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::WaitOnline { deadline } if deadline == t + Duration::from_secs(12)));
    s.on_link_back(true);
    assert_eq!(expect_send(&mut s, t), (1000, 1000), "resumed, not restarted");
    assert_eq!(s.acked(), 1000);
}

#[test]
fn a_misconfiguration_nak_fails_at_once_and_is_not_resumable() {
    let t = Instant::now();
    let mut s = FileSend::new(3000, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_error(
        t,
        DoorError::Misconfigured(crate::door::Misconfig::SecureChannel(NakCode::EncryptionRequired)),
    );
    match s.poll(t, Ok(FRAG)) {
        Action::Done(Outcome::Failed { error, resumable }) => {
            assert_eq!(error.class(), FailureClass::DoorMisconfigured);
            assert!(!resumable);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_link_down_beyond_resume_wait_fails_resumably() {
    let t = Instant::now();
    let mut s = FileSend::new(3000, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(0, 0));
    expect_send(&mut s, t);
    s.on_error(t, DoorError::Timeout);
    s.on_link_back(false);
    match s.poll(t + Duration::from_secs(12), Ok(FRAG)) {
        Action::Done(Outcome::Failed { resumable, .. }) => assert!(resumable),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.acked(), 1000);
}

#[test]
fn failures_without_progress_are_bounded_even_while_the_link_stays_up() {
    let t = Instant::now();
    let mut s = FileSend::new(3000, 0, limits(), t);
    let mut attempts = 0;
    loop {
        match s.poll(t, Ok(FRAG)) {
            Action::Send { .. } => {
                attempts += 1;
                s.on_error(t, DoorError::Timeout);
            }
            Action::WaitOnline { .. } => s.on_link_back(true),
            Action::Done(Outcome::Failed { .. }) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(attempts, MAX_ATTEMPTS_WITHOUT_PROGRESS);
}

#[test]
fn a_door_that_lost_the_partial_file_gets_it_whole_once_after_an_abort() {
    let t = Instant::now();
    let mut s = FileSend::new(1500, 1000, limits(), t);
    assert_eq!(expect_send(&mut s, t), (1000, 500));
    // Rebooted mid-file: the last fragment still leaves bytes missing.
    s.on_ftstat(t, &stat(0, 0));
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::Abort));
    s.on_aborted();
    assert_eq!(expect_send(&mut s, t), (0, 1000));
    s.on_ftstat(t, &stat(0, 0));
    assert_eq!(expect_send(&mut s, t), (1000, 500));
    s.on_ftstat(t, &stat(0, 0));
    match s.poll(t, Ok(FRAG)) {
        Action::Done(Outcome::Failed { error, .. }) => assert!(matches!(error, DoorError::Corrupt { .. })),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ft_delay_is_obeyed_up_to_max_ft_delay_and_counted() {
    let t = Instant::now();
    let mut s = FileSend::new(3000, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(0, 300));
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::SleepUntil(at) if at == t + Duration::from_millis(300)));
    let t = t + Duration::from_millis(300);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(0, u16::MAX));
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::SleepUntil(at) if at == t + Duration::from_secs(2)));
    assert_eq!(s.delays_capped, 1);
    assert_eq!(expect_send(&mut s, t + Duration::from_secs(2)), (2000, 1000));
}

#[test]
fn finishing_forever_ends_after_resume_wait() {
    let mut t = Instant::now();
    let mut s = FileSend::new(500, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(3, 0));
    let started = t;
    loop {
        match s.poll(t, Ok(FRAG)) {
            Action::Send { offset, bytes } => {
                assert_eq!((offset, bytes.len()), (500, 0), "status requests only");
                t += Duration::from_millis(500);
                s.on_ftstat(t, &stat(3, 0));
            }
            Action::Done(Outcome::Failed { error, .. }) => {
                assert!(error.to_string().contains("finishing"), "{error}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(t - started >= Duration::from_secs(12) && t - started < Duration::from_secs(13));
}

#[test]
fn rebooting_restarts_the_link_and_counts_as_delivered() {
    let t = Instant::now();
    let mut s = FileSend::new(500, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(2, 0));
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::RestartLink));
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::Done(Outcome::Delivered)));
}

#[test]
fn negative_and_unknown_statuses_end_the_file() {
    let t = Instant::now();
    let mut s = FileSend::new(500, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(-3, 0));
    assert!(matches!(
        s.poll(t, Ok(FRAG)),
        Action::Done(Outcome::Refused(FtStatus::Malformed))
    ));

    let mut s = FileSend::new(500, 0, limits(), t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(7, 0));
    match s.poll(t, Ok(FRAG)) {
        Action::Done(Outcome::Failed { error, resumable }) => {
            assert!(error.to_string().contains("FTSTAT status"), "{error}");
            assert!(!resumable);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn restart_policy_aborts_and_starts_over_after_the_link_returns() {
    let t = Instant::now();
    let l = FileSendLimits {
        resume: ResumePolicy::Restart,
        ..limits()
    };
    let mut s = FileSend::new(3000, 0, l, t);
    expect_send(&mut s, t);
    s.on_ftstat(t, &stat(0, 0));
    expect_send(&mut s, t);
    s.on_error(t, DoorError::Timeout);
    s.on_link_back(true);
    assert!(matches!(s.poll(t, Ok(FRAG)), Action::Abort));
    s.on_aborted();
    assert_eq!(expect_send(&mut s, t), (0, 1000));
}
