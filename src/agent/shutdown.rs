//! Shutdown: the process signals that stop the daemon, and the token its tasks watch.

pub(crate) use tokio_util::sync::CancellationToken;

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C). If the handlers cannot be installed the
/// daemon could not be stopped gracefully, so that is an error at start-up rather than later.
pub(crate) fn signals() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}
