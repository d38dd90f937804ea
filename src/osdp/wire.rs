//! OSDP packet framing (OSDP v2.2 §5.7 "packet structure"): the zero-copy [`Packet`] view, the validated
//! [`PacketRepr`], CRC-16 and the 8-bit checksum.
//!
//! Invariant: after [`Packet::new_checked`] succeeds, no accessor panics. Secure Channel packets (CTRL
//! bit 3) are framed but reported as [`WireError::Unsupported`] by `new_checked`.

use thiserror::Error;

/// Start of message.
pub(crate) const SOM: u8 = 0x53;
/// Optional line-settling byte some senders put before SOM; not part of the packet.
pub(crate) const MARK: u8 = 0xFF;
/// SOM, ADDR, LEN (2), CTRL.
pub(crate) const HEADER_LEN: usize = 5;
/// Address bit set in every reply.
pub(crate) const REPLY_BIT: u8 = 0x80;
/// Broadcast / configuration address.
pub(crate) const BROADCAST_ADDR: u8 = 0x7F;

/// CTRL byte bits.
pub(crate) mod ctrl {
    pub(crate) const SQN_MASK: u8 = 0x03;
    pub(crate) const CRC: u8 = 0x04;
    pub(crate) const SCB: u8 = 0x08;
    pub(crate) const RESERVED: u8 = 0xF0;
}

mod field {
    use std::ops::Range;
    pub(crate) const SOM: usize = 0;
    pub(crate) const ADDR: usize = 1;
    pub(crate) const LEN: Range<usize> = 2..4;
    pub(crate) const CTRL: usize = 4;
    pub(crate) const CODE: usize = 5;
    pub(crate) const DATA_START: usize = 6;
}

/// CRC-16/AUG-CCITT (poly 0x1021, init 0x1D0F, no reflection, no final XOR) — the `crc` catalog's
/// SPI-FUJITSU entry, check value 0xE5CC.
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_SPI_FUJITSU);

/// The OSDP CRC-16 over `bytes` (SOM through the byte before the CRC); sent low byte first.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    CRC16.checksum(bytes)
}

/// The OSDP 8-bit checksum: two's complement of the low byte of the sum.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b)).wrapping_neg()
}

/// Number of check bytes for a CTRL byte.
pub(crate) fn check_len(ctrl_byte: u8) -> usize {
    if ctrl_byte & ctrl::CRC != 0 { 2 } else { 1 }
}

/// What is wrong with a packet's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("packet truncated: need {need} bytes, got {got}")]
    Truncated { need: usize, got: usize },
    #[error("packet does not start with SOM 0x53 (got {got:#04x})")]
    BadSom { got: u8 },
    #[error("LEN field {len} is outside {min}..={max}")]
    BadLen { len: usize, min: usize, max: usize },
    #[error("CTRL byte {ctrl:#04x} has reserved bits set")]
    BadCtrl { ctrl: u8 },
    #[error("bad CRC-16: packet carries {got:#06x}, computed {want:#06x}")]
    BadCrc { got: u16, want: u16 },
    #[error("bad checksum: packet carries {got:#04x}, computed {want:#04x}")]
    BadChecksum { got: u8, want: u8 },
    #[error("unsupported packet feature: {what}")]
    Unsupported { what: &'static str },
    #[error("field {field} value {value} out of range")]
    BadField { field: &'static str, value: usize },
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
}

/// A read/write view over the bytes of one OSDP packet (no mark byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checks; accessors may panic on short buffers. Prefer [`Packet::new_checked`].
    pub(crate) const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wrap and validate SOM, LEN (against the buffer length), CTRL reserved bits, minimum length for the
    /// check mode, and reject Secure Channel packets. Does not verify the CRC: see [`Packet::verify_check`].
    pub(crate) fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The structural checks behind [`Packet::new_checked`].
    pub(crate) fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated {
                need: HEADER_LEN,
                got: data.len(),
            });
        }
        if data[field::SOM] != SOM {
            return Err(WireError::BadSom { got: data[field::SOM] });
        }
        let ctrl_byte = data[field::CTRL];
        if ctrl_byte & ctrl::RESERVED != 0 {
            return Err(WireError::BadCtrl { ctrl: ctrl_byte });
        }
        let len = usize::from(u16::from_le_bytes([data[2], data[3]]));
        let min = HEADER_LEN + 1 + check_len(ctrl_byte);
        if len < min {
            return Err(WireError::BadLen {
                len,
                min,
                max: usize::from(u16::MAX),
            });
        }
        if data.len() < len {
            return Err(WireError::Truncated {
                need: len,
                got: data.len(),
            });
        }
        if ctrl_byte & ctrl::SCB != 0 {
            return Err(WireError::Unsupported {
                what: "secure channel block (CTRL bit 3)",
            });
        }
        Ok(())
    }

    pub(crate) fn into_inner(self) -> T {
        self.buffer
    }

    /// Address without the reply bit.
    pub(crate) fn address(&self) -> u8 {
        self.buffer.as_ref()[field::ADDR] & !REPLY_BIT
    }

    /// Reply direction (address bit 7).
    pub(crate) fn is_reply(&self) -> bool {
        self.buffer.as_ref()[field::ADDR] & REPLY_BIT != 0
    }

    /// Total packet length from the LEN field.
    pub(crate) fn len_field(&self) -> usize {
        let d = self.buffer.as_ref();
        usize::from(u16::from_le_bytes([d[field::LEN.start], d[field::LEN.start + 1]]))
    }

    pub(crate) fn ctrl(&self) -> u8 {
        self.buffer.as_ref()[field::CTRL]
    }

    pub(crate) fn sqn(&self) -> u8 {
        self.ctrl() & ctrl::SQN_MASK
    }

    pub(crate) fn use_crc(&self) -> bool {
        self.ctrl() & ctrl::CRC != 0
    }

    pub(crate) fn has_scb(&self) -> bool {
        self.ctrl() & ctrl::SCB != 0
    }

    pub(crate) fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    fn check_start(&self) -> usize {
        self.len_field() - check_len(self.ctrl())
    }

    /// Command/reply data between CODE and the check bytes.
    #[cfg(test)]
    pub(crate) fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA_START..self.check_start()]
    }

    /// The packet bytes (SOM through the check bytes), ignoring any buffer tail.
    #[cfg(test)]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.len_field()]
    }

    /// Verify the CRC-16 or checksum.
    pub(crate) fn verify_check(&self) -> Result<(), WireError> {
        let d = self.buffer.as_ref();
        let start = self.check_start();
        let covered = &d[..start];
        if self.use_crc() {
            let got = u16::from_le_bytes([d[start], d[start + 1]]);
            let want = crc16(covered);
            if got != want {
                return Err(WireError::BadCrc { got, want });
            }
        } else {
            let got = d[start];
            let want = checksum(covered);
            if got != want {
                return Err(WireError::BadChecksum { got, want });
            }
        }
        Ok(())
    }
}

/// A validated, owned-or-borrowed description of one plain-text packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketRepr<'a> {
    /// PD address 0x00–0x7F, without the reply bit.
    pub address: u8,
    /// Reply direction (PD → CP).
    pub reply: bool,
    /// Sequence number 0..=3.
    pub sqn: u8,
    /// CRC-16 (true) or 8-bit checksum (false).
    pub use_crc: bool,
    pub code: u8,
    pub data: &'a [u8],
}

impl<'a> PacketRepr<'a> {
    /// Parse a packet view and verify its check bytes.
    pub(crate) fn parse(packet: &Packet<&'a [u8]>) -> Result<Self, WireError> {
        packet.check_len()?;
        packet.verify_check()?;
        let bytes: &'a [u8] = packet.into_inner();
        let check_start = packet.check_start();
        Ok(PacketRepr {
            address: packet.address(),
            reply: packet.is_reply(),
            sqn: packet.sqn(),
            use_crc: packet.use_crc(),
            code: packet.code(),
            data: bytes.get(field::DATA_START..check_start).unwrap_or_default(),
        })
    }

    /// Parse bytes that hold exactly one packet (SOM through check bytes).
    pub(crate) fn parse_bytes(bytes: &'a [u8]) -> Result<Self, WireError> {
        let packet = Packet::new_checked(bytes)?;
        if packet.len_field() != bytes.len() {
            return Err(WireError::BadLen {
                len: packet.len_field(),
                min: bytes.len(),
                max: bytes.len(),
            });
        }
        Self::parse(&packet)
    }

    /// Encoded size in bytes (no mark byte).
    pub(crate) fn buffer_len(&self) -> usize {
        HEADER_LEN + 1 + self.data.len() + if self.use_crc { 2 } else { 1 }
    }

    /// Write the packet into the front of `buf`; returns the number of bytes written.
    pub(crate) fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.address > BROADCAST_ADDR {
            return Err(WireError::BadField {
                field: "address",
                value: usize::from(self.address),
            });
        }
        if self.sqn > ctrl::SQN_MASK {
            return Err(WireError::BadField {
                field: "sqn",
                value: usize::from(self.sqn),
            });
        }
        let len = self.buffer_len();
        let len16 = u16::try_from(len).map_err(|_| WireError::BadField {
            field: "length",
            value: len,
        })?;
        let have = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(WireError::BufferTooSmall { need: len, have })?;
        let ctrl_byte = self.sqn | if self.use_crc { ctrl::CRC } else { 0 };
        let [lo, hi] = len16.to_le_bytes();
        let (head, rest) = out.split_at_mut(field::DATA_START);
        head.copy_from_slice(&[
            SOM,
            self.address | if self.reply { REPLY_BIT } else { 0 },
            lo,
            hi,
            ctrl_byte,
            self.code,
        ]);
        let (data, _) = rest.split_at_mut(self.data.len());
        data.copy_from_slice(self.data);
        let check_at = len - if self.use_crc { 2 } else { 1 };
        if self.use_crc {
            let crc = crc16(&out[..check_at]).to_le_bytes();
            out[check_at..].copy_from_slice(&crc);
        } else {
            out[check_at] = checksum(&out[..check_at]);
        }
        Ok(len)
    }

    /// Emit into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '|'], "")).unwrap()
    }

    #[test]
    fn test_crc_check_value_and_annex_e_vectors() {
        assert_eq!(crc16(b"123456789"), 0xE5CC);
        assert_eq!(
            crc16(&hex("53 7F 0D 00 04 6E 00 80 25 00 00")).to_le_bytes(),
            [0x6E, 0x38]
        );
        assert_eq!(crc16(&hex("53 00 09 00 04 61 00")).to_le_bytes(), [0xC0, 0x66]);
        assert_eq!(checksum(&hex("53 7F 0C 00 00 6E 00 80 25 00 00")), 0x0F);
        assert_eq!(checksum(&hex("53 00 08 00 00 61 00")), 0x44);
    }

    fn roundtrip_fixture(bytes: &str, address: u8, reply: bool, sqn: u8, use_crc: bool, code: u8, data: &[u8]) {
        let bytes = hex(bytes);
        let repr = PacketRepr::parse_bytes(&bytes).unwrap();
        let want = PacketRepr {
            address,
            reply,
            sqn,
            use_crc,
            code,
            data,
        };
        assert_eq!(repr, want);
        assert_eq!(want.to_vec().unwrap(), bytes);
        assert_eq!(want.buffer_len(), bytes.len());
    }

    #[test]
    fn test_parse_emit_worked_examples() {
        roundtrip_fixture("53 01 08 00 05 60 | 8B 33", 1, false, 1, true, 0x60, &[]);
        roundtrip_fixture("53 81 08 00 05 40 | 39 35", 1, true, 1, true, 0x40, &[]);
        roundtrip_fixture("53 01 07 00 01 60 | 44", 1, false, 1, false, 0x60, &[]);
        roundtrip_fixture("53 01 09 00 04 61 00 | 60 23", 1, false, 0, true, 0x61, &[0]);
        roundtrip_fixture(
            "53 01 0F 00 05 80 12 34 56 01 02 03 04 | 08 64",
            1,
            false,
            1,
            true,
            0x80,
            &hex("12 34 56 01 02 03 04"),
        );
        roundtrip_fixture(
            "53 81 0F 00 06 7A 01 00 00 00 00 00 00 | 7C 2C",
            1,
            true,
            2,
            true,
            0x7A,
            &hex("01 00 00 00 00 00 00"),
        );
    }

    #[test]
    fn test_filetransfer_first_fragment_fixture() {
        let mut bytes = hex("53 01 93 00 06 7C 01 00 50 00 00 00 00 00 00 80 00");
        bytes.extend(0u8..0x80);
        bytes.extend([0x24, 0x8E]);
        let repr = PacketRepr::parse_bytes(&bytes).unwrap();
        assert_eq!((repr.address, repr.sqn, repr.code, repr.data.len()), (1, 2, 0x7C, 139));
        assert_eq!(repr.to_vec().unwrap(), bytes);
    }

    #[test]
    fn test_bad_crc_is_reported_with_both_values() {
        let bytes = hex("53 01 08 00 05 60 8B 34");
        assert_eq!(
            PacketRepr::parse_bytes(&bytes),
            Err(WireError::BadCrc {
                got: 0x348B,
                want: 0x338B
            })
        );
        let bytes = hex("53 01 07 00 01 60 45");
        assert_eq!(
            PacketRepr::parse_bytes(&bytes),
            Err(WireError::BadChecksum { got: 0x45, want: 0x44 })
        );
    }

    #[test]
    fn test_structural_errors() {
        assert_eq!(
            Packet::new_checked(&hex("53 01 08")[..]),
            Err(WireError::Truncated { need: 5, got: 3 })
        );
        assert_eq!(
            Packet::new_checked(&hex("54 01 08 00 05 60 8B 33")[..]),
            Err(WireError::BadSom { got: 0x54 })
        );
        assert!(matches!(
            Packet::new_checked(&hex("53 01 07 00 05 60 8B")[..]),
            Err(WireError::BadLen { len: 7, .. })
        ));
        assert_eq!(
            Packet::new_checked(&hex("53 01 08 00 15 60 8B 33")[..]),
            Err(WireError::BadCtrl { ctrl: 0x15 })
        );
        assert_eq!(
            Packet::new_checked(&hex("53 01 09 00 05 60 8B 33")[..]),
            Err(WireError::Truncated { need: 9, got: 8 })
        );
    }

    #[test]
    fn test_secure_channel_packet_is_unsupported_not_misparsed() {
        // CP POLL inside a secure session (docs/osdp.md §7 vector).
        let bytes = hex("53 01 0E 00 0E 02 15 60 86 DA 77 7E 90 4F");
        assert!(matches!(
            Packet::new_checked(&bytes[..]),
            Err(WireError::Unsupported { .. })
        ));
        assert!(matches!(
            PacketRepr::parse_bytes(&bytes),
            Err(WireError::Unsupported { .. })
        ));
        // The frame itself is intact: the CRC covers it.
        assert_eq!(crc16(&bytes[..12]).to_le_bytes(), [0x90, 0x4F]);
    }

    #[test]
    fn test_emit_rejects_bad_fields_and_small_buffers() {
        let repr = PacketRepr {
            address: 1,
            reply: false,
            sqn: 4,
            use_crc: true,
            code: 0x60,
            data: &[],
        };
        assert!(matches!(repr.to_vec(), Err(WireError::BadField { field: "sqn", .. })));
        let repr = PacketRepr {
            sqn: 1,
            address: 0x80,
            ..repr
        };
        assert!(matches!(
            repr.to_vec(),
            Err(WireError::BadField { field: "address", .. })
        ));
        let repr = PacketRepr { address: 1, ..repr };
        assert_eq!(
            repr.emit(&mut [0u8; 7]),
            Err(WireError::BufferTooSmall { need: 8, have: 7 })
        );
    }

    proptest! {
        #[test]
        fn prop_repr_emit_parse_roundtrip(address in 0u8..=0x7F, reply: bool, sqn in 0u8..=3, use_crc: bool,
                                          code: u8, data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let repr = PacketRepr { address, reply, sqn, use_crc, code, data: &data };
            let bytes = repr.to_vec().unwrap();
            prop_assert_eq!(PacketRepr::parse_bytes(&bytes).unwrap(), repr);
        }

        #[test]
        fn prop_packet_view_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.address(), p.is_reply(), p.sqn(), p.code(), p.data(), p.as_bytes(), p.verify_check());
            }
            let _ = PacketRepr::parse_bytes(&bytes);
        }
    }
}
