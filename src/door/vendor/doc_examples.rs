//! The hex examples of `firmware-config/PROTOCOL.md`, generated from the codec so the document cannot drift.

use jiff::Timestamp;

use super::*;
use crate::domain::{FaceRef, Policy};
use crate::door::db::{DoorAnswer, DoorDb, DoorDbLimits};

const DOC: &str = include_str!("../../../firmware-config/PROTOCOL.md");
const VENDOR_CODE: [u8; 3] = [0x12, 0x34, 0x56];
const JPEG_ANA: [u8; 4] = [0xFF, 0xD8, 0xFF, 0xD9];
const JPEG_BO: [u8; 5] = [0xFF, 0xD8, 0x00, 0xFF, 0xD9];

fn hex_block(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            format!(
                "    {}",
                c.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ana() -> DoorRecord {
    DoorRecord {
        id: DoorUserId(1),
        policy: Policy::Permission,
        expire_at: Some(Timestamp::from_second(1_893_456_000).unwrap()), // 2030-01-01T00:00:00Z
        face: FaceRef {
            sha256: sha256(&JPEG_ANA),
            len_bytes: 4,
        },
        display_name: "Ana".into(),
    }
}

fn bo() -> DoorRecord {
    DoorRecord {
        id: DoorUserId(65),
        policy: Policy::Deny,
        expire_at: None,
        face: FaceRef {
            sha256: sha256(&JPEG_BO),
            len_bytes: 5,
        },
        display_name: "Bo".into(),
    }
}

fn example_db() -> DoorDb {
    let mut db = DoorDb::new(DoorDbLimits {
        capacity_users: 10_000,
        max_record_file_bytes: 8192,
        max_face_jpeg_bytes: 65_536,
    });
    db.apply_file(FT_TYPE_RECORDS, &encode_record_file(&[ana(), bo()]).unwrap());
    db.apply_file(FT_TYPE_FACE, &encode_face_file(DoorUserId(1), &JPEG_ANA).unwrap());
    db
}

fn exchange(db: &mut DoorDb, request_id: u16, command: Command) -> (Vec<u8>, Option<Vec<u8>>) {
    let cmd = MfgCommand { request_id, command }.encode().unwrap();
    let reply = match db.handle_mfg(&cmd) {
        DoorAnswer::Reply(r) => Some(r.encode().unwrap()),
        DoorAnswer::Ack => None,
        DoorAnswer::Nak(c) => panic!("NAK {c}"),
    };
    (
        with_vendor_code(VENDOR_CODE, &cmd),
        reply.map(|r| with_vendor_code(VENDOR_CODE, &r)),
    )
}

/// `(label, bytes)` for every example in the document, in document order.
fn examples() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![
        ("record Ana (id 1)", encode_record(&ana())),
        ("record hash of Ana", record_hash(&ana()).to_vec()),
        ("record Bo (id 65)", encode_record(&bo())),
        ("record file with Ana", encode_record_file(&[ana()]).unwrap()),
        ("face file for Ana", encode_face_file(DoorUserId(1), &JPEG_ANA).unwrap()),
    ];
    let face = encode_face_file(DoorUserId(1), &JPEG_ANA).unwrap();
    let mut ft = vec![FT_TYPE_FACE];
    ft.extend_from_slice(&(face.len() as u32).to_le_bytes());
    ft.extend_from_slice(&0u32.to_le_bytes());
    ft.extend_from_slice(&(face.len() as u16).to_le_bytes());
    ft.extend_from_slice(&face[..16]);
    out.push((
        "FILETRANSFER data, face file in one fragment (first 16 file bytes shown)",
        ft,
    ));
    let mut db = example_db();
    out.push(("digest of the example door", db.digest().digest.to_vec()));
    out.push(("digest of an empty door", digest([]).to_vec()));
    let steps: Vec<(&str, &str, u16, Command)> = vec![
        ("INFO command", "INFO reply", 0x0101, Command::Info),
        ("DIGEST command", "DIGEST reply", 0x0102, Command::Digest),
        (
            "BUCKET_DIGESTS command",
            "BUCKET_DIGESTS reply",
            0x0103,
            Command::BucketDigests { first_bucket: 0 },
        ),
        (
            "LIST command",
            "LIST reply",
            0x0104,
            Command::List { bucket: 1, cursor: 0 },
        ),
        (
            "FACE_STATUS command",
            "FACE_STATUS reply",
            0x0105,
            Command::FaceStatus(DoorUserId(65)),
        ),
        (
            "DELETE command",
            "",
            0x0106,
            Command::Delete(vec![DoorUserId(65), DoorUserId(7)]),
        ),
        ("CLEAR command", "", 0x0107, Command::Clear),
    ];
    for (cmd_label, reply_label, id, command) in steps {
        let (cmd, reply) = exchange(&mut db, id, command);
        out.push((cmd_label, cmd));
        if let Some(r) = reply {
            out.push((reply_label, r));
        }
    }
    let bad_clear = with_vendor_code(VENDOR_CODE, b"\x11\x08\x01CLEARAL");
    out.push(("CLEAR without confirm", bad_clear));
    let DoorAnswer::Reply(r) = db.handle_mfg(b"\x11\x08\x01CLEARAL") else {
        panic!("no reply")
    };
    out.push(("its reply", with_vendor_code(VENDOR_CODE, &r.encode().unwrap())));
    out
}

fn expected_doc_blocks() -> String {
    examples()
        .into_iter()
        .map(|(label, bytes)| format!("{label}:\n{}", hex_block(&bytes)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn protocol_md_hex_examples_equal_the_codec_output() {
    let all = expected_doc_blocks();
    for (label, bytes) in examples() {
        let block = format!("{label}:\n{}\n", hex_block(&bytes));
        assert!(
            DOC.contains(&block),
            "PROTOCOL.md lacks or differs in:\n{block}\n--- all examples ---\n{all}"
        );
    }
}

#[test]
fn example_mfg_data_fits_the_libosdp_limit() {
    for (label, bytes) in examples() {
        if label.contains("command") || label.contains("reply") || label.contains("CLEAR") {
            assert!(bytes.len() <= 3 + MAX_MFG_DATA_BYTES, "{label}: {} bytes", bytes.len());
        }
    }
}
