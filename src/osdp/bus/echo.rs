//! Drops the echo of our own bytes, for RS-485 adapters that receive what they send (no receiver
//! disable while driving the line): each transmission is expected back, byte for byte, before replies.

use std::collections::VecDeque;

/// Counters of the echo filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EchoStats {
    /// Bytes recognised as our own and dropped.
    pub echo_bytes: u64,
    /// Times the input differed from what we sent: the rest of that echo was given up and the input
    /// kept (an adapter that does not echo after all, or a collision on the line).
    pub mismatches: u64,
}

/// Expected echo bytes, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct EchoFilter {
    expected: VecDeque<u8>,
    stats: EchoStats,
}

impl EchoFilter {
    /// Records that `bytes` went out, so their echo is dropped from the input.
    pub(crate) fn expect(&mut self, bytes: &[u8]) {
        self.expected.extend(bytes);
    }

    /// Returns `input` without the echo it starts with.
    pub(crate) fn filter(&mut self, input: &[u8]) -> Vec<u8> {
        let mut rest = input;
        while let (Some(&want), Some((&got, tail))) = (self.expected.front(), rest.split_first()) {
            if want != got {
                self.stats.mismatches += 1;
                self.expected.clear();
                break;
            }
            self.expected.pop_front();
            self.stats.echo_bytes += 1;
            rest = tail;
        }
        rest.to_vec()
    }

    pub(crate) fn stats(&self) -> EchoStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_is_dropped_even_when_it_arrives_in_pieces_and_the_reply_is_kept() {
        let mut f = EchoFilter::default();
        f.expect(&[0xFF, 0x53, 0x01, 0x08]);
        assert_eq!(f.filter(&[0xFF, 0x53]), Vec::<u8>::new());
        assert_eq!(f.filter(&[0x01, 0x08, 0xFF, 0x53, 0x81]), vec![0xFF, 0x53, 0x81]);
        assert_eq!(
            f.stats(),
            EchoStats {
                echo_bytes: 4,
                mismatches: 0
            }
        );
        assert_eq!(f.filter(&[0x42]), vec![0x42]);
    }

    #[test]
    fn input_that_is_not_our_echo_is_kept_and_counted() {
        let mut f = EchoFilter::default();
        f.expect(&[0xFF, 0x53, 0x01]);
        assert_eq!(f.filter(&[0xFF, 0x53, 0x81, 0x09]), vec![0x81, 0x09]);
        assert_eq!(f.stats().mismatches, 1);
        // The given-up echo does not eat later input.
        assert_eq!(f.filter(&[0x01]), vec![0x01]);
    }
}
