//! Fuzz the OSDP streaming decoder and everything behind it: frames → PacketRepr → Command/Reply, and the
//! CP session and PD link fed with the same bytes. Must never panic.
#![no_main]

use std::time::{Duration, Instant};

use doorsync::osdp::{Command, Decoder, PdLink, PdSession, Reply, SessionConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else { return };
    let chunk = usize::from(chunk % 32) + 1;
    let start = Instant::now();
    let mut decoder = Decoder::new(256);
    let mut session = PdSession::new(SessionConfig::new(1), start);
    let mut pd = PdLink::new(1, 256);
    let _ = session.poll_transmit(start);
    for (i, part) in bytes.chunks(chunk).enumerate() {
        // Every 7th chunk arrives after an inter-character gap.
        let now = start + Duration::from_millis(if i % 7 == 6 { 30 * i as u64 } else { i as u64 });
        decoder.push(now, part);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Ok(repr) = frame.repr() {
                        let _ = Command::decode(repr.code, repr.data);
                        let _ = Reply::decode(repr.code, repr.data);
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
        session.handle_bytes(now, part);
        let _ = session.poll_transmit(now);
        while session.poll_event().is_some() {}
        pd.handle_bytes(now, part);
        while pd.poll_input().is_some() {}
    }
});
