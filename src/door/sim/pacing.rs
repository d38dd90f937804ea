//! Baud pacing: the arithmetic of one half-duplex serial line at a fixed rate, 10 bits per byte (8N1).
//!
//! A pseudo-terminal delivers bytes at once; this model says when they would have arrived on a real
//! line, and when a reply's last byte would be on it, so the simulator can hold commands and replies
//! back to those instants and a benchmark over a pty measures what RS-485 would do. Pure: instants in,
//! instants out. The line is shared: nothing starts before the previous transfer in either direction
//! has ended.

use std::time::{Duration, Instant};

/// Bits on the wire per byte: start bit, 8 data bits, stop bit.
pub(crate) const BITS_PER_BYTE: u64 = 10;

/// When a reply occupies the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplySlot {
    /// First byte starts.
    pub start: Instant,
    /// Last byte has arrived at the CP.
    pub end: Instant,
}

/// One line at one baud rate.
#[derive(Debug, Clone)]
pub(crate) struct LinePacer {
    baud: u32,
    turnaround: Duration,
    line_free_at: Option<Instant>,
}

impl LinePacer {
    /// `baud` 0 is treated as 1 (validated configurations never pass 0).
    pub(crate) fn new(baud: u32, turnaround: Duration) -> Self {
        Self {
            baud: baud.max(1),
            turnaround,
            line_free_at: None,
        }
    }

    /// Line time of `n` bytes.
    pub(crate) fn bytes_time(&self, n: usize) -> Duration {
        let nanos = (n as u128) * u128::from(BITS_PER_BYTE) * 1_000_000_000 / u128::from(self.baud);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn after_line(&self, t: Instant) -> Instant {
        self.line_free_at.map_or(t, |free| free.max(t))
    }

    /// `n` bytes the CP wrote, seen at `read_at`: the instant their last byte would have arrived. They
    /// start on the line when it is free, and not before they were written.
    pub(crate) fn on_received(&mut self, read_at: Instant, n: usize) -> Instant {
        let end = self.after_line(read_at) + self.bytes_time(n);
        self.line_free_at = Some(end);
        end
    }

    /// A reply of `n` bytes to a command whose last byte arrived at `command_done_at`: it starts after
    /// the turnaround, and not before the line is free.
    pub(crate) fn on_reply(&mut self, command_done_at: Instant, n: usize) -> ReplySlot {
        let start = self.after_line(command_done_at + self.turnaround);
        let end = start + self.bytes_time(n);
        self.line_free_at = Some(end);
        ReplySlot { start, end }
    }

    /// Forget what is on the line (a reboot cuts every transfer short).
    pub(crate) fn reset(&mut self) {
        self.line_free_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(d: Duration) -> u128 {
        d.as_micros()
    }

    #[test]
    fn a_byte_at_115200_baud_takes_ten_bit_times() {
        let p = LinePacer::new(115_200, Duration::ZERO);
        assert_eq!(p.bytes_time(1).as_nanos(), 86_805);
        // 11 520 bytes are one second of line at 115 200 baud.
        assert_eq!(p.bytes_time(11_520), Duration::from_secs(1));
        assert_eq!(
            LinePacer::new(9600, Duration::ZERO).bytes_time(960),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_command_is_complete_only_when_its_last_byte_would_have_arrived() {
        let t0 = Instant::now();
        let mut p = LinePacer::new(115_200, Duration::from_millis(1));
        // 1024 bytes written at once: 88.9 ms of line.
        let done = p.on_received(t0, 1024);
        assert_eq!(us(done - t0), 88_888);
        // Reply of 15 bytes: 1 ms turnaround, then 1.302 ms on the line.
        let slot = p.on_reply(done, 15);
        assert_eq!(slot.start - done, Duration::from_millis(1));
        assert_eq!(us(slot.end - slot.start), 1_302);
    }

    #[test]
    fn bytes_read_in_pieces_queue_behind_each_other_on_the_line() {
        let t0 = Instant::now();
        let mut p = LinePacer::new(9600, Duration::ZERO);
        let first = p.on_received(t0, 96); // 100 ms
        // The rest of the packet is read 1 ms later, but the line is still carrying the first piece.
        let second = p.on_received(t0 + Duration::from_millis(1), 96);
        assert_eq!(first - t0, Duration::from_millis(100));
        assert_eq!(second - t0, Duration::from_millis(200));
        // After a pause the line is idle: bytes start when written.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(p.on_received(later, 96) - later, Duration::from_millis(100));
    }

    #[test]
    fn half_duplex_line_never_carries_two_transfers_at_once() {
        let t0 = Instant::now();
        let mut p = LinePacer::new(9600, Duration::from_millis(2));
        let done = p.on_received(t0, 48); // 50 ms
        let slot = p.on_reply(done, 96); // 52..152 ms
        assert_eq!(
            (slot.start - t0, slot.end - t0),
            (Duration::from_millis(52), Duration::from_millis(152))
        );
        // A command written while the reply is on the line starts after it.
        let next = p.on_received(t0 + Duration::from_millis(60), 48);
        assert_eq!(next - t0, Duration::from_millis(202));
        // A reply to an earlier command cannot start before the line is free either.
        let slot = p.on_reply(t0, 48);
        assert_eq!(slot.start - t0, Duration::from_millis(202));
        p.reset();
        assert_eq!(p.on_received(t0, 48) - t0, Duration::from_millis(50));
    }
}
