//! The one integration-test binary: real parts (127.0.0.1 HTTP, sled in temp dirs, pseudo-terminals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bus;
mod cli_demo;
mod cli_explain;
mod cli_status;
mod cli_sync;
mod clock;
mod cloud;
mod config;
mod crash;
mod daemon;
mod door_probe_hostile;
mod faces;
mod harness;
mod interop;
mod osdp;
mod osdp_door;
mod processes;
mod pull;
mod revocation;
mod roster;
mod secure_cli;
mod service;
mod sim_door;
