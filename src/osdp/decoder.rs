//! Streaming OSDP framing (OSDP v2.2 §5.7, §5.9 timing): turns a byte stream into check-verified frames,
//! hunting for SOM after noise and dropping partial packets after a 20 ms inter-character gap.
//!
//! `next_frame` returns `Ok(None)` for "need more bytes" and `Err` for one malformed candidate; after an
//! error the decoder has already dropped one byte and keeps hunting, so callers simply call it again.
//! LEN is checked against `max_packet_len` before any of the packet is buffered beyond its header.

use std::time::{Duration, Instant};

use thiserror::Error;

use super::wire::{self, HEADER_LEN, Packet, PacketRepr, SOM, WireError, ctrl};

/// Inter-character timeout after which a partial packet is dropped.
pub(crate) const INTER_CHAR_TIMEOUT: Duration = Duration::from_millis(20);

/// One malformed candidate packet (the decoder has already resynchronised).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("LEN {len} outside {min}..={max}; resynchronising")]
    BadLen { len: usize, min: usize, max: usize },
    #[error("CTRL byte {ctrl:#04x} has reserved bits set; resynchronising")]
    BadCtrl { ctrl: u8 },
    #[error("bad CRC-16: packet carries {got:#06x}, computed {want:#06x}; resynchronising")]
    BadCrc { got: u16, want: u16 },
    #[error("bad checksum: packet carries {got:#04x}, computed {want:#04x}; resynchronising")]
    BadChecksum { got: u8, want: u8 },
    #[error("dropped a partial packet of {buffered} bytes after an inter-character gap")]
    InterCharTimeout { buffered: usize },
}

/// Counters a technician can read to judge line quality.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    pub malformed: u64,
    /// Bytes skipped while hunting for SOM (mark bytes included).
    pub skipped_bytes: u64,
    pub last_error: Option<DecodeError>,
}

/// One check-verified packet (SOM through check bytes, no mark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Vec<u8>,
}

impl Frame {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The packet view (structure already checked when the frame was cut).
    pub(crate) fn packet(&self) -> Packet<&[u8]> {
        Packet::new_unchecked(&self.bytes)
    }

    /// Parse the frame; fails only for unsupported features (Secure Channel).
    pub fn repr(&self) -> Result<PacketRepr<'_>, WireError> {
        PacketRepr::parse_bytes(&self.bytes)
    }
}

/// The streaming decoder. Feed it with [`Decoder::push`], drain with [`Decoder::next_frame`].
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Vec<u8>,
    max_packet_len: usize,
    last_byte_at: Option<Instant>,
    stats: DecodeStats,
}

impl Decoder {
    /// `max_packet_len` is the largest LEN accepted (at least the 8-byte minimum is always allowed).
    pub fn new(max_packet_len: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            max_packet_len: max_packet_len.max(HEADER_LEN + 3),
            last_byte_at: None,
            stats: DecodeStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Bytes of a partial packet currently held.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Append bytes received at `now`. A partial packet older than the inter-character timeout is dropped
    /// first.
    pub fn push(&mut self, now: Instant, bytes: &[u8]) {
        self.on_idle(now);
        if bytes.is_empty() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        self.skip_to_som();
        self.last_byte_at = Some(now);
    }

    /// Tell the decoder time has passed without bytes. After 20 ms of silence the incomplete candidate
    /// at the front is abandoned: its SOM is dropped and the hunt resumes in the bytes after it, so a
    /// stray SOM in line noise cannot swallow a real packet that followed it.
    pub(crate) fn on_idle(&mut self, now: Instant) {
        let Some(at) = self.poll_at() else { return };
        if now < at {
            return;
        }
        let buffered = self.buf.len();
        while !self.buf.is_empty() && self.front_incomplete() {
            self.buf.drain(..1);
            self.stats.skipped_bytes += 1;
            self.skip_to_som();
        }
        if self.buf.is_empty() {
            self.last_byte_at = None;
        }
        self.record(DecodeError::InterCharTimeout { buffered });
    }

    /// The front candidate cannot be judged yet (short header, or LEN beyond what is buffered).
    fn front_incomplete(&self) -> bool {
        match self.buf.get(..HEADER_LEN) {
            None => true,
            Some(h) => {
                let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
                len <= self.max_packet_len && self.buf.len() < len
            }
        }
    }

    /// When a held partial packet will be dropped, if one is held.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        if self.buf.is_empty() || !self.front_incomplete() {
            return None;
        }
        self.last_byte_at.map(|t| t + INTER_CHAR_TIMEOUT)
    }

    /// Bytes still needed before the candidate at the front can be judged (0 when a call to `next_frame`
    /// would produce a frame or an error).
    #[cfg(test)]
    pub(crate) fn needed(&self) -> usize {
        if self.buf.len() < HEADER_LEN {
            return HEADER_LEN - self.buf.len();
        }
        let len = usize::from(u16::from_le_bytes([self.buf[2], self.buf[3]]));
        len.saturating_sub(self.buf.len())
    }

    fn record(&mut self, err: DecodeError) {
        self.stats.malformed += 1;
        tracing::debug!(error = %err, "osdp decoder dropped bytes");
        self.stats.last_error = Some(err);
    }

    fn skip_to_som(&mut self) {
        let skip = self.buf.iter().position(|b| *b == SOM).unwrap_or(self.buf.len());
        if skip > 0 {
            self.buf.drain(..skip);
            self.stats.skipped_bytes += skip as u64;
        }
    }

    /// Drop the SOM of a bad candidate and hunt for the next one.
    fn resync(&mut self, err: DecodeError) -> DecodeError {
        self.buf.drain(..1);
        self.stats.skipped_bytes += 1;
        self.skip_to_som();
        self.record(err.clone());
        err
    }

    /// The next verified frame, `Ok(None)` if more bytes are needed, or one malformed-candidate error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        self.skip_to_som();
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let ctrl_byte = header[4];
        let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
        if ctrl_byte & ctrl::RESERVED != 0 {
            return Err(self.resync(DecodeError::BadCtrl { ctrl: ctrl_byte }));
        }
        let min = HEADER_LEN + 1 + wire::check_len(ctrl_byte);
        if len < min || len > self.max_packet_len {
            return Err(self.resync(DecodeError::BadLen {
                len,
                min,
                max: self.max_packet_len,
            }));
        }
        let Some(candidate) = self.buf.get(..len) else {
            return Ok(None);
        };
        // Structure is valid by the checks above; only the check bytes remain to verify.
        match Packet::new_unchecked(candidate).verify_check() {
            Ok(()) => {
                let bytes: Vec<u8> = self.buf.drain(..len).collect();
                self.skip_to_som();
                if self.buf.is_empty() {
                    self.last_byte_at = None;
                }
                self.stats.frames += 1;
                Ok(Some(Frame { bytes }))
            }
            Err(WireError::BadCrc { got, want }) => Err(self.resync(DecodeError::BadCrc { got, want })),
            Err(WireError::BadChecksum { got, want }) => Err(self.resync(DecodeError::BadChecksum { got, want })),
            Err(_) => Err(self.resync(DecodeError::BadLen {
                len,
                min,
                max: self.max_packet_len,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '|'], "")).unwrap()
    }

    const POLL: &str = "53 01 08 00 05 60 8B 33";
    const ACK: &str = "53 81 08 00 05 40 39 35";

    fn drain(d: &mut Decoder) -> (Vec<Vec<u8>>, Vec<DecodeError>) {
        let (mut frames, mut errs) = (Vec::new(), Vec::new());
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f.as_bytes().to_vec()),
                Ok(None) => return (frames, errs),
                Err(e) => errs.push(e),
            }
        }
    }

    #[test]
    fn test_mark_and_noise_before_som_are_skipped() {
        let t = Instant::now();
        let mut d = Decoder::new(256);
        let mut bytes = hex("00 12 FF");
        bytes.extend(hex(POLL));
        d.push(t, &bytes);
        let (frames, errs) = drain(&mut d);
        assert_eq!(frames, vec![hex(POLL)]);
        assert!(errs.is_empty());
        assert_eq!(d.stats().skipped_bytes, 3);
    }

    #[test]
    fn test_byte_by_byte_needs_more_then_frames() {
        let t = Instant::now();
        let mut d = Decoder::new(256);
        let bytes = hex(ACK);
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(d.next_frame(), Ok(None), "byte {i}");
            d.push(t, &[*b]);
        }
        assert_eq!(d.needed(), 0);
        assert_eq!(d.next_frame().unwrap().unwrap().as_bytes(), &bytes[..]);
    }

    #[test]
    fn test_bad_crc_resyncs_on_the_next_som_inside_the_bad_frame() {
        let t = Instant::now();
        let mut d = Decoder::new(256);
        // A corrupted packet whose data happens to contain a full valid POLL.
        let mut bytes = hex("53 01 10 00 05 80");
        bytes.extend(hex(POLL));
        bytes.extend(hex("00 00"));
        d.push(t, &bytes);
        let (frames, errs) = drain(&mut d);
        assert_eq!(frames, vec![hex(POLL)]);
        assert!(matches!(errs[..], [DecodeError::BadCrc { .. }]));
        assert_eq!(d.stats().malformed, 1);
    }

    #[test]
    fn test_len_over_max_is_rejected_before_buffering() {
        let t = Instant::now();
        let mut d = Decoder::new(64);
        d.push(t, &hex("53 01 00 02 05"));
        assert_eq!(
            d.next_frame(),
            Err(DecodeError::BadLen {
                len: 512,
                min: 8,
                max: 64
            })
        );
        assert_eq!(d.buffered(), 0);
        d.push(t, &hex("53 01 06 00 05"));
        assert_eq!(
            d.next_frame(),
            Err(DecodeError::BadLen {
                len: 6,
                min: 8,
                max: 64
            })
        );
        d.push(t, &hex(POLL));
        assert_eq!(d.next_frame().unwrap().unwrap().as_bytes(), &hex(POLL)[..]);
    }

    #[test]
    fn test_inter_character_gap_drops_partial_packet() {
        let t = Instant::now();
        let mut d = Decoder::new(256);
        let poll = hex(POLL);
        d.push(t, &poll[..4]);
        assert_eq!(d.poll_at(), Some(t + INTER_CHAR_TIMEOUT));
        d.on_idle(t + Duration::from_millis(19));
        assert_eq!(d.buffered(), 4);
        // The tail arrives too late: the head was dropped, the tail is noise, the next packet decodes.
        let late = t + Duration::from_millis(25);
        d.push(late, &poll[4..]);
        assert_eq!(
            d.stats().last_error,
            Some(DecodeError::InterCharTimeout { buffered: 4 })
        );
        assert_eq!(drain(&mut d).0, Vec::<Vec<u8>>::new());
        d.push(late, &poll);
        assert_eq!(drain(&mut d).0, vec![poll]);
    }

    #[test]
    fn test_stray_som_in_noise_does_not_swallow_the_packet_after_it() {
        let t = Instant::now();
        let mut d = Decoder::new(256);
        // Noise "53 00 40 00 04" claims a 64-byte packet; the real ACK follows at once.
        let mut bytes = hex("53 00 40 00 04");
        bytes.extend(hex(ACK));
        d.push(t, &bytes);
        assert_eq!(d.next_frame(), Ok(None));
        d.on_idle(t + INTER_CHAR_TIMEOUT);
        assert_eq!(drain(&mut d).0, vec![hex(ACK)]);
        assert_eq!(d.poll_at(), None);
    }

    proptest! {
        #[test]
        fn prop_decoder_never_panics_and_recovers_after_noise(
            noise in proptest::collection::vec(any::<u8>(), 0..200),
            chunks in proptest::collection::vec(1usize..16, 1..20),
        ) {
            let t = Instant::now();
            let mut d = Decoder::new(256);
            let mut stream = noise.clone();
            // Enough bytes to flush any LEN claim made by the noise (≤ 256) out of the way.
            stream.extend(std::iter::repeat_n(0u8, 256));
            stream.extend(hex(ACK));
            let mut got = Vec::new();
            let mut rest = &stream[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = chunks[i % chunks.len()].min(rest.len());
                d.push(t, &rest[..n]);
                rest = &rest[n..];
                i += 1;
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => got.push(f.as_bytes().to_vec()),
                        Ok(None) => break,
                        Err(_) => {}
                    }
                }
            }
            prop_assert_eq!(got.last(), Some(&hex(ACK)));
        }
    }
}
