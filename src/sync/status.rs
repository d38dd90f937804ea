//! The status report: what the store says about users, faces and each door, for `doorsync status`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::build_info::{BUILD_INFO, BuildInfo};
use crate::clock::trust::ClockStatus;
use crate::store::{PassSummary, Store, StoreError};
use crate::sync::guard::{self, HeldSummary};

/// `doorsync status --json` prints this object (stable field names; see README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Whether the answer came from a running daemon (else the CLI read the store itself).
    pub daemon_running: bool,
    pub users: u64,
    pub users_with_face: u64,
    /// Users marked failed, by key, with the reason.
    pub failed: BTreeMap<String, String>,
    pub revoked_locally: u64,
    pub faces_stored: u64,
    /// Bytes of the face files in the store (`<store>/faces`).
    #[serde(default)]
    pub faces_bytes_on_disk: u64,
    pub outbox_pending: u64,
    pub last_pass: Option<PassSummary>,
    /// `complete` once one complete, consistent roster walk was stored; `none yet` before, when no
    /// stranger is removed from a door (README, "Roster integrity").
    #[serde(default)]
    pub roster: String,
    /// Implicit removals the mass-removal guard holds.
    #[serde(default)]
    pub removals_held: Option<HeldSummary>,
    pub doors: Vec<DoorReport>,
    /// The build of whoever answered (the daemon's own when it runs); absent from older daemons.
    #[serde(default)]
    pub build: Option<BuildInfo>,
    /// The clock trust alarms and mark (README "Clock trust").
    #[serde(default)]
    pub clock: ClockStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorReport {
    pub name: String,
    pub users_applied: u64,
    pub faces_applied: u64,
    pub pending: u64,
    pub failed: BTreeMap<String, String>,
    pub last_verified_at: Option<Timestamp>,
    pub last_revocation_latency_ms: Option<u64>,
    /// `expire_at` → the door's delete ack, as last measured.
    #[serde(default)]
    pub last_expiry_latency_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Door-local ids the door holds that the agent did not put there and has not removed (no
    /// complete roster yet).
    #[serde(default)]
    pub unknown_users: Vec<u32>,
    /// The door is configured for OSDP Secure Channel (`scbk_file`): it is never spoken to in plain
    /// text after discovery. Filled from the configuration by the `status` command.
    #[serde(default)]
    pub secure_channel: bool,
    /// The door's live link as the running daemon sees it (absent without a daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::door::LinkSnapshot>,
}

/// Reads the report from the store for the configured doors. Users and applied entries are read one
/// record at a time and only counted (plus the failing ones), so the daemon answering `status` holds
/// no copy of the roster (BENCHMARKS.md, memory budget).
pub fn collect(store: &Store, doors: &[&str], daemon_running: bool) -> Result<StatusReport, StoreError> {
    let mut users = 0u64;
    let mut users_with_face = 0u64;
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut corrupt = 0usize;
    store.each_user_record(|u| match u {
        Ok(u) => {
            users += 1;
            users_with_face += u64::from(!u.faces.is_empty());
            if let Some(f) = u.failure {
                failed.insert(u.key.to_string(), f);
            }
        }
        Err(e) => {
            failed.insert(format!("corrupt-record-{corrupt}"), e.to_string());
            corrupt += 1;
        }
    })?;
    let faces = store.face_usage()?;
    let mut door_reports = Vec::with_capacity(doors.len());
    for name in doors {
        let applied = store.applied_counts(name)?;
        let status = store.door_status(name)?;
        door_reports.push(DoorReport {
            name: (*name).to_string(),
            users_applied: applied.users,
            faces_applied: applied.faces,
            pending: status.pending,
            failed: status.failed,
            last_verified_at: status.last_verified_at,
            last_revocation_latency_ms: status.last_revocation_latency_ms,
            last_expiry_latency_ms: status.last_expiry_latency_ms,
            last_error: status.last_error,
            unknown_users: store.unknown_on_door(name)?.into_iter().map(|id| id.0).collect(),
            secure_channel: false,
            link: None,
        });
    }
    Ok(StatusReport {
        daemon_running,
        users,
        users_with_face,
        failed,
        revoked_locally: store.tombstones()?.len() as u64,
        faces_stored: faces.files,
        faces_bytes_on_disk: faces.bytes,
        outbox_pending: store.outbox_len() as u64,
        last_pass: store.last_pass()?,
        roster: if store.has_complete_roster()? {
            "complete".into()
        } else {
            "none yet".into()
        },
        removals_held: guard::summary(&store.held_removals()?),
        doors: door_reports,
        build: Some(BUILD_INFO),
        clock: store.clock_status()?,
    })
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = if self.daemon_running {
            "daemon running"
        } else {
            "no daemon running; read from the store"
        };
        writeln!(f, "doorsync status ({source})")?;
        if let Some(b) = &self.build {
            writeln!(
                f,
                "build: {} (commit {}, {}, OSDP Secure Channel {})",
                b.version,
                b.git_commit,
                b.target,
                if b.secure_channel { "built in" } else { "not built in" }
            )?;
        }
        writeln!(
            f,
            "users: {} ({} with a face, {} failed, {} revoked locally); faces stored: {} ({} bytes); cloud calls queued: {}",
            self.users,
            self.users_with_face,
            self.failed.len(),
            self.revoked_locally,
            self.faces_stored,
            self.faces_bytes_on_disk,
            self.outbox_pending
        )?;
        match &self.last_pass {
            Some(p) => writeln!(
                f,
                "last pass: finished {} ({} users, {} failed, {} images downloaded){}",
                p.finished_at,
                p.users_total,
                p.users_failed,
                p.images_downloaded,
                p.error.as_ref().map(|e| format!(", error: {e}")).unwrap_or_default()
            )?,
            None => writeln!(f, "last pass: never")?,
        }
        writeln!(f, "roster: {}", self.roster)?;
        if let Some(h) = &self.removals_held {
            writeln!(
                f,
                "removals HELD: {} users gone from the roster at once stay on the doors (first seen {}, applied \
                 at {} if pulls keep agreeing; `doorsync sync --confirm-removals` applies them now)",
                h.count, h.first_seen_at, h.until
            )?;
        }
        for d in &self.doors {
            writeln!(
                f,
                "door {}: secure_channel: {}; {} users, {} faces applied, {} pending, {} failed; last verified {}; last revocation latency {}; last expiry latency {}{}",
                d.name,
                d.secure_channel,
                d.users_applied,
                d.faces_applied,
                d.pending,
                d.failed.len(),
                d.last_verified_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "never".into()),
                d.last_revocation_latency_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "-".into()),
                d.last_expiry_latency_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "-".into()),
                d.last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            )?;
            if let Some(link) = &d.link {
                writeln!(
                    f,
                    "  link: {}{}{}{}",
                    link.state,
                    if link.secure_channel {
                        ", secure channel open"
                    } else {
                        ""
                    },
                    link.secure_error
                        .as_ref()
                        .map(|e| format!(", secure channel handshake failed: {e}"))
                        .unwrap_or_default(),
                    if link.pds_on_line > 1 {
                        format!(", {} doors on this line", link.pds_on_line)
                    } else {
                        String::new()
                    }
                )?;
            }
            for (who, why) in &d.failed {
                writeln!(f, "  failed {who}: {why}")?;
            }
            if !d.unknown_users.is_empty() {
                writeln!(
                    f,
                    "  unknown users on the door (not removed until a complete roster is stored): ids {:?}",
                    d.unknown_users
                )?;
            }
        }
        for (who, why) in &self.failed {
            writeln!(f, "failed {who}: {why}")?;
        }
        self.clock.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppliedEntry, DoorUserId, UserKey};
    use crate::sync::testutil::{add_user, record_on_door};

    #[test]
    fn status_counts_users_and_applied_entries_and_names_failing_and_corrupt_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let face = add_user(&store, "a");
        add_user(&store, "b");
        add_user(&store, "c");
        let c_key = UserKey::new("IDENTITY", "c");
        let mut c = store.get_user(&c_key).unwrap().unwrap();
        c.faces.clear();
        c.failure = Some("bad image".into());
        store.put_user(&c).unwrap();
        store.put_raw_user(b"\x08IDENTITYz", b"{not json").unwrap();
        record_on_door(&store, "lobby", "a", 1, face);
        record_on_door(&store, "lobby", "b", 2, face);
        let face_only = AppliedEntry {
            key: c_key.clone(),
            record: None,
            face: Some(face),
        };
        store.record_applied("lobby", DoorUserId(3), &face_only).unwrap();

        let report = collect(&store, &["lobby", "hall"], false).unwrap();
        assert_eq!((report.users, report.users_with_face), (2 + 1, 2), "{report:?}");
        assert_eq!(report.failed.len(), 2, "{report:?}");
        assert_eq!(report.failed[&c_key.to_string()], "bad image");
        assert!(report.failed["corrupt-record-0"].contains("IDENTITYz"), "{report:?}");
        let doors: Vec<_> = report
            .doors
            .iter()
            .map(|d| (d.name.as_str(), d.users_applied, d.faces_applied))
            .collect();
        assert_eq!(doors, [("lobby", 2, 3), ("hall", 0, 0)]);
    }
}
