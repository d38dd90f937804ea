//! The sending side of one file over osdp_FILETRANSFER as a sans-IO state machine: FTSTATs, link
//! failures and `now` in; the next fragment, an osdp_ABORT, a wait or the outcome out (PROTOCOL.md §7,
//! §8). The async shell in `transfer.rs` only performs what [`FileSend::poll`] asks for.

use std::ops::Range;
use std::time::{Duration, Instant};

use super::transfer::ResumePolicy;
use crate::door::{DoorError, FailureClass, Misconfig, vendor};
use crate::osdp::command::filetransfer::HEADER_LEN as FT_HEADER_LEN;
use crate::osdp::reply::{FtStat, FtStatus};
use crate::osdp::wire;

/// Attempts at one offset that may fail (resend / reconnect class) before the file fails: with
/// `resume_wait` this bounds a door that garbles every fragment while staying online (PROTOCOL.md §8).
pub(super) const MAX_ATTEMPTS_WITHOUT_PROGRESS: u32 = 8;

/// The bounds a transfer keeps to (from the profile and the door's options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileSendLimits {
    pub max_ft_delay: Duration,
    /// How long the link may stay down, and FTSTAT "finishing" may repeat, without progress.
    pub resume_wait: Duration,
    pub resume: ResumePolicy,
}

/// What the shell does next.
#[derive(Debug)]
pub(super) enum Action {
    /// Send a fragment at `offset` carrying these bytes of the file (empty: a status request), then
    /// report the FTSTAT with [`FileSend::on_ftstat`] or the failure with [`FileSend::on_error`].
    Send { offset: u32, bytes: Range<usize> },
    /// Send osdp_ABORT (its outcome does not matter), then call [`FileSend::on_aborted`].
    Abort,
    /// Wait for the link to be online, until `deadline` at most; then [`FileSend::on_link_back`].
    WaitOnline { deadline: Instant },
    /// Nothing to do before this instant (FtDelay, capped at the profile's `max_ft_delay`).
    SleepUntil(Instant),
    /// The PD reboots after the file: restart the link (and wait for it); the file is delivered.
    RestartLink,
    /// The transfer is over.
    Done(Outcome),
}

/// How a transfer ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The PD said the file is processed (to be confirmed by query).
    Delivered,
    /// The PD refused the file with this negative FTSTAT (the shell asks INFO for the exact reason).
    Refused(FtStatus),
    /// The transfer failed; `resumable`: the acknowledged offset is worth keeping for the next call.
    Failed { error: DoorError, resumable: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    AwaitingStat { at: u32, sent: usize },
    Aborting,
    WaitingLink { deadline: Instant },
    Sleeping(Instant),
    RestartingLink,
    Done,
}

/// One file on its way to the PD.
#[derive(Debug)]
pub(super) struct FileSend {
    total: u32,
    limits: FileSendLimits,
    /// Bytes before this offset are acknowledged.
    offset: u32,
    finishing: bool,
    restarted_whole: bool,
    msg_max: Option<usize>,
    progress_at: Instant,
    stalled_since: Option<Instant>,
    failed_attempts: u32,
    state: State,
    outcome: Option<Outcome>,
    /// FTSTATs whose FtDelay exceeded `max_ft_delay`.
    pub delays_capped: u64,
}

/// Largest fragment data for a packet of `max_command_data_bytes` and FtUpdateMsgMax `msg_max`.
pub(super) fn fragment_capacity(max_command_data_bytes: usize, msg_max: Option<usize>) -> Result<usize, DoorError> {
    let mut data = max_command_data_bytes;
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

impl FileSend {
    /// A transfer of `total` bytes starting at `resume_at` (0, or a previous call's acknowledged offset).
    pub(super) fn new(total: u32, resume_at: u32, limits: FileSendLimits, now: Instant) -> Self {
        FileSend {
            total,
            limits,
            offset: resume_at.min(total),
            finishing: false,
            restarted_whole: false,
            msg_max: None,
            progress_at: now,
            stalled_since: None,
            failed_attempts: 0,
            state: State::Ready,
            outcome: None,
            delays_capped: 0,
        }
    }

    /// Bytes the PD acknowledged so far (where a later call resumes).
    pub(super) fn acked(&self) -> u32 {
        self.offset
    }

    /// Largest fragment the next [`Action::Send`] may carry.
    pub(super) fn msg_max(&self) -> Option<usize> {
        self.msg_max
    }

    fn finish(&mut self, outcome: Outcome) {
        self.state = State::Done;
        self.outcome = Some(outcome);
    }

    fn fail(&mut self, error: DoorError, resumable: bool) {
        self.finish(Outcome::Failed { error, resumable });
    }

    /// The next thing to do at `now`; `fragment_bytes` is [`fragment_capacity`] for the link right now.
    pub(super) fn poll(&mut self, now: Instant, fragment_bytes: Result<usize, DoorError>) -> Action {
        if let State::Sleeping(until) = self.state {
            if now < until {
                return Action::SleepUntil(until);
            }
            self.state = State::Ready;
        }
        match self.state {
            State::Ready => {
                let frag = match fragment_bytes {
                    Ok(n) => n,
                    Err(e) => {
                        self.fail(e, false);
                        return self.poll(now, Ok(0));
                    }
                };
                let (at, bytes) = if self.finishing {
                    (self.total, 0..0)
                } else {
                    let start = self.offset as usize;
                    let end = (start + frag).min(self.total as usize);
                    (self.offset, start..end)
                };
                self.state = State::AwaitingStat { at, sent: bytes.len() };
                Action::Send { offset: at, bytes }
            }
            State::Aborting => Action::Abort,
            State::WaitingLink { deadline } => Action::WaitOnline { deadline },
            State::RestartingLink => {
                self.finish(Outcome::Delivered);
                Action::RestartLink
            }
            State::Done => Action::Done(self.outcome.take().unwrap_or(Outcome::Failed {
                error: DoorError::Corrupt {
                    detail: "file transfer polled after it finished".into(),
                },
                resumable: false,
            })),
            // Awaiting a reply or sleeping (handled above): the shell must feed the reply first.
            State::AwaitingStat { .. } | State::Sleeping(_) => Action::SleepUntil(now),
        }
    }

    /// The osdp_ABORT went out (or failed; the PD drops a partial file either way on a new offset 0).
    pub(super) fn on_aborted(&mut self) {
        if self.state == State::Aborting {
            self.state = State::Ready;
        }
    }

    /// The link came back (`true`) or did not within the deadline.
    pub(super) fn on_link_back(&mut self, online: bool) {
        if !matches!(self.state, State::WaitingLink { .. }) {
            return;
        }
        if !online {
            let error = DoorError::Offline {
                reason: "the link did not come back during the file transfer".into(),
            };
            self.fail(error, true);
            return;
        }
        if self.limits.resume == ResumePolicy::Restart {
            self.offset = 0;
            self.finishing = false;
            self.state = State::Aborting;
        } else {
            self.state = State::Ready;
        }
    }

    /// The fragment's command failed on the link or was refused.
    pub(super) fn on_error(&mut self, now: Instant, error: DoorError) {
        if !matches!(self.state, State::AwaitingStat { .. }) {
            return;
        }
        match error.class() {
            FailureClass::Resend | FailureClass::Reconnect => {
                let since = *self.stalled_since.get_or_insert(now);
                let deadline = since + self.limits.resume_wait;
                self.failed_attempts += 1;
                if now >= deadline || self.failed_attempts >= MAX_ATTEMPTS_WITHOUT_PROGRESS {
                    self.fail(error, true);
                } else {
                    self.state = State::WaitingLink { deadline };
                }
            }
            _ => self.fail(error, false),
        }
    }

    /// The PD's FTSTAT to the fragment in flight.
    pub(super) fn on_ftstat(&mut self, now: Instant, stat: &FtStat) {
        let State::AwaitingStat { at, sent } = self.state else {
            return;
        };
        self.stalled_since = None;
        self.failed_attempts = 0;
        if stat.update_msg_max != 0 {
            self.msg_max = Some(usize::from(stat.update_msg_max));
        }
        if sent > 0 || stat.status != FtStatus::Finishing {
            self.progress_at = now;
        } else if now >= self.progress_at + self.limits.resume_wait {
            let error = DoorError::Misconfigured(Misconfig::BoundExceeded {
                detail: format!(
                    "door kept answering FTSTAT \"finishing\" for {} without finishing the file",
                    crate::clock::duration_text::format(self.limits.resume_wait)
                ),
            });
            self.fail(error, false);
            return;
        }
        let end = at as usize + sent;
        self.state = State::Ready;
        match stat.status {
            FtStatus::Ok if end < self.total as usize => self.offset = end as u32,
            FtStatus::Ok => {
                // Every byte was sent but the PD still misses some: it lost the partial file (reboot).
                if self.restarted_whole {
                    let error = DoorError::Corrupt {
                        detail: "door still reports missing bytes after the whole file was sent again".into(),
                    };
                    self.fail(error, false);
                    return;
                }
                tracing::info!(total = self.total, "door lost part of the file; sending it again whole");
                self.restarted_whole = true;
                self.finishing = false;
                self.offset = 0;
                self.state = State::Aborting;
                return;
            }
            FtStatus::Processed => {
                self.finish(Outcome::Delivered);
                return;
            }
            FtStatus::Rebooting => {
                self.state = State::RestartingLink;
                return;
            }
            FtStatus::Finishing => self.finishing = true,
            s if s.is_error() => {
                self.finish(Outcome::Refused(s));
                return;
            }
            FtStatus::Other(v) => {
                let error = DoorError::Protocol(vendor::VendorError::BadValue {
                    field: "FTSTAT status",
                    value: v as u64,
                });
                self.fail(error, false);
                return;
            }
            _ => {}
        }
        let requested = Duration::from_millis(u64::from(stat.delay_ms));
        let delay = if requested > self.limits.max_ft_delay {
            self.delays_capped += 1;
            tracing::warn!(
                requested_ms = stat.delay_ms,
                obeyed_ms = self.limits.max_ft_delay.as_millis() as u64,
                "door asked for a longer FtDelay than the profile's max_ft_delay; waiting only that long"
            );
            self.limits.max_ft_delay
        } else {
            requested
        };
        if !delay.is_zero() {
            self.state = State::Sleeping(now + delay);
        }
    }
}

#[cfg(test)]
#[path = "file_send_tests.rs"]
mod tests;
