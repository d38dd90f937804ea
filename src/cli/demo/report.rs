//! What `doorsync demo` reports: the `--json` object (keys documented in the README) and its text.

use serde::Serialize;

/// `doorsync demo --json` prints this object.
#[derive(Debug, Serialize)]
pub(crate) struct DemoSummary {
    /// The door's read-back (DIGEST over OSDP, and its database) equals desired state.
    pub converged: bool,
    /// The door link ran inside an OSDP Secure Channel session (`--secure`) at the end.
    pub secure_channel: bool,
    pub users: u64,
    pub baud: u32,
    /// Users who may pass at the end (everyone but the revoked and the expired user).
    pub users_desired: u64,
    /// Users the door holds at the end, by its own database.
    pub users_on_door: u64,
    pub door_digest_matches: bool,
    pub revoked_user: String,
    pub revoked_present: bool,
    pub expired_user: String,
    pub expired_present: bool,
    /// Face bytes the agent sent to the door (each face once).
    pub image_bytes_sent: u64,
    /// File-transfer payload bytes the door received (faces and record files).
    pub payload_bytes: u64,
    /// Bytes both ways on the serial line.
    pub bytes_on_wire: u64,
    /// The first pass: daemon start → the door holds every user.
    pub pass_ms: u64,
    /// Payload bytes per second during the first pass as a fraction of the line rate (baud / 10).
    pub goodput: f64,
    /// `revoke` → the door's ack of the delete (the daemon's measure).
    pub revocation_latency_ms: Option<u64>,
    /// `expire_at` → the door's ack of the delete (the daemon's measure).
    pub expiry_latency_ms: Option<u64>,
    /// The cloud-side face delete the revocation queued reached the fake cloud.
    pub cloud_delete_sent: bool,
    /// Each door on the bus (`--doors N`), in address order. The fields above sum or combine them:
    /// `converged` only if every door is, `*_present` if on any door, latencies the slowest door's.
    pub doors: Vec<DemoDoor>,
}

/// One door of the demo's bus.
#[derive(Debug, Serialize)]
pub(crate) struct DemoDoor {
    pub name: String,
    pub osdp_address: u8,
    pub converged: bool,
    pub door_digest_matches: bool,
    pub users_on_door: u64,
    pub revoked_present: bool,
    pub expired_present: bool,
    /// File-transfer payload bytes this door received.
    pub payload_bytes: u64,
    /// `revoke` → this door's ack of the delete.
    pub revocation_latency_ms: Option<u64>,
    /// `expire_at` → this door's ack of the delete.
    pub expiry_latency_ms: Option<u64>,
}

pub(super) fn render(s: &DemoSummary) -> String {
    let ms = |v: Option<u64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v} ms"));
    format!(
        "\nsummary\n  users: {} in the cloud, {} may pass, {} on the door{} ({})\n  revoked {}: {}; expired {}: {}\n  \
         bytes on the wire: {} ({} KiB of faces, {} KiB file payload)\n  first pass: {:.1} s at {} baud, goodput {:.0} % \
         of the line rate\n  revocation latency: {} (revoke → door ack)\n  expiry latency: {} (expire_at → door ack)\n  \
         cloud face delete for the revoked user: {}\n",
        s.users,
        s.users_desired,
        s.users_on_door,
        if s.doors.len() > 1 {
            format!(" (each of {} doors on one bus)", s.doors.len())
        } else {
            String::new()
        },
        if s.converged { "converged" } else { "NOT converged" },
        s.revoked_user,
        if s.revoked_present {
            "STILL ON THE DOOR"
        } else {
            "gone from the door"
        },
        s.expired_user,
        if s.expired_present {
            "STILL ON THE DOOR"
        } else {
            "gone from the door"
        },
        s.bytes_on_wire,
        s.image_bytes_sent / 1024,
        s.payload_bytes / 1024,
        s.pass_ms as f64 / 1000.0,
        s.baud,
        s.goodput * 100.0,
        ms(s.revocation_latency_ms),
        ms(s.expiry_latency_ms),
        if s.cloud_delete_sent { "sent" } else { "queued" },
    )
}
