//! Reassembles osdp_FILETRANSFER fragments the way a door should: by byte coverage, not by byte count,
//! so a retransmitted fragment (LibOSDP resends it) or a resumed transfer never completes a file early.

use thiserror::Error;

/// A fragment the assembler refused; the door answers FTSTAT with [`AssembleError::ftstat_status`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum AssembleError {
    #[error("file announced with FtSizeTotal 0")]
    ZeroSize,
    #[error("file of {total_bytes} bytes exceeds the door's limit of {max_bytes}")]
    TooLarge { total_bytes: u32, max_bytes: u32 },
    #[error("fragment at offset {offset} of {len} bytes runs past FtSizeTotal {total_bytes}")]
    OutOfRange { offset: u32, len: usize, total_bytes: u32 },
}

impl AssembleError {
    /// FtStatusDetail for this refusal: -3, data malformed.
    pub(crate) fn ftstat_status(&self) -> i16 {
        -3
    }
}

/// Every byte of a file, ready to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompleteFile {
    pub ft_type: u8,
    pub bytes: Vec<u8>,
}

/// Where a transfer stands after a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FragmentProgress {
    /// FTSTAT status 0: keep sending.
    Incomplete { received_bytes: u32, total_bytes: u32 },
    /// Every byte is present; the file is handed over and the assembler is idle again.
    Complete(CompleteFile),
}

#[derive(Debug)]
struct Partial {
    ft_type: u8,
    total_bytes: u32,
    bytes: Vec<u8>,
    present: Vec<bool>,
    received_bytes: u32,
}

/// One file transfer in progress at a time.
#[derive(Debug)]
pub(crate) struct FileAssembler {
    max_file_bytes: u32,
    partial: Option<Partial>,
}

impl FileAssembler {
    pub(crate) fn new(max_file_bytes: u32) -> Self {
        Self {
            max_file_bytes,
            partial: None,
        }
    }

    /// Drops the file in progress (osdp_ABORT).
    pub(crate) fn abort(&mut self) {
        self.partial = None;
    }

    /// Takes one FILETRANSFER fragment. A fragment at offset 0 starts the file afresh (that is how a CP
    /// restarts); one whose FtType or FtSizeTotal differs from the file in progress starts a new file;
    /// bytes already present are overwritten by the latest copy. An empty fragment only asks for status.
    pub(crate) fn on_fragment(
        &mut self,
        ft_type: u8,
        total_bytes: u32,
        offset: u32,
        data: &[u8],
    ) -> Result<FragmentProgress, AssembleError> {
        if total_bytes == 0 {
            self.partial = None;
            return Err(AssembleError::ZeroSize);
        }
        if total_bytes > self.max_file_bytes {
            self.partial = None;
            return Err(AssembleError::TooLarge {
                total_bytes,
                max_bytes: self.max_file_bytes,
            });
        }
        let start = offset as usize;
        let end = start
            .checked_add(data.len())
            .filter(|end| *end <= total_bytes as usize)
            .ok_or(AssembleError::OutOfRange {
                offset,
                len: data.len(),
                total_bytes,
            })?;
        let same_file = self
            .partial
            .as_ref()
            .is_some_and(|p| p.ft_type == ft_type && p.total_bytes == total_bytes);
        if !same_file || (offset == 0 && !data.is_empty()) {
            self.partial = Some(Partial {
                ft_type,
                total_bytes,
                bytes: vec![0; total_bytes as usize],
                present: vec![false; total_bytes as usize],
                received_bytes: 0,
            });
        }
        let Some(p) = self.partial.as_mut() else {
            return Ok(FragmentProgress::Incomplete {
                received_bytes: 0,
                total_bytes,
            });
        };
        if let (Some(dst), Some(seen)) = (p.bytes.get_mut(start..end), p.present.get_mut(start..end)) {
            dst.copy_from_slice(data);
            for s in seen.iter_mut().filter(|s| !**s) {
                *s = true;
                p.received_bytes += 1;
            }
        }
        if p.received_bytes < p.total_bytes {
            return Ok(FragmentProgress::Incomplete {
                received_bytes: p.received_bytes,
                total_bytes,
            });
        }
        let done = self.partial.take().map(|p| CompleteFile {
            ft_type: p.ft_type,
            bytes: p.bytes,
        });
        Ok(done.map_or(
            FragmentProgress::Incomplete {
                received_bytes: 0,
                total_bytes,
            },
            FragmentProgress::Complete,
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn complete(p: FragmentProgress) -> Vec<u8> {
        match p {
            FragmentProgress::Complete(f) => f.bytes,
            other => panic!("expected complete, got {other:?}"),
        }
    }

    #[test]
    fn repeated_fragment_does_not_complete_the_file_early() {
        let file: Vec<u8> = (0..30).collect();
        let mut a = FileAssembler::new(100);
        a.on_fragment(0x82, 30, 0, &file[..10]).unwrap();
        a.on_fragment(0x82, 30, 10, &file[10..20]).unwrap();
        // LibOSDP-style retransmit of the same fragment: byte count would say 30, coverage says 20.
        let p = a.on_fragment(0x82, 30, 10, &file[10..20]).unwrap();
        assert_eq!(
            p,
            FragmentProgress::Incomplete {
                received_bytes: 20,
                total_bytes: 30
            }
        );
        assert_eq!(complete(a.on_fragment(0x82, 30, 20, &file[20..]).unwrap()), file);
    }

    #[test]
    fn resumed_transfer_overlapping_what_is_there_completes_with_the_right_bytes() {
        let file: Vec<u8> = (0..40).collect();
        let mut a = FileAssembler::new(100);
        a.on_fragment(1, 40, 0, &file[..16]).unwrap();
        a.on_fragment(1, 40, 16, &file[16..24]).unwrap();
        // The CP lost track and resumes at 8.
        a.on_fragment(1, 40, 8, &file[8..24]).unwrap();
        assert_eq!(complete(a.on_fragment(1, 40, 24, &file[24..]).unwrap()), file);
    }

    #[test]
    fn offset_zero_restarts_so_stale_bytes_of_an_equal_sized_file_never_leak_in() {
        let mut a = FileAssembler::new(100);
        // A late retransmit of file A's tail, after A completed, leaves a stray partial.
        a.on_fragment(0x82, 20, 10, &[0xAA; 10]).unwrap();
        a.on_fragment(0x82, 20, 0, &[0xBB; 10]).unwrap();
        let p = a.on_fragment(0x82, 20, 10, &[0xCC; 10]).unwrap();
        let bytes = complete(p);
        assert_eq!(&bytes[..10], &[0xBB; 10]);
        assert_eq!(&bytes[10..], &[0xCC; 10]);
    }

    #[test]
    fn bad_fragments_are_refused_without_panicking() {
        let mut a = FileAssembler::new(50);
        assert_eq!(a.on_fragment(1, 0, 0, &[1]), Err(AssembleError::ZeroSize));
        assert!(matches!(
            a.on_fragment(1, 51, 0, &[1]),
            Err(AssembleError::TooLarge { .. })
        ));
        a.on_fragment(1, 10, 0, &[1; 4]).unwrap();
        assert!(matches!(
            a.on_fragment(1, 10, 8, &[1; 4]),
            Err(AssembleError::OutOfRange { .. })
        ));
        assert!(matches!(
            a.on_fragment(1, 10, u32::MAX, &[1; 4]),
            Err(AssembleError::OutOfRange { .. })
        ));
        // The refused fragment did not cost the bytes already received.
        let p = a.on_fragment(1, 10, 4, &[]).unwrap();
        assert_eq!(
            p,
            FragmentProgress::Incomplete {
                received_bytes: 4,
                total_bytes: 10
            }
        );
        assert_eq!(
            a.on_fragment(1, 10, 4, &[2; 6]).unwrap(),
            FragmentProgress::Complete(CompleteFile {
                ft_type: 1,
                bytes: [[1u8; 4].as_slice(), &[2; 6]].concat()
            })
        );
    }

    #[test]
    fn abort_drops_the_file_in_progress() {
        let mut a = FileAssembler::new(50);
        a.on_fragment(1, 10, 0, &[1; 5]).unwrap();
        a.abort();
        let p = a.on_fragment(1, 10, 5, &[1; 5]).unwrap();
        assert_eq!(
            p,
            FragmentProgress::Incomplete {
                received_bytes: 5,
                total_bytes: 10
            }
        );
    }

    proptest! {
        #[test]
        fn any_fragment_order_with_repeats_yields_the_file(
            file in proptest::collection::vec(any::<u8>(), 1..300),
            cut in 1usize..64,
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let total = file.len() as u32;
            let frags: Vec<(u32, &[u8])> =
                file.chunks(cut).enumerate().map(|(i, c)| ((i * cut) as u32, c)).collect();
            let mut a = FileAssembler::new(1000);
            let n = frags.len();
            // Fragment 0 once, then repeats of random later fragments, then every later fragment in order.
            let repeats = order.iter().filter(|_| n > 1).map(|i| 1 + i.index(n - 1));
            let mut done = None;
            for i in std::iter::once(0).chain(repeats).chain(1..n) {
                let (off, data) = frags[i];
                if let FragmentProgress::Complete(f) = a.on_fragment(7, total, off, data).unwrap() {
                    done = Some(f.bytes);
                    break;
                }
            }
            prop_assert_eq!(done, Some(file));
        }

        #[test]
        fn assembler_never_panics(ops in proptest::collection::vec((any::<u8>(), 0u32..400, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..40)) {
            let mut a = FileAssembler::new(300);
            for (t, total, off, data) in ops {
                let _ = a.on_fragment(t, total, off % 500, &data);
            }
        }
    }
}
