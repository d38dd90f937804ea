//! Record and face files over osdp_FILETRANSFER (PROTOCOL.md §3, §4, §7): the async shell around the
//! sans-IO [`FileSend`] (fragments as large as the PD and the profile allow, FtDelay capped and
//! FtUpdateMsgMax honoured, final statuses, resume after link trouble), plus confirmation by query
//! (LibOSDP's FTSTAT always says 1, so FTSTAT alone proves nothing).

use std::sync::atomic::Ordering;

use super::file_send::{Action, FileSend, FileSendLimits, Outcome, fragment_capacity};
use super::{OsdpDoor, door_error};
use crate::domain::DoorUserId;
use crate::door::vendor::{self, FT_TYPE_FACE, FT_TYPE_RECORDS, FileResult};
use crate::door::{Door as _, DoorError, DoorInfo};
use crate::osdp::command::FileTransfer;
use crate::osdp::reply::FtStatus;
use crate::osdp::{Command, Reply};
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

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
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

    async fn abort(&self) {
        if let Err(e) = self.link.request(Command::Abort, Priority::Normal).await {
            tracing::debug!(error = %e, "osdp_ABORT before restarting a file not acknowledged");
        }
    }

    /// Moves `file` to the PD until a final FTSTAT, performing what the sans-IO [`FileSend`] asks for.
    /// Holding `state` (the file lock) keeps files apart.
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
        let mut resume_at = 0u32;
        match state.partial.take() {
            Some(p) if p.same_file(&this) && self.options.resume == ResumePolicy::FromLastAck => {
                tracing::info!(
                    ft_type,
                    offset = p.acked,
                    total,
                    "resuming an interrupted file transfer"
                );
                resume_at = p.acked;
            }
            // The PD may hold part of another file (or of this one, under Restart): drop it first.
            Some(_) => self.abort().await,
            None => {}
        }
        state.partial = Some(Partial {
            acked: resume_at,
            ..this
        });
        let limits = FileSendLimits {
            max_ft_delay: self.max_ft_delay,
            resume_wait: self.options.resume_wait,
            resume: self.options.resume,
        };
        let mut send = FileSend::new(total, resume_at, limits, now());
        let mut online_before = self.link.status().online_count;
        let outcome = loop {
            let data_max = self.link.status().max_command_data_bytes;
            match send.poll(now(), fragment_capacity(data_max, send.msg_max())) {
                Action::Send { offset, bytes } => {
                    let data = file.get(bytes).unwrap_or_default().to_vec();
                    let sent = data.len();
                    online_before = self.link.status().online_count;
                    let command = Command::FileTransfer(FileTransfer {
                        ft_type,
                        size_total: total,
                        offset,
                        data,
                    });
                    match self.link.request(command, Priority::Normal).await {
                        Ok(Reply::FtStat(stat)) => {
                            if sent > 0 {
                                let c = &self.file_counters;
                                c.fragments.fetch_add(1, Ordering::Relaxed);
                                c.payload_bytes.fetch_add(sent as u64, Ordering::Relaxed);
                                let frag = fragment_capacity(data_max, send.msg_max()).unwrap_or(sent);
                                c.fragment_bytes.store(frag as u32, Ordering::Relaxed);
                            }
                            send.on_ftstat(now(), &stat);
                        }
                        Ok(other) => send.on_error(
                            now(),
                            DoorError::Protocol(vendor::VendorError::BadValue {
                                field: "reply code to osdp_FILETRANSFER",
                                value: u64::from(other.code()),
                            }),
                        ),
                        Err(e) => {
                            tracing::info!(ft_type, offset, total, error = %e, "file transfer interrupted");
                            send.on_error(now(), door_error(e));
                        }
                    }
                }
                Action::Abort => {
                    self.abort().await;
                    send.on_aborted();
                }
                Action::WaitOnline { deadline } => {
                    let online = self.link.wait_online(deadline.saturating_duration_since(now())).await;
                    send.on_link_back(online);
                }
                Action::SleepUntil(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                Action::RestartLink => {
                    tracing::info!(ft_type, "door reboots after the file; restarting the link");
                    if self.link.restart().is_ok() {
                        self.link
                            .wait_reconnected(online_before, self.options.resume_wait)
                            .await;
                    }
                }
                Action::Done(outcome) => break outcome,
            }
            if let Some(p) = state.partial.as_mut() {
                p.acked = send.acked();
            }
        };
        self.file_counters
            .ft_delays_capped
            .fetch_add(send.delays_capped, Ordering::Relaxed);
        match outcome {
            Outcome::Delivered => {
                state.partial = None;
                Ok(())
            }
            Outcome::Refused(status) => {
                state.partial = None;
                let result = self.rejection_result(ft_type, status).await;
                Err(DoorError::FileRejected { result })
            }
            Outcome::Failed { error, resumable } => {
                // A resumable failure keeps `state.partial` (the acknowledged offset) for the next call.
                if !resumable {
                    state.partial = None;
                }
                Err(error)
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
