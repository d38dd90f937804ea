//! A test hook for crash-safety tests with real processes: `DOORSYNC_TEST_ABORT_AT=<point>` makes the
//! process abort (as a SIGKILL would stop it: no flush, no cleanup) when it reaches that point.
//! Inert unless the variable is set; read once.

use std::sync::OnceLock;

/// After a door acknowledged a record file, before the agent records the acknowledgement.
pub const AFTER_DOOR_ACK: &str = "after-door-ack";

/// Aborts the process if the hook names `point`.
pub fn point(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("DOORSYNC_TEST_ABORT_AT").ok());
    if at.as_deref() == Some(point) {
        eprintln!("doorsync: test hook DOORSYNC_TEST_ABORT_AT={point}: aborting");
        std::process::abort();
    }
}
