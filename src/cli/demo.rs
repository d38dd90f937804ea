//! `doorsync demo`: the embedded default — the fake cloud on 127.0.0.1, a simulated door on a
//! pseudo-terminal paced at the line rate, a sled store in a temp dir, and the real daemon
//! (`agent::run`: pull loop, door worker over `OsdpDoor` on the pty slave, expiry timer, outbox,
//! control socket) pushing faces, revoking one user and letting one expire; then the door is read back.
//!
//! Nothing here spawns: the daemon spawns its own tasks, and the simulated door's driver runs joined
//! with the demo's script in this future.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use jiff::Timestamp;
use tokio::sync::{broadcast, oneshot};

use super::progress::ProgressView;
use crate::agent::control::{self, Request};
use crate::agent::{self, Daemon, DaemonDoor, DaemonEvent};
use crate::clock::SystemClock;
use crate::cloud::CloudClient;
use crate::cloud::sim::{SimCloud, SimConfig, SimHandle};
use crate::config::builtin_profile;
use crate::domain::{DoorUserId, Profile, Secret, UserKey};
use crate::door::sim::{SimDoor, SimDoorConfig};
use crate::door::{self, Door as _, OsdpDoor, OsdpDoorOptions};
use crate::serial::pty::Pty;
use crate::store::Store;
use crate::sync::engine::{Removal, RemovalCause, RevokeReport};
use crate::sync::{desired, plan};
use crate::testkit;

const DEMO_APP_KEY: &str = "24681357";
const DEMO_SECRET: &[u8] = b"demo-secret-0123456789abcdef";
/// The door's name with `--doors 1`; with more, `demo-door-<address>`.
const DOOR: &str = "demo-door";
/// Only guards against a hung demo; nothing is judged by how long it takes.
const STEP_GUARD: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many users the fake cloud serves (at least 3: one is revoked, one expires).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(3..=10_000))]
    pub users: u32,
    /// Line rate of the simulated door's serial line, paced as a real half-duplex line.
    #[arg(long, default_value_t = 115_200, value_parser = clap::value_parser!(u32).range(1200..=4_000_000))]
    pub baud: u32,
    /// Print one JSON object on standard output and nothing else.
    #[arg(long)]
    pub json: bool,
    /// Run the whole story inside an OSDP Secure Channel session (a random key for door and agent).
    #[arg(long)]
    pub secure: bool,
    /// How many doors share the simulated RS-485 bus (addresses 1..=N, one serial line).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub doors: u8,
}

/// The demo's doors: their names and OSDP addresses.
fn door_names(n: u8) -> Vec<(String, u8)> {
    if n == 1 {
        return vec![(DOOR.to_string(), 1)];
    }
    (1..=n).map(|a| (format!("{DOOR}-{a}"), a)).collect()
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("creating the demo's temp dir")?;
    let cloud = SimCloud::start(
        "127.0.0.1:0".parse()?,
        SimConfig::new(DEMO_APP_KEY, Secret::new(DEMO_SECRET.to_vec()), args.users as usize),
    )
    .await
    .context("starting the fake cloud")?;
    let profile = demo_profile()?;
    let pty = Pty::open().context("opening a pseudo-terminal for the simulated door")?;
    let slave = pty.slave_path().to_path_buf();
    let demo_key = crate::osdp::sc::Key16::new(rand::random());
    let configs = door_names(args.doors)
        .into_iter()
        .map(|(_, address)| {
            let mut door_config = SimDoorConfig::new(address, profile.clone());
            door_config.baud = Some(args.baud);
            if args.secure {
                door_config.secure = Some(crate::door::sim::SimSecure {
                    scbk: Some(demo_key.clone()),
                    ..Default::default()
                });
            }
            door_config
        })
        .collect();
    let (sim_doors, sim_driver) = SimDoor::bus(configs, pty).context("starting the simulated door")?;

    let script = Script {
        args: &args,
        dir: dir.path(),
        cloud: &cloud,
        sim_doors: &sim_doors,
        slave: &slave,
        profile,
        secure: args.secure.then_some(demo_key),
    };
    let outcome = {
        let script = script.run();
        tokio::pin!(script);
        let driver = sim_driver.run();
        tokio::pin!(driver);
        let mut driver_done = false;
        loop {
            tokio::select! {
                out = &mut script => break out,
                ended = &mut driver, if !driver_done => {
                    driver_done = true;
                    if let Err(e) = ended {
                        tracing::error!(error = %e, "the simulated door stopped");
                    }
                }
            }
        }
    };
    for d in &sim_doors {
        d.shutdown();
    }
    cloud.shutdown().await;
    let summary = outcome?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", render(&summary));
    }
    Ok(
        if summary.converged && !summary.revoked_present && !summary.expired_present {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// The built-in generic profile with smaller faces (240×320, ≤ 8 KiB), so 20 users cross a paced
/// 115 200 baud line in seconds rather than a minute; everything else is the real profile.
fn demo_profile() -> anyhow::Result<Profile> {
    let mut profile = builtin_profile("generic-face-v1").context("the built-in generic-face-v1 profile")?;
    profile.image.max_width_px = 240;
    profile.image.max_height_px = 320;
    profile.image.max_bytes = 8 * 1024;
    Ok(profile)
}

struct Script<'a> {
    args: &'a DemoArgs,
    dir: &'a std::path::Path,
    cloud: &'a SimHandle,
    /// The doors on the simulated bus, in address order.
    sim_doors: &'a [SimDoor],
    slave: &'a std::path::Path,
    profile: Profile,
    /// The demo's Secure Channel key (`--secure`).
    secure: Option<crate::osdp::sc::Scbk>,
}

impl Script<'_> {
    fn say(&self, line: &str) {
        if !self.args.json {
            println!("{line}");
        }
    }

    async fn run(self) -> anyhow::Result<DemoSummary> {
        let args = self.args;
        let mut users = self.cloud.users();
        users.sort_by(|a, b| a.key.cmp(&b.key));
        // New users get door ids in key order and faces go out in id order: the first user's face is on
        // the door early, so their expiry removes them from the door even if the pass runs long.
        let expiring = users
            .first()
            .map(|u| u.key.clone())
            .context("the fake cloud has no users")?;
        let revoked = users
            .get(1)
            .map(|u| u.key.clone())
            .context("the fake cloud has one user")?;
        let expire_in = expected_pass(args.users * u32::from(args.doors), args.baud) + Duration::from_secs(3);
        let expire_at = Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(expire_in)?)
            .context("computing expire_at")?;
        self.cloud.set_expire(&expiring.user_id, Some(expire_at));
        self.say(&format!(
            "fake cloud: {} ({} users, APP-signed requests only); {} expires at {} (in {} s)",
            self.cloud.base_url(),
            args.users,
            expiring,
            expire_at,
            expire_in.as_secs()
        ));
        let names = door_names(args.doors);
        let addresses: Vec<String> = names.iter().map(|(_, a)| a.to_string()).collect();
        self.say(&format!(
            "simulated {}: OSDP address {} on {} at {} baud (paced half-duplex line)",
            if names.len() == 1 { "door" } else { "doors on one bus" },
            addresses.join(", "),
            self.slave.display(),
            args.baud
        ));

        let store_dir = self.dir.join("store");
        let store = agent::open_store(&store_dir)?;
        self.say(&format!("store: sled at {}", store_dir.display()));
        let stream = crate::serial::open(self.slave, args.baud)
            .with_context(|| format!("opening the door's line {}", self.slave.display()))?;
        let sessions = names
            .iter()
            .map(|(_, address)| {
                let mut session = OsdpDoor::line_session_config(*address, &self.profile, args.baud);
                session.secure = self.secure.clone().map(crate::osdp::SecureConfig::new);
                session
            })
            .collect();
        if self.secure.is_some() {
            self.say("secure channel: on (OSDP Secure Channel, AES-128, a random key for this demo)");
        }
        let (handles, link) = crate::serial::link::bus(stream, sessions, Default::default());
        let osdps: Vec<Arc<OsdpDoor>> = handles
            .into_iter()
            .map(|h| Arc::new(OsdpDoor::on_link(h, &self.profile, OsdpDoorOptions::default())))
            .collect();
        let mut link = Some(link);
        let doors = names
            .iter()
            .zip(&osdps)
            .map(|((name, _), osdp)| DaemonDoor {
                name: name.clone(),
                profile: self.profile.clone(),
                door: osdp.clone(),
                // One driver runs the whole bus; it goes with the first door.
                driver: link.take().map(|link| -> futures::future::BoxFuture<'static, ()> {
                    Box::pin(async move {
                        if let Err(e) = link.run().await {
                            tracing::error!(error = %e, "door link stopped");
                        }
                    })
                }),
            })
            .collect();
        let socket = store_dir.join("doorsync.sock");
        let settings = testkit::sim_cloud_settings(&self.cloud.base_url(), DEMO_APP_KEY, DEMO_SECRET);
        let (tx, events) = broadcast::channel(4096);
        let daemon = Daemon {
            // One pull at start-up: the rest of the story runs from the cache.
            config: testkit::daemon_config(socket.clone()),
            store: store.clone(),
            cloud: Arc::new(CloudClient::new(settings)?),
            clock: Arc::new(SystemClock),
            doors,
            events: Some(tx),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let daemon_run = agent::run(daemon, async {
            let _ = stop_rx.await;
        });
        tokio::pin!(daemon_run);
        let story = Story {
            script: &self,
            store: &store,
            doors: names
                .into_iter()
                .zip(osdps)
                .map(|((name, _), osdp)| (name, osdp))
                .collect(),
            socket: &socket,
            events: Watch {
                rx: events,
                image_bytes_sent: 0,
                expired: Vec::new(),
            },
            expire_at,
            expiring,
            revoked,
        };
        let story = story.tell();
        tokio::pin!(story);
        let told = tokio::select! {
            told = &mut story => told,
            ended = &mut daemon_run => {
                ended?;
                anyhow::bail!("the daemon stopped before the demo finished");
            }
        };
        let _ = stop_tx.send(());
        daemon_run.await?;
        told
    }
}

/// What the first pass should take at `baud`, for placing the expiry after it: a demo face is
/// at most 8 KiB and the line carries some 80 % payload.
fn expected_pass(users: u32, baud: u32) -> Duration {
    let bytes_per_user = 8_600.0;
    let line_bytes_per_s = f64::from(baud) / 10.0 * 0.8;
    Duration::from_secs_f64(f64::from(users) * bytes_per_user / line_bytes_per_s + 2.0)
}

/// The daemon's events, with the face bytes of every door sync seen so far.
struct Watch {
    rx: broadcast::Receiver<DaemonEvent>,
    image_bytes_sent: u64,
    /// Every expiry removal seen so far (one may land while the first pass still runs).
    expired: Vec<Removal>,
}

impl Watch {
    async fn next(&mut self, mut want: impl FnMut(&DaemonEvent) -> bool) -> anyhow::Result<DaemonEvent> {
        tokio::time::timeout(STEP_GUARD, async {
            loop {
                match self.rx.recv().await {
                    Ok(e) => {
                        match &e {
                            DaemonEvent::DoorSynced { report } => {
                                self.image_bytes_sent += report.apply.image_bytes_sent
                            }
                            DaemonEvent::Removed {
                                cause: RemovalCause::Expired,
                                removal,
                            } => self.expired.push(removal.clone()),
                            _ => {}
                        }
                        if want(&e) {
                            return Ok(e);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => anyhow::bail!("the daemon stopped reporting"),
                }
            }
        })
        .await
        .context("the demo waited too long for the daemon")?
    }
}

struct Story<'a> {
    script: &'a Script<'a>,
    store: &'a Store,
    /// Each door's name and its OSDP door, in address order (as `Script::sim_doors`).
    doors: Vec<(String, Arc<OsdpDoor>)>,
    socket: &'a std::path::Path,
    events: Watch,
    expire_at: Timestamp,
    expiring: UserKey,
    revoked: UserKey,
}

impl Story<'_> {
    async fn tell(mut self) -> anyhow::Result<DemoSummary> {
        let args = self.script.args;
        let sim_doors = self.script.sim_doors;
        let started = Instant::now();
        self.events.next(|e| matches!(e, DaemonEvent::Ready { .. })).await?;
        self.script
            .say("daemon: running (pull loop, door worker over OsdpDoor, expiry timer, outbox, control socket)");

        // 1. The first pass: every user's face onto every door.
        let progress = (std::io::stderr().is_terminal() && !args.json).then(ProgressView::new);
        let mut shown_tenth = None;
        let total = u64::from(args.users);
        let all_faces = total * sim_doors.len() as u64;
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        let pulled = self
            .events
            .next(|e| matches!(e, DaemonEvent::Pulled { .. } | DaemonEvent::PullFailed { .. }))
            .await?;
        if let DaemonEvent::PullFailed { error } = pulled {
            anyhow::bail!("the daemon could not pull from the fake cloud: {error}");
        }
        let names: Vec<String> = self.doors.iter().map(|(n, _)| n.clone()).collect();
        // A door is done once its worker reported a converged pass while the store holds desired state.
        let mut done: BTreeSet<String> = BTreeSet::new();
        let pass = loop {
            let faces: u64 = sim_doors.iter().map(|d| d.counters().faces_applied.min(total)).sum();
            match &progress {
                Some(bar) => bar.show("faces on the doors", faces, all_faces),
                None => {
                    let tenth = faces * 10 / all_faces.max(1);
                    if shown_tenth != Some(tenth) {
                        self.script.say(&format!("  faces on the doors: {faces}/{all_faces}"));
                        shown_tenth = Some(tenth);
                    }
                }
            }
            if done.len() == names.len() {
                break started.elapsed();
            }
            let (store, profile) = (self.store, &self.script.profile);
            tokio::select! {
                _ = ticker.tick() => {}
                e = self.events.next(|e| matches!(e, DaemonEvent::DoorSynced { report } if report.converged
                        && holds_desired(store, profile, &report.name, total).unwrap_or(false))) => {
                    if let DaemonEvent::DoorSynced { report } = e? {
                        done.insert(report.name);
                    }
                }
            }
        };
        if let Some(bar) = &progress {
            bar.finish();
        }
        let payload: u64 = sim_doors.iter().map(|d| d.counters().file_payload_bytes).sum();
        let line_bytes_per_s = f64::from(args.baud) / 10.0;
        let goodput = payload as f64 / (line_bytes_per_s * pass.as_secs_f64().max(1e-3));
        self.script.say(&format!(
            "first pass: {} users on {} in {:.1} s; {} KiB of faces sent, goodput {:.0} % of the line",
            self.store.applied(&names[0])?.len(),
            if names.len() == 1 {
                "the door".to_string()
            } else {
                format!("each of {} doors", names.len())
            },
            pass.as_secs_f64(),
            self.events.image_bytes_sent / 1024,
            goodput * 100.0
        ));

        // 2. Local revocation, through the control socket as `doorsync revoke` does with a daemon.
        let stream = control::connect(self.socket)
            .await?
            .context("the daemon's control socket is not listening")?;
        let value = control::call(
            stream,
            &Request::Revoke {
                key: self.revoked.clone(),
            },
            |_| {},
        )
        .await?;
        let revoke: RevokeReport = serde_json::from_value(value).context("the daemon's revoke answer")?;
        for line in super::revoke::render(&revoke).lines() {
            self.script.say(&format!("revoke: {line}"));
        }

        // 3. Expiry: the daemon's timer removes the user at expire_at, no cloud call involved.
        self.script.say(&format!(
            "waiting for {} to expire (the expiry timer needs no cloud)…",
            self.expiring
        ));
        let expiring = self.expiring.clone();
        let ours = |r: &Removal| names.contains(&r.door) && r.removed.contains(&expiring);
        let mut removed: Vec<Removal> = self.events.expired.iter().filter(|r| ours(r)).cloned().collect();
        // A user whose face had not reached a door when they expired leaves no removal to wait for.
        let left = self.expire_at.duration_since(Timestamp::now());
        let deadline = Instant::now() + Duration::try_from(left).unwrap_or_default() + Duration::from_secs(5);
        while removed.len() < names.len() && Instant::now() < deadline {
            let event = self
                .events
                .next(|e| matches!(e, DaemonEvent::Removed { cause: RemovalCause::Expired, removal } if ours(removal)));
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), event).await {
                Ok(Ok(DaemonEvent::Removed { removal, .. })) => removed.push(removal),
                _ => break,
            }
        }
        // Claim a removal only when the daemon reported it; the read-back below says where the user is.
        for name in &names {
            let latency = removed.iter().find(|r| r.door == *name).map(|r| r.latency_ms);
            self.script.say(&match latency {
                Some(ms) => format!(
                    "expiry: {} removed from {name}{}",
                    self.expiring,
                    ms.map(|ms| format!(" {ms} ms after expire_at")).unwrap_or_default()
                ),
                None => format!("expiry: no removal of {} from {name} was observed", self.expiring),
            });
        }

        // 4. Read the doors back once their workers have settled on the new desired state.
        let synced = self
            .events
            .next(|e| matches!(e, DaemonEvent::DoorSynced { report } if report.converged));
        let _ = tokio::time::timeout(Duration::from_secs(5), synced).await;
        let mut doors = Vec::with_capacity(names.len());
        for (i, (name, osdp)) in self.doors.iter().enumerate() {
            let sim_door = sim_doors.get(i).context("a simulated door per door")?;
            let check = self.read_back(name, osdp, sim_door).await?;
            doors.push(DemoDoor {
                name: name.clone(),
                osdp_address: u8::try_from(i + 1).unwrap_or(u8::MAX),
                converged: check.converged,
                door_digest_matches: check.digest_matches,
                users_on_door: check.on_door,
                revoked_present: check.revoked_present,
                expired_present: check.expired_present,
                payload_bytes: sim_door.counters().file_payload_bytes,
                revocation_latency_ms: revoke.doors.iter().find(|d| d.door == *name).and_then(|d| d.latency_ms),
                expiry_latency_ms: removed.iter().find(|r| r.door == *name).and_then(|r| r.latency_ms),
            });
        }
        let desired = desired_ids(self.store, &self.script.profile, &names[0])?.len() as u64;
        let cloud_delete_sent = self.wait_cloud_delete().await;
        let wire: u64 = sim_doors.first().map(|d| d.counters()).map_or(0, |c| c.bytes_received)
            + sim_doors.iter().map(|d| d.counters().bytes_sent).sum::<u64>();
        let slowest = |f: fn(&DemoDoor) -> Option<u64>| doors.iter().map(f).max().flatten();
        Ok(DemoSummary {
            converged: doors.iter().all(|d| d.converged),
            secure_channel: self.doors.iter().all(|(_, o)| o.link_status().secure_channel),
            users: total,
            baud: args.baud,
            users_desired: desired,
            users_on_door: doors.iter().map(|d| d.users_on_door).max().unwrap_or(0),
            door_digest_matches: doors.iter().all(|d| d.door_digest_matches),
            revoked_user: self.revoked.to_string(),
            revoked_present: doors.iter().any(|d| d.revoked_present),
            expired_user: self.expiring.to_string(),
            expired_present: doors.iter().any(|d| d.expired_present),
            image_bytes_sent: self.events.image_bytes_sent,
            payload_bytes: payload,
            bytes_on_wire: wire,
            pass_ms: u64::try_from(pass.as_millis()).unwrap_or(u64::MAX),
            goodput,
            revocation_latency_ms: if doors.iter().all(|d| d.revocation_latency_ms.is_some()) {
                slowest(|d| d.revocation_latency_ms)
            } else {
                None
            },
            expiry_latency_ms: if doors.iter().all(|d| d.expiry_latency_ms.is_some()) {
                slowest(|d| d.expiry_latency_ms)
            } else {
                None
            },
            cloud_delete_sent,
            doors,
        })
    }

    /// Compares one door with desired state two ways: its DIGEST over OSDP against the digest of what
    /// the agent recorded, and its own database against the users who may pass now.
    async fn read_back(&self, name: &str, osdp: &OsdpDoor, sim_door: &SimDoor) -> anyhow::Result<ReadBack> {
        let ids = self.store.door_ids(name)?;
        let desired = desired_ids(self.store, &self.script.profile, name)?;
        let applied = self.store.applied(name)?;
        let expected = door::expected_digest(&applied);
        let reported = osdp.digest().await.context("reading the door's DIGEST")?;
        let digest_matches = reported == expected;
        let db = sim_door.snapshot();
        let on_door: BTreeSet<DoorUserId> = db.user_ids().collect();
        let with_faces = on_door.iter().all(|id| db.face_jpeg(*id).is_some());
        let present = |key: &UserKey| ids.get(key).is_some_and(|id| on_door.contains(id));
        let applied_ids: BTreeSet<DoorUserId> = applied.keys().copied().collect();
        let converged = digest_matches && with_faces && on_door == desired && applied_ids == desired;
        self.script.say(&format!(
            "read-back{}: door DIGEST {} the agent's record ({} users); door holds {} of {} desired users{}",
            if self.doors.len() > 1 {
                format!(" {name}")
            } else {
                String::new()
            },
            if digest_matches { "matches" } else { "DIFFERS from" },
            reported.user_count,
            on_door.intersection(&desired).count(),
            desired.len(),
            if converged {
                ", nobody else"
            } else {
                " — NOT converged"
            }
        ));
        Ok(ReadBack {
            converged,
            digest_matches,
            on_door: on_door.len() as u64,
            revoked_present: present(&self.revoked),
            expired_present: present(&self.expiring),
        })
    }

    /// The revocation's cloud-side face delete goes out through the daemon's outbox shortly after.
    async fn wait_cloud_delete(&self) -> bool {
        let sent = || self.script.cloud.deletes().contains(&self.revoked);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sent() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent()
    }
}

/// `door`'s ids of the users who may pass now.
fn desired_ids(store: &Store, profile: &Profile, door: &str) -> anyhow::Result<BTreeSet<DoorUserId>> {
    let now = Timestamp::now();
    let ids = store.door_ids(door)?;
    Ok(desired::user_entries(store, &profile.name)?
        .iter()
        .filter(|u| plan::is_desired(now, u))
        .filter_map(|u| ids.get(&u.key).copied())
        .collect())
}

/// The agent's record of `door` equals desired state, and that is all `users` of the fake cloud (the
/// pull stores users as their details arrive, so a door can converge on a part of them first).
fn holds_desired(store: &Store, profile: &Profile, door: &str, users: u64) -> anyhow::Result<bool> {
    let desired = desired_ids(store, profile, door)?;
    let applied: BTreeSet<DoorUserId> = store.applied(door)?.keys().copied().collect();
    Ok(desired.len() as u64 == users && applied == desired)
}

struct ReadBack {
    converged: bool,
    digest_matches: bool,
    on_door: u64,
    revoked_present: bool,
    expired_present: bool,
}

mod report;
#[cfg(test)]
mod tests;

use report::render;
pub(crate) use report::{DemoDoor, DemoSummary};
