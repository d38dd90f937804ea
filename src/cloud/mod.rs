//! The signed Alibaba IoT face-access client (the only user of reqwest) and the fake cloud server.

pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod face;
pub(crate) mod roster;
pub(crate) mod settings;
pub mod sign;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

pub use client::{CloudClient, ROSTER_MAX_PAGES, ROSTER_MAX_WALKS, ROSTER_PAGE_SIZE, install_crypto_provider};
pub use error::{CloudError, ErrorClass};
pub use face::{CloudFace, FaceCloud, ImageSource, RosterEntry};
pub use settings::{CloudSettings, RetryPolicy};

/// A fresh request id or `X-Ca-Nonce`: 128 bits from the operating-system-seeded CSPRNG as 32 hex
/// digits (the shape of docs/cloud-api.md test vector A's nonce).
pub(crate) fn fresh_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
