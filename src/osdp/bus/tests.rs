//! The bus against sans-IO PDs on a simulated half-duplex line, in virtual time: turns, urgent-first
//! across PDs, fairness, a silent PD, keep-alives during bulk work.

use std::time::{Duration, Instant};

use super::*;
use crate::osdp::command::Mfg;
use crate::osdp::reply::{CapRecord, PdCap, PdId};
use crate::osdp::{PdInput, PdLink};

impl Token for u32 {}

/// How long a reply takes to arrive after the command went out (line time plus PD turnaround).
const REPLY_AFTER: Duration = Duration::from_millis(5);

fn pdid(address: u8) -> PdId {
    PdId {
        vendor_code: [1, 2, 3],
        model: address,
        version: 1,
        serial_number: u32::from(address),
        firmware: [1, 0, 0],
    }
}

fn pdcap() -> PdCap {
    PdCap {
        records: vec![CapRecord {
            function: 8,
            compliance: 1,
            items: 0,
        }],
    }
}

fn bulk(tag: u8) -> Command {
    Command::Mfg(Mfg {
        vendor_code: [9, 9, 9],
        data: vec![tag],
    })
}

fn urgent(tag: u8) -> Command {
    Command::Mfg(Mfg {
        vendor_code: [7, 7, 7],
        data: vec![tag],
    })
}

/// One line: the bus, the PDs that answer (a `None` address is silent), a reply in flight.
struct Line {
    bus: Bus<u32>,
    /// Every PD's link, and whether it answers.
    pds: Vec<(PdLink, bool)>,
    now: Instant,
    reply: Option<(Instant, Vec<u8>)>,
    /// (PD index, command name or MFG tag as "mfg:<vendor byte>:<tag>", time) for every packet sent.
    sent: Vec<(usize, String, Instant)>,
    answers: Vec<(usize, u32, Result<Reply, RequestError>)>,
}

impl Line {
    /// PDs at addresses 1..=n; those listed in `silent` never answer.
    fn new(n: u8, silent: &[u8]) -> Self {
        let now = Instant::now();
        let configs = (1..=n).map(SessionConfig::new).collect();
        let pds = (1..=n).map(|a| (PdLink::new(a, 1440), !silent.contains(&a))).collect();
        Line {
            bus: Bus::new(configs, false, now),
            pds,
            now,
            reply: None,
            sent: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// Runs the line until `until`, one event at a time.
    fn run_until(&mut self, until: Instant) {
        while self.now <= until {
            while let Some(t) = self.bus.poll_transmit(self.now) {
                assert!(
                    self.reply.is_none(),
                    "a second packet went out while a reply was on the line"
                );
                self.deliver(&t);
            }
            while let Some(ev) = self.bus.poll_event() {
                if let BusEvent::Answer { pd, token, result } = ev {
                    self.answers.push((pd, token, result));
                }
            }
            let next = [self.bus.poll_at(), self.reply.as_ref().map(|r| r.0)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(until + Duration::from_millis(1));
            self.now = next.max(self.now);
            if self.now > until {
                break;
            }
            if let Some((at, bytes)) = self.reply.take_if(|r| r.0 <= self.now) {
                self.bus.handle_bytes(at, &bytes);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver(&mut self, t: &Transmit) {
        for (pd, answers) in &mut self.pds {
            pd.handle_bytes(self.now, &t.bytes);
            while let Some(input) = pd.poll_input() {
                let out = match input {
                    PdInput::Transmit(bytes) => Some(bytes),
                    PdInput::Command { to, command } => {
                        let name = match &command {
                            Command::Mfg(m) => {
                                format!("mfg:{}:{}", m.vendor_code[0], m.data.first().copied().unwrap_or(0))
                            }
                            c => c.name().to_string(),
                        };
                        self.sent.push((t.pd, name, self.now));
                        let reply = match command {
                            Command::Id => Reply::PdId(pdid(pd.address())),
                            Command::Cap => Reply::PdCap(pdcap()),
                            _ => Reply::Ack,
                        };
                        pd.reply(to, &reply).ok()
                    }
                };
                if let Some(bytes) = out.filter(|_| *answers) {
                    self.reply = Some((self.now + REPLY_AFTER, bytes));
                }
            }
        }
    }

    fn online(&self) -> bool {
        (0..self.bus.len()).all(|pd| self.bus.session(pd).state() == PdState::Online)
    }

    /// When each `command` to PD `pd` went out after `from` (index into `sent`).
    fn sent_since(&self, from: usize, pd: usize, command: &str) -> Vec<Instant> {
        self.sent[from..]
            .iter()
            .filter(|(p, n, _)| *p == pd && n == command)
            .map(|s| s.2)
            .collect()
    }

    /// MFG packets sent after `from` (index into `sent`), as (PD index, name).
    fn mfgs_since(&self, from: usize) -> Vec<(usize, String)> {
        self.sent[from..]
            .iter()
            .filter(|(_, n, _)| n.starts_with("mfg"))
            .map(|(pd, n, _)| (*pd, n.clone()))
            .collect()
    }
}

#[test]
fn every_pd_on_the_line_is_discovered_with_its_own_sequence_numbers() {
    let mut line = Line::new(3, &[]);
    line.run_for(Duration::from_millis(200));
    assert!(line.online());
    for pd in 0..3 {
        assert_eq!(line.bus.session(pd).pdid(), Some(&pdid(pd as u8 + 1)));
        assert_eq!(line.bus.online_count(pd), 1);
    }
    // Each PD was asked ID then CAP, in turns.
    let discovery: Vec<_> = line.sent.iter().take(6).map(|(pd, n, _)| (*pd, n.as_str())).collect();
    assert_eq!(
        discovery,
        [
            (0, "osdp_ID"),
            (1, "osdp_ID"),
            (2, "osdp_ID"),
            (0, "osdp_CAP"),
            (1, "osdp_CAP"),
            (2, "osdp_CAP")
        ]
    );
}

#[test]
fn bulk_work_for_several_pds_takes_turns() {
    let mut line = Line::new(2, &[]);
    line.run_for(Duration::from_millis(100));
    let from = line.sent.len();
    for tag in 0..4 {
        line.bus.request(0, bulk(tag), Priority::Normal, u32::from(tag));
        line.bus.request(1, bulk(tag), Priority::Normal, 100 + u32::from(tag));
    }
    line.run_for(Duration::from_millis(200));
    let order: Vec<usize> = line.mfgs_since(from).into_iter().map(|(pd, _)| pd).collect();
    assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 1]);
    assert_eq!(line.answers.len(), 8);
    assert!(line.answers.iter().all(|(_, _, r)| r == &Ok(Reply::Ack)));
}

#[test]
fn an_urgent_request_for_another_pd_goes_right_after_the_packet_on_the_line() {
    let mut line = Line::new(2, &[]);
    line.run_for(Duration::from_millis(100));
    for tag in 0..6 {
        line.bus.request(0, bulk(tag), Priority::Normal, u32::from(tag));
    }
    // Let the first fragment go out, then revoke on PD 2 while PD 1's transfer streams.
    let from = line.sent.len();
    let t0 = line.now;
    line.run_until(t0 + Duration::from_millis(1));
    assert_eq!(line.mfgs_since(from), [(0, "mfg:9:0".to_string())]);
    line.bus.request(1, urgent(1), Priority::Urgent, 99);
    line.run_for(Duration::from_millis(200));
    let sent = line.mfgs_since(from);
    assert_eq!(sent[1], (1, "mfg:7:1".to_string()), "{sent:?}");
    let at = line.sent.iter().find(|(_, n, _)| n == "mfg:7:1").map(|s| s.2);
    assert!(at.is_some_and(|at| at <= t0 + REPLY_AFTER), "{at:?}");
}

#[test]
fn urgent_work_outranks_bulk_work_on_every_pd_of_the_line() {
    let mut line = Line::new(3, &[]);
    line.run_for(Duration::from_millis(100));
    let from = line.sent.len();
    line.bus.request(0, bulk(1), Priority::Normal, 1);
    line.bus.request(1, bulk(2), Priority::Normal, 2);
    line.bus.request(2, urgent(3), Priority::Urgent, 3);
    line.run_for(Duration::from_millis(100));
    let sent = line.mfgs_since(from);
    assert_eq!(sent.first(), Some(&(2, "mfg:7:3".to_string())), "{sent:?}");
}

#[test]
fn a_silent_pd_costs_the_others_one_reply_timeout_per_turn() {
    let mut line = Line::new(2, &[2]);
    line.run_for(Duration::from_millis(500));
    assert_eq!(line.bus.session(0).state(), PdState::Online);
    let from = line.sent.len();
    for tag in 0..20 {
        line.bus.request(0, bulk(tag), Priority::Normal, u32::from(tag));
    }
    line.run_for(Duration::from_secs(3));
    assert_eq!(line.answers.len(), 20, "every command to the live PD is answered");
    // Between two packets to the live PD at most one of the silent PD's packets (one timeout) goes out.
    let last_mfg = line
        .sent
        .iter()
        .rposition(|(_, n, _)| n.starts_with("mfg"))
        .unwrap_or(from);
    let sent = &line.sent[from..=last_mfg];
    for pair in sent.windows(2) {
        assert!(
            pair[0].0 == 0 || pair[1].0 == 0,
            "two turns of the silent PD in a row: {pair:?}"
        );
    }
    let reply_timeout = SessionConfig::new(2).reply_timeout;
    for pair in sent.windows(2).filter(|p| p[0].0 == 0 && p[1].0 == 0) {
        assert!(pair[1].2 - pair[0].2 <= REPLY_AFTER, "{pair:?}");
    }
    for pair in sent.windows(2) {
        assert!(
            pair[1].2 - pair[0].2 <= reply_timeout,
            "the line idled beyond one reply timeout: {pair:?}"
        );
    }
}

#[test]
fn an_idle_pd_is_polled_within_its_poll_interval_while_another_takes_a_long_transfer() {
    let mut line = Line::new(2, &[]);
    line.run_for(Duration::from_millis(100));
    let from = line.sent.len();
    for tag in 0..200 {
        line.bus.request(0, bulk(tag), Priority::Normal, u32::from(tag));
    }
    line.run_for(Duration::from_secs(2));
    assert_eq!(line.answers.len(), 200);
    let polls: Vec<Instant> = line.sent_since(from, 1, "osdp_POLL");
    let interval = SessionConfig::new(2).poll_interval;
    assert!(polls.len() >= 10, "{}", polls.len());
    for pair in polls.windows(2) {
        assert!(
            pair[1] - pair[0] <= interval + 2 * REPLY_AFTER,
            "{:?}",
            pair[1] - pair[0]
        );
    }
    assert_eq!(line.bus.session(1).state(), PdState::Online);
}

#[test]
fn requests_for_an_offline_pd_fail_at_once_and_the_others_keep_working() {
    let mut line = Line::new(2, &[1]);
    line.run_for(Duration::from_secs(9));
    assert_eq!(line.bus.session(0).state(), PdState::Offline);
    assert_eq!(line.bus.session(1).state(), PdState::Online);
    line.bus.request(0, bulk(1), Priority::Normal, 1);
    line.bus.request(1, bulk(2), Priority::Normal, 2);
    line.run_for(Duration::from_millis(300));
    assert!(line.answers.contains(&(0, 1, Err(RequestError::Offline))));
    assert!(line.answers.contains(&(1, 2, Ok(Reply::Ack))));
}

#[test]
fn with_an_echoing_adapter_our_own_bytes_are_dropped_before_the_reply() {
    let now = Instant::now();
    let mut bus: Bus<u32> = Bus::new(vec![SessionConfig::new(1)], true, now);
    let Some(t) = bus.poll_transmit(now) else {
        panic!("discovery goes out first");
    };
    let mut pd = PdLink::new(1, 1440);
    pd.handle_bytes(now, &t.bytes);
    let Some(PdInput::Command { to, .. }) = pd.poll_input() else {
        panic!("the PD sees osdp_ID");
    };
    let reply = pd.reply(to, &Reply::PdId(pdid(1))).unwrap_or_default();
    let mut input = t.bytes.clone();
    input.extend_from_slice(&reply);
    bus.handle_bytes(now, &input);
    assert_eq!(bus.session(0).pdid(), Some(&pdid(1)));
    assert_eq!(bus.echo_stats().echo_bytes, t.bytes.len() as u64);
}

#[test]
fn a_revocation_for_every_pd_goes_out_right_after_the_fragment_on_the_line_even_while_all_stream() {
    let mut line = Line::new(4, &[]);
    line.run_for(Duration::from_millis(100));
    // Every PD streams: one bulk command queued behind another, as a file transfer does.
    for pd in 0..4 {
        for tag in 0..20 {
            line.bus.request(pd, bulk(tag), Priority::Normal, u32::from(tag));
        }
    }
    let t0 = line.now;
    line.run_until(t0 + Duration::from_millis(1));
    let from = line.sent.len();
    for pd in 0..4 {
        line.bus
            .request(pd, urgent(pd as u8), Priority::Urgent, 900 + pd as u32);
    }
    line.run_for(Duration::from_millis(100));
    // The exchange already on the line finishes; then the four deletes, before any more bulk work.
    let mut next: Vec<String> = line.mfgs_since(from).into_iter().take(4).map(|(_, n)| n).collect();
    next.sort();
    assert_eq!(
        next,
        ["mfg:7:0", "mfg:7:1", "mfg:7:2", "mfg:7:3"],
        "{:?}",
        line.mfgs_since(from)
    );
}

#[test]
fn an_offline_pd_on_a_shared_line_is_probed_at_doubling_pauses_and_takes_little_of_the_line() {
    let mut line = Line::new(2, &[2]);
    line.run_for(Duration::from_secs(9));
    assert_eq!(line.bus.session(1).state(), PdState::Offline);
    let from = line.sent.len();
    let start = line.now;
    line.run_for(Duration::from_secs(60));
    let probes: Vec<Instant> = line.sent_since(from, 1, "osdp_ID");
    // Four transmissions per attempt (first + max_retries); the pause between attempts doubles to 8 s.
    let attempts: Vec<Instant> = probes.iter().step_by(4).copied().collect();
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 5, "{gaps:?}");
    for pair in gaps.windows(2) {
        assert!(pair[1] >= pair[0], "pauses never shrink while offline: {gaps:?}");
    }
    let cap = super::SHARED_LINE_OFFLINE_PROBE_MAX;
    let slack = SessionConfig::new(2).reply_timeout * 6;
    assert!(gaps.iter().all(|g| *g <= cap + slack), "{gaps:?}");
    assert!(gaps.last().is_some_and(|g| *g >= cap), "{gaps:?}");
    // Once the pause reached its cap, the dead PD's share of the line (one reply timeout per probe
    // transmission) is under a tenth.
    let steady_from = line.sent.len();
    let steady_start = line.now;
    line.run_for(Duration::from_secs(60));
    let steady = line.sent_since(steady_from, 1, "osdp_ID").len() as u32;
    let dead = SessionConfig::new(2).reply_timeout * steady;
    let window = line.now - steady_start;
    assert!(dead * 10 < window, "{dead:?} of {window:?}");
    assert!(start < steady_start);
    assert_eq!(line.bus.session(0).state(), PdState::Online);
}

#[test]
fn a_pd_alone_on_its_line_keeps_the_one_second_probe() {
    let mut line = Line::new(1, &[1]);
    line.run_for(Duration::from_secs(9));
    assert_eq!(line.bus.session(0).state(), PdState::Offline);
    let from = line.sent.len();
    line.run_for(Duration::from_secs(20));
    let probes: Vec<Instant> = line.sent_since(from, 0, "osdp_ID");
    let attempts: Vec<Instant> = probes.iter().step_by(4).copied().collect();
    let probe = SessionConfig::new(1).probe_interval;
    let slack = SessionConfig::new(1).reply_timeout * 6;
    for w in attempts.windows(2) {
        assert!(w[1] - w[0] <= probe + slack, "{:?}", w[1] - w[0]);
    }
}

#[test]
fn a_pd_that_comes_back_to_a_shared_line_is_online_again_within_the_longest_probe_pause() {
    let mut line = Line::new(2, &[2]);
    line.run_for(Duration::from_secs(40));
    assert_eq!(line.bus.session(1).state(), PdState::Offline);
    line.pds[1].1 = true;
    let back = line.now;
    let bound = super::SHARED_LINE_OFFLINE_PROBE_MAX + SessionConfig::new(2).reply_timeout * 8;
    while line.bus.session(1).state() != PdState::Online {
        assert!(
            line.now - back <= bound,
            "not online {:?} after it came back",
            line.now - back
        );
        line.run_for(Duration::from_millis(100));
    }
}
