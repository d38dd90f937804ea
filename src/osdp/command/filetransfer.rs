//! osdp_FILETRANSFER (0x7C, OSDP v2.2 §6.26): FtType u8, FtSizeTotal u32 LE, FtOffset u32 LE,
//! FtFragmentSize u16 LE, then the fragment.

use crate::osdp::MessageError;

pub(crate) const CODE: u8 = 0x7C;
/// Bytes before the fragment data.
pub const HEADER_LEN: usize = 11;

/// One file fragment. `FtFragmentSize` is `data.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTransfer {
    pub ft_type: u8,
    pub size_total: u32,
    pub offset: u32,
    pub data: Vec<u8>,
}

impl FileTransfer {
    /// Fails if the fragment is longer than FtFragmentSize can express.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        let frag = u16::try_from(self.data.len()).map_err(|_| MessageError::TooLarge {
            code: CODE,
            len: self.data.len(),
        })?;
        out.push(self.ft_type);
        out.extend_from_slice(&self.size_total.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&frag.to_le_bytes());
        out.extend_from_slice(&self.data);
        Ok(())
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, MessageError> {
        let Some((head, rest)) = data.split_first_chunk::<HEADER_LEN>() else {
            return Err(MessageError::Truncated {
                code: CODE,
                need: HEADER_LEN,
                got: data.len(),
            });
        };
        let frag = usize::from(u16::from_le_bytes([head[9], head[10]]));
        if frag != rest.len() {
            return Err(MessageError::BadLength {
                code: CODE,
                want: HEADER_LEN + frag,
                got: data.len(),
            });
        }
        Ok(FileTransfer {
            ft_type: head[0],
            size_total: u32::from_le_bytes([head[1], head[2], head[3], head[4]]),
            offset: u32::from_le_bytes([head[5], head[6], head[7], head[8]]),
            data: rest.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_first_fragment_of_worked_example() {
        // docs/osdp.md §2: first 128-byte fragment of a 20480-byte file, FtType 1.
        let mut want = hex::decode("01 00500000 00000000 8000".replace(' ', "")).unwrap();
        want.extend(0u8..0x80);
        let ft = FileTransfer {
            ft_type: 1,
            size_total: 20480,
            offset: 0,
            data: (0u8..0x80).collect(),
        };
        let mut out = Vec::new();
        ft.encode(&mut out).unwrap();
        assert_eq!(out, want);
        assert_eq!(FileTransfer::decode(&out), Ok(ft));
    }

    #[test]
    fn test_fragment_size_must_match_data() {
        let mut data = hex::decode("0100500000000000000500").unwrap();
        data.extend([1, 2, 3]);
        assert_eq!(
            FileTransfer::decode(&data),
            Err(MessageError::BadLength {
                code: CODE,
                want: 16,
                got: 14
            })
        );
        assert_eq!(
            FileTransfer::decode(&data[..4]),
            Err(MessageError::Truncated {
                code: CODE,
                need: 11,
                got: 4
            })
        );
    }
}
