//! Commands (CP → PD) the agent and the simulators use (OSDP v2.2 §6), one file per command.
//!
//! [`Command::decode`] dispatches on the CODE byte; [`Command::encode`] produces the DATA bytes.

pub(crate) mod abort;
pub(crate) mod acurxsize;
pub(crate) mod cap;
pub mod filetransfer;
pub(crate) mod id;
pub(crate) mod keyset;
pub(crate) mod mfg;
pub(crate) mod poll;

pub(crate) use abort::Abort;
pub(crate) use acurxsize::AcuRxSize;
pub(crate) use cap::Cap;
pub use filetransfer::FileTransfer;
pub(crate) use id::Id;
pub(crate) use keyset::KeySet;
pub use mfg::Mfg;
pub(crate) use poll::Poll;

use super::MessageError;

/// A command the CP sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Poll,
    Id,
    Cap,
    AcuRxSize(AcuRxSize),
    FileTransfer(FileTransfer),
    Mfg(Mfg),
    Abort,
    /// Secure Channel only.
    KeySet(KeySet),
}

impl Command {
    /// The CODE byte.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Command::Poll => poll::CODE,
            Command::Id => id::CODE,
            Command::Cap => cap::CODE,
            Command::AcuRxSize(_) => acurxsize::CODE,
            Command::FileTransfer(_) => filetransfer::CODE,
            Command::Mfg(_) => mfg::CODE,
            Command::Abort => abort::CODE,
            Command::KeySet(_) => keyset::CODE,
        }
    }

    /// Short name for logs (`osdp_POLL`, …).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Poll => "osdp_POLL",
            Command::Id => "osdp_ID",
            Command::Cap => "osdp_CAP",
            Command::AcuRxSize(_) => "osdp_ACURXSIZE",
            Command::FileTransfer(_) => "osdp_FILETRANSFER",
            Command::Mfg(_) => "osdp_MFG",
            Command::Abort => "osdp_ABORT",
            Command::KeySet(_) => "osdp_KEYSET",
        }
    }

    /// The DATA bytes (CODE excluded).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let mut out = Vec::new();
        match self {
            Command::Poll => Poll.encode(&mut out),
            Command::Id => Id.encode(&mut out),
            Command::Cap => Cap.encode(&mut out),
            Command::AcuRxSize(c) => c.encode(&mut out),
            Command::FileTransfer(c) => c.encode(&mut out)?,
            Command::Mfg(c) => c.encode(&mut out),
            Command::Abort => Abort.encode(&mut out),
            Command::KeySet(c) => c.encode(&mut out),
        }
        Ok(out)
    }

    /// Decode from CODE and DATA.
    pub fn decode(code: u8, data: &[u8]) -> Result<Self, MessageError> {
        Ok(match code {
            poll::CODE => Poll::decode(data).map(|_| Command::Poll)?,
            id::CODE => Id::decode(data).map(|_| Command::Id)?,
            cap::CODE => Cap::decode(data).map(|_| Command::Cap)?,
            acurxsize::CODE => Command::AcuRxSize(AcuRxSize::decode(data)?),
            filetransfer::CODE => Command::FileTransfer(FileTransfer::decode(data)?),
            mfg::CODE => Command::Mfg(Mfg::decode(data)?),
            abort::CODE => Abort::decode(data).map(|_| Command::Abort)?,
            keyset::CODE => Command::KeySet(KeySet::decode(data)?),
            code => return Err(MessageError::UnknownCommand { code }),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn any_command() -> impl Strategy<Value = Command> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..200);
        prop_oneof![
            Just(Command::Poll),
            Just(Command::Id),
            Just(Command::Cap),
            Just(Command::Abort),
            any::<u16>().prop_map(|max_rx_bytes| Command::AcuRxSize(AcuRxSize { max_rx_bytes })),
            (any::<[u8; 3]>(), bytes()).prop_map(|(vendor_code, data)| Command::Mfg(Mfg { vendor_code, data })),
            (any::<u8>(), any::<u32>(), any::<u32>(), bytes()).prop_map(|(ft_type, size_total, offset, data)| {
                Command::FileTransfer(FileTransfer {
                    ft_type,
                    size_total,
                    offset,
                    data,
                })
            }),
        ]
    }

    #[test]
    fn test_unknown_command_is_a_typed_error() {
        assert_eq!(
            Command::decode(0x6A, &[]),
            Err(MessageError::UnknownCommand { code: 0x6A })
        );
    }

    proptest! {
        #[test]
        fn prop_command_encode_decode_roundtrip(cmd in any_command()) {
            let data = cmd.encode().unwrap();
            prop_assert_eq!(Command::decode(cmd.code(), &data).unwrap(), cmd);
        }

        #[test]
        fn prop_command_survives_packet_and_decoder(cmd in any_command(), sqn in 0u8..=3, use_crc: bool) {
            let data = cmd.encode().unwrap();
            let repr = crate::osdp::PacketRepr { address: 5, reply: false, sqn, use_crc, code: cmd.code(), data: &data };
            let mut decoder = crate::osdp::Decoder::new(1440);
            decoder.push(std::time::Instant::now(), &repr.to_vec().unwrap());
            let frame = decoder.next_frame().unwrap().unwrap();
            let back = frame.repr().unwrap();
            prop_assert_eq!((back.address, back.sqn, back.use_crc), (5, sqn, use_crc));
            prop_assert_eq!(Command::decode(back.code, back.data).unwrap(), cmd);
        }

        #[test]
        fn prop_command_decode_is_total(code: u8, data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Command::decode(code, &data);
        }
    }
}
