//! The door boundary: the `Door` trait, the vendor extension codec, and OSDP-backed and simulated doors.
