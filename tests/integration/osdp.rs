//! CP session against the PD link over a simulated lossy RS-485 line (seeded, synthetic clock).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use doorsync::osdp::command::Mfg;
use doorsync::osdp::reply::{CapRecord, PdCap, PdId};
use doorsync::osdp::{Command, Event, PdInput, PdLink, PdSession, PdState, Reply, SessionConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VENDOR: [u8; 3] = [0x12, 0x34, 0x56];

struct Line {
    rng: StdRng,
    drop_pct: u32,
    corrupt_pct: u32,
    noise_pct: u32,
}

impl Line {
    /// What arrives at the other end: maybe nothing, maybe noise-prefixed, maybe one byte flipped.
    fn carry(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.rng.random_range(0..100) < self.drop_pct {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.rng.random_range(0..100) < self.noise_pct {
            let n = self.rng.random_range(1..6);
            out.extend((0..n).map(|_| self.rng.random::<u8>()));
        }
        let start = out.len();
        out.extend_from_slice(bytes);
        if self.rng.random_range(0..100) < self.corrupt_pct {
            let i = self.rng.random_range(start..out.len());
            out[i] ^= 1 << self.rng.random_range(0..8);
        }
        out
    }
}

fn pd_answer(pd: &mut PdLink, executed: &mut HashMap<Vec<u8>, u32>, t: Instant, bytes: &[u8]) -> Vec<u8> {
    pd.handle_bytes(t, bytes);
    let mut out = Vec::new();
    while let Some(input) = pd.poll_input() {
        match input {
            PdInput::Transmit(b) => out.extend(b),
            PdInput::Command { to, command } => {
                let reply = match command {
                    Command::Id => Reply::PdId(PdId {
                        vendor_code: VENDOR,
                        ..PdId::default()
                    }),
                    Command::Cap => Reply::PdCap(PdCap {
                        records: vec![CapRecord {
                            function: 10,
                            compliance: 0,
                            items: 1,
                        }],
                    }),
                    Command::Mfg(m) => {
                        *executed.entry(m.data.clone()).or_default() += 1;
                        Reply::MfgRep(m_rep(&m.data))
                    }
                    _ => Reply::Ack,
                };
                out.extend(pd.reply(to, &reply).unwrap());
            }
        }
    }
    out
}

fn m_rep(data: &[u8]) -> doorsync::osdp::reply::MfgRep {
    doorsync::osdp::reply::MfgRep {
        vendor_code: VENDOR,
        data: data.to_vec(),
    }
}

/// Returns (commands failed and resubmitted, malformed frames seen by the CP).
fn run_lossy_bus(seed: u64, drop_pct: u32, corrupt_pct: u32) -> (u32, u64) {
    let mut line = Line {
        rng: StdRng::seed_from_u64(seed),
        drop_pct,
        corrupt_pct,
        noise_pct: 20,
    };
    let mut t = Instant::now();
    let mut cp = PdSession::new(SessionConfig::new(1), t);
    let mut pd = PdLink::new(1, 256);
    let mut executed: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut failures: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut completed: HashMap<Vec<u8>, u32> = HashMap::new();
    let payloads: Vec<Vec<u8>> = (0u16..40).map(|i| i.to_le_bytes().to_vec()).collect();
    let mut next = 0;
    let mut in_flight: Option<(doorsync::osdp::CommandId, Vec<u8>)> = None;

    for _ in 0..100_000 {
        if next == payloads.len() && in_flight.is_none() {
            break;
        }
        if in_flight.is_none() && next < payloads.len() && cp.can_submit() {
            let data = payloads[next].clone();
            let id = cp
                .submit(Command::Mfg(Mfg {
                    vendor_code: VENDOR,
                    data: data.clone(),
                }))
                .unwrap();
            in_flight = Some((id, data));
        }
        if let Some(tx) = cp.poll_transmit(t) {
            let at_pd = line.carry(&tx);
            t += Duration::from_millis(3);
            let answer = pd_answer(&mut pd, &mut executed, t, &at_pd);
            if !answer.is_empty() {
                let at_cp = line.carry(&answer);
                t += Duration::from_millis(3);
                cp.handle_bytes(t, &at_cp);
            }
        } else {
            t = t.max(cp.poll_at().unwrap());
        }
        while let Some(ev) = cp.poll_event() {
            match ev {
                Event::Reply { id, reply } => {
                    let (want, data) = in_flight.take().unwrap();
                    assert_eq!(id, want);
                    assert_eq!(
                        reply,
                        Reply::MfgRep(m_rep(&data)),
                        "reply belongs to the command that was sent"
                    );
                    *completed.entry(data).or_default() += 1;
                    next += 1;
                }
                Event::Failed { id, .. } => {
                    let (want, data) = in_flight.take().unwrap();
                    assert_eq!(id, want);
                    *failures.entry(data).or_default() += 1;
                }
                Event::Unsolicited(r) => panic!("unexpected unsolicited {r:?}"),
                Event::Online { .. } | Event::Offline => {}
            }
        }
    }
    assert_eq!(cp.state(), PdState::Online);
    for p in &payloads {
        assert_eq!(completed.get(p), Some(&1), "payload {p:?} completed once");
        let runs = executed.get(p).copied().unwrap_or(0);
        let fails = failures.get(p).copied().unwrap_or(0);
        // A resend with the same SQN is answered from the PD's cache; only a failed-and-resubmitted
        // command (new SQN after a link restart) may run again.
        assert!(
            runs >= 1 && runs <= 1 + fails,
            "payload {p:?} ran {runs} times with {fails} failures"
        );
    }
    assert!(cp.decode_stats().frames > 0);
    (failures.values().sum(), cp.decode_stats().malformed)
}

#[test]
fn cp_and_pd_agree_over_a_clean_line() {
    let (failed, _) = run_lossy_bus(1, 0, 0);
    assert_eq!(failed, 0);
}

#[test]
fn every_command_completes_once_over_a_lossy_noisy_line() {
    let (mut failed, mut malformed) = (0, 0);
    for seed in 0..8 {
        let (f, m) = run_lossy_bus(seed, 15, 10);
        failed += f;
        malformed += m;
    }
    // The faults really happened: some frames were corrupted and some commands exhausted their retries.
    assert!(malformed > 0 && failed > 0, "malformed {malformed}, failed {failed}");
}
