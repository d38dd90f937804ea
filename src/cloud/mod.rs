//! The signed Alibaba IoT face-access client (the only user of reqwest) and the fake cloud server.

pub mod client;
pub mod error;
pub mod face;
pub mod settings;
pub mod sign;
pub mod sim;
pub mod wire;

use std::path::Path;

pub use client::{CloudClient, ROSTER_MAX_PAGES, ROSTER_PAGE_SIZE, install_crypto_provider};
pub use error::{CloudError, ErrorClass};
#[cfg(test)]
pub use face::MockFaceCloud;
pub use face::{CloudFace, FaceCloud, ImageSource, RosterEntry};
pub use settings::{CloudSettings, RetryPolicy};

use crate::domain::Secret;

/// Reads an app secret file: surrounding whitespace (a trailing newline from `echo`) is not part of it.
pub fn read_secret_file(path: &Path) -> Result<Secret, CloudError> {
    let raw = std::fs::read(path)
        .map_err(|e| CloudError::Config(format!("cannot read secret file {}: {e}", path.display())))?;
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() {
        return Err(CloudError::Config(format!("secret file {} is empty", path.display())));
    }
    Ok(Secret::new(trimmed.to_vec()))
}
