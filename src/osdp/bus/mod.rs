//! The CP side of one line shared by several PDs (RS-485 multidrop, docs/osdp.md §11): one
//! [`PdSession`] per address, one packet on the line at a time, and [`schedule::Turns`] deciding whose
//! turn is next. Sans-IO like the sessions: bytes and `now` in, bytes, events and `poll_at` out.
//!
//! Each PD keeps its own sequence numbers, discovery, offline detection and two request lanes. Requests
//! carry a caller token `T` (the runtime's answer channel) that comes back with the outcome, so this
//! module stays free of tokio. With one PD it is exactly the single-PD link.

pub(crate) mod echo;
pub(crate) mod schedule;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Command, CommandId, Event, FailReason, PdSession, PdState, Reply, SessionConfig, SubmitError};
use echo::EchoFilter;
use schedule::{Need, Turns};

/// Which lane a request waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Priority {
    /// Goes out before every queued normal request on the whole line (deletes, clear).
    Urgent,
    Normal,
}

/// Why a request got no reply (the runtime adds its own "stopped").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RequestError {
    #[error("PD is offline")]
    Offline,
    #[error("{0}")]
    Failed(FailReason),
    #[error("{0}")]
    Submit(SubmitError),
}

/// A caller's token; a cancelled one (the caller gave up) is dropped instead of being sent.
pub(crate) trait Token {
    fn is_cancelled(&self) -> bool {
        false
    }
}

impl Token for () {}

/// On a line shared by several PDs, the longest pause between probes of an offline PD. Each probe of
/// a silent PD costs its reply timeouts of line time (four of 200 ms by default); probing every second
/// took about a quarter of the line from the live PDs, at 8 s it is under a tenth, and a PD that comes
/// back is found within 8 s (docs/osdp.md §11).
pub(crate) const SHARED_LINE_OFFLINE_PROBE_MAX: Duration = Duration::from_secs(8);

/// What the bus reports to the runtime.
#[derive(Debug)]
pub(crate) enum BusEvent<T> {
    /// The outcome of a request.
    Answer {
        pd: usize,
        token: T,
        result: Result<Reply, RequestError>,
    },
    /// A report a PD sent in answer to a keep-alive poll (e.g. a queued osdp_MFGREP).
    Unsolicited { pd: usize, reply: Reply },
}

/// Bytes to write to the line, and which PD they address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub pd: usize,
    pub bytes: Vec<u8>,
}

/// Per-PD line share since the bus started (for benchmarks and `status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PdShare {
    /// Turns this PD had on the line (packets sent to it, resends included).
    pub turns: u64,
    pub bytes_sent: u64,
    /// Bytes read while this PD had the line (its replies, and whatever else was on the line then).
    pub bytes_received: u64,
}

struct Request<T> {
    command: Command,
    token: T,
}

struct BusPd<T> {
    session: PdSession,
    urgent: VecDeque<Request<T>>,
    normal: VecDeque<Request<T>>,
    in_flight: Option<(CommandId, T, Priority)>,
    online_count: u64,
    share: PdShare,
}

/// Several PD sessions on one half-duplex line.
pub(crate) struct Bus<T> {
    pds: Vec<BusPd<T>>,
    turns: Turns,
    echo: Option<EchoFilter>,
    /// The PD whose reply the line carries now (the last one that transmitted).
    listener: usize,
    events: VecDeque<BusEvent<T>>,
}

impl<T> std::fmt::Debug for Bus<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addresses: Vec<u8> = self.pds.iter().map(|p| p.session.config().address).collect();
        f.debug_struct("Bus")
            .field("addresses", &addresses)
            .finish_non_exhaustive()
    }
}

impl<T: Token> Bus<T> {
    /// A bus with one session per config (distinct addresses; index = position). `echo`: the adapter
    /// echoes what we send, so that many bytes are dropped from the input after each transmission.
    pub(crate) fn new(configs: Vec<SessionConfig>, echo: bool, now: Instant) -> Self {
        let shared = configs.len() > 1;
        let pds = configs
            .into_iter()
            .map(|mut config| {
                if shared {
                    config.offline_probe_max = config.offline_probe_max.max(SHARED_LINE_OFFLINE_PROBE_MAX);
                }
                config
            })
            .map(|config| BusPd {
                session: PdSession::new(config, now),
                urgent: VecDeque::new(),
                normal: VecDeque::new(),
                in_flight: None,
                online_count: 0,
                share: PdShare::default(),
            })
            .collect();
        Bus {
            pds,
            turns: Turns::default(),
            echo: echo.then(EchoFilter::default),
            listener: 0,
            events: VecDeque::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pds.len()
    }

    /// PD `pd`'s session (state, discovery results, diagnostics). Panics on an index not given to `new`.
    pub(crate) fn session(&self, pd: usize) -> &PdSession {
        &self.pds[pd].session
    }

    /// How many times PD `pd`'s discovery has completed.
    pub(crate) fn online_count(&self, pd: usize) -> u64 {
        self.pds[pd].online_count
    }

    /// The PD whose reply the line carries now (the one addressed last).
    pub(crate) fn listener(&self) -> usize {
        self.listener
    }

    /// Bytes of our own the echo filter dropped, and echoes that did not match what we sent.
    pub(crate) fn echo_stats(&self) -> echo::EchoStats {
        self.echo.as_ref().map(EchoFilter::stats).unwrap_or_default()
    }

    /// True while any request has been handed to a session and not answered.
    pub(crate) fn has_in_flight(&self) -> bool {
        self.pds.iter().any(|p| p.in_flight.is_some())
    }

    /// Queues `command` for PD `pd`. Refused at once with [`RequestError::Offline`] while that PD is
    /// offline; while discovery runs it waits (the session bounds discovery).
    pub(crate) fn request(&mut self, pd: usize, command: Command, priority: Priority, token: T) {
        let Some(p) = self.pds.get_mut(pd) else {
            return;
        };
        if p.session.state() == PdState::Offline {
            self.events.push_back(BusEvent::Answer {
                pd,
                token,
                result: Err(RequestError::Offline),
            });
            return;
        }
        let req = Request { command, token };
        match priority {
            Priority::Urgent => p.urgent.push_back(req),
            Priority::Normal => p.normal.push_back(req),
        }
    }

    /// Restarts PD `pd`'s link (SQN 0, osdp_ID, osdp_CAP), e.g. after FTSTAT said it reboots.
    pub(crate) fn restart(&mut self, pd: usize, now: Instant) {
        if let Some(p) = self.pds.get_mut(pd) {
            p.session.restart(now);
        }
        self.collect_events();
    }

    /// Feeds bytes read from the line: to the PD whose reply is awaited (or the last one addressed).
    pub(crate) fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        let bytes = match self.echo.as_mut() {
            Some(echo) => echo.filter(bytes),
            None => bytes.to_vec(),
        };
        if bytes.is_empty() {
            return;
        }
        if let Some(p) = self.pds.get_mut(self.listener) {
            p.share.bytes_received += bytes.len() as u64;
            p.session.handle_bytes(now, &bytes);
        }
        self.collect_events();
    }

    /// Runs timers and returns the next packet to write if the line is free and someone's turn has
    /// come. A request is handed to its session only when its PD gets the line, so a PD's delete never
    /// waits behind its own bulk command. Call until it returns `None`, then sleep until
    /// [`Bus::poll_at`] or the next input.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        for p in &mut self.pds {
            p.session.handle_timeout(now);
        }
        self.collect_events();
        if self.line_busy() {
            return None;
        }
        loop {
            let wants: Vec<(usize, Need)> = self
                .pds
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.want(now).map(|need| (i, need)))
                .collect();
            let pd = self.turns.pick(&wants)?;
            self.submit_next(pd);
            let sent = self.pds[pd].session.poll_transmit(now);
            self.collect_events();
            if let Some(bytes) = sent {
                let p = &mut self.pds[pd];
                p.share.turns += 1;
                p.share.bytes_sent += bytes.len() as u64;
                self.listener = pd;
                if let Some(echo) = self.echo.as_mut() {
                    echo.expect(&bytes);
                }
                return Some(Transmit { pd, bytes });
            }
            // Nothing went out after all (every queued caller had given up, or the session's state
            // changed in the call); ask again without it if it no longer wants the line.
            if self.pds[pd].want(now).is_some() {
                return None;
            }
        }
    }

    /// The next instant something is due: while a reply is awaited only timers (nobody else may send),
    /// else also every session's next transmission.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        let busy = self.line_busy();
        self.pds
            .iter()
            .filter_map(|p| {
                if busy && !p.session.awaiting_reply() {
                    p.session.timer_at()
                } else {
                    p.session.poll_at()
                }
            })
            .min()
    }

    pub(crate) fn poll_event(&mut self) -> Option<BusEvent<T>> {
        self.events.pop_front()
    }

    fn line_busy(&self) -> bool {
        self.pds.iter().any(|p| p.session.awaiting_reply())
    }

    /// Hands PD `pd`'s next request (urgent lane first) to its session, if it can take one now.
    fn submit_next(&mut self, pd: usize) {
        let p = &mut self.pds[pd];
        while p.in_flight.is_none() && p.session.can_submit() {
            let Some((req, priority)) = p.next_request() else {
                break;
            };
            match p.session.submit(req.command) {
                Ok(id) => p.in_flight = Some((id, req.token, priority)),
                Err(e) => self.events.push_back(BusEvent::Answer {
                    pd,
                    token: req.token,
                    result: Err(RequestError::Submit(e)),
                }),
            }
        }
    }

    /// Turns every session's events into answers for the callers, in order.
    fn collect_events(&mut self) {
        for (pd, p) in self.pds.iter_mut().enumerate() {
            while let Some(ev) = p.session.poll_event() {
                match ev {
                    Event::Reply { id, reply } => p.answer(pd, id, Ok(reply), &mut self.events),
                    Event::Failed { id, reason } => {
                        p.answer(pd, id, Err(RequestError::Failed(reason)), &mut self.events)
                    }
                    Event::Online { .. } => p.online_count += 1,
                    Event::Offline => {
                        for req in p.urgent.drain(..).chain(p.normal.drain(..)) {
                            self.events.push_back(BusEvent::Answer {
                                pd,
                                token: req.token,
                                result: Err(RequestError::Offline),
                            });
                        }
                    }
                    Event::Unsolicited(reply) => self.events.push_back(BusEvent::Unsolicited { pd, reply }),
                }
            }
        }
    }
}

impl<T: Token> BusPd<T> {
    fn next_request(&mut self) -> Option<(Request<T>, Priority)> {
        loop {
            let (req, priority) = match self.urgent.pop_front() {
                Some(r) => (r, Priority::Urgent),
                None => (self.normal.pop_front()?, Priority::Normal),
            };
            // A caller that gave up no longer wants the command sent.
            if !req.token.is_cancelled() {
                return Some((req, priority));
            }
        }
    }

    /// What this PD wants the line for now, if anything: its command in the session (a resend or a
    /// BUSY retry) at that command's priority; else its next queued request; else a due keep-alive
    /// (online) or discovery (bulk rank, so a dead PD's probes take turns with real work).
    fn want(&self, now: Instant) -> Option<Need> {
        let due = self.session.transmit_at().is_some_and(|t| t <= now);
        match &self.in_flight {
            Some((_, _, priority)) => due.then_some(Self::need_of(*priority)),
            None if self.session.can_submit() && !self.urgent.is_empty() => Some(Need::Urgent),
            None if self.session.can_submit() && !self.normal.is_empty() => Some(Need::Bulk),
            None if !due => None,
            None if self.session.state() == PdState::Online => Some(Need::KeepAlive),
            None => Some(Need::Bulk),
        }
    }

    fn need_of(priority: Priority) -> Need {
        match priority {
            Priority::Urgent => Need::Urgent,
            Priority::Normal => Need::Bulk,
        }
    }

    fn answer(
        &mut self,
        pd: usize,
        id: CommandId,
        result: Result<Reply, RequestError>,
        out: &mut VecDeque<BusEvent<T>>,
    ) {
        match self.in_flight.take() {
            Some((want, token, _)) if want == id => out.push_back(BusEvent::Answer { pd, token, result }),
            other => {
                tracing::debug!(pd, id = id.0, "osdp event for a command no caller waits for");
                self.in_flight = other;
            }
        }
    }
}
