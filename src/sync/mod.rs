//! Synchronisation: the pure planner (desired − applied → ordered ops) and the pass engine.
//!
//! - [`plan`]: pure decision logic, `now` passed in: which users a door should hold and the ordered ops
//!   (deletes, then upserts, then faces) that take its applied state there.
//! - [`apply`]: runs one door's plan through the `Door` trait, recording each acknowledged op.

pub mod apply;
pub mod plan;
pub mod pull;
pub mod status;
pub mod verify;

#[cfg(test)]
mod testutil;
