//! The systemd service-manager protocol (sd_notify): READY, WATCHDOG and STOPPING datagrams to
//! `$NOTIFY_SOCKET`. Every call is a no-op when systemd did not ask for notifications.
//!
//! The packaged unit (packaging/doorsync.service) is `Type=notify` with `WatchdogSec=`: systemd
//! waits for READY=1 before calling the service started, and restarts it when WATCHDOG=1 stops
//! arriving. [`supervise`] sends them from the daemon's main loop, each ping only after a liveness
//! probe answered in time, so a wedged daemon is restarted rather than kept alive by a timer.

use std::ffi::OsStr;
use std::future::Future;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where to send notifications, and how often systemd expects a watchdog ping.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    target: Option<SocketAddr>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`.
    pub(crate) fn from_env() -> Self {
        let var = std::env::var_os;
        Self::new(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    /// `socket` is a path or `@abstract-name`; the watchdog applies only when `watchdog_pid` is
    /// unset or this process (`own_pid`). Unusable values disable the part they configure.
    pub(crate) fn new(
        socket: Option<&OsStr>,
        watchdog_usec: Option<&OsStr>,
        watchdog_pid: Option<&OsStr>,
        own_pid: u32,
    ) -> Self {
        let target = socket.and_then(|s| {
            let bytes = s.as_bytes();
            let addr = match bytes.split_first() {
                Some((b'@', name)) => SocketAddr::from_abstract_name(name),
                Some((b'/', _)) => SocketAddr::from_pathname(std::path::Path::new(s)),
                _ => return None,
            };
            addr.map_err(|e| tracing::warn!(error = %e, "NOTIFY_SOCKET is unusable; not notifying systemd"))
                .ok()
        });
        let for_us = watchdog_pid
            .and_then(|p| p.to_str())
            .is_none_or(|p| p.trim().parse::<u32>().ok() == Some(own_pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.to_str())
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us && target.is_some())
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// Whether systemd listens at all.
    #[cfg(test)]
    pub(crate) fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `WatchdogSec=` as systemd passed it, when it applies to this process.
    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (e.g. "READY=1"); failures are logged, never fatal (systemd will act on the
    /// missing notification by itself).
    pub(crate) fn notify(&self, state: &str) {
        let Some(target) = &self.target else { return };
        let sent = UnixDatagram::unbound().and_then(|socket| socket.send_to_addr(state.as_bytes(), target));
        if let Err(e) = sent {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }
}

/// Sends READY=1, then WATCHDOG=1 every half watchdog period for as long as `probe` completes
/// within that half period, until `shutdown` resolves; then STOPPING=1. A probe that hangs
/// withholds the ping: systemd then restarts the service after `WatchdogSec=`.
pub(crate) async fn supervise<P, F>(notifier: &Notifier, shutdown: impl Future<Output = ()>, mut probe: P)
where
    P: FnMut() -> F,
    F: Future<Output = ()>,
{
    notifier.notify("READY=1");
    let watchdog = async {
        let Some(period) = notifier.watchdog() else {
            return std::future::pending::<()>().await;
        };
        let half = period / 2;
        loop {
            let started = tokio::time::Instant::now();
            match tokio::time::timeout(half, probe()).await {
                Ok(()) => notifier.notify("WATCHDOG=1"),
                Err(_) => tracing::error!(
                    waited_ms = half.as_millis() as u64,
                    "the daemon did not answer its liveness probe; withholding the systemd watchdog ping"
                ),
            }
            tokio::time::sleep_until(started + half).await;
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = watchdog => {}
    }
    notifier.notify("STOPPING=1");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    fn listener(dir: &std::path::Path) -> (UnixDatagram, std::path::PathBuf) {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        (socket, path)
    }

    fn received(socket: &UnixDatagram) -> Vec<String> {
        let mut buf = [0u8; 256];
        let mut all = Vec::new();
        while let Ok(n) = socket.recv(&mut buf) {
            all.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        all
    }

    #[test]
    fn without_notify_socket_nothing_is_enabled() {
        let n = Notifier::new(None, os("30000000"), None, 7);
        assert!(!n.enabled());
        assert_eq!(n.watchdog(), None);
        n.notify("READY=1");
        assert!(!Notifier::new(os("relative/path"), None, None, 7).enabled());
    }

    #[test]
    fn the_watchdog_applies_only_to_the_pid_systemd_named() {
        let sock = os("/run/systemd/notify");
        let n = Notifier::new(sock, os("30000000"), None, 7);
        assert_eq!(n.watchdog(), Some(Duration::from_secs(30)));
        assert_eq!(
            Notifier::new(sock, os("30000000"), os("7"), 7).watchdog(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(Notifier::new(sock, os("30000000"), os("8"), 7).watchdog(), None);
        assert_eq!(Notifier::new(sock, os("0"), None, 7).watchdog(), None);
        assert_eq!(Notifier::new(sock, os("soon"), None, 7).watchdog(), None);
        assert!(Notifier::new(os("@abstract-name"), None, None, 7).enabled());
    }

    #[test]
    fn notify_sends_one_datagram_per_state() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, path) = listener(dir.path());
        let n = Notifier::new(Some(path.as_os_str()), None, None, 7);
        n.notify("READY=1");
        n.notify("STOPPING=1");
        assert_eq!(received(&socket), ["READY=1", "STOPPING=1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn supervise_pings_while_the_probe_answers_and_withholds_pings_when_it_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, path) = listener(dir.path());
        let n = Notifier::new(Some(path.as_os_str()), os("2000000"), None, 7);
        let wedged = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let probe_wedged = wedged.clone();
        let supervisor = async {
            supervise(
                &n,
                async {
                    let _ = stop_rx.await;
                },
                || {
                    let wedged = probe_wedged.load(Ordering::SeqCst);
                    async move {
                        if wedged {
                            std::future::pending::<()>().await;
                        }
                    }
                },
            )
            .await;
        };
        let driver = async {
            // Pings at 0 s, 1 s, 2 s (half of the 2 s watchdog), then the probe hangs.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            assert_eq!(received(&socket), ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"]);
            wedged.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(received(&socket), Vec::<String>::new());
            stop_tx.send(()).unwrap();
        };
        tokio::join!(supervisor, driver);
        assert_eq!(received(&socket), ["STOPPING=1"]);
    }
}
