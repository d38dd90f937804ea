//! Record and face files over osdp_FILETRANSFER (PROTOCOL.md §3, §4, §7): fragments as large as the PD
//! and the profile allow, the next one sent as soon as FTSTAT arrives, FtDelay / FtUpdateMsgMax honoured,
//! final statuses handled, resume after a link drop, and confirmation by query (LibOSDP's FTSTAT always
//! says 1, so FTSTAT alone proves nothing).

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{OsdpDoor, door_error};
use crate::domain::DoorUserId;
use crate::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult};
use crate::door::{Door as _, DoorError, DoorInfo, FailureClass, Misconfig};
use crate::osdp::command::FileTransfer;
use crate::osdp::command::filetransfer::HEADER_LEN as FT_HEADER_LEN;
use crate::osdp::reply::FtStatus;
use crate::osdp::{Command, Reply, wire};
use crate::serial::link::Priority;

/// What the CP does with a file interrupted by a link drop (see the module doc of `osdp_door`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResumePolicy {
    /// Continue from the last offset the PD acknowledged (PROTOCOL.md §7 doors reassemble by coverage).
    #[default]
    FromLastAck,
    /// Send osdp_ABORT and start the file again from offset 0.
    Restart,
}

/// The file a previous call could not finish, for resuming it.
#[derive(Debug, Default)]
pub(super) struct FileState {
    partial: Option<Partial>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partial {
    ft_type: u8,
    total: u32,
    sha256: [u8; 32],
    acked: u32,
}

impl Partial {
    fn same_file(&self, other: &Partial) -> bool {
        (self.ft_type, self.total, self.sha256) == (other.ft_type, other.total, other.sha256)
    }
}

/// Attempts at one offset that may fail (resend / reconnect class) before the file fails: with
/// `resume_wait` this bounds a door that garbles every fragment while staying online (PROTOCOL.md §8).
const MAX_ATTEMPTS_WITHOUT_PROGRESS: u32 = 8;

/// The FtDelay actually obeyed: the PD's request, cut to the profile's `max_ft_delay`.
fn obeyed_delay(requested_ms: u16, max: Duration) -> (Duration, bool) {
    let requested = Duration::from_millis(u64::from(requested_ms));
    if requested > max {
        (max, true)
    } else {
        (requested, false)
    }
}

impl OsdpDoor {
    /// Sends one record file and confirms it: INFO's last file must be this record file, applied, and
    /// FACE_STATUS of its last record must show that record's hash.
    pub(super) async fn send_record_file(&self, file: &[u8]) -> Result<(), DoorError> {
        let last = vendor::decode_record_file(file)?.last().map(|(r, h)| (r.id, *h));
        let mut state = self.files.lock().await;
        self.transfer(&mut state, FT_TYPE_RECORDS, file).await?;
        let info = self.info().await?;
        if info.last_file_type != FT_TYPE_RECORDS || info.last_file_result != FileResult::Applied {
            return Err(rejection(&info, FT_TYPE_RECORDS, "record file"));
        }
        if let Some((id, hash)) = last {
            let status = self.query_face_status(id).await?;
            if status.record_hash_prefix != Some(vendor::prefix(&hash)) {
                return Err(DoorError::Corrupt {
                    detail: format!("door holds another record for {id} after the record file was applied"),
                });
            }
        }
        Ok(())
    }

    /// Sends one face file and confirms it with FACE_STATUS (the face sha256 must be the one sent).
    pub(super) async fn send_face_file(&self, id: DoorUserId, sha256: [u8; 32], file: &[u8]) -> Result<(), DoorError> {
        let mut state = self.files.lock().await;
        self.transfer(&mut state, FT_TYPE_FACE, file).await?;
        let status = self.query_face_status(id).await?;
        if status.face_sha256 == Some(sha256) {
            return Ok(());
        }
        let info = self.info().await?;
        Err(rejection(&info, FT_TYPE_FACE, "face file"))
    }

    /// Largest fragment: the PD's capabilities and the profile (via the session), and FtUpdateMsgMax.
    fn fragment_capacity(&self, msg_max: Option<usize>) -> Result<usize, DoorError> {
        let mut data = self.link.status().max_command_data_bytes;
        if let Some(m) = msg_max {
            data = data.min(m.saturating_sub(wire::HEADER_LEN + 1 + 2));
        }
        match data.checked_sub(FT_HEADER_LEN).filter(|n| *n > 0) {
            Some(n) => Ok(n.min(usize::from(u16::MAX))),
            None => Err(DoorError::Protocol(vendor::VendorError::TooLong {
                what: "osdp_FILETRANSFER header for the PD's packet size",
                got: FT_HEADER_LEN + 1,
                max: data,
            })),
        }
    }

    async fn abort(&self) {
        if let Err(e) = self.link.request(Command::Abort, Priority::Normal).await {
            tracing::debug!(error = %e, "osdp_ABORT before restarting a file not acknowledged");
        }
    }

    /// Moves `file` to the PD until a final FTSTAT. Holding `state` (the file lock) keeps files apart.
    async fn transfer(&self, state: &mut FileState, ft_type: u8, file: &[u8]) -> Result<(), DoorError> {
        let total = u32::try_from(file.len()).map_err(|_| {
            DoorError::Protocol(vendor::VendorError::TooLong {
                what: "file",
                got: file.len(),
                max: u32::MAX as usize,
            })
        })?;
        let this = Partial {
            ft_type,
            total,
            sha256: vendor::sha256(file),
            acked: 0,
        };
        let mut offset = 0u32;
        match state.partial.take() {
            Some(p) if p.same_file(&this) && self.options.resume == ResumePolicy::FromLastAck => {
                tracing::info!(
                    ft_type,
                    offset = p.acked,
                    total,
                    "resuming an interrupted file transfer"
                );
                offset = p.acked;
            }
            // The PD may hold part of another file (or of this one, under Restart): drop it first.
            Some(_) => self.abort().await,
            None => {}
        }
        state.partial = Some(Partial { acked: offset, ..this });
        let mut restarted_whole = false;
        let mut finishing = false;
        let mut msg_max: Option<usize> = None;
        let mut stalled_since: Option<Instant> = None;
        let mut failed_attempts = 0u32;
        // Since the last FTSTAT that moved the file forward: FtStatus "finishing" or an unusual status
        // repeated for `resume_wait` means the door is not going to finish.
        let mut progress_at = Instant::now();
        loop {
            let frag_max = self.fragment_capacity(msg_max)?;
            let (at, data) = if finishing {
                (total, Vec::new())
            } else {
                let start = offset as usize;
                let end = (start + frag_max).min(file.len());
                (offset, file.get(start..end).unwrap_or_default().to_vec())
            };
            let sent = data.len();
            let command = Command::FileTransfer(FileTransfer {
                ft_type,
                size_total: total,
                offset: at,
                data,
            });
            let online_before = self.link.status().online_count;
            let stat = match self.link.request(command, Priority::Normal).await {
                Ok(Reply::FtStat(stat)) => stat,
                Ok(other) => {
                    state.partial = None;
                    return Err(DoorError::Protocol(vendor::VendorError::BadValue {
                        field: "reply code to osdp_FILETRANSFER",
                        value: u64::from(other.code()),
                    }));
                }
                Err(e)
                    if matches!(
                        door_error(e.clone()).class(),
                        FailureClass::Resend | FailureClass::Reconnect
                    ) =>
                {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    let left = self.options.resume_wait.saturating_sub(since.elapsed());
                    failed_attempts += 1;
                    tracing::info!(ft_type, offset, total, error = %e, "file transfer interrupted; waiting for the link");
                    if left.is_zero()
                        || failed_attempts >= MAX_ATTEMPTS_WITHOUT_PROGRESS
                        || !self.link.wait_online(left).await
                    {
                        // `state.partial` keeps the acknowledged offset for the next attempt.
                        return Err(door_error(e));
                    }
                    if self.options.resume == ResumePolicy::Restart {
                        self.abort().await;
                        offset = 0;
                        finishing = false;
                        state.partial = Some(Partial { acked: 0, ..this });
                    }
                    continue;
                }
                Err(e) => {
                    state.partial = None;
                    return Err(door_error(e));
                }
            };
            stalled_since = None;
            failed_attempts = 0;
            if sent > 0 {
                let c = &self.file_counters;
                c.fragments.fetch_add(1, Ordering::Relaxed);
                c.payload_bytes.fetch_add(sent as u64, Ordering::Relaxed);
                c.fragment_bytes.store(frag_max as u32, Ordering::Relaxed);
            }
            if stat.update_msg_max != 0 {
                msg_max = Some(usize::from(stat.update_msg_max));
            }
            let end = at as usize + sent;
            if sent > 0 || stat.status != FtStatus::Finishing {
                progress_at = Instant::now();
            } else if progress_at.elapsed() >= self.options.resume_wait {
                state.partial = None;
                return Err(DoorError::Misconfigured(Misconfig::BoundExceeded {
                    detail: format!(
                        "door kept answering FTSTAT \"finishing\" for {} without finishing the file",
                        humantime::format_duration(self.options.resume_wait)
                    ),
                }));
            }
            match stat.status {
                FtStatus::Ok if end < file.len() => offset = end as u32,
                FtStatus::Ok => {
                    // Every byte was sent but the PD still misses some: it lost the partial file (reboot).
                    if restarted_whole {
                        state.partial = None;
                        return Err(DoorError::Corrupt {
                            detail: "door still reports missing bytes after the whole file was sent again".into(),
                        });
                    }
                    tracing::info!(ft_type, total, "door lost part of the file; sending it again whole");
                    restarted_whole = true;
                    finishing = false;
                    self.abort().await;
                    offset = 0;
                }
                FtStatus::Processed => {
                    state.partial = None;
                    return Ok(());
                }
                FtStatus::Rebooting => {
                    state.partial = None;
                    tracing::info!(ft_type, "door reboots after the file; restarting the link");
                    if self.link.restart().is_ok() {
                        self.link
                            .wait_reconnected(online_before, self.options.resume_wait)
                            .await;
                    }
                    return Ok(());
                }
                FtStatus::Finishing => finishing = true,
                s if s.is_error() => {
                    state.partial = None;
                    let result = self.rejection_result(ft_type, s).await;
                    return Err(DoorError::FileRejected { result });
                }
                FtStatus::Other(v) => {
                    state.partial = None;
                    return Err(DoorError::Protocol(vendor::VendorError::BadValue {
                        field: "FTSTAT status",
                        value: v as u64,
                    }));
                }
                _ => {}
            }
            if let Some(p) = state.partial.as_mut() {
                p.acked = offset;
            }
            let (delay, capped) = obeyed_delay(stat.delay_ms, self.max_ft_delay);
            if capped {
                self.file_counters.ft_delays_capped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    requested_ms = stat.delay_ms,
                    obeyed_ms = delay.as_millis() as u64,
                    "door asked for a longer FtDelay than the profile's max_ft_delay; waiting only that long"
                );
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// The PROTOCOL.md result behind a negative FTSTAT: INFO's last file result when it is about this
    /// file type, else the closest match for the sign (-2 unknown type, otherwise corrupt, which resends).
    async fn rejection_result(&self, ft_type: u8, status: FtStatus) -> FileResult {
        if let Ok(info) = self.info().await
            && info.last_file_type == ft_type
            && !matches!(info.last_file_result, FileResult::None | FileResult::Applied)
        {
            return info.last_file_result;
        }
        match status {
            FtStatus::Unrecognised => FileResult::UnknownType,
            _ => FileResult::Corrupt,
        }
    }
}

/// The error for a file that INFO/FACE_STATUS do not confirm: the door's own verdict when INFO has one
/// for this file type, else `Corrupt` (the caller sends it again).
fn rejection(info: &DoorInfo, ft_type: u8, what: &str) -> DoorError {
    if info.last_file_type == ft_type && !matches!(info.last_file_result, FileResult::None | FileResult::Applied) {
        return DoorError::FileRejected {
            result: info.last_file_result,
        };
    }
    DoorError::Corrupt {
        detail: format!(
            "the {what} did not land (door's last file: type 0x{:02x}, {:?})",
            info.last_file_type, info.last_file_result
        ),
    }
}
