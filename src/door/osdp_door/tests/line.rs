//! A PD whose line misbehaves below OSDP: each command is decoded, the door (the test peer) answers, and
//! the test's [`Line`] script turns that answer into the bytes actually sent back (garbage, a bad CRC,
//! another address, a wrong SQN, a bogus LEN, nothing). No PD-side sequencing: the script decides.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::peer::SharedPeer;
use crate::osdp::{Command, Decoder, Reply};
use crate::testkit::reply_packet;

/// (command, its SQN, the door's honest answer) → the bytes to send back (empty: silence).
pub(super) type Line = Box<dyn FnMut(&Command, u8, Option<Reply>) -> Vec<u8> + Send>;

/// A well-formed reply packet (CRC mode, no mark byte).
pub(super) fn packet(address: u8, sqn: u8, reply: &Reply) -> Vec<u8> {
    reply_packet(address, sqn, reply).unwrap_or_default()
}

/// Answers commands on `stream` through `line` until the stream closes.
pub(super) async fn run_line_pd<S>(mut stream: S, address: u8, peer: SharedPeer, mut line: Line)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut decoder = Decoder::new(4096);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        decoder.push(tokio::time::Instant::now().into_std(), &buf[..n]);
        let mut commands = Vec::new();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Ok(repr) = frame.repr()
                        && !repr.reply
                        && repr.address == address
                        && let Ok(command) = Command::decode(repr.code, repr.data)
                    {
                        commands.push((command, repr.sqn));
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
        for (command, sqn) in commands {
            let honest = peer.lock().unwrap().handle(&command);
            let out = line(&command, sqn, honest);
            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}
