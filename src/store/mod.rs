//! The local database: the only user of sled. Users, faces by content hash, per-door applied state, outbox, meta.
