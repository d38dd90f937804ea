//! doorsync keeps face-recognition door hardware holding exactly the people who may pass.
//!
//! # Layout
//!
//! Data flows from the cloud down to the doors; imports point down this chain and never up (a module
//! may skip tiers): `cli → agent → sync → {door, cloud} → {serial, store, config, faces} → {osdp,
//! clock, retry} → core`. The core — [`domain`] and the planner [`sync::plan`] — is the workspace crate
//! `crates/doorsync-core`, re-exported here; it depends on no module of this crate and on no I/O crate,
//! which the compiler and `scripts/check-layering` (CI) enforce. `docs/ARCHITECTURE.md` §4 lists what
//! each module imports; §3 lists the invariants ("invariant N" in comments) and the tests that prove them.
//!
//! - [`cli`]: one file per verb.
//! - [`agent`]: the daemon, the only place that spawns tasks.
//! - [`sync`]: the application layer around the pure planner: desired state from the store, pull,
//!   apply, verify and the pass engine, which drive the store, the cloud client and the doors.
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
//! - [`clock`]: the time boundary; [`retry`]: the one retry policy (capped exponential backoff, one
//!   jitter rule), sans-IO.
//! - [`domain`] (core): the shared vocabulary; [`sync::plan`] (core): desired − applied → ordered ops,
//!   deletes first.
//! - [`build_info`], [`systemd`]: what this binary is; the service manager's notify protocol.
//! - `testkit` (`sim` feature): shared builders for tests and benches.

// The API docs are for maintainers and built with `--document-private-items` (CI), so module maps may
// link to crate-private items: everything not needed by the binary, tests or benches is `pub(crate)`.
#![allow(rustdoc::private_intra_doc_links)]

pub mod agent;
pub mod build_info;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub use doorsync_core::domain;
pub mod door;
pub mod faces;
pub mod osdp;
pub(crate) mod retry;
pub mod serial;
pub mod store;
pub mod sync;
pub(crate) mod systemd;
#[cfg(any(test, feature = "sim"))]
pub mod testkit;

pub use build_info::BUILD_INFO;
