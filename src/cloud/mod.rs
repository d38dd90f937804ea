//! The signed Alibaba IoT face-access client (the only user of reqwest) and the fake cloud server.

pub mod sign;
pub mod wire;
