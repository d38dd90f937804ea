//! A test hook for crash-safety tests with real processes: `DOORSYNC_TEST_ABORT_AT=<point>[:<n>]`
//! makes the process abort (as a SIGKILL would stop it: no flush, no cleanup) the `n`th time (default
//! the first) it reaches that point. Inert unless the variable is set; read once.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// After a door acknowledged a record or face file, before the agent records the acknowledgement.
pub(crate) const AFTER_DOOR_ACK: &str = "after-door-ack";

/// Aborts the process if the hook names `point` and this is the chosen arrival there.
pub(crate) fn point(point: &str) {
    static AT: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static ARRIVALS: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        let v = std::env::var("DOORSYNC_TEST_ABORT_AT").ok()?;
        Some(match v.split_once(':') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        })
    });
    let Some((name, n)) = at else {
        return;
    };
    if name == point && ARRIVALS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        eprintln!("doorsync: test hook DOORSYNC_TEST_ABORT_AT={point}:{n}: aborting");
        std::process::abort();
    }
}
