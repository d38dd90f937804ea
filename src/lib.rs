//! doorsync keeps face-recognition door hardware holding exactly the people who may pass.
//!
//! # Layout
//!
//! Data flows from the cloud down to the doors; imports point down this chain and never up (a module
//! may skip tiers): `cli → agent → sync → {door, cloud} → {serial, store, config, faces} → {osdp,
//! domain, clock}`. `docs/ARCHITECTURE.md` §4 lists what each module imports today and the known
//! departures; §3 lists the invariants ("invariant N" in comments) and the tests that prove them.
//!
//! - [`cli`]: one file per verb.
//! - [`agent`]: the daemon, the only place that spawns tasks.
//! - [`sync`]: the planner (desired − applied → ordered ops, deletes first; pure) and the pass engine
//!   (pull, apply, verify), which drives the store, the cloud client and the doors.
//! - [`door`]: the `Door` trait, the vendor extension codec, OSDP-backed and simulated doors.
//! - [`cloud`]: the signed Alibaba IoT client (the only user of reqwest) and the fake cloud server.
//! - [`serial`]: the only user of tokio-serial: ports (and their RS-485 mode), pseudo-terminals, the line
//!   driver (one per port, for every PD on it).
//! - [`store`]: the sled database (the only user of sled): users, faces by content hash, per-door
//!   applied state, cloud outbox, meta.
//! - [`config`]: the TOML contract, validated in two phases; firmware profiles.
//! - [`faces`]: image normalisation to a hardware profile's limits.
//! - [`osdp`]: sans-IO OSDP: packets, CRC, streaming decoder, control-panel session state machine, and the
//!   bus of sessions sharing one multidrop line.
//! - [`domain`], [`clock`]: shared vocabulary and the time boundary.
//! - [`build_info`], [`systemd`]: what this binary is; the service manager's notify protocol.

pub mod agent;
pub mod build_info;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod domain;
pub mod door;
pub mod faces;
pub mod osdp;
pub mod serial;
pub mod store;
pub mod sync;
pub mod systemd;

pub use build_info::BUILD_INFO;
