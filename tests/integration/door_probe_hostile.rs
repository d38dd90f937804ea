//! `door probe` against a scripted hostile PD on a real pseudo-terminal: whatever the PD answers, the
//! probe ends (bounded by its `--timeout` and the OSDP timeouts) and `diagnosis` names the real cause.

use std::time::Duration;

use doorsync::osdp::reply::{Nak, PdId};
use doorsync::osdp::{Command, Decoder, NakCode, Reply};
use doorsync::serial::pty::Pty;
use doorsync::testkit::reply_packet;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Only guards against a hang; no assertion depends on how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// How the scripted PD answers each command addressed to it: (command, SQN) → bytes.
type Script = fn(&Command, u8) -> Vec<u8>;

fn packet(address: u8, sqn: u8, reply: &Reply) -> Vec<u8> {
    reply_packet(address, sqn, reply).unwrap()
}

fn pdid() -> Reply {
    Reply::PdId(PdId {
        vendor_code: [0x02, 0x44, 0x53],
        model: 1,
        version: 1,
        serial_number: 1,
        firmware: [1, 0, 0],
    })
}

/// Runs the scripted PD on the pty master until the test ends.
fn serve(mut pty: Pty, script: Script) {
    tokio::spawn(async move {
        let mut decoder = Decoder::new(4096);
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match pty.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            decoder.push(std::time::Instant::now(), &buf[..n]);
            let mut out = Vec::new();
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => continue,
                };
                if let Ok(repr) = frame.repr()
                    && !repr.reply
                    && let Ok(command) = Command::decode(repr.code, repr.data)
                {
                    out.extend(script(&command, repr.sqn));
                }
            }
            if !out.is_empty() && pty.write_all(&out).await.is_err() {
                return;
            }
        }
    });
}

/// `door probe --json` against `script` at address 1; returns the exit code and the report.
async fn probe(script: Option<Script>) -> (Option<i32>, serde_json::Value) {
    let pty = Pty::open().unwrap();
    let path = pty.slave_path().to_path_buf();
    let keep = match script {
        Some(s) => {
            serve(pty, s);
            None
        }
        None => Some(pty),
    };
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_doorsync"))
        .args(["door", "probe", "--json", "--timeout", "1s", "--address", "1", "--port"])
        .arg(&path)
        .output();
    let out = tokio::time::timeout(HANG_GUARD, out).await.unwrap().unwrap();
    drop(keep);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

fn diagnosis(v: &serde_json::Value) -> (String, String) {
    let d = &v["diagnosis"];
    (
        d["kind"].as_str().unwrap_or_default().to_owned(),
        d["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_probe_diagnoses_silence_another_address_bad_crcs_nak_and_busy() {
    let (code, v) = probe(None).await;
    assert_eq!(code, Some(2));
    let (kind, message) = diagnosis(&v);
    assert_eq!(kind, "no_bytes", "{message}");
    assert!(message.contains("power"), "{message}");

    let (code, v) = probe(Some(|_, sqn| packet(4, sqn, &pdid()))).await;
    assert_eq!(code, Some(2));
    let (kind, message) = diagnosis(&v);
    assert_eq!(kind, "other_address", "{message}");
    assert!(
        message.contains("address 4") && message.contains("--address 4"),
        "{message}"
    );

    let (code, v) = probe(Some(|_, sqn| {
        let mut p = packet(1, sqn, &pdid());
        let last = p.len() - 1;
        p[last] ^= 0xFF;
        p
    }))
    .await;
    assert_eq!(code, Some(2));
    let (kind, message) = diagnosis(&v);
    assert_eq!(kind, "undecodable", "{message}");
    assert!(
        message.contains("failed their check") && message.contains("baud"),
        "{message}"
    );

    let (code, v) = probe(Some(|_, sqn| {
        packet(1, sqn, &Reply::Nak(Nak::new(NakCode::EncryptionRequired)))
    }))
    .await;
    assert_eq!(code, Some(2));
    let (kind, message) = diagnosis(&v);
    assert_eq!(kind, "secure_channel_required", "{message}");

    let (code, v) = probe(Some(|_, sqn| {
        packet(1, sqn, &Reply::Nak(Nak::new(NakCode::UnknownCommand)))
    }))
    .await;
    assert_eq!(code, Some(2));
    let (kind, message) = diagnosis(&v);
    assert_eq!(kind, "nak", "{message}");
    assert!(message.contains("0x03"), "{message}");

    let (code, v) = probe(Some(|_, _| packet(1, 0, &Reply::Busy))).await;
    assert_eq!(code, Some(2));
    let (kind, message) = diagnosis(&v);
    assert_eq!(kind, "busy", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_probe_diagnoses_a_truncated_pdid() {
    let (code, v) = probe(Some(|c, sqn| match c {
        Command::Id => packet(
            1,
            sqn,
            &Reply::Other {
                code: doorsync::osdp::reply::pdid::CODE,
                data: vec![2, 0x44, 0x53],
            },
        ),
        _ => packet(1, sqn, &Reply::Ack),
    }))
    .await;
    assert_eq!(code, Some(2));
    let (kind, message) = diagnosis(&v);
    assert_eq!(kind, "malformed_reply", "{message}");
    assert!(message.contains("osdp_PDID"), "{message}");
}
