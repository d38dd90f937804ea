//! The serial adapter: the only user of tokio-serial; drives an OSDP session over a port.

pub mod pty;
