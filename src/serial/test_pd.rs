//! A scripted PD for unit tests: runs the sans-IO [`PdLink`] over one end of a stream and answers each
//! new command with whatever the test's handler returns (`None`: stay silent, as a lost reply).

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::osdp::reply::{CapRecord, PdCap, PdId};
use crate::osdp::{Command, PdInput, PdLink, Reply};

pub(crate) const TEST_PDID: PdId = PdId {
    vendor_code: [0x0A, 0x0B, 0x0C],
    model: 7,
    version: 2,
    serial_number: 0x1234_5678,
    firmware: [1, 2, 3],
};

/// PDCAP with CRC support and the given receive buffer (capability 10).
pub(crate) fn test_pdcap(rx_buffer: u16) -> PdCap {
    let [lo, hi] = rx_buffer.to_le_bytes();
    PdCap {
        records: vec![
            CapRecord {
                function: 8,
                compliance: 1,
                items: 0,
            },
            CapRecord {
                function: 10,
                compliance: lo,
                items: hi,
            },
        ],
    }
}

/// The standard answers to discovery and keep-alive polls, for handlers to fall back on.
pub(crate) fn basic_reply(command: &Command, rx_buffer: u16) -> Option<Reply> {
    match command {
        Command::Id => Some(Reply::PdId(TEST_PDID)),
        Command::Cap => Some(Reply::PdCap(test_pdcap(rx_buffer))),
        _ => Some(Reply::Ack),
    }
}

/// Answers commands on `stream` until it closes.
pub(crate) async fn run_pd<S, F>(stream: S, address: u8, handler: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&Command) -> Option<Reply>,
{
    run_pd_link(stream, PdLink::new(address, 4096), handler).await
}

/// [`run_pd`] with a PD-side link set up by the test (e.g. with Secure Channel).
pub(crate) async fn run_pd_link<S, F>(mut stream: S, mut link: PdLink, mut handler: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&Command) -> Option<Reply>,
{
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now: Instant = tokio::time::Instant::now().into_std();
        link.handle_bytes(now, &buf[..n]);
        while let Some(input) = link.poll_input() {
            let out = match input {
                PdInput::Transmit(bytes) => Some(bytes),
                PdInput::Command { to, command } => handler(&command).and_then(|r| link.reply(to, &r).ok()),
            };
            if let Some(bytes) = out
                && stream.write_all(&bytes).await.is_err()
            {
                return;
            }
        }
    }
}
