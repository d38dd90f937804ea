//! The async adapter of the simulated door: [`SimDoor`] (a Clone, Send + Sync handle for tests) and
//! [`SimDoorDriver`] (the future that serves one byte stream; the caller spawns or awaits it).
//!
//! The driver reads whatever the stream delivers, holds it back until the pacing model says its last
//! byte would have arrived, feeds the sans-IO [`SimPd`], persists at every [`PdOutput::Persist`], and
//! writes each reply when its last byte would be on the line. Handle and driver share the door behind
//! one mutex, never held across an await.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::Notify;

use super::faults::FaultRates;
use super::pacing::LinePacer;
use super::pd::{PdOutput, Silence, SimCounters, SimPd};
use super::persist::{DbFile, DoorDump};
use super::{SimDoorConfig, SimError};
use crate::door::db::{DoorDb, DoorDbLimits};

/// How long before a paced line event the driver stops trusting tokio's millisecond timer.
const PRECISE_WINDOW: Duration = Duration::from_millis(2);

#[derive(Debug)]
struct Inner {
    core: SimPd,
    pacer: Option<LinePacer>,
    db_file: Option<DbFile>,
    /// Where a key installed by osdp_KEYSET goes.
    key_file: Option<PathBuf>,
    limits: DoorDbLimits,
    /// Received bytes with the instant their last byte arrives on the modelled line.
    rx: VecDeque<(Instant, Vec<u8>)>,
    /// Reply bytes with the instant they may be written.
    tx: VecDeque<(Instant, Vec<u8>)>,
    shutdown: bool,
}

impl Inner {
    fn on_read(&mut self, now: Instant, bytes: &[u8]) {
        let due = match self.pacer.as_mut() {
            Some(p) => p.on_received(now, bytes.len()),
            None => now,
        };
        self.rx.push_back((due, bytes.to_vec()));
    }

    /// The next instant with work, and whether it is a paced line event (which must be met precisely).
    fn next_deadline(&self) -> Option<(Instant, bool)> {
        let paced = self.pacer.is_some();
        [
            self.rx.front().map(|(t, _)| (*t, paced)),
            self.tx.front().map(|(t, _)| (*t, paced)),
            self.core.poll_at().map(|t| (t, false)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    /// Runs everything due by `now`; returns the bytes to write now, in order.
    fn step(&mut self, now: Instant) -> Result<Vec<Vec<u8>>, SimError> {
        while let Some((due, _)) = self.rx.front()
            && *due <= now
        {
            if let Some((due, bytes)) = self.rx.pop_front() {
                self.core.handle_bytes(due, &bytes);
                self.flush_outputs()?;
            }
        }
        if self.core.poll_at().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
            self.flush_outputs()?;
        }
        let mut out = Vec::new();
        while let Some((due, _)) = self.tx.front()
            && *due <= now
        {
            if let Some((_, bytes)) = self.tx.pop_front() {
                out.push(bytes);
            }
        }
        Ok(out)
    }

    fn flush_outputs(&mut self) -> Result<(), SimError> {
        while let Some(output) = self.core.poll_output() {
            match output {
                PdOutput::Persist => self.persist()?,
                PdOutput::Transmit { at, bytes } => {
                    let due = match self.pacer.as_mut() {
                        Some(p) => p.on_reply(at, bytes.len()).end,
                        None => at,
                    };
                    self.tx.push_back((due, bytes));
                }
                PdOutput::KeyChanged(scbk) => {
                    if let Some(path) = &self.key_file {
                        crate::config::write_scbk_file(path, &scbk).map_err(SimError::Io)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn persist(&mut self) -> Result<(), SimError> {
        if let Some(file) = self.db_file.as_mut() {
            file.save(self.core.db())?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle of a running simulated door: what it holds, what it saw, and fault controls.
#[derive(Debug, Clone)]
pub struct SimDoor {
    shared: Arc<Shared>,
}

/// Serves the door on one stream; returns on [`SimDoor::shutdown`] or end of stream.
#[derive(Debug)]
pub struct SimDoorDriver<S> {
    shared: Arc<Shared>,
    stream: S,
}

impl SimDoor {
    /// Builds a door on `stream` (a `serial::pty::Pty` master, a port from `serial::open`, a duplex
    /// pipe). With `db_file`, the database is loaded from it (a missing file is an empty door) and
    /// written back at once, so the file exists while the door runs.
    pub fn new<S>(config: SimDoorConfig, stream: S) -> Result<(SimDoor, SimDoorDriver<S>), SimError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        config.validate()?;
        let limits = config.limits();
        let mut db_file = config.db_file.as_ref().map(DbFile::new);
        let db = match db_file.as_mut() {
            Some(file) => {
                let db = file.load(limits)?;
                file.save(&db)?;
                db
            }
            None => DoorDb::new(limits),
        };
        let inner = Inner {
            core: SimPd::new(&config, db),
            pacer: config.baud.map(|b| LinePacer::new(b, config.turnaround)),
            db_file,
            key_file: config.secure.as_ref().and_then(|s| s.key_file.clone()),
            limits,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            shutdown: false,
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            wake: Notify::new(),
        });
        Ok((
            SimDoor {
                shared: Arc::clone(&shared),
            },
            SimDoorDriver { shared, stream },
        ))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let r = f(&mut self.shared.lock());
        self.shared.wake.notify_one();
        r
    }

    /// A copy of the door's database.
    pub fn snapshot(&self) -> DoorDb {
        self.shared.lock().core.db().clone()
    }

    /// What the door holds, in the db-file format.
    pub fn dump(&self) -> DoorDump {
        DoorDump::of(self.shared.lock().core.db())
    }

    /// [`SimDoor::dump`] as pretty JSON (the same bytes a `db_file` holds).
    pub fn dump_json(&self) -> String {
        serde_json::to_string_pretty(&self.dump()).unwrap_or_default()
    }

    pub fn counters(&self) -> SimCounters {
        self.shared.lock().core.counters().clone()
    }

    /// The db file, if the door is file-backed.
    pub fn db_file(&self) -> Option<PathBuf> {
        self.shared.lock().db_file.as_ref().map(|f| f.path().to_path_buf())
    }

    pub fn faults(&self) -> FaultRates {
        self.shared.lock().core.faults().rates()
    }

    /// New fault rates from now on (the seeded RNG continues).
    pub fn set_faults(&self, rates: FaultRates) -> Result<(), SimError> {
        rates.validate().map_err(SimError::Config)?;
        self.with(|i| i.core.faults_mut().set_rates(rates));
        Ok(())
    }

    pub fn set_deferred_replies(&self, on: bool) {
        self.with(|i| i.core.set_deferred_replies(on));
    }

    /// Read nothing and answer nothing for `duration`, as an unplugged door.
    pub fn silence_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        self.with(|i| i.core.set_silence(Some(Silence::Until(until))));
    }

    /// Read nothing and answer nothing until [`SimDoor::resume`].
    pub fn silence(&self) {
        self.with(|i| i.core.set_silence(Some(Silence::UntilResumed)));
    }

    pub fn resume(&self) {
        self.with(|i| i.core.set_silence(None));
    }

    /// Power-cycle the door: it forgets the link (the CP must restart with SQN 0), any file in progress,
    /// queued reports and unsent replies; it keeps its database only if file-backed (reloaded from the
    /// file, which holds everything it acknowledged).
    pub fn reboot(&self) -> Result<(), SimError> {
        self.with(|i| {
            let db = match i.db_file.as_mut() {
                Some(file) => file.load(i.limits)?,
                None => DoorDb::new(i.limits),
            };
            i.core.reboot(db);
            i.rx.clear();
            i.tx.clear();
            if let Some(p) = i.pacer.as_mut() {
                p.reset();
            }
            Ok(())
        })
    }

    /// Change what the door holds behind the agent's back (a technician at the unit, a faulty door);
    /// persisted when file-backed.
    pub fn tamper<R>(&self, f: impl FnOnce(&mut DoorDb) -> R) -> Result<R, SimError> {
        self.with(|i| {
            let r = f(i.core.db_mut());
            i.persist()?;
            Ok(r)
        })
    }

    /// Ask the driver to return (the database is already durable).
    pub fn shutdown(&self) {
        self.with(|i| i.shutdown = true);
    }
}

impl<S> SimDoorDriver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Serve until shutdown (Ok), end of stream (Ok), a line error or a failed db write (Err: a door
    /// that cannot store a change stops rather than acknowledge it).
    pub async fn run(mut self) -> Result<(), SimError> {
        let mut buf = vec![0u8; 4096];
        loop {
            let deadline = {
                let inner = self.shared.lock();
                if inner.shutdown {
                    return Ok(());
                }
                inner.next_deadline()
            };
            let now = Instant::now();
            match deadline {
                // tokio's timer has 1 ms granularity and rounds up, which would add up to a millisecond to
                // every paced exchange (several percent of a 256-byte line). So the timer wakes the driver
                // shortly before a paced event and the last stretch is slept precisely, blocking this
                // thread for at most PRECISE_WINDOW while the CP is waiting for this very reply anyway.
                Some((t, true)) if t.saturating_duration_since(now) <= PRECISE_WINDOW => {
                    std::thread::sleep(t.saturating_duration_since(now));
                }
                _ => {
                    let wake_at = deadline.map(|(t, precise)| {
                        if precise {
                            t.checked_sub(PRECISE_WINDOW).unwrap_or(t)
                        } else {
                            t
                        }
                    });
                    let sleep = async {
                        match wake_at {
                            Some(t) => tokio::time::sleep_until(t.into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        read = self.stream.read(&mut buf) => {
                            let n = read.map_err(SimError::Io)?;
                            if n == 0 {
                                return Ok(());
                            }
                            self.shared.lock().on_read(Instant::now(), buf.get(..n).unwrap_or_default());
                        }
                        () = sleep => {}
                        () = self.shared.wake.notified() => {}
                    }
                }
            }
            let writes = self.shared.lock().step(Instant::now())?;
            for bytes in writes {
                self.stream.write_all(&bytes).await.map_err(SimError::Io)?;
                self.shared.lock().core.record_sent(bytes.len());
            }
            // No `flush`: on a tokio-serial port it is tcdrain(), which blocks a runtime worker for
            // the whole transmission; neither a tty nor a pty buffers writes in user space.
        }
    }
}
