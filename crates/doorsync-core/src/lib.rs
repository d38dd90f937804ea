//! doorsync's pure core: the shared vocabulary and the planner, with no I/O.
//!
//! Everything here is a function of its inputs (`now` included): no store, no cloud, no door, no
//! runtime. The crate's dependency list (jiff, serde, thiserror, hex, sha2, zeroize) is what enforces it; the main crate
//! re-exports both modules as `doorsync::domain` and `doorsync::sync::plan`.
//!
//! - [`domain`]: users, door ids and records, profiles, applied state, secrets.
//! - [`held`]: the planner's compact view of what a door may hold (digests of keys and records).
//! - [`plan`]: the desired state of a door and the ordered ops (deletes, then upserts, then faces)
//!   that take its applied state there.

pub mod domain;
pub mod held;
pub mod plan;
