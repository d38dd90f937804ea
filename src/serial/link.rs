//! The session driver: runs one sans-IO [`PdSession`] over a byte stream (a serial port, a pty master, a
//! `tokio::io::duplex` in tests) and owns the command queue in front of it.
//!
//! [`link`] returns a cloneable [`LinkHandle`] for callers and a [`LinkDriver`] whose [`LinkDriver::run`]
//! future the caller spawns (this module never spawns). The driver reads bytes into the session,
//! writes what `poll_transmit` returns, sleeps until `poll_at` (so reply timeouts and keep-alive polls
//! are the session's), and turns session events into answers for waiting callers. The stream must not
//! buffer writes (the driver never calls `flush`, see [`LinkDriver::run`]).
//!
//! The queue has two lanes: [`Priority::Urgent`] requests (revocations) go out before any
//! [`Priority::Normal`] one, so a delete issued while a file is being sent goes out right after the
//! fragment on the wire. Time comes from `tokio::time`, so tests with a paused clock drive it too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::osdp::LinkDiagnostics;
use crate::osdp::decoder::DecodeStats;
use crate::osdp::reply::{PdCap, PdId};
use crate::osdp::{Command, CommandId, Event, FailReason, PdSession, PdState, Reply, SessionConfig, SubmitError};

/// Which lane a request waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Goes out before every queued normal request (deletes, clear).
    Urgent,
    Normal,
}

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("PD is offline")]
    Offline,
    #[error("the link driver is not running")]
    Stopped,
    #[error("{0}")]
    Failed(FailReason),
    #[error("{0}")]
    Submit(SubmitError),
}

/// Why [`LinkDriver::run`] ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    #[error("serial line I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the serial line was closed by the other end")]
    Closed,
}

/// What callers can see of the link: state, discovery results and the size limit they imply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub state: PdState,
    pub pdid: Option<PdId>,
    pub pdcap: Option<PdCap>,
    /// Largest command DATA that fits one packet ([`PdSession::max_command_data_bytes`]).
    pub max_command_data_bytes: usize,
    /// How many times discovery has completed; changes on every (re)connect.
    pub online_count: u64,
    /// What the PD sent so far, for telling a technician what is wrong.
    pub diagnostics: LinkDiagnostics,
    /// Line-quality counters: frames that failed their check, bytes skipped.
    pub decode: DecodeStats,
    /// A Secure Channel session is established (every packet MACed, DATA encrypted).
    pub secure_channel: bool,
    /// Why the last Secure Channel handshake failed, until one succeeds (no key material).
    pub secure_error: Option<String>,
}

/// Wire counters since the driver was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WireStats {
    pub bytes_written: u64,
    pub bytes_read: u64,
    /// Packets written (commands, keep-alive polls and resends).
    pub transmissions: u64,
    /// Packets written again byte for byte because the reply was missing (or the PD was busy).
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    transmissions: AtomicU64,
    retries: AtomicU64,
}

type Answer = oneshot::Sender<Result<Reply, LinkError>>;

struct Request {
    command: Command,
    priority: Priority,
    answer: Answer,
}

enum Msg {
    Request(Request),
    Restart,
}

/// A caller's side of the link. Cheap to clone; the driver stops when every handle is dropped.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    tx: mpsc::UnboundedSender<Msg>,
    status: watch::Receiver<LinkStatus>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Request(r) => write!(f, "Request({}, {:?})", r.command.name(), r.priority),
            Msg::Restart => f.write_str("Restart"),
        }
    }
}

impl LinkHandle {
    /// Sends `command` once the PD is online and its lane's turn comes; resolves with the PD's reply.
    /// A NAK is `LinkError::Failed(FailReason::Nak(..))`. Fails at once with `Offline` while the PD is
    /// offline; while discovery runs the request waits (the session marks a silent PD offline in bounded time).
    pub async fn request(&self, command: Command, priority: Priority) -> Result<Reply, LinkError> {
        let (answer, rx) = oneshot::channel();
        self.tx
            .send(Msg::Request(Request {
                command,
                priority,
                answer,
            }))
            .map_err(|_| LinkError::Stopped)?;
        rx.await.unwrap_or(Err(LinkError::Stopped))
    }

    /// Restarts the link (SQN 0, osdp_ID, osdp_CAP), e.g. after FTSTAT said the PD reboots.
    pub fn restart(&self) -> Result<(), LinkError> {
        self.tx.send(Msg::Restart).map_err(|_| LinkError::Stopped)
    }

    pub fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every status change (for reporting, e.g. Secure Channel failures).
    pub fn watch_status(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    pub fn is_online(&self) -> bool {
        self.status.borrow().state == PdState::Online
    }

    /// Waits until the PD is online; false after `timeout` or when the driver stopped.
    pub async fn wait_online(&self, timeout: Duration) -> bool {
        let mut rx = self.status.clone();
        let wait = rx.wait_for(|s| s.state == PdState::Online);
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
    }

    /// Waits until discovery has completed more than `online_count` times (a reconnect after a drop).
    pub async fn wait_reconnected(&self, online_count: u64, timeout: Duration) -> bool {
        let mut rx = self.status.clone();
        let wait = rx.wait_for(|s| s.state == PdState::Online && s.online_count > online_count);
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
    }

    pub fn wire_stats(&self) -> WireStats {
        let c = &self.counters;
        WireStats {
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            transmissions: c.transmissions.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }
}

/// Called synchronously by the driver for every report the PD sent in answer to a keep-alive poll.
pub type UnsolicitedSink = Box<dyn FnMut(Reply) + Send>;

/// Owns the stream and the session; run it with [`LinkDriver::run`].
pub struct LinkDriver<S> {
    stream: S,
    session: PdSession,
    rx: mpsc::UnboundedReceiver<Msg>,
    status: watch::Sender<LinkStatus>,
    counters: Arc<Counters>,
    unsolicited: Option<UnsolicitedSink>,
    urgent: VecDeque<Request>,
    normal: VecDeque<Request>,
    in_flight: Option<(CommandId, Answer)>,
    last_tx: Vec<u8>,
    online_count: u64,
}

impl<S> std::fmt::Debug for LinkDriver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkDriver")
            .field("address", &self.session.config().address)
            .field("state", &self.session.state())
            .finish_non_exhaustive()
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A handle and the driver for one PD session over `stream`.
pub fn link<S>(stream: S, config: SessionConfig) -> (LinkHandle, LinkDriver<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let session = PdSession::new(config, now());
    let (tx, rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(status_of(&session, 0));
    let counters = Arc::new(Counters::default());
    let handle = LinkHandle {
        tx,
        status: status_rx,
        counters: counters.clone(),
    };
    let driver = LinkDriver {
        stream,
        session,
        rx,
        status: status_tx,
        counters,
        unsolicited: None,
        urgent: VecDeque::new(),
        normal: VecDeque::new(),
        in_flight: None,
        last_tx: Vec::new(),
        online_count: 0,
    };
    (handle, driver)
}

fn status_of(session: &PdSession, online_count: u64) -> LinkStatus {
    LinkStatus {
        state: session.state(),
        pdid: session.pdid().copied(),
        pdcap: session.pdcap().cloned(),
        max_command_data_bytes: session.max_command_data_bytes(),
        online_count,
        diagnostics: session.diagnostics().clone(),
        decode: session.decode_stats().clone(),
        secure_channel: session.secure_channel_open(),
        secure_error: session.secure_failure().map(ToString::to_string),
    }
}

impl<S> LinkDriver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Where reports that arrive as the answer to keep-alive polls go (e.g. a queued osdp_MFGREP).
    pub fn on_unsolicited(mut self, sink: UnsolicitedSink) -> Self {
        self.unsolicited = Some(sink);
        self
    }

    /// Drives the link until every [`LinkHandle`] is dropped (then `Ok`) or the stream fails.
    /// Requests still waiting when it ends fail with [`LinkError::Stopped`]. Writes are not flushed:
    /// `flush` on a tokio-serial port is a blocking tcdrain().
    pub async fn run(mut self) -> Result<(), DriverError> {
        let mut buf = vec![0u8; 4096];
        let mut handles_gone = false;
        loop {
            self.pump().await?;
            if handles_gone && self.in_flight.is_none() {
                return Ok(());
            }
            let deadline = self.session.poll_at().map(tokio::time::Instant::from_std);
            tokio::select! {
                read = self.stream.read(&mut buf) => match read {
                    Ok(0) => return Err(DriverError::Closed),
                    Ok(n) => {
                        self.counters.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                        self.session.handle_bytes(now(), buf.get(..n).unwrap_or_default());
                    }
                    Err(e) => return Err(DriverError::Io(e)),
                },
                msg = self.rx.recv(), if !handles_gone => match msg {
                    Some(Msg::Request(req)) => self.enqueue(req),
                    Some(Msg::Restart) => self.session.restart(now()),
                    None => handles_gone = true,
                },
                () = sleep_until(deadline) => {}
            }
        }
    }

    fn enqueue(&mut self, req: Request) {
        if self.session.state() == PdState::Offline {
            let _ = req.answer.send(Err(LinkError::Offline));
            return;
        }
        match req.priority {
            Priority::Urgent => self.urgent.push_back(req),
            Priority::Normal => self.normal.push_back(req),
        }
    }

    fn next_request(&mut self) -> Option<Request> {
        loop {
            let req = self.urgent.pop_front().or_else(|| self.normal.pop_front())?;
            // A caller that gave up (dropped its future) no longer wants the command sent.
            if !req.answer.is_closed() {
                return Some(req);
            }
        }
    }

    /// Submits, transmits and handles events until nothing is left to do right now.
    async fn pump(&mut self) -> Result<(), DriverError> {
        loop {
            let mut progressed = false;
            if self.in_flight.is_none()
                && self.session.can_submit()
                && let Some(req) = self.next_request()
            {
                progressed = true;
                match self.session.submit(req.command) {
                    Ok(id) => self.in_flight = Some((id, req.answer)),
                    Err(e) => {
                        let _ = req.answer.send(Err(LinkError::Submit(e)));
                    }
                }
            }
            if let Some(bytes) = self.session.poll_transmit(now()) {
                progressed = true;
                self.write(&bytes).await?;
            }
            progressed |= self.handle_events();
            if !progressed {
                return Ok(());
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), DriverError> {
        let c = &self.counters;
        c.transmissions.fetch_add(1, Ordering::Relaxed);
        if bytes == self.last_tx.as_slice() {
            c.retries.fetch_add(1, Ordering::Relaxed);
        }
        c.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.last_tx.clear();
        self.last_tx.extend_from_slice(bytes);
        // No `flush`: tokio-serial implements it as tcdrain(), a blocking wait until the bytes are on
        // the wire (89 ms for 1 KB at 115200 baud) that would stall a runtime worker. Serial ports, ptys
        // and duplex pipes do not buffer writes, so the bytes are on their way once written.
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Publishes the new status first, then answers callers, so a caller woken by a failure already
    /// sees the session's new state.
    fn handle_events(&mut self) -> bool {
        let mut events = Vec::new();
        while let Some(ev) = self.session.poll_event() {
            events.push(ev);
        }
        for ev in &events {
            if matches!(ev, Event::Online { .. }) {
                self.online_count += 1;
            }
        }
        let status = status_of(&self.session, self.online_count);
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
        let any = !events.is_empty();
        for ev in events {
            match ev {
                Event::Reply { id, reply } => self.answer(id, Ok(reply)),
                Event::Failed { id, reason } => self.answer(id, Err(LinkError::Failed(reason))),
                Event::Online { .. } => {}
                Event::Offline => {
                    for req in self.urgent.drain(..).chain(self.normal.drain(..)) {
                        let _ = req.answer.send(Err(LinkError::Offline));
                    }
                }
                Event::Unsolicited(reply) => match self.unsolicited.as_mut() {
                    Some(sink) => sink(reply),
                    None => tracing::debug!(reply = reply.name(), "osdp poll report dropped (no listener)"),
                },
            }
        }
        any
    }

    fn answer(&mut self, id: CommandId, result: Result<Reply, LinkError>) {
        match self.in_flight.take() {
            Some((want, answer)) if want == id => {
                let _ = answer.send(result);
            }
            other => {
                tracing::debug!(id = id.0, "osdp event for a command no caller waits for");
                self.in_flight = other;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
