//! `doorsync run` in-process: opens nothing but what it is given, spawns the pull loop, the expiry
//! timer, one worker per door, the outbox sender and the control socket, and stops them all on
//! shutdown with nothing half-recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;

use super::control::{self, ControlError};
use super::doors::{DaemonDoor, WorkerTiming, door_worker};
use super::events::{DaemonEvent, Events};
use super::handler::Handler;
use super::shutdown::CancellationToken;
use super::{expiry, outbox, poll};
use crate::clock::Clock;
use crate::cloud::FaceCloud;
use crate::config::Config;
use crate::store::{Store, StoreError};
use crate::sync::engine::{Engine, EngineDoor, EngineSettings, RemovalCause};
use crate::sync::guard::GuardSettings;

/// The daemon's timing and places.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The control socket (`<store.path>/doorsync.sock`).
    pub socket_path: PathBuf,
    /// `cloud.poll_interval`.
    pub poll_interval: Duration,
    /// `sync.verify_interval`.
    pub verify_interval: Duration,
    /// `cloud.max_concurrency`.
    pub max_concurrency: usize,
    /// `sync.max_implicit_removals` and `sync.removal_hold`.
    pub guard: GuardSettings,
    /// `doorsync run --force-refresh`: the first pull re-fetches every user and image.
    pub force_refresh: bool,
    /// Door reconnect backoff (first delay, cap).
    pub door_retry: (Duration, Duration),
    /// Cloud outbox backoff (first delay, cap).
    pub outbox_retry: (Duration, Duration),
    /// How long tasks get to finish their current op after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How long an urgent delete (a revoke) waits for one door: [`urgent_delete_wait`].
    pub urgent_delete_wait: Duration,
}

/// How long an urgent delete waits for a door before reporting it unreached: the DELETE's reply
/// timeout plus one discovery attempt (osdp_ID and osdp_CAP, one reply timeout each) at the slowest
/// configured door, plus 2 s for the link's poll schedule and a loaded machine. The delete stays first in the door's plan,
/// so returning after this loses nothing.
pub fn urgent_delete_wait(doors: &[crate::config::DoorConfig]) -> Duration {
    let slowest = doors
        .iter()
        .map(|d| d.reply_timeout)
        .max()
        .unwrap_or(Duration::from_millis(200));
    slowest.saturating_mul(3).saturating_add(Duration::from_secs(2))
}

impl DaemonConfig {
    pub(crate) fn from_config(config: &Config, force_refresh: bool) -> Self {
        Self {
            socket_path: config.control_socket_path(),
            poll_interval: config.cloud.poll_interval,
            verify_interval: config.sync.verify_interval,
            max_concurrency: config.cloud.max_concurrency as usize,
            guard: GuardSettings::from_config(&config.sync),
            force_refresh,
            door_retry: (Duration::from_millis(500), Duration::from_secs(10)),
            outbox_retry: (Duration::from_secs(1), Duration::from_secs(300)),
            shutdown_grace: Duration::from_secs(10),
            urgent_delete_wait: urgent_delete_wait(&config.doors),
        }
    }
}

/// Everything the daemon runs with. Tests build it from a `MemoryDoor` and the fake cloud.
pub struct Daemon {
    pub config: DaemonConfig,
    /// Opened with [`open_store`]; the daemon is its only user while it runs.
    pub store: Store,
    pub cloud: Arc<dyn FaceCloud>,
    pub clock: Arc<dyn Clock>,
    pub doors: Vec<DaemonDoor>,
    /// Where to report what the daemon does (tests, demo, benchmarks).
    pub events: Option<broadcast::Sender<DaemonEvent>>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error(
        "another doorsync process holds the store at {path} (a daemon already runs, or a doorsync command \
         is using it right now); use `doorsync status`, or stop the other daemon first"
    )]
    StoreInUse { path: PathBuf },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Cloud(#[from] crate::cloud::CloudError),
    #[error("no door could be opened: {0}")]
    NoDoors(String),
}

/// Opens the store for the daemon, naming the other process's lock clearly when there is one.
pub fn open_store(path: &Path) -> Result<Store, AgentError> {
    Store::open(path).map_err(|e| match e {
        StoreError::Locked { path } => AgentError::StoreInUse { path },
        other => AgentError::Store(other),
    })
}

/// Runs the daemon until `shutdown` resolves, then stops every task at an op boundary, flushes the
/// store and removes the control socket.
pub async fn run(daemon: Daemon, shutdown: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
    let Daemon {
        config,
        store,
        cloud,
        clock,
        doors,
        events,
    } = daemon;
    let events = Events::new(events);
    let listener = control::bind(&config.socket_path).await?;
    let token = CancellationToken::new();
    let mut drivers = JoinSet::new();
    let mut engine_doors = Vec::with_capacity(doors.len());
    for d in doors {
        if let Some(driver) = d.driver {
            drivers.spawn(driver);
        }
        engine_doors.push(EngineDoor {
            name: d.name,
            profile: d.profile,
            door: d.door,
        });
    }
    let settings = EngineSettings {
        max_concurrency: config.max_concurrency.max(1),
        verify_interval: config.verify_interval,
        urgent_delete_wait: config.urgent_delete_wait,
        guard: config.guard,
        roster_interval: Some(config.poll_interval),
    };
    // Expiry decisions take "now" from the trust rule (README "Clock trust").
    let clock = Arc::new(super::TrustedClock::new(clock, store.clone(), cloud.clone()));
    let engine = Arc::new(Engine::new(store.clone(), cloud, clock, engine_doors, settings));
    let outbox_wake = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let timing = WorkerTiming {
        retry_min: config.door_retry.0,
        retry_max: config.door_retry.1,
        idle_max: Duration::from_secs(300),
    };
    // Whoever expired or was revoked while the daemon was down leaves the doors first, before any
    // read-back or upload (the workers' plans would also delete them, after verifying).
    {
        let engine = engine.clone();
        let events = events.clone();
        tasks.spawn(async move {
            match engine.remove_undesired(RemovalCause::Cached, engine.now()).await {
                Ok(removals) => events.removals(RemovalCause::Cached, &removals),
                Err(e) => tracing::error!(error = %e, "start-up removal: store error"),
            }
        });
    }
    for name in engine.door_names() {
        tasks.spawn(door_worker(
            engine.clone(),
            name.to_string(),
            timing,
            token.clone(),
            events.clone(),
        ));
    }
    tasks.spawn(expiry::expiry_timer(engine.clone(), token.clone(), events.clone()));
    tasks.spawn(outbox::outbox_sender(
        engine.clone(),
        outbox_wake.clone(),
        config.outbox_retry,
        token.clone(),
        events.clone(),
    ));
    tasks.spawn(poll::pull_loop(
        engine.clone(),
        config.poll_interval,
        config.force_refresh,
        outbox_wake.clone(),
        token.clone(),
        events.clone(),
    ));
    let handler: Arc<dyn control::ControlHandler> = Arc::new(Handler {
        engine: engine.clone(),
        outbox_wake,
        events: events.clone(),
    });
    tasks.spawn(accept_loop(listener, handler, token.clone()));
    tracing::info!(socket = %config.socket_path.display(), doors = engine.door_names().len(), "daemon running");
    events.emit(DaemonEvent::Ready {
        socket: config.socket_path.clone(),
    });

    // systemd (Type=notify): READY now; WATCHDOG while a task on the runtime can still read the store.
    let probe_store = store.clone();
    let probe = move || {
        let store = probe_store.clone();
        async move {
            let _ = tokio::spawn(async move { store.last_pass().is_ok() }).await;
        }
    };
    crate::systemd::supervise(&crate::systemd::Notifier::from_env(), shutdown, probe).await;
    tracing::info!("stopping: letting each task finish its current operation");
    token.cancel();
    engine.stop();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                tracing::error!(error = %e, "a daemon task panicked");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("tasks still busy after the grace period; stopping them (every recorded op was acknowledged)");
        tasks.shutdown().await;
    }
    drivers.shutdown().await;
    drop(engine);
    if let Err(e) = std::fs::remove_file(&config.socket_path) {
        tracing::warn!(error = %e, "cannot remove the control socket");
    }
    store.flush().map_err(AgentError::Store)?;
    drop(store);
    events.emit(DaemonEvent::Stopped);
    Ok(())
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    handler: Arc<dyn control::ControlHandler>,
    token: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(control::serve_connection(stream, handler.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Requests in flight finish (their work stops at the next op boundary) before the store closes.
    while connections.join_next().await.is_some() {}
}
