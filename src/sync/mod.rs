//! Synchronisation: the pure planner (desired − applied → ordered ops) and the pass engine.
//!
//! - [`plan`]: pure decision logic, `now` passed in: which users a door should hold and the ordered ops
//!   (deletes, then upserts, then faces) that take its applied state there.
//! - [`capacity`]: how many users a door may hold, from its profile and what its INFO reports.
//! - [`apply`]: runs one door's plan through the `Door` trait, recording each acknowledged op.
//! - [`pull`]: the roster and faces from the cloud into the store.
//! - [`tombstone`]: when a local revocation is lifted (only by evidence that postdates it).
//! - [`guard`]: the mass-removal guard that holds implicit removals of many users at once.
//! - [`verify`]: reading a door back and correcting the record of what it holds.
//! - [`engine`]: one pass (pull → apply → verify), urgent deletes, revocation and the cloud outbox.
//! - [`status`]: the report `doorsync status` prints.

pub mod apply;
pub mod capacity;
pub mod crash_hook;
pub mod door_faces;
pub mod engine;
pub mod explain;
pub mod guard;
pub mod plan;
pub mod pull;
pub mod status;
pub mod tombstone;
pub mod verify;

#[cfg(test)]
pub(crate) mod testutil;
