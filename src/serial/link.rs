//! The line driver: runs the sans-IO [`Bus`] (one [`crate::osdp::PdSession`] per PD address) over a
//! byte stream (a serial port, a pty master, a `tokio::io::duplex` in tests) and owns the request
//! queues in front of it.
//!
//! [`bus`] returns one cloneable [`LinkHandle`] per PD and a [`LinkDriver`] whose [`LinkDriver::run`]
//! future the caller spawns (this module never spawns); [`link`] is the one-PD case. The driver reads
//! bytes into the bus, writes what `poll_transmit` returns, sleeps until `poll_at` (so reply timeouts,
//! keep-alive polls and turns are the bus's), and turns bus events into answers for waiting callers.
//! The stream must not buffer writes (the driver never calls `flush`, see [`LinkDriver::run`]).
//!
//! Each PD has two lanes: [`Priority::Urgent`] requests (revocations) go out before any
//! [`Priority::Normal`] one on the whole line, so a delete issued while a file is being sent to any
//! door goes out right after the fragment on the wire. Time comes from `tokio::time`, so tests with a
//! paused clock drive it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::osdp::LinkDiagnostics;
use crate::osdp::bus::{Bus, BusEvent, RequestError, Token};
use crate::osdp::decoder::DecodeStats;
use crate::osdp::reply::{PdCap, PdId};
use crate::osdp::{Command, FailReason, PdSession, PdState, Reply, SessionConfig, SubmitError};

pub(crate) use crate::osdp::bus::Priority;
pub(crate) use crate::osdp::bus::echo::EchoStats;

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LinkError {
    #[error("PD is offline")]
    Offline,
    #[error("the link driver is not running")]
    Stopped,
    #[error("{0}")]
    Failed(FailReason),
    #[error("{0}")]
    Submit(SubmitError),
}

impl From<RequestError> for LinkError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Offline => LinkError::Offline,
            RequestError::Failed(r) => LinkError::Failed(r),
            RequestError::Submit(e) => LinkError::Submit(e),
        }
    }
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
    /// How many PDs share this line (1 on a point-to-point line).
    pub pds_on_line: usize,
    /// Echo the line's filter dropped (all zero without `echo` in the port's line settings).
    pub echo: EchoStats,
}

/// Wire counters of one PD since the driver was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct WireStats {
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

impl Token for Answer {
    fn is_cancelled(&self) -> bool {
        self.is_closed()
    }
}

/// Called synchronously by the driver for every report the PD sent in answer to a keep-alive poll.
pub(crate) type UnsolicitedSink = Box<dyn FnMut(Reply) + Send>;

enum Msg {
    Request {
        command: Command,
        priority: Priority,
        answer: Answer,
    },
    Restart,
    Unsolicited(UnsolicitedSink),
}

/// A caller's side of one PD on the line. Cheap to clone; the driver stops when every handle of every
/// PD on the line is dropped.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    pd: usize,
    tx: mpsc::UnboundedSender<(usize, Msg)>,
    status: watch::Receiver<LinkStatus>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Request { command, priority, .. } => write!(f, "Request({}, {priority:?})", command.name()),
            Msg::Restart => f.write_str("Restart"),
            Msg::Unsolicited(_) => f.write_str("Unsolicited"),
        }
    }
}

impl LinkHandle {
    /// Sends `command` once the PD is online and its turn comes; resolves with the PD's reply.
    /// A NAK is `LinkError::Failed(FailReason::Nak(..))`. Fails at once with `Offline` while the PD is
    /// offline; while discovery runs the request waits (the session marks a silent PD offline in bounded time).
    pub(crate) async fn request(&self, command: Command, priority: Priority) -> Result<Reply, LinkError> {
        let (answer, rx) = oneshot::channel();
        self.send(Msg::Request {
            command,
            priority,
            answer,
        })?;
        rx.await.unwrap_or(Err(LinkError::Stopped))
    }

    /// Restarts the link (SQN 0, osdp_ID, osdp_CAP), e.g. after FTSTAT said the PD reboots.
    pub(crate) fn restart(&self) -> Result<(), LinkError> {
        self.send(Msg::Restart)
    }

    /// Where reports that arrive as the answer to keep-alive polls go (e.g. a queued osdp_MFGREP);
    /// replaces the previous sink. Installed before any later request of this handle is sent.
    pub(crate) fn on_unsolicited(&self, sink: UnsolicitedSink) -> Result<(), LinkError> {
        self.send(Msg::Unsolicited(sink))
    }

    fn send(&self, msg: Msg) -> Result<(), LinkError> {
        self.tx.send((self.pd, msg)).map_err(|_| LinkError::Stopped)
    }

    pub(crate) fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every status change (for reporting, e.g. Secure Channel failures).
    pub(crate) fn watch_status(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }

    #[cfg(test)]
    pub(crate) fn is_online(&self) -> bool {
        self.status.borrow().state == PdState::Online
    }

    /// Waits until the PD is online; false after `timeout` or when the driver stopped.
    pub(crate) async fn wait_online(&self, timeout: Duration) -> bool {
        let mut rx = self.status.clone();
        let wait = rx.wait_for(|s| s.state == PdState::Online);
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
    }

    /// Waits until discovery has completed more than `online_count` times (a reconnect after a drop).
    pub(crate) async fn wait_reconnected(&self, online_count: u64, timeout: Duration) -> bool {
        let mut rx = self.status.clone();
        let wait = rx.wait_for(|s| s.state == PdState::Online && s.online_count > online_count);
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
    }

    pub(crate) fn wire_stats(&self) -> WireStats {
        let c = &self.counters;
        WireStats {
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            transmissions: c.transmissions.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }
}

/// The driver's side of one PD: where its status, counters and unsolicited reports go.
struct PdPort {
    status: watch::Sender<LinkStatus>,
    counters: Arc<Counters>,
    unsolicited: Option<UnsolicitedSink>,
    last_tx: Vec<u8>,
}

/// Owns the stream and the bus; run it with [`LinkDriver::run`].
pub struct LinkDriver<S> {
    stream: S,
    bus: Bus<Answer>,
    rx: mpsc::UnboundedReceiver<(usize, Msg)>,
    ports: Vec<PdPort>,
}

impl<S> std::fmt::Debug for LinkDriver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkDriver")
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Line settings the driver applies itself (the kernel's RS-485 mode is set when the port opens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineOptions {
    /// The adapter echoes what we send: drop that many bytes of input after each transmission.
    pub discard_echo: bool,
}

/// A handle and the driver for one PD session over `stream`.
pub(crate) fn link<S>(stream: S, config: SessionConfig) -> (LinkHandle, LinkDriver<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut handles, driver) = bus(stream, vec![config], LineOptions::default());
    match handles.pop() {
        Some(handle) => (handle, driver),
        // `bus` returns one handle per config.
        None => unreachable!("one config gives one handle"),
    }
}

/// One handle per config (in order) and the driver for all of them on `stream`. The configs' addresses
/// must be distinct (the configuration's validation guarantees it).
pub fn bus<S>(stream: S, configs: Vec<SessionConfig>, line: LineOptions) -> (Vec<LinkHandle>, LinkDriver<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let bus = Bus::new(configs, line.discard_echo, now());
    let (tx, rx) = mpsc::unbounded_channel();
    let mut handles = Vec::with_capacity(bus.len());
    let mut ports = Vec::with_capacity(bus.len());
    for pd in 0..bus.len() {
        let (status_tx, status_rx) = watch::channel(status_of(&bus, pd));
        let counters = Arc::new(Counters::default());
        handles.push(LinkHandle {
            pd,
            tx: tx.clone(),
            status: status_rx,
            counters: counters.clone(),
        });
        ports.push(PdPort {
            status: status_tx,
            counters,
            unsolicited: None,
            last_tx: Vec::new(),
        });
    }
    let driver = LinkDriver { stream, bus, rx, ports };
    (handles, driver)
}

fn status_of(bus: &Bus<Answer>, pd: usize) -> LinkStatus {
    let session: &PdSession = bus.session(pd);
    LinkStatus {
        state: session.state(),
        pdid: session.pdid().copied(),
        pdcap: session.pdcap().cloned(),
        max_command_data_bytes: session.max_command_data_bytes(),
        online_count: bus.online_count(pd),
        diagnostics: session.diagnostics().clone(),
        decode: session.decode_stats().clone(),
        secure_channel: session.secure_channel_open(),
        secure_error: session.secure_failure().map(ToString::to_string),
        pds_on_line: bus.len(),
        echo: bus.echo_stats(),
    }
}

impl<S> LinkDriver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Where the first PD's reports that arrive as the answer to keep-alive polls go.
    #[cfg(test)]
    pub(crate) fn on_unsolicited(mut self, sink: UnsolicitedSink) -> Self {
        if let Some(port) = self.ports.first_mut() {
            port.unsolicited = Some(sink);
        }
        self
    }

    /// Drives the line until every [`LinkHandle`] is dropped (then `Ok`) or the stream fails.
    /// Requests still waiting when it ends fail with [`LinkError::Stopped`]. Writes are not flushed:
    /// `flush` on a tokio-serial port is a blocking tcdrain().
    pub async fn run(mut self) -> Result<(), DriverError> {
        let mut buf = vec![0u8; 4096];
        let mut handles_gone = false;
        loop {
            self.pump().await?;
            if handles_gone && !self.bus.has_in_flight() {
                return Ok(());
            }
            let deadline = self.bus.poll_at().map(tokio::time::Instant::from_std);
            tokio::select! {
                read = self.stream.read(&mut buf) => match read {
                    Ok(0) => return Err(DriverError::Closed),
                    Ok(n) => {
                        let bytes = buf.get(..n).unwrap_or_default();
                        self.bus.handle_bytes(now(), bytes);
                        if let Some(port) = self.ports.get(self.bus.listener()) {
                            port.counters.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                    Err(e) => return Err(DriverError::Io(e)),
                },
                msg = self.rx.recv(), if !handles_gone => match msg {
                    Some((pd, Msg::Request { command, priority, answer })) => {
                        self.bus.request(pd, command, priority, answer);
                    }
                    Some((pd, Msg::Restart)) => self.bus.restart(pd, now()),
                    Some((pd, Msg::Unsolicited(sink))) => {
                        if let Some(port) = self.ports.get_mut(pd) {
                            port.unsolicited = Some(sink);
                        }
                    }
                    None => handles_gone = true,
                },
                () = sleep_until(deadline) => {}
            }
        }
    }

    /// Transmits and handles events until nothing is left to do right now.
    async fn pump(&mut self) -> Result<(), DriverError> {
        loop {
            let sent = self.bus.poll_transmit(now());
            let answered = self.handle_events();
            match sent {
                Some(t) => self.write(t.pd, &t.bytes).await?,
                None if !answered => return Ok(()),
                None => {}
            }
        }
    }

    async fn write(&mut self, pd: usize, bytes: &[u8]) -> Result<(), DriverError> {
        if let Some(port) = self.ports.get_mut(pd) {
            let c = &port.counters;
            c.transmissions.fetch_add(1, Ordering::Relaxed);
            if bytes == port.last_tx.as_slice() {
                c.retries.fetch_add(1, Ordering::Relaxed);
            }
            c.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            port.last_tx.clear();
            port.last_tx.extend_from_slice(bytes);
        }
        // No `flush`: tokio-serial implements it as tcdrain(), a blocking wait until the bytes are on
        // the wire (89 ms for 1 KB at 115200 baud) that would stall a runtime worker. Serial ports, ptys
        // and duplex pipes do not buffer writes, so the bytes are on their way once written.
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Publishes every PD's new status first, then answers callers, so a caller woken by a failure
    /// already sees the session's new state. True when any event was handled.
    fn handle_events(&mut self) -> bool {
        for (pd, port) in self.ports.iter().enumerate() {
            let status = status_of(&self.bus, pd);
            port.status.send_if_modified(|s| {
                let changed = *s != status;
                *s = status;
                changed
            });
        }
        let mut any = false;
        while let Some(ev) = self.bus.poll_event() {
            any = true;
            match ev {
                BusEvent::Answer { pd, token, result } => {
                    if let Err(e) = &result {
                        tracing::debug!(pd, error = %e, "osdp request failed");
                    }
                    let _ = token.send(result.map_err(LinkError::from));
                }
                BusEvent::Unsolicited { pd, reply } => {
                    match self.ports.get_mut(pd).and_then(|p| p.unsolicited.as_mut()) {
                        Some(sink) => sink(reply),
                        None => tracing::debug!(reply = reply.name(), "osdp poll report dropped (no listener)"),
                    }
                }
            }
        }
        any
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
