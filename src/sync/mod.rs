//! Synchronisation: the pure planner (desired − applied → ordered ops) and the pass engine.
//!
//! - [`plan`]: pure decision logic, `now` passed in: which users a door should hold and the ordered ops
//!   (deletes, then upserts, then faces) that take its applied state there.
//! - [`apply`]: runs one door's plan through the `Door` trait, recording each acknowledged op.
//! - [`pull`]: the roster and faces from the cloud into the store.
//! - [`verify`]: reading a door back and correcting the record of what it holds.
//! - [`engine`]: one pass (pull → apply → verify), urgent deletes, revocation and the cloud outbox.
//! - [`status`]: the report `doorsync status` prints.

pub mod apply;
pub mod engine;
pub mod plan;
pub mod pull;
pub mod status;
pub mod verify;

#[cfg(test)]
pub(crate) mod testutil;
