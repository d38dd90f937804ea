//! Secure Channel against the SIA Annex E vectors and byte fixtures of one session, and tamper refusal.

use proptest::prelude::*;

use super::crypto::SessionKeys;
use super::packet::{ScFrame, scb};
use super::*;
use crate::osdp::wire::crc16;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '|'], "")).unwrap()
}

fn h16(s: &str) -> [u8; 16] {
    hex(s).try_into().unwrap()
}

const RND_A: [u8; 8] = [0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7];
const RND_B: [u8; 8] = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7];
const CUID: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn test_annex_e_key_derivation_and_cryptograms() {
    let keys = SessionKeys::derive(&scbk_d(), &RND_A);
    assert_eq!(keys.enc.bytes(), &h16("BF8DC2A8329ACB8C67C6D0CD9A451682"));
    assert_eq!(keys.mac1.bytes(), &h16("5E86C676603BDEE2D8BEAFE178637332"));
    assert_eq!(keys.mac2.bytes(), &h16("6FDA86E857777E81132035758239172E"));
    let server = keys.server_cryptogram(&RND_A, &RND_B);
    assert_eq!(server, h16("26D3356E07762D262801FC8E6665A891"));
    assert_eq!(
        keys.client_cryptogram(&RND_A, &RND_B),
        h16("FDE5D2F428EC16312471EA3C02BD7796")
    );
    assert_eq!(keys.initial_rmac(&server), h16("B2A30057EB98BA2229EC1F875662B524"));
}

#[test]
fn test_keys_never_print() {
    let keys = SessionKeys::derive(&scbk_d(), &RND_A);
    let text = format!("{keys:?} {:?}", scbk_d());
    assert!(
        !text.contains("BF") && !text.contains("48") && !text.contains("0x"),
        "{text}"
    );
    let cp = CpChannel::new(scbk_d(), true);
    assert!(!format!("{cp:?}").contains("48, 49"), "{cp:?}");
}

/// CP and PD (SCBK-D, install mode) through the four handshake packets with the Annex E randoms.
fn handshake() -> (CpChannel, PdChannel) {
    let mut cp = CpChannel::new(scbk_d(), true);
    let mut pd = PdChannel::new(None, true);
    let chlng = cp.challenge(1, 3, RND_A).unwrap();
    let mut want = hex("53 01 13 00 0F 03 11 00 76 B0 B1 B2 B3 B4 B5 B6 B7");
    want.extend(crc16(&want).to_le_bytes());
    assert_eq!(chlng, want);
    let ccrypt = pd.on_chlng(&ScFrame::parse(&chlng).unwrap(), 3, RND_B, CUID).unwrap();
    assert_eq!(&ccrypt[..9], hex("53 81 2B 00 0F 03 12 00 76").as_slice());
    assert_eq!(&ccrypt[25..41], hex("FDE5D2F428EC16312471EA3C02BD7796").as_slice());
    let scrypt = cp.answer_ccrypt(&ScFrame::parse(&ccrypt).unwrap(), 1, 1).unwrap();
    assert_eq!(&scrypt[..9], hex("53 01 1B 00 0D 03 13 00 77").as_slice());
    assert_eq!(&scrypt[9..25], hex("26D3356E07762D262801FC8E6665A891").as_slice());
    let rmac_i = pd.on_scrypt(&ScFrame::parse(&scrypt).unwrap(), 1).unwrap();
    assert_eq!(&rmac_i[..9], hex("53 81 1B 00 0D 03 14 01 78").as_slice());
    assert_eq!(&rmac_i[9..25], hex("B2A30057EB98BA2229EC1F875662B524").as_slice());
    cp.accept_rmac_i(&ScFrame::parse(&rmac_i).unwrap()).unwrap();
    assert!(cp.is_open() && pd.is_open());
    (cp, pd)
}

const POLL: &str = "53 01 0E 00 0E 02 15 60 | 86 DA 77 7E | 90 4F";
const ACK: &str = "53 81 0E 00 0E 02 16 40 | F5 E7 DF 51 | 69 1F";
const MFG: &str = "53 01 1E 00 0F 02 17 80 | 37 20 3E 23 8D AE 6D 6B 2F 6D 5E D3 7B 28 68 03 | 2A DC DB 52 | 67 92";

#[test]
fn test_session_fixtures_poll_ack_mfg() {
    let (mut cp, mut pd) = handshake();
    let poll = cp.seal_command(1, 2, 0x60, &[]).unwrap();
    assert_eq!(poll, hex(POLL));
    assert_eq!(
        pd.open_command(&ScFrame::parse(&poll).unwrap()).unwrap(),
        (0x60, vec![])
    );
    let ack = pd.seal_reply(1, 2, 0x40, &[]).unwrap();
    assert_eq!(ack, hex(ACK));
    assert_eq!(cp.open_reply(&ScFrame::parse(&ack).unwrap()).unwrap(), (0x40, vec![]));
    let data = hex("12 34 56 01 02 03 04");
    let mfg = cp.seal_command(1, 3, 0x80, &data).unwrap();
    assert_eq!(mfg, hex(MFG));
    assert_eq!(
        pd.open_command(&ScFrame::parse(&mfg).unwrap()).unwrap(),
        (0x80, data.clone())
    );
    // The reply with data goes back encrypted (0x18) and decrypts to the same bytes.
    let rep = pd.seal_reply(1, 3, 0x90, &data).unwrap();
    let frame = ScFrame::parse(&rep).unwrap();
    assert_eq!(frame.scb_type, scb::REPLY_ENC);
    assert_eq!(frame.data.len(), 16);
    assert_eq!(cp.open_reply(&frame).unwrap(), (0x90, data));
}

#[test]
fn test_replayed_or_stale_packet_is_refused_and_ends_session() {
    let (mut cp, mut pd) = handshake();
    let poll = cp.seal_command(1, 2, 0x60, &[]).unwrap();
    pd.open_command(&ScFrame::parse(&poll).unwrap()).unwrap();
    let ack = pd.seal_reply(1, 2, 0x40, &[]).unwrap();
    cp.open_reply(&ScFrame::parse(&ack).unwrap()).unwrap();
    // The same POLL again: the chain moved on, so its MAC no longer matches.
    assert_eq!(
        pd.open_command(&ScFrame::parse(&poll).unwrap()),
        Err(ScError::MacMismatch)
    );
    assert!(!pd.is_open());
    assert_eq!(pd.seal_reply(1, 2, 0x40, &[]), Err(ScError::NotOpen));
}

#[test]
fn test_wrong_key_is_a_cryptogram_mismatch_on_both_sides() {
    // CP holds a key, PD is in install mode with SCBK-D only: the CP's check of CCRYPT fails.
    let mut cp = CpChannel::new(Key16::new([7; 16]), false);
    let mut pd = PdChannel::new(None, true);
    let chlng = cp.challenge(1, 2, RND_A).unwrap();
    let ccrypt = pd.on_chlng(&ScFrame::parse(&chlng).unwrap(), 2, RND_B, CUID).unwrap();
    assert_eq!(
        cp.answer_ccrypt(&ScFrame::parse(&ccrypt).unwrap(), 1, 3),
        Err(ScError::CryptogramMismatch)
    );
    assert_eq!(
        ScError::CryptogramMismatch.to_string(),
        "the door's cryptogram does not match — wrong SCBK for this door?"
    );
    // A PD with a key, not in install mode, ignores the request for SCBK-D and says kk = 01.
    let mut cp = CpChannel::new(scbk_d(), true);
    let mut pd = PdChannel::new(Some(Key16::new([9; 16])), false);
    let chlng = cp.challenge(1, 2, RND_A).unwrap();
    let ccrypt = pd.on_chlng(&ScFrame::parse(&chlng).unwrap(), 2, RND_B, CUID).unwrap();
    assert_eq!(ScFrame::parse(&ccrypt).unwrap().scb_data, &[0x01]);
    assert_eq!(
        cp.answer_ccrypt(&ScFrame::parse(&ccrypt).unwrap(), 1, 3),
        Err(ScError::CryptogramMismatch)
    );
    // A PD with neither key nor install mode refuses.
    let mut pd = PdChannel::new(None, false);
    assert_eq!(
        pd.on_chlng(&ScFrame::parse(&chlng).unwrap(), 2, RND_B, CUID),
        Err(ScError::NoKey)
    );
}

#[test]
fn test_keyset_moves_both_sides_to_the_new_key() {
    let (mut cp, mut pd) = handshake();
    let new = Key16::new([0x42; 16]);
    pd.set_key(new.clone());
    cp.rekey(new);
    assert!(!pd.install_mode() && !cp.is_open());
    let chlng = cp.challenge(1, 0, RND_B).unwrap();
    let ccrypt = pd.on_chlng(&ScFrame::parse(&chlng).unwrap(), 0, RND_A, CUID).unwrap();
    let scrypt = cp.answer_ccrypt(&ScFrame::parse(&ccrypt).unwrap(), 1, 1).unwrap();
    let rmac_i = pd.on_scrypt(&ScFrame::parse(&scrypt).unwrap(), 1).unwrap();
    cp.accept_rmac_i(&ScFrame::parse(&rmac_i).unwrap()).unwrap();
    assert!(cp.is_open());
}

#[test]
fn test_padding_and_size_helpers() {
    assert_eq!(encrypted_len(0), 16);
    assert_eq!(encrypted_len(15), 16);
    assert_eq!(encrypted_len(16), 32);
    assert_eq!(overhead_bytes(0), 6);
    assert_eq!(overhead_bytes(7), 6 + 9);
    // LibOSDP's 256-byte buffer with our mark byte: LEN 255 → FILETRANSFER of 11 + 228 bytes (osdp §8).
    assert_eq!(max_data_bytes(255), 239);
    let (mut cp, _) = handshake();
    let packet = cp.seal_command(1, 1, 0x7C, &[0u8; 239]).unwrap();
    assert!(packet.len() <= 255, "{}", packet.len());
    assert!(cp.seal_command(1, 1, 0x7C, &[0u8; 240]).unwrap().len() > 255);
}

/// Recompute the CRC so a tampered packet passes the decoder and only the MAC can catch it.
fn recrc(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 2;
    let crc = crc16(&bytes[..n]).to_le_bytes();
    bytes[n..].copy_from_slice(&crc);
    bytes
}

proptest! {
    #[test]
    fn prop_tampered_command_byte_is_refused(data in proptest::collection::vec(any::<u8>(), 0..80),
                                             at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (mut cp, mut pd) = handshake();
        let mut packet = cp.seal_command(1, 2, 0x80, &data).unwrap();
        let i = at.index(packet.len() - 2);
        packet[i] ^= flip;
        let packet = recrc(packet);
        let refused = match ScFrame::parse(&packet) {
            Ok(frame) => pd.open_command(&frame).is_err(),
            Err(_) => true,
        };
        prop_assert!(refused, "byte {} ^ {:#04x} accepted", i, flip);
    }

    #[test]
    fn prop_tampered_reply_byte_is_refused(data in proptest::collection::vec(any::<u8>(), 0..80),
                                           at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (mut cp, mut pd) = handshake();
        let cmd = cp.seal_command(1, 2, 0x60, &[]).unwrap();
        pd.open_command(&ScFrame::parse(&cmd).unwrap()).unwrap();
        let mut packet = pd.seal_reply(1, 2, 0x90, &data).unwrap();
        let i = at.index(packet.len() - 2);
        packet[i] ^= flip;
        let packet = recrc(packet);
        let refused = match ScFrame::parse(&packet) {
            Ok(frame) => cp.open_reply(&frame).is_err(),
            Err(_) => true,
        };
        prop_assert!(refused, "byte {} ^ {:#04x} accepted", i, flip);
    }

    #[test]
    fn prop_seal_open_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (mut cp, mut pd) = handshake();
        let packet = cp.seal_command(1, 2, 0x7C, &data).unwrap();
        prop_assert_eq!(pd.open_command(&ScFrame::parse(&packet).unwrap()).unwrap(), (0x7C, data));
    }

    #[test]
    fn prop_parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ScFrame::parse(&bytes);
    }
}
