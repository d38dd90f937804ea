//! OSDP Secure Channel against LibOSDP: the agent's door link inside a secure session with a PD that
//! enforces it, install mode + `door keyset` + reconnect, and a wrong key that fails cleanly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use doorsync::cli::keyset::keyset_on;
use doorsync::cloud::sim::face_jpeg;
use doorsync::config::builtin_profile;
use doorsync::domain::{DoorRecord, DoorUserId};
use doorsync::door::db::DoorDb;
use doorsync::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS};
use doorsync::door::{Door, DoorError, OsdpDoor, OsdpDoorOptions};
use doorsync::osdp::sc::{Key16, scbk_d};
use doorsync::osdp::{SecureConfig, SessionConfig};

use super::{LIMITS, assert_json_matches, record, start_door};

const KEY_HEX: &str = "a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8";

fn key() -> Key16 {
    Key16::from_slice(&hex::decode(KEY_HEX).unwrap()).unwrap()
}

fn session_config(secure: SecureConfig) -> SessionConfig {
    let profile = builtin_profile("libosdp-reference").unwrap();
    let mut config = OsdpDoor::session_config(1, &profile);
    config.secure = Some(secure);
    config
}

#[tokio::test]
async fn secure_channel_libosdp_door_enforcing_it_takes_push_deletes_and_queries() {
    let test = "secure_channel_libosdp_door_enforcing_it_takes_push_deletes_and_queries";
    let Some((door, pty)) = start_door(test, &["--scbk", KEY_HEX, "--enforce-secure"]).await else {
        return;
    };
    let profile = builtin_profile("libosdp-reference").unwrap();
    let (agent, driver) = OsdpDoor::with_session(
        pty,
        session_config(SecureConfig::new(key())),
        &profile,
        OsdpDoorOptions::default(),
    );
    tokio::spawn(driver.run());
    let agent = Arc::new(agent);
    assert!(agent.wait_online(Duration::from_secs(30)).await, "no secure session");
    assert!(agent.link_status().secure_channel);

    let mut model = DoorDb::new(LIMITS);
    let ids = [1u32, 2, 3, 65, 129];
    let faces: Vec<Bytes> = ids
        .iter()
        .map(|id| Bytes::from(face_jpeg(&format!("sc-{id}"))))
        .collect();
    let records: Vec<DoorRecord> = ids
        .iter()
        .zip(&faces)
        .map(|(&id, f)| record(id, &format!("User {id}"), f))
        .collect();
    agent.upsert_users(&records).await.unwrap();
    model.apply_file(FT_TYPE_RECORDS, &vendor::encode_record_file(&records).unwrap());
    for (r, face) in records.iter().zip(&faces) {
        agent.put_face(r.id, r.face, face.clone()).await.unwrap();
        model.apply_file(FT_TYPE_FACE, &vendor::encode_face_file(r.id, face).unwrap());
    }
    let gone = [DoorUserId(2), DoorUserId(65)];
    agent.delete_users(&gone).await.unwrap();
    model.delete(&gone);
    assert_eq!(
        agent.digest().await.unwrap(),
        model.digest(),
        "DIGEST inside the session"
    );
    assert_eq!(agent.info().await.unwrap(), model.info(), "INFO inside the session");
    assert_eq!(
        agent.face_status(DoorUserId(1)).await.unwrap(),
        model.face_status(DoorUserId(1))
    );
    // LibOSDP's 256-byte buffer with our mark byte: 228-byte fragments under Secure Channel.
    assert_eq!(agent.stats().fragment_bytes, 228);
    assert!(agent.link_status().secure_channel);
    drop(agent);
    let json = door.stop();
    assert_json_matches(&json, &model, &[1, 3, 129]);
}

#[tokio::test]
async fn secure_channel_wrong_key_fails_cleanly_with_libosdp() {
    let test = "secure_channel_wrong_key_fails_cleanly_with_libosdp";
    let Some((_door, pty)) = start_door(test, &["--scbk", KEY_HEX, "--enforce-secure"]).await else {
        return;
    };
    let profile = builtin_profile("libosdp-reference").unwrap();
    let wrong = SecureConfig::new(Key16::new([0x55; 16]));
    let options = OsdpDoorOptions {
        connect_wait: Duration::from_secs(3),
        ..OsdpDoorOptions::default()
    };
    let (agent, driver) = OsdpDoor::with_session(pty, session_config(wrong), &profile, options);
    tokio::spawn(driver.run());
    assert!(!agent.wait_online(Duration::from_secs(3)).await);
    let status = agent.link_status();
    assert!(!status.secure_channel);
    assert_eq!(
        status.secure_error.as_deref(),
        Some("the door's cryptogram does not match — wrong SCBK for this door?")
    );
    match agent.digest().await {
        Err(DoorError::Offline { reason }) => assert_eq!(
            reason,
            "secure channel handshake failed: the door's cryptogram does not match — wrong SCBK for this door?"
        ),
        other => panic!("a door with the wrong key must be offline: {other:?}"),
    }
}

#[tokio::test]
async fn secure_channel_libosdp_install_mode_keyset_then_only_the_new_key_works() {
    let test = "secure_channel_libosdp_install_mode_keyset_then_only_the_new_key_works";
    let Some((_door, mut pty)) = start_door(test, &["--install-mode"]).await else {
        return;
    };
    let mut install = SecureConfig::new(scbk_d());
    install.install_mode = true;
    let base = session_config(install.clone());
    let t = Duration::from_secs(10);
    let done = keyset_on(&mut pty, base.clone(), install.clone(), key(), t).await;
    assert_eq!((done.key_sent, done.confirmed, done.error), (true, true, None));
    // The PD left install mode: SCBK-D no longer opens a session; the new key still does.
    let again = keyset_on(
        &mut pty,
        base.clone(),
        install,
        Key16::new([0x66; 16]),
        Duration::from_secs(3),
    )
    .await;
    assert!(!again.key_sent, "{again:?}");
    assert!(again.error.unwrap().contains("secure channel handshake failed"));
    let with_new = keyset_on(&mut pty, base, SecureConfig::new(key()), Key16::new([0x66; 16]), t).await;
    assert!(with_new.confirmed, "{with_new:?}");
}
