use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::osdp::command::Mfg;
use crate::osdp::reply::MfgRep;
use crate::serial::test_pd::{TEST_PDID, basic_reply, run_pd};

const ADDR: u8 = 3;

fn mfg(tag: u8) -> Command {
    Command::Mfg(Mfg {
        vendor_code: [1, 2, 3],
        data: vec![tag],
    })
}

fn echo(command: &Command) -> Option<Reply> {
    match command {
        Command::Mfg(m) => Some(Reply::MfgRep(MfgRep {
            vendor_code: m.vendor_code,
            data: m.data.clone(),
        })),
        other => basic_reply(other, 1024),
    }
}

fn start(
    config: SessionConfig,
) -> (
    LinkHandle,
    tokio::task::JoinHandle<Result<(), DriverError>>,
    tokio::io::DuplexStream,
) {
    let (cp, pd) = tokio::io::duplex(8192);
    let (handle, driver) = link(cp, config);
    (handle, tokio::spawn(driver.run()), pd)
}

#[tokio::test(start_paused = true)]
async fn request_is_answered_once_discovery_completed() {
    let (handle, _driver, pd) = start(SessionConfig::new(ADDR));
    tokio::spawn(run_pd(pd, ADDR, echo));
    let reply = handle.request(mfg(7), Priority::Normal).await.unwrap();
    assert_eq!(
        reply,
        Reply::MfgRep(MfgRep {
            vendor_code: [1, 2, 3],
            data: vec![7]
        })
    );
    let status = handle.status();
    assert_eq!(status.state, PdState::Online);
    assert_eq!(status.pdid, Some(TEST_PDID));
    assert_eq!(status.online_count, 1);
    // 1024-byte receive buffer, minus the mark byte, minus header, code and CRC.
    assert_eq!(status.max_command_data_bytes, 1023 - 8);
}

#[tokio::test(start_paused = true)]
async fn urgent_request_overtakes_queued_normal_ones() {
    let (handle, _driver, pd) = start(SessionConfig::new(ADDR));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut ids_seen = 0;
    tokio::spawn(run_pd(pd, ADDR, move |c| {
        if let Command::Id = c {
            ids_seen += 1;
            if ids_seen == 1 {
                return None; // the first discovery attempt is lost: requests pile up meanwhile
            }
        }
        if let Command::Mfg(m) = c {
            log.lock().unwrap().push(m.data[0]);
        }
        echo(c)
    }));
    let a = handle.clone();
    let b = handle.clone();
    let u = handle.clone();
    let ra = tokio::spawn(async move { a.request(mfg(b'a'), Priority::Normal).await });
    tokio::task::yield_now().await;
    let rb = tokio::spawn(async move { b.request(mfg(b'b'), Priority::Normal).await });
    tokio::task::yield_now().await;
    let ru = tokio::spawn(async move { u.request(mfg(b'u'), Priority::Urgent).await });
    for r in [ra, rb, ru] {
        r.await.unwrap().unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec![b'u', b'a', b'b']);
}

#[tokio::test(start_paused = true)]
async fn request_to_an_offline_pd_fails_at_once() {
    let mut config = SessionConfig::new(ADDR);
    config.offline_after = Duration::from_secs(2);
    let (handle, _driver, pd) = start(config);
    tokio::spawn(run_pd(pd, ADDR, |_| None));
    let pending = handle.request(mfg(1), Priority::Normal).await;
    assert_eq!(
        pending,
        Err(LinkError::Offline),
        "a queued request fails when the PD goes offline"
    );
    assert_eq!(handle.status().state, PdState::Offline);
    assert_eq!(handle.request(mfg(2), Priority::Urgent).await, Err(LinkError::Offline));
    assert!(!handle.wait_online(Duration::from_secs(1)).await);
}

#[tokio::test(start_paused = true)]
async fn reports_on_keep_alive_polls_reach_the_sink() {
    let (cp, pd) = tokio::io::duplex(8192);
    let (handle, driver) = link(cp, SessionConfig::new(ADDR));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = driver.on_unsolicited(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    tokio::spawn(driver.run());
    let mut queued = Some(Reply::MfgRep(MfgRep {
        vendor_code: [9, 9, 9],
        data: vec![0x81],
    }));
    tokio::spawn(run_pd(pd, ADDR, move |c| match c {
        Command::Poll => Some(queued.take().unwrap_or(Reply::Ack)),
        other => echo(other),
    }));
    let report = rx.recv().await.unwrap();
    assert!(matches!(report, Reply::MfgRep(MfgRep { data, .. }) if data == [0x81]));
    drop(handle);
}

#[tokio::test(start_paused = true)]
async fn lost_reply_is_resent_and_counted_as_a_retry() {
    let (handle, _driver, pd) = start(SessionConfig::new(ADDR));
    let mut dropped = false;
    tokio::spawn(run_pd(pd, ADDR, move |c| {
        if matches!(c, Command::Mfg(_)) && !dropped {
            dropped = true;
            return None;
        }
        echo(c)
    }));
    handle.request(mfg(5), Priority::Normal).await.unwrap();
    let stats = handle.wire_stats();
    assert_eq!(stats.retries, 1);
    assert!(stats.bytes_written > 0 && stats.bytes_read > 0);
    assert!(stats.transmissions >= 4, "ID, CAP, MFG twice: {stats:?}");
}

#[tokio::test(start_paused = true)]
async fn driver_ends_cleanly_when_every_handle_is_dropped() {
    let (handle, driver, pd) = start(SessionConfig::new(ADDR));
    tokio::spawn(run_pd(pd, ADDR, echo));
    assert!(handle.wait_online(Duration::from_secs(5)).await);
    drop(handle);
    assert!(driver.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn closed_line_stops_the_driver_and_fails_waiting_requests() {
    let mut config = SessionConfig::new(ADDR);
    config.poll_interval = Duration::from_secs(60);
    let (handle, driver, pd) = start(config);
    drop(pd);
    assert!(matches!(
        driver.await.unwrap(),
        Err(DriverError::Closed | DriverError::Io(_))
    ));
    assert_eq!(handle.request(mfg(1), Priority::Normal).await, Err(LinkError::Stopped));
}
