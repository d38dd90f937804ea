//! doorsync keeps face-recognition door hardware holding exactly the people who may pass.
//!
//! # Layout
//!
//! Data flows top to bottom; imports point the other way (`cli → agent → {cloud, store, serial, door}
//! → {sync, osdp, faces, config, domain, clock}`):
//!
//! - [`cloud`]: the signed Alibaba IoT client (the only user of reqwest) and the fake cloud server.
//! - [`store`]: the sled database (the only user of sled): users, faces by content hash, per-door
//!   applied state, cloud outbox, meta.
//! - [`sync`]: the planner (desired − applied → ordered ops, deletes first) and the pass engine.
//! - [`door`]: the `Door` trait, the vendor extension codec, OSDP-backed and simulated doors.
//! - [`osdp`]: sans-IO OSDP: packets, CRC, streaming decoder, control-panel session state machine.
//! - [`serial`]: the only user of tokio-serial.
//! - [`faces`]: image normalisation to a hardware profile's limits.
//! - [`config`]: the TOML contract, validated in two phases; firmware profiles.
//! - [`domain`], [`clock`]: shared vocabulary and the time boundary.
//! - [`agent`]: the daemon, the only place that spawns tasks.
//! - [`cli`]: one file per verb.
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
