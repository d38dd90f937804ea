//! Synchronisation, the application layer: the pure planner's inputs from the store, its ops through
//! the doors, and the pass engine.
//!
//! - [`plan`]: pure decision logic, `now` passed in: which users a door should hold and the ordered ops
//!   (deletes, then upserts, then faces) that take its applied state there. It lives in the core crate
//!   (`crates/doorsync-core`), which cannot import the store, the cloud or the doors; re-exported here.
//! - [`capacity`]: how many users a door may hold, from its profile and what its INFO reports.
//! - [`apply`]: runs one door's plan through the `Door` trait, recording each acknowledged op.
//! - [`desired`]: the stored users as one door profile sees them, the planner's input.
//! - [`delete`]: the one delete-then-record path (apply, urgent removal and verify use it).
//! - [`pull`]: the roster and faces from the cloud into the store.
//! - [`tombstone`]: when a local revocation is lifted (only by evidence that postdates it).
//! - [`guard`]: the mass-removal guard that holds implicit removals of many users at once.
//! - [`verify`]: reading a door back and correcting the record of what it holds.
//! - [`engine`]: one pass (pull → apply → verify), urgent deletes, revocation and the cloud outbox.
//! - [`status`]: the report `doorsync status` prints.

pub(crate) mod apply;
pub(crate) mod capacity;
pub(crate) mod crash_hook;
pub(crate) mod delete;
pub(crate) mod desired;
pub(crate) mod door_faces;
pub mod engine;
pub(crate) mod explain;
pub mod guard;
pub(crate) use doorsync_core::plan;
pub mod pull;
pub mod status;
pub(crate) mod tombstone;
pub(crate) mod verify;

#[cfg(test)]
pub(crate) mod testutil;
