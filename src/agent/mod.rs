//! The daemon: the only place that spawns tasks (pull loop, expiry timer, door workers, cloud
//! outbox, control socket) and the owner of shutdown.
//!
//! - [`run`] with a [`Daemon`]: the whole daemon as one future, usable in-process (tests, demo,
//!   benchmarks) with injected doors, cloud and clock.
//! - [`doors`]: the door-factory seam and the per-door worker.
//! - [`control`]: the owner-only Unix socket CLI commands use while the daemon holds the store.

pub mod clock;
pub mod control;
mod daemon;
pub(crate) mod doors;
mod events;
mod expiry;
mod handler;
mod outbox;
mod poll;
pub(crate) mod shutdown;
mod standalone;
pub(crate) mod trusted_clock;

pub use daemon::{AgentError, Daemon, DaemonConfig, open_store, run, urgent_delete_wait};
pub use doors::{DaemonDoor, DoorFactory, DoorOpenError, UnopenedDoor};
pub use events::DaemonEvent;
pub(crate) use standalone::Standalone;
pub(crate) use trusted_clock::TrustedClock;
