//! What this binary is: version, git commit, target triple and built-in features, for
//! `doorsync --version` and the `build` object of `status --json`.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Whether this build speaks OSDP Secure Channel (AES-128, `osdp::sc`): it does.
pub const SECURE_CHANNEL: bool = true;

/// This binary's build (the values come from build.rs; "unknown" when built without git).
pub const BUILD_INFO: BuildInfo = BuildInfo {
    version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
    git_commit: Cow::Borrowed(env!("DOORSYNC_GIT_COMMIT")),
    target: Cow::Borrowed(env!("DOORSYNC_TARGET")),
    secure_channel: SECURE_CHANNEL,
};

/// A build description (stable JSON field names; see README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub version: Cow<'static, str>,
    /// Abbreviated commit hash, or "unknown".
    pub git_commit: Cow<'static, str>,
    /// Rust target triple, e.g. "armv7-unknown-linux-gnueabihf".
    pub target: Cow<'static, str>,
    /// OSDP Secure Channel built in.
    pub secure_channel: bool,
}

impl std::fmt::Display for BuildInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.version)?;
        writeln!(f, "commit: {}", self.git_commit)?;
        writeln!(f, "target: {}", self.target)?;
        write!(
            f,
            "osdp secure channel: {}",
            if self.secure_channel {
                "built in"
            } else {
                "not built in"
            }
        )
    }
}

/// `doorsync --version` text (clap prints "doorsync " before it).
pub(crate) fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| BUILD_INFO.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_version_commit_target_and_secure_channel() {
        let text = long_version();
        assert!(text.starts_with(env!("CARGO_PKG_VERSION")), "{text}");
        assert!(text.contains("commit: "), "{text}");
        assert!(text.contains(&format!("target: {}", BUILD_INFO.target)), "{text}");
        assert!(text.contains("osdp secure channel: "), "{text}");
        assert!(!BUILD_INFO.target.is_empty() && !BUILD_INFO.git_commit.is_empty());
    }

    #[test]
    fn build_info_round_trips_through_json() {
        let json = serde_json::to_value(&BUILD_INFO).unwrap();
        assert_eq!(json["secure_channel"], SECURE_CHANNEL);
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        let back: BuildInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, BUILD_INFO);
    }
}
