//! The async adapter of the simulated door: [`SimDoor`] (a Clone, Send + Sync handle for tests) and
//! [`SimDoorDriver`] (the future that serves one byte stream; the caller spawns or awaits it). Several
//! doors can share one stream as one RS-485 bus ([`SimDoor::bus`]): each answers only its address, and
//! one pacing model keeps the line half-duplex for all of them.
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

use super::pacing::LinePacer;
use super::pd::{PdOutput, Silence, SimCounters, SimPd};
use super::persist::{DbFile, DoorDump};
use super::{SimDoorConfig, SimError};
use crate::door::db::{DoorDb, DoorDbLimits};

/// How long before a paced line event the driver stops trusting tokio's millisecond timer.
const PRECISE_WINDOW: Duration = Duration::from_millis(2);

#[derive(Debug)]
struct Inner {
    /// The doors on the line.
    pds: Vec<BusPd>,
    /// One model of the line for all doors: their replies never overlap.
    pacer: Option<LinePacer>,
    /// Received bytes with the instant their last byte arrives on the modelled line.
    rx: VecDeque<(Instant, Vec<u8>)>,
    /// Reply bytes (and the door sending them) with the instant they may be written.
    tx: VecDeque<(Instant, (usize, Vec<u8>))>,
    shutdown: bool,
}

/// One door of the line and where its state goes.
#[derive(Debug)]
struct BusPd {
    core: SimPd,
    db_file: Option<DbFile>,
    /// Where a key installed by osdp_KEYSET goes.
    key_file: Option<PathBuf>,
    limits: DoorDbLimits,
}

impl BusPd {
    fn persist(&mut self) -> Result<(), SimError> {
        if let Some(file) = self.db_file.as_mut() {
            file.save(self.core.db())?;
        }
        Ok(())
    }
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
        ]
        .into_iter()
        .flatten()
        .chain(self.pds.iter().filter_map(|p| p.core.poll_at()).map(|t| (t, false)))
        .min_by_key(|(t, _)| *t)
    }

    /// Runs everything due by `now`; returns the bytes to write now (and their door), in order.
    fn step(&mut self, now: Instant) -> Result<Vec<(usize, Vec<u8>)>, SimError> {
        while let Some((due, _)) = self.rx.front()
            && *due <= now
        {
            if let Some((due, bytes)) = self.rx.pop_front() {
                for pd in 0..self.pds.len() {
                    self.pds[pd].core.handle_bytes(due, &bytes);
                    self.flush_outputs(pd)?;
                }
            }
        }
        for pd in 0..self.pds.len() {
            if self.pds[pd].core.poll_at().is_some_and(|t| t <= now) {
                self.pds[pd].core.handle_timeout(now);
                self.flush_outputs(pd)?;
            }
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

    fn flush_outputs(&mut self, pd: usize) -> Result<(), SimError> {
        let Some(p) = self.pds.get_mut(pd) else {
            return Ok(());
        };
        while let Some(output) = p.core.poll_output() {
            match output {
                PdOutput::Persist => p.persist()?,
                PdOutput::Transmit { at, bytes } => {
                    let due = match self.pacer.as_mut() {
                        Some(p) => p.on_reply(at, bytes.len()).end,
                        None => at,
                    };
                    self.tx.push_back((due, (pd, bytes)));
                }
                PdOutput::KeyChanged(scbk) => {
                    if let Some(path) = &p.key_file {
                        crate::config::write_scbk_file(path, &scbk).map_err(SimError::Io)?;
                    }
                }
            }
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
    /// Which door of the line this handle is.
    pd: usize,
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
        let (mut doors, driver) = Self::bus(vec![config], stream)?;
        let door = doors.pop().ok_or_else(|| SimError::Config("no door".into()))?;
        Ok((door, driver))
    }

    /// Several doors on one stream, as PDs on one RS-485 bus: one handle per config (in order). Their
    /// addresses must differ; the line's pacing (baud, turnaround) is the first config's.
    pub fn bus<S>(configs: Vec<SimDoorConfig>, stream: S) -> Result<(Vec<SimDoor>, SimDoorDriver<S>), SimError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let first = configs
            .first()
            .ok_or_else(|| SimError::Config("a bus needs at least one door".into()))?;
        let pacer = first.baud.map(|b| LinePacer::new(b, first.turnaround));
        let mut pds = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            config.validate()?;
            if configs[..i].iter().any(|c| c.address == config.address) {
                return Err(SimError::Config(format!(
                    "two doors at address {} on one line",
                    config.address
                )));
            }
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
            pds.push(BusPd {
                core: SimPd::new(config, db),
                db_file,
                key_file: config.secure.as_ref().and_then(|s| s.key_file.clone()),
                limits,
            });
        }
        let inner = Inner {
            pds,
            pacer,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            shutdown: false,
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            wake: Notify::new(),
        });
        let doors = (0..configs.len())
            .map(|pd| SimDoor {
                shared: Arc::clone(&shared),
                pd,
            })
            .collect();
        Ok((doors, SimDoorDriver { shared, stream }))
    }

    fn with<R>(&self, f: impl FnOnce(&mut BusPd) -> R) -> R {
        let r = f(&mut self.shared.lock().pds[self.pd]);
        self.shared.wake.notify_one();
        r
    }

    fn read<R>(&self, f: impl FnOnce(&BusPd) -> R) -> R {
        f(&self.shared.lock().pds[self.pd])
    }

    /// A copy of the door's database.
    pub fn snapshot(&self) -> DoorDb {
        self.read(|p| p.core.db().clone())
    }

    /// What the door holds, in the db-file format.
    pub fn dump(&self) -> DoorDump {
        self.read(|p| DoorDump::of(p.core.db()))
    }

    /// [`SimDoor::dump`] as pretty JSON (the same bytes a `db_file` holds).
    #[cfg(test)]
    pub(crate) fn dump_json(&self) -> String {
        serde_json::to_string_pretty(&self.dump()).unwrap_or_default()
    }

    pub fn counters(&self) -> SimCounters {
        self.read(|p| p.core.counters().clone())
    }

    #[cfg(test)]
    pub(crate) fn faults(&self) -> super::faults::FaultRates {
        self.read(|p| p.core.faults().rates())
    }

    /// New fault rates from now on (the seeded RNG continues).
    #[cfg(test)]
    pub(crate) fn set_faults(&self, rates: super::faults::FaultRates) -> Result<(), SimError> {
        rates.validate().map_err(SimError::Config)?;
        self.with(|i| i.core.faults_mut().set_rates(rates));
        Ok(())
    }

    /// Read nothing and answer nothing until [`SimDoor::resume`].
    pub(crate) fn silence(&self) {
        self.with(|i| i.core.set_silence(Some(Silence::UntilResumed)));
    }

    pub(crate) fn resume(&self) {
        self.with(|i| i.core.set_silence(None));
    }

    /// Power-cycle the door: it forgets the link (the CP must restart with SQN 0), any file in progress,
    /// queued reports and unsent replies; it keeps its database only if file-backed (reloaded from the
    /// file, which holds everything it acknowledged).
    pub(crate) fn reboot(&self) -> Result<(), SimError> {
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        let p = &mut inner.pds[self.pd];
        let db = match p.db_file.as_mut() {
            Some(file) => file.load(p.limits)?,
            None => DoorDb::new(p.limits),
        };
        p.core.reboot(db);
        // Its unsent replies die with it; the others' stay on the line.
        let pd = self.pd;
        inner.tx.retain(|(_, (from, _))| *from != pd);
        if inner.pds.len() == 1 {
            inner.rx.clear();
            if let Some(p) = inner.pacer.as_mut() {
                p.reset();
            }
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Change what the door holds behind the agent's back (a technician at the unit, a faulty door);
    /// persisted when file-backed.
    #[cfg(test)]
    pub(crate) fn tamper<R>(&self, f: impl FnOnce(&mut DoorDb) -> R) -> Result<R, SimError> {
        self.with(|i| {
            let r = f(i.core.db_mut());
            i.persist()?;
            Ok(r)
        })
    }

    /// Ask the driver to return (the database is already durable).
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
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
            for (pd, bytes) in writes {
                self.stream.write_all(&bytes).await.map_err(SimError::Io)?;
                if let Some(p) = self.shared.lock().pds.get_mut(pd) {
                    p.core.record_sent(bytes.len());
                }
            }
            // No `flush`: on a tokio-serial port it is tcdrain(), which blocks a runtime worker for
            // the whole transmission; neither a tty nor a pty buffers writes in user space.
        }
    }
}
