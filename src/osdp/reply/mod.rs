//! Replies (PD → CP) the agent and the simulators use (OSDP v2.2 §7), one file per reply.
//!
//! [`Reply::decode`] dispatches on the CODE byte. Reply codes we do not model (card reads, status
//! reports, …) decode to [`Reply::Other`] so a poll answer is never lost.

pub(crate) mod ack;
pub(crate) mod busy;
pub(crate) mod ftstat;
pub(crate) mod mfgrep;
pub(crate) mod nak;
pub(crate) mod pdcap;
pub mod pdid;

pub(crate) use ack::Ack;
pub(crate) use busy::Busy;
pub use ftstat::{FtStat, FtStatus};
pub use mfgrep::MfgRep;
pub use nak::{Nak, NakCode};
pub use pdcap::{CapRecord, PdCap};
pub use pdid::PdId;

use super::MessageError;

/// A reply the PD sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack,
    Nak(Nak),
    PdId(PdId),
    PdCap(PdCap),
    Busy,
    FtStat(FtStat),
    MfgRep(MfgRep),
    /// A reply code this crate does not model, kept verbatim.
    Other {
        code: u8,
        data: Vec<u8>,
    },
}

impl Reply {
    /// The CODE byte.
    pub fn code(&self) -> u8 {
        match self {
            Reply::Ack => ack::CODE,
            Reply::Nak(_) => nak::CODE,
            Reply::PdId(_) => pdid::CODE,
            Reply::PdCap(_) => pdcap::CODE,
            Reply::Busy => busy::CODE,
            Reply::FtStat(_) => ftstat::CODE,
            Reply::MfgRep(_) => mfgrep::CODE,
            Reply::Other { code, .. } => *code,
        }
    }

    /// Short name for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Reply::Ack => "osdp_ACK",
            Reply::Nak(_) => "osdp_NAK",
            Reply::PdId(_) => "osdp_PDID",
            Reply::PdCap(_) => "osdp_PDCAP",
            Reply::Busy => "osdp_BUSY",
            Reply::FtStat(_) => "osdp_FTSTAT",
            Reply::MfgRep(_) => "osdp_MFGREP",
            Reply::Other { .. } => "other reply",
        }
    }

    /// The DATA bytes (CODE excluded).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Reply::Ack => Ack.encode(&mut out),
            Reply::Nak(r) => r.encode(&mut out),
            Reply::PdId(r) => r.encode(&mut out),
            Reply::PdCap(r) => r.encode(&mut out),
            Reply::Busy => Busy.encode(&mut out),
            Reply::FtStat(r) => r.encode(&mut out),
            Reply::MfgRep(r) => r.encode(&mut out),
            Reply::Other { data, .. } => out.extend_from_slice(data),
        }
        out
    }

    /// Decode from CODE and DATA. Unknown codes give [`Reply::Other`]; malformed known ones an error.
    pub fn decode(code: u8, data: &[u8]) -> Result<Self, MessageError> {
        Ok(match code {
            ack::CODE => Ack::decode(data).map(|_| Reply::Ack)?,
            nak::CODE => Reply::Nak(Nak::decode(data)?),
            pdid::CODE => Reply::PdId(PdId::decode(data)?),
            pdcap::CODE => Reply::PdCap(PdCap::decode(data)?),
            busy::CODE => Busy::decode(data).map(|_| Reply::Busy)?,
            ftstat::CODE => Reply::FtStat(FtStat::decode(data)?),
            mfgrep::CODE => Reply::MfgRep(MfgRep::decode(data)?),
            code => Reply::Other {
                code,
                data: data.to_vec(),
            },
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const KNOWN: [u8; 7] = [
        ack::CODE,
        nak::CODE,
        pdid::CODE,
        pdcap::CODE,
        busy::CODE,
        ftstat::CODE,
        mfgrep::CODE,
    ];

    pub(crate) fn any_reply() -> impl Strategy<Value = Reply> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..100);
        prop_oneof![
            Just(Reply::Ack),
            Just(Reply::Busy),
            (any::<u8>(), bytes()).prop_map(|(c, detail)| Reply::Nak(Nak {
                code: NakCode::from(c),
                detail
            })),
            (
                any::<[u8; 3]>(),
                any::<u8>(),
                any::<u8>(),
                any::<u32>(),
                any::<[u8; 3]>()
            )
                .prop_map(|(vendor_code, model, version, serial_number, firmware)| {
                    Reply::PdId(PdId {
                        vendor_code,
                        model,
                        version,
                        serial_number,
                        firmware,
                    })
                }),
            proptest::collection::vec(any::<[u8; 3]>(), 0..20).prop_map(|rs| Reply::PdCap(PdCap {
                records: rs
                    .into_iter()
                    .map(|[function, compliance, items]| CapRecord {
                        function,
                        compliance,
                        items
                    })
                    .collect()
            })),
            (any::<u8>(), any::<u16>(), any::<i16>(), any::<u16>()).prop_map(
                |(action, delay_ms, s, update_msg_max)| {
                    Reply::FtStat(FtStat {
                        action,
                        delay_ms,
                        status: FtStatus::from(s),
                        update_msg_max,
                    })
                }
            ),
            (any::<[u8; 3]>(), bytes()).prop_map(|(vendor_code, data)| Reply::MfgRep(MfgRep { vendor_code, data })),
            (
                any::<u8>().prop_filter("unmodelled code", |c| !KNOWN.contains(c)),
                bytes()
            )
                .prop_map(|(code, data)| Reply::Other { code, data }),
        ]
    }

    #[test]
    fn test_unknown_reply_code_is_kept_verbatim() {
        assert_eq!(
            Reply::decode(0x50, &[1, 2]),
            Ok(Reply::Other {
                code: 0x50,
                data: vec![1, 2]
            })
        );
        assert_eq!(
            Reply::decode(0x45, &[1, 2]),
            Err(MessageError::Truncated {
                code: 0x45,
                need: 12,
                got: 2
            })
        );
    }

    proptest! {
        #[test]
        fn prop_reply_encode_decode_roundtrip(reply in any_reply()) {
            prop_assert_eq!(Reply::decode(reply.code(), &reply.encode()).unwrap(), reply);
        }

        #[test]
        fn prop_reply_decode_is_total(code: u8, data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Reply::decode(code, &data);
        }
    }
}
