//! The daemon: the only place that spawns tasks (pull loop, expiry timer, door workers, control socket).

pub mod control;
