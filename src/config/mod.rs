//! The configuration contract: raw TOML (unknown keys rejected) validated into typed config; firmware profiles.
