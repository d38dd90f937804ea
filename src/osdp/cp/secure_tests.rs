//! The CP session with Secure Channel, driven against the crate's PD-side link with a [`PdChannel`]:
//! handshake before online, every packet sealed afterwards, no downgrade, re-handshake after a PD reset.

use std::time::{Duration, Instant};

use super::*;
use crate::osdp::command::{KeySet, Mfg};
use crate::osdp::pd::{PdInput, PdLink};
use crate::osdp::reply::{CapRecord, PdId};
use crate::osdp::sc::{Key16, PdChannel, Scbk, scbk_d};
use crate::osdp::wire::ctrl;

const KEY: [u8; 16] = [0x3C; 16];

fn pdcap() -> PdCap {
    PdCap {
        records: vec![
            CapRecord {
                function: 9,
                compliance: 1,
                items: 1,
            },
            CapRecord {
                function: 10,
                compliance: 0,
                items: 1,
            },
        ],
    }
}

struct Bench {
    s: PdSession,
    pd: PdLink,
    t: Instant,
    events: Vec<Event>,
    /// Every packet the CP wrote (mark byte removed).
    sent: Vec<Vec<u8>>,
    /// Flip this byte of the next reply (CRC recomputed), to play an attacker on the line.
    tamper_next_reply: Option<usize>,
}

fn secure_config(scbk: Scbk, install_mode: bool) -> SessionConfig {
    let mut c = SessionConfig::new(1);
    c.secure = Some(SecureConfig {
        scbk,
        install_mode,
        rng_seed: Some(7),
    });
    c
}

fn pd_link(key: Option<Scbk>, install_mode: bool) -> PdLink {
    PdLink::new(1, 256).with_secure(PdChannel::new(key, install_mode), Some(9))
}

impl Bench {
    fn new(config: SessionConfig, pd: PdLink) -> Self {
        let t = Instant::now();
        Bench {
            s: PdSession::new(config, t),
            pd,
            t,
            events: Vec::new(),
            sent: Vec::new(),
            tamper_next_reply: None,
        }
    }

    fn deliver(&mut self, mut bytes: Vec<u8>) {
        if let Some(i) = self.tamper_next_reply.take() {
            bytes[i] ^= 0x01;
            let n = bytes.len() - 2;
            let crc = crate::osdp::wire::crc16(&bytes[..n]).to_le_bytes();
            bytes[n..].copy_from_slice(&crc);
        }
        self.s.handle_bytes(self.t, &bytes);
    }

    /// Run the exchange for `ms` simulated milliseconds, 1 ms steps.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            if let Some(tx) = self.s.poll_transmit(self.t) {
                let packet = tx.strip_prefix(&[0xFF]).unwrap_or(&tx).to_vec();
                self.sent.push(packet);
                self.pd.handle_bytes(self.t, &tx);
                while let Some(input) = self.pd.poll_input() {
                    match input {
                        PdInput::Transmit(b) => self.deliver(b),
                        PdInput::Command { to, command } => {
                            let reply = match &command {
                                Command::Id => Reply::PdId(PdId::default()),
                                Command::Cap => Reply::PdCap(pdcap()),
                                Command::Mfg(m) => Reply::MfgRep(crate::osdp::reply::MfgRep {
                                    vendor_code: m.vendor_code,
                                    data: m.data.clone(),
                                }),
                                _ => Reply::Ack,
                            };
                            let b = self.pd.reply(to, &reply).unwrap();
                            if let Command::KeySet(ks) = command {
                                self.pd.set_key(ks.scbk);
                            }
                            self.deliver(b);
                        }
                    }
                }
            }
            while let Some(e) = self.s.poll_event() {
                self.events.push(e);
            }
            self.t += Duration::from_millis(1);
        }
    }

    fn packets_after_discovery_are_sealed(&self) -> bool {
        self.sent
            .iter()
            .filter(|p| p[5] != 0x61 && p[5] != 0x62)
            .all(|p| p[4] & ctrl::SCB != 0)
    }
}

#[test]
fn test_secure_door_goes_online_only_after_handshake_and_seals_everything() {
    let mut b = Bench::new(
        secure_config(Key16::new(KEY), false),
        pd_link(Some(Key16::new(KEY)), false),
    );
    b.run(50);
    assert_eq!(b.s.state(), PdState::Online);
    assert!(b.s.secure_channel_open());
    assert!(matches!(b.events.first(), Some(Event::Online { .. })));
    let codes: Vec<u8> = b
        .sent
        .iter()
        .take(4)
        .map(|p| p[5 + usize::from(p[4] & 0x08 != 0) * 3])
        .collect();
    assert_eq!(codes, [0x61, 0x62, 0x76, 0x77]);
    let id =
        b.s.submit(Command::Mfg(Mfg {
            vendor_code: [1, 2, 3],
            data: vec![9; 40],
        }))
        .unwrap();
    b.run(500);
    assert!(b.events.iter().any(
        |e| matches!(e, Event::Reply { id: got, reply: Reply::MfgRep(r) } if *got == id && r.data == vec![9; 40])
    ));
    assert!(b.sent.len() > 6, "keep-alive polls ran");
    assert!(b.packets_after_discovery_are_sealed());
}

#[test]
fn test_wrong_key_never_goes_online_and_names_the_cause() {
    let mut b = Bench::new(
        secure_config(Key16::new([1; 16]), false),
        pd_link(Some(Key16::new(KEY)), false),
    );
    b.run(3000);
    assert_ne!(b.s.state(), PdState::Online);
    assert!(!b.events.iter().any(|e| matches!(e, Event::Online { .. })));
    assert!(b.events.contains(&Event::Offline));
    assert_eq!(
        b.s.secure_failure().map(ToString::to_string).as_deref(),
        Some("the door's cryptogram does not match — wrong SCBK for this door?")
    );
    // Retried (paced), never anything but ID, CAP and CHLNG on the wire.
    assert!(
        b.sent
            .iter()
            .all(|p| matches!(p[5 + usize::from(p[4] & 0x08 != 0) * 3], 0x61 | 0x62 | 0x76))
    );
    assert!(b.sent.len() >= 6 && b.sent.len() < 30, "{}", b.sent.len());
}

#[test]
fn test_plain_door_refusing_the_handshake_stays_offline() {
    // A PD with no secure channel at all NAKs the security block.
    let mut b = Bench::new(secure_config(Key16::new(KEY), false), PdLink::new(1, 256));
    b.run(1500);
    assert_ne!(b.s.state(), PdState::Online);
    assert_eq!(b.s.secure_failure(), Some(&crate::osdp::sc::ScError::Refused));
}

#[test]
fn test_pd_reset_or_tampered_reply_leads_to_a_new_handshake() {
    let mut b = Bench::new(
        secure_config(Key16::new(KEY), false),
        pd_link(Some(Key16::new(KEY)), false),
    );
    b.run(50);
    assert!(b.s.secure_channel_open());
    // The PD power-cycles: its session is gone, it NAKs the next sealed poll in plain text.
    b.pd = pd_link(Some(Key16::new(KEY)), false);
    b.run(1000);
    assert!(b.s.secure_channel_open());
    let onlines = b.events.iter().filter(|e| matches!(e, Event::Online { .. })).count();
    assert!(onlines >= 2, "{onlines}");
    // An attacker flips one bit of a reply: MAC check fails, the session restarts, nothing goes plain.
    b.tamper_next_reply = Some(8);
    b.run(1000);
    assert!(b.s.secure_channel_open());
    assert!(b.packets_after_discovery_are_sealed());
    let onlines2 = b.events.iter().filter(|e| matches!(e, Event::Online { .. })).count();
    assert!(onlines2 > onlines);
}

#[test]
fn test_install_mode_keyset_then_new_key() {
    let new = Key16::new([0x77; 16]);
    let mut b = Bench::new(secure_config(scbk_d(), true), pd_link(None, true));
    b.run(50);
    assert!(b.s.secure_channel_open());
    let id = b.s.submit(Command::KeySet(KeySet { scbk: new.clone() })).unwrap();
    b.run(20);
    assert!(
        b.events
            .iter()
            .any(|e| matches!(e, Event::Reply { id: got, reply: Reply::Ack } if *got == id))
    );
    // The PD left install mode: SCBK-D no longer works, the new key does.
    let pd = std::mem::replace(&mut b.pd, PdLink::new(1, 256));
    let mut old = Bench::new(secure_config(scbk_d(), true), pd);
    old.run(1500);
    assert!(!old.s.secure_channel_open());
    let pd = std::mem::replace(&mut old.pd, PdLink::new(1, 256));
    let mut again = Bench::new(secure_config(new, false), pd);
    again.run(50);
    assert!(again.s.secure_channel_open());
}

#[test]
fn test_fragment_room_accounts_for_scb_mac_and_padding() {
    let mut b = Bench::new(
        secure_config(Key16::new(KEY), false),
        pd_link(Some(Key16::new(KEY)), false),
    );
    b.run(50);
    // Receive buffer 256, our mark byte: packets of at most 255 bytes → 239 DATA bytes (228 of file data).
    assert_eq!(b.s.max_command_data_bytes(), 239);
    let data = vec![0u8; 239 - 3];
    b.s.submit(Command::Mfg(Mfg {
        vendor_code: [1, 2, 3],
        data,
    }))
    .unwrap();
    b.run(10);
    assert!(b.sent.iter().all(|p| p.len() <= 255));
    assert!(matches!(
        b.s.submit(Command::Mfg(Mfg {
            vendor_code: [1, 2, 3],
            data: vec![0; 237],
        })),
        Err(SubmitError::TooLarge { .. })
    ));
}
