//! `OsdpDoor`: the [`Door`] trait over a real OSDP link, speaking `firmware-config/PROTOCOL.md`.
//!
//! The link itself (session, queue, serial I/O) is [`crate::serial::link`]; this module adds the vendor
//! extension: osdp_MFG exchanges matched by request id (`mfg.rs`; the schedule and the matching are
//! sans-IO in `mfg_exchange.rs` and `mfg_route.rs`) and record/face files over osdp_FILETRANSFER with
//! confirmation and resume (`transfer.rs`).
//!
//! Concurrency: every method takes `&self` and may run concurrently with the others. Files go one at a
//! time (a PD assembles one file at once); DELETE and CLEAR use the link's urgent lane, so a revocation
//! issued while a face file is in flight goes out between two of its fragments. That holds even when a
//! PD's FTSTAT clears FtAction bit 0 ("do not interleave"): a revocation outranks it, and a file the PD
//! dropped because of it is caught by the confirmation below and sent again.
//!
//! Resume: a file interrupted by a link drop is remembered with its last acknowledged offset. With
//! [`ResumePolicy::FromLastAck`] (the default: PROTOCOL.md §7 requires doors to reassemble by byte
//! coverage) the next attempt continues there, after the reconnect or on the next call for the same
//! file; with [`ResumePolicy::Restart`] it sends osdp_ABORT and starts the file again. A door that lost
//! the partial file anyway (it rebooted) answers the last fragment with status 0 ("bytes missing"), and
//! the CP then aborts and resends that file whole, once. Whatever happened, a file counts as delivered
//! only once INFO / FACE_STATUS confirm it, so a PD that completed a file with a hole is caught.

mod file_send;
mod mfg;
mod mfg_exchange;
mod mfg_route;
mod transfer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_serial::SerialStream;

use super::vendor::{self, Command as VCmd, Reply as VReply};
use super::{BucketDigest, Door, DoorDigest, DoorError, DoorInfo, DoorListEntry, FaceStatus, Misconfig};
use crate::domain::{DoorRecord, DoorUserId, FaceRef, Profile};
use crate::osdp::reply::{PdCap, PdId};
use crate::osdp::{FailReason, NakCode, PdState, SessionConfig, SubmitError};
use crate::serial::link::{self, LinkDriver, LinkError, LinkHandle, LinkStatus, Priority};
use crate::serial::{self, SerialError};

pub use transfer::ResumePolicy;

/// Bytes of the largest reply the vendor extension makes a PD send (an osdp_MFGREP of 64 vendor data
/// bytes plus OSDP framing), for sizing the reply timeout.
const LARGEST_REPLY_BYTES: u64 = 80;

/// LIST may report this many users per bucket beyond INFO's user count before the walk stops as a lie
/// (PROTOCOL.md §8): INFO is asked right before, and only this agent changes the door.
pub(crate) const LIST_MARGIN_USERS: u32 = 64;

/// Tunables of an [`OsdpDoor`] beyond the OSDP session's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsdpDoorOptions {
    pub resume: ResumePolicy,
    /// How long a query may wait for its osdp_MFGREP (direct or on a later poll) before `DoorError::Timeout`.
    pub query_timeout: Duration,
    /// Send the same query again (same request id) when its reply has not come after this long (less
    /// the retry policy's jitter: between half and all of it, [`crate::retry`]).
    pub query_resend_after: Duration,
    /// Spacing of the explicit osdp_POLLs that fetch a reply the PD queued after ACKing a query.
    pub reply_poll_interval: Duration,
    /// How long a file transfer waits for the link to come back after a drop before failing `Offline`.
    pub resume_wait: Duration,
    /// How long any operation waits for the link to reach Online first (the session declares a silent
    /// PD offline after its own `offline_after`, which also ends the wait).
    pub connect_wait: Duration,
}

impl Default for OsdpDoorOptions {
    fn default() -> Self {
        Self {
            resume: ResumePolicy::FromLastAck,
            query_timeout: Duration::from_secs(3),
            query_resend_after: Duration::from_secs(1),
            reply_poll_interval: Duration::from_millis(20),
            resume_wait: Duration::from_secs(12),
            connect_wait: Duration::from_secs(10),
        }
    }
}

/// Link counters for benchmarks and the demo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub transmissions: u64,
    pub retries: u64,
    /// File bytes carried in FILETRANSFER fragments (resends included).
    pub file_payload_bytes: u64,
    pub fragments: u64,
    /// Fragment data size used for the last file (0 before any).
    pub fragment_bytes: u32,
    /// FTSTATs whose FtDelay exceeded the profile's `max_ft_delay` (obeyed only up to it).
    pub ft_delays_capped: u64,
}

#[derive(Debug, Default)]
struct FileCounters {
    payload_bytes: AtomicU64,
    fragments: AtomicU64,
    fragment_bytes: AtomicU32,
    ft_delays_capped: AtomicU64,
}

/// The driver future's owner: spawn `driver.run()` and keep it running while the door is used.
pub(crate) type Driver<S> = LinkDriver<S>;

/// A door unit on an OSDP link. Share it as `Arc<dyn Door>`; the link runs in the [`Driver`].
#[derive(Debug)]
pub struct OsdpDoor {
    link: LinkHandle,
    vendor_code: [u8; 3],
    delete_batch: usize,
    max_mfg_data: usize,
    options: OsdpDoorOptions,
    replies: Arc<mfg::Waiters>,
    next_request_id: std::sync::atomic::AtomicU16,
    files: tokio::sync::Mutex<transfer::FileState>,
    file_counters: FileCounters,
    /// The last INFO (checked against PROTOCOL.md), for its limits.
    last_info: std::sync::Mutex<Option<DoorInfo>>,
    profile_name: String,
    /// Longest FtDelay obeyed (profile `osdp.max_ft_delay`); a longer request is cut to this.
    max_ft_delay: Duration,
}

impl OsdpDoor {
    /// The session settings this door uses for `address` and `profile` (the profile caps the packet size).
    pub fn session_config(address: u8, profile: &Profile) -> SessionConfig {
        let mut config = SessionConfig::new(address);
        config.max_packet_bytes = usize::from(profile.osdp.max_packet_bytes);
        config
    }

    /// [`OsdpDoor::session_config`] for a line at `baud`: the reply timeout also covers the time the
    /// largest command and a reply take on the wire (10 bits per byte), since OSDP's 200 ms count from
    /// the command's last byte while the CP's clock starts at its first. At 115200 baud and 1 KB
    /// packets that is about 300 ms; at 9600 baud, 1.4 s.
    pub fn line_session_config(address: u8, profile: &Profile, baud: u32) -> SessionConfig {
        let mut config = Self::session_config(address, profile);
        let wire_bytes = config.max_packet_bytes as u64 + 1 + LARGEST_REPLY_BYTES;
        let micros = wire_bytes * 10 * 1_000_000 / u64::from(baud.max(1));
        config.reply_timeout += Duration::from_micros(micros);
        config
    }

    /// Opens `port` at `baud` through [`serial::open`] and sets up the door at `address`.
    pub fn open(
        port: &Path,
        baud: u32,
        address: u8,
        profile: &Profile,
        options: OsdpDoorOptions,
    ) -> Result<(OsdpDoor, Driver<SerialStream>), SerialError> {
        let stream = serial::open(port, baud)?;
        let session = Self::line_session_config(address, profile, baud);
        Ok(Self::with_session(stream, session, profile, options))
    }

    /// The door over an already-open stream (a serial port, a pty master, an in-memory duplex).
    pub fn over<S>(stream: S, address: u8, profile: &Profile, options: OsdpDoorOptions) -> (OsdpDoor, Driver<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        Self::with_session(stream, Self::session_config(address, profile), profile, options)
    }

    /// As [`OsdpDoor::over`] with explicit session settings (timeouts, poll period, …).
    pub fn with_session<S>(
        stream: S,
        session: SessionConfig,
        profile: &Profile,
        options: OsdpDoorOptions,
    ) -> (OsdpDoor, Driver<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (handle, driver) = link::link(stream, session);
        (Self::on_link(handle, profile, options), driver)
    }

    /// The door behind `handle`, one PD of a line whose driver the caller runs (several doors on one
    /// RS-485 bus share one [`link::bus`] driver, one handle each).
    pub fn on_link(handle: LinkHandle, profile: &Profile, options: OsdpDoorOptions) -> OsdpDoor {
        let replies = Arc::new(mfg::Waiters::new(profile.vendor_code));
        let sink = replies.clone();
        // Fails only when the driver is gone, and then every request fails with `Stopped` too.
        let _ = handle.on_unsolicited(Box::new(move |reply| sink.route_reply(&reply)));
        OsdpDoor {
            link: handle,
            vendor_code: profile.vendor_code,
            delete_batch: vendor::delete_batch_size(profile.osdp.max_mfg_data_bytes),
            max_mfg_data: usize::from(profile.osdp.max_mfg_data_bytes).min(vendor::MAX_MFG_DATA_BYTES),
            options,
            replies,
            next_request_id: std::sync::atomic::AtomicU16::new(1),
            files: tokio::sync::Mutex::new(transfer::FileState::default()),
            file_counters: FileCounters::default(),
            last_info: std::sync::Mutex::new(None),
            profile_name: profile.name.clone(),
            max_ft_delay: Duration::from_millis(u64::from(profile.osdp.max_ft_delay_ms)),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_online(&self) -> bool {
        self.link.is_online()
    }

    /// Waits until discovery completed; false after `timeout` (or when the driver stopped).
    pub async fn wait_online(&self, timeout: Duration) -> bool {
        self.link.wait_online(timeout).await
    }

    /// The PD's identity from the last discovery.
    pub fn pdid(&self) -> Option<PdId> {
        self.link.status().pdid
    }

    /// The PD's capabilities from the last discovery.
    pub(crate) fn pdcap(&self) -> Option<PdCap> {
        self.link.status().pdcap
    }

    pub fn link_status(&self) -> LinkStatus {
        self.link.status()
    }

    /// Bytes and packets on the wire since the driver started.
    pub(crate) fn wire_stats(&self) -> link::WireStats {
        self.link.wire_stats()
    }

    /// Wakes on every link status change.
    pub(crate) fn watch_link(&self) -> tokio::sync::watch::Receiver<LinkStatus> {
        self.link.watch_status()
    }

    pub fn stats(&self) -> LinkStats {
        let wire = self.link.wire_stats();
        let f = &self.file_counters;
        LinkStats {
            bytes_written: wire.bytes_written,
            bytes_read: wire.bytes_read,
            transmissions: wire.transmissions,
            retries: wire.retries,
            file_payload_bytes: f.payload_bytes.load(Ordering::Relaxed),
            fragments: f.fragments.load(Ordering::Relaxed),
            fragment_bytes: f.fragment_bytes.load(Ordering::Relaxed),
            ft_delays_capped: f.ft_delays_capped.load(Ordering::Relaxed),
        }
    }

    /// Waits (bounded by `connect_wait`) for the first discovery so that a call made right after
    /// start-up does not fail; the wait ends as soon as the link is online, goes offline, or the
    /// Secure Channel handshake fails, since none of those changes within the wait.
    async fn ensure_connected(&self) -> Result<(), DoorError> {
        let mut status = self.link.watch_status();
        let settled =
            |s: &LinkStatus| matches!(s.state, PdState::Online | PdState::Offline) || s.secure_error.is_some();
        let waited = tokio::time::timeout(self.options.connect_wait, status.wait_for(settled)).await;
        let now = match waited {
            Ok(Ok(s)) => s.clone(),
            // Still discovering after `connect_wait`, or the driver stopped.
            _ => self.link.status(),
        };
        connect_verdict(&now)
    }

    /// The last INFO, asking for it when none was read yet.
    async fn known_info(&self) -> Result<DoorInfo, DoorError> {
        let cached = *self.last_info.lock().unwrap_or_else(|p| p.into_inner());
        match cached {
            Some(info) => Ok(info),
            None => self.info().await,
        }
    }

    /// INFO's record file limit, which must hold at least one record (else the door is misconfigured).
    async fn record_file_limit(&self) -> Result<u32, DoorError> {
        let limit = self.known_info().await?.max_record_file_bytes;
        if (limit as usize) < vendor::MIN_RECORD_FILE_BYTES {
            return Err(DoorError::Misconfigured(Misconfig::RecordFileTooSmall {
                door_bytes: limit,
                needed_bytes: vendor::MIN_RECORD_FILE_BYTES,
            }));
        }
        Ok(limit)
    }

    /// [`door_error`] with what this door knows: a NAK 0x09 to an osdp_MFG means the vendor code is
    /// refused, and a command too large for the PD names its receive buffer.
    fn mfg_error(&self, e: LinkError) -> DoorError {
        match e {
            LinkError::Failed(FailReason::Nak(nak)) if nak.code == NakCode::UnableToProcess => {
                DoorError::Misconfigured(Misconfig::VendorCodeRefused {
                    profile: self.profile_name.clone(),
                    profile_vendor_code: self.vendor_code,
                })
            }
            e => self.link_error(e),
        }
    }

    /// [`door_error`], naming the PD's receive buffer when a command did not fit it.
    fn link_error(&self, e: LinkError) -> DoorError {
        match door_error(e) {
            DoorError::Misconfigured(Misconfig::PacketTooLarge { len, max, .. }) => {
                DoorError::Misconfigured(Misconfig::PacketTooLarge {
                    len,
                    max,
                    receive_buffer_bytes: self.pdcap().and_then(|c| c.receive_buffer_bytes()),
                })
            }
            DoorError::Timeout => self.garbled_line().unwrap_or(DoorError::Timeout),
            other => other,
        }
    }

    /// Why a command got no valid reply when the line did carry something: packets that failed OSDP's
    /// check or replies from another address (counted since the link started). "Did not answer" would
    /// send a technician to the power supply; this names the line.
    fn garbled_line(&self) -> Option<DoorError> {
        let status = self.link.status();
        let d = &status.diagnostics;
        let mut seen = Vec::new();
        if status.decode.malformed > 0 {
            seen.push(format!("{} packets that failed their check", status.decode.malformed));
        }
        if let Some(a) = d.foreign_address.filter(|_| d.foreign_replies > 0) {
            seen.push(format!("{} replies from address {a}", d.foreign_replies));
        }
        if seen.is_empty() {
            return None;
        }
        Some(DoorError::Offline {
            reason: format!(
                "no valid reply; the line carried {}: check the baud rate, RS-485 A/B polarity, noise and \
                 termination, and the door's OSDP address",
                seen.join(" and ")
            ),
        })
    }
}

/// INFO as PROTOCOL.md §6 defines it, or the configuration error that makes the door unusable.
fn check_info(info: &DoorInfo) -> Result<(), DoorError> {
    if info.protocol_version != vendor::PROTOCOL_VERSION {
        return Err(DoorError::Misconfigured(Misconfig::ProtocolVersion {
            door: info.protocol_version,
        }));
    }
    if info.bucket_count != vendor::BUCKET_COUNT {
        return Err(DoorError::Misconfigured(Misconfig::BucketCount {
            door: info.bucket_count,
        }));
    }
    Ok(())
}

/// Whether a call may go out on a link in `status`, else why not (naming a malformed discovery reply,
/// which is what a technician needs when a door answers osdp_ID/osdp_CAP with something unusable).
fn connect_verdict(status: &LinkStatus) -> Result<(), DoorError> {
    if status.state == PdState::Online {
        return Ok(());
    }
    if let Some(e) = &status.secure_error {
        return Err(DoorError::Offline {
            reason: format!("secure channel handshake failed: {e}"),
        });
    }
    let what = match status.state {
        PdState::Offline => "the PD does not answer",
        _ => "the PD did not complete discovery (osdp_ID/osdp_CAP)",
    };
    Err(match &status.diagnostics.last_malformed {
        Some(malformed) => DoorError::Offline {
            reason: format!("{what}; its last malformed reply: {malformed}"),
        },
        None => offline(what),
    })
}

fn offline(reason: &str) -> DoorError {
    DoorError::Offline { reason: reason.into() }
}

/// How a link-level failure looks to the `Door` caller.
pub(crate) fn door_error(e: LinkError) -> DoorError {
    match e {
        LinkError::Offline => offline("the PD went offline"),
        LinkError::Stopped => offline("the link driver is not running"),
        LinkError::Failed(FailReason::Nak(nak)) => match nak.code {
            NakCode::SecureChannelUnsupported | NakCode::EncryptionRequired => {
                DoorError::Misconfigured(Misconfig::SecureChannel(nak.code))
            }
            NakCode::CommandLength | NakCode::UnknownCommand | NakCode::UnableToProcess => {
                DoorError::Misconfigured(Misconfig::CommandRefused(nak.code))
            }
            code => DoorError::Nak { code },
        },
        LinkError::Failed(FailReason::Timeout { .. }) => DoorError::Timeout,
        LinkError::Failed(FailReason::BadReply(e)) => DoorError::Offline {
            reason: format!("the PD sent a malformed reply ({e})"),
        },
        LinkError::Failed(reason) => DoorError::Offline {
            reason: reason.to_string(),
        },
        LinkError::Submit(SubmitError::TooLarge { len, max }) => DoorError::Misconfigured(Misconfig::PacketTooLarge {
            len,
            max,
            receive_buffer_bytes: None,
        }),
        LinkError::Submit(e) => DoorError::Offline {
            reason: format!("command not sent: {e}"),
        },
    }
}

fn unexpected(what: &'static str, got: &VReply) -> DoorError {
    match got {
        VReply::Failed { status, .. } => DoorError::Rejected { status: *status },
        _ => DoorError::Protocol(vendor::VendorError::BadValue { field: what, value: 0 }),
    }
}

#[async_trait]
impl Door for OsdpDoor {
    async fn upsert_users(&self, records: &[DoorRecord]) -> Result<(), DoorError> {
        if records.is_empty() {
            return Ok(());
        }
        self.ensure_connected().await?;
        let limit = self.record_file_limit().await?;
        for file in vendor::encode_record_files(records, limit)? {
            self.send_record_file(&file).await?;
        }
        Ok(())
    }

    async fn put_face(&self, id: DoorUserId, face: FaceRef, jpeg: Bytes) -> Result<(), DoorError> {
        if vendor::sha256(&jpeg) != face.sha256 {
            return Err(DoorError::Protocol(vendor::VendorError::ShaMismatch {
                what: "face JPEG given to put_face",
            }));
        }
        self.ensure_connected().await?;
        let max_bytes = self.known_info().await?.max_face_jpeg_bytes;
        if jpeg.len() > max_bytes as usize {
            return Err(DoorError::FaceTooLarge {
                bytes: jpeg.len(),
                max_bytes,
            });
        }
        let file = vendor::encode_face_file(id, &jpeg)?;
        self.send_face_file(id, face.sha256, &file).await
    }

    async fn delete_users(&self, ids: &[DoorUserId]) -> Result<(), DoorError> {
        if ids.is_empty() {
            return Ok(());
        }
        if self.delete_batch == 0 {
            return Err(DoorError::Protocol(vendor::VendorError::TooLong {
                what: "DELETE with one id for the profile's max_mfg_data_bytes",
                got: 8,
                max: self.max_mfg_data,
            }));
        }
        self.ensure_connected().await?;
        for chunk in ids.chunks(self.delete_batch) {
            match self.exchange(VCmd::Delete(chunk.to_vec()), Priority::Urgent).await? {
                VReply::Deleted => {}
                other => return Err(unexpected("DELETE reply", &other)),
            }
        }
        Ok(())
    }

    async fn digest(&self) -> Result<DoorDigest, DoorError> {
        self.ensure_connected().await?;
        match self.exchange(VCmd::Digest, Priority::Normal).await? {
            VReply::Digest(d) => Ok(d),
            other => Err(unexpected("DIGEST reply", &other)),
        }
    }

    async fn bucket_digests(&self) -> Result<Vec<BucketDigest>, DoorError> {
        self.ensure_connected().await?;
        let mut out = Vec::with_capacity(usize::from(vendor::BUCKET_COUNT));
        while out.len() < usize::from(vendor::BUCKET_COUNT) {
            let first_bucket = out.len() as u8;
            let page = match self
                .exchange(VCmd::BucketDigests { first_bucket }, Priority::Normal)
                .await?
            {
                VReply::BucketDigests(p) => p,
                other => return Err(unexpected("BUCKET_DIGESTS reply", &other)),
            };
            if page.first_bucket != first_bucket || page.buckets.is_empty() {
                return Err(DoorError::Protocol(vendor::VendorError::BadValue {
                    field: "BUCKET_DIGESTS first bucket / count",
                    value: u64::from(page.first_bucket),
                }));
            }
            out.extend(page.buckets);
        }
        out.truncate(usize::from(vendor::BUCKET_COUNT));
        Ok(out)
    }

    async fn list(&self, bucket: u8) -> Result<Vec<DoorListEntry>, DoorError> {
        self.ensure_connected().await?;
        // A door that says "more" forever (cursors increasing) would hold the pass for 2^32 pages.
        let max_entries = self.info().await?.user_count.saturating_add(LIST_MARGIN_USERS);
        let mut out = Vec::new();
        let mut cursor = 0u32;
        let mut pages = 0u32;
        loop {
            pages += 1;
            let page = match self.exchange(VCmd::List { bucket, cursor }, Priority::Normal).await? {
                VReply::List(p) => p,
                other => return Err(unexpected("LIST reply", &other)),
            };
            out.extend(page.entries);
            if out.len() > max_entries as usize || pages > max_entries.saturating_add(1) {
                return Err(DoorError::Misconfigured(Misconfig::BoundExceeded {
                    detail: format!(
                        "LIST of bucket {bucket} goes on past {} users in {pages} pages, while INFO reports \
                         {} users (margin {LIST_MARGIN_USERS})",
                        out.len(),
                        max_entries.saturating_sub(LIST_MARGIN_USERS)
                    ),
                }));
            }
            match page.next_cursor {
                // A cursor that does not move forward would loop forever.
                Some(next) if next > cursor => cursor = next,
                Some(next) => {
                    return Err(DoorError::Misconfigured(Misconfig::BoundExceeded {
                        detail: format!(
                            "LIST of bucket {bucket} asked to continue at cursor {next}, not after cursor {cursor}"
                        ),
                    }));
                }
                None => return Ok(out),
            }
        }
    }

    async fn face_status(&self, id: DoorUserId) -> Result<FaceStatus, DoorError> {
        self.ensure_connected().await?;
        self.query_face_status(id).await
    }

    async fn clear(&self) -> Result<(), DoorError> {
        self.ensure_connected().await?;
        match self.exchange(VCmd::Clear, Priority::Urgent).await? {
            VReply::Cleared => Ok(()),
            other => Err(unexpected("CLEAR reply", &other)),
        }
    }

    fn link_snapshot(&self) -> Option<super::LinkSnapshot> {
        let status = self.link.status();
        Some(super::LinkSnapshot {
            state: status.state.to_string(),
            secure_channel: status.secure_channel,
            secure_error: status.secure_error,
            pds_on_line: status.pds_on_line,
        })
    }

    async fn info(&self) -> Result<DoorInfo, DoorError> {
        self.ensure_connected().await?;
        match self.exchange(VCmd::Info, Priority::Normal).await? {
            VReply::Info(info) => {
                check_info(&info)?;
                *self.last_info.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
                Ok(info)
            }
            other => Err(unexpected("INFO reply", &other)),
        }
    }
}
