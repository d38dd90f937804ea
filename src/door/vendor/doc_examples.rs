//! The hex examples of `firmware-config/PROTOCOL.md`, generated from the codec so the document cannot drift.
