//! The configuration contract: raw TOML (unknown keys rejected) validated into typed config; firmware profiles.
//!
//! Two phases, in the manner of ripgrep's low/high args:
//! 1. [`raw`]: TOML → [`RawConfig`] (serde, `deny_unknown_fields`, every field optional). Unknown keys
//!    and wrong types are all collected, each at its key path and line.
//! 2. `validate::validate_all`: [`RawConfig`] → [`Config`] + warnings, or every problem at once. Defaults are only
//!    the ones documented in `firmware-config/README.md` (and listed on each field below).
//!
//! Relative paths in the config are relative to the config file's directory. This module reads files
//! with `std` only; it opens no port and no socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::Offset;

use crate::domain::{Profile, Secret};

mod error;
mod line;
mod profile;
pub(crate) mod raw;
mod scbk;
mod secret;
mod validate;
mod values;

pub(crate) use error::{ConfigError, ConfigErrors, ConfigWarning, Problem};
#[cfg(test)]
pub(crate) use line::Rs485Mode;
pub(crate) use line::{LineConfig, Rs485Rts};
pub use profile::{
    MFG_PACKET_OVERHEAD_BYTES, builtin_profile, builtin_profile_names, load_profile, load_profile_file, parse_profile,
    parse_vendor_code,
};
pub(crate) use raw::RawConfig;
pub(crate) use scbk::read_scbk;
#[cfg(any(test, feature = "sim"))]
pub(crate) use scbk::write_scbk_file;
pub use secret::{FileChecks, read_ca_file, read_scbk_file, read_secret_file};
pub(crate) use values::{HostPattern, OSDP_BAUD_RATES};

/// Default of `cloud.endpoint`.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://api.link.aliyun.com";
/// Default of `cloud.image_download_max_bytes` (2 MiB).
pub(crate) const DEFAULT_IMAGE_DOWNLOAD_MAX_BYTES: u32 = 2 * 1024 * 1024;
/// Name of the daemon's control socket inside `store.path`.
pub(crate) const CONTROL_SOCKET_NAME: &str = "doorsync.sock";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory relative paths were resolved against (the config file's directory).
    pub base_dir: PathBuf,
    pub cloud: CloudConfig,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    /// At least one; names unique; `(port, osdp_address)` unique.
    pub doors: Vec<DoorConfig>,
    /// `[[line]]`: per-port settings; ports without one use [`LineConfig::default`].
    pub lines: Vec<LineConfig>,
}

/// `[cloud]`: the Alibaba IoT face-access API.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// `https://…` (or `http://…` with `allow_insecure_http`), no trailing `/`. Default [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    pub app_key: String,
    pub app_secret_file: PathBuf,
    /// Read and checked with [`FileChecks::Required`]; `None` with `WarnOnly` when the file is absent.
    pub app_secret: Option<Secret>,
    pub device_iot_id: String,
    /// Default `IDENTITY`.
    pub user_type: UserType,
    /// Default `URL`.
    pub image_format: ImageFormat,
    /// Offset of the cloud's `yyyy-MM-dd HH:mm:ss` times. Default `+08:00`.
    pub timezone: Offset,
    /// Default 60 s; 1 s..=1 day.
    pub poll_interval: Duration,
    /// Default 10 s; 100 ms..=10 min.
    pub request_timeout: Duration,
    /// Default 8; 1..=64.
    pub max_concurrency: u32,
    pub ca_file: Option<PathBuf>,
    /// PEM bytes of `ca_file`, read with [`FileChecks::Required`].
    pub ca_pem: Option<Vec<u8>>,
    /// Hosts image URLs may point to. Default `["*.aliyuncs.com"]`; never empty with `image_format = URL`.
    pub image_hosts: Vec<HostPattern>,
    /// Default false.
    pub allow_insecure_http: bool,
    /// Default [`DEFAULT_IMAGE_DOWNLOAD_MAX_BYTES`]; 1 KiB..=64 MiB.
    pub image_download_max_bytes: u32,
}

impl CloudConfig {
    /// Whether an image URL's host is allowed by `image_hosts`.
    #[cfg(test)]
    pub(crate) fn image_host_allowed(&self, host: &str) -> bool {
        self.image_hosts.iter().any(|p| p.matches(host))
    }
}

/// `userType` of face/paas calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserType {
    Identity,
    Open,
    Yundun,
    Phone,
}

impl UserType {
    pub(crate) const ALL: [UserType; 4] = [Self::Identity, Self::Open, Self::Yundun, Self::Phone];

    /// The cloud's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "IDENTITY",
            Self::Open => "OPEN",
            Self::Yundun => "YUNDUN",
            Self::Phone => "PHONE",
        }
    }
}

/// How the cloud returns face images (also the wire value of `imageFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ImageFormat {
    Url,
    Base64,
}

impl ImageFormat {}

/// `[store]`: the local database.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the sled database; the control socket lives here too. Required.
    pub path: PathBuf,
}

/// `[sync]`: the sync engine's timing.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// How often doors are read back and compared with the store. Default 1 h; 1 min..=7 days.
    pub verify_interval: Duration,
    /// More implicit removals than this in one pull are held; unset: the larger of 10 and 25% of the
    /// roster (README, "Roster integrity"). 0..=1 000 000.
    pub max_implicit_removals: Option<u64>,
    /// How long pulls must agree before held removals apply. Default 10 min; 0 s..=7 days.
    pub removal_hold: Duration,
}

/// One `[[door]]`: an OSDP PD on a serial line.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// 1–64 of `[A-Za-z0-9_-]`, unique.
    pub name: String,
    /// Serial device (or pty symlink), resolved against the config dir.
    pub port: PathBuf,
    /// One of [`OSDP_BAUD_RATES`]; the same for every door on one port.
    pub baud: u32,
    /// 0..=126 (127 is OSDP broadcast).
    pub osdp_address: u8,
    /// The `profile` value as written.
    pub profile_spec: String,
    /// The resolved, validated profile.
    pub profile: Profile,
    pub scbk_file: Option<PathBuf>,
    /// The 16-byte secure channel base key, read with [`FileChecks::Required`].
    pub scbk: Option<Secret>,
    /// How long to wait for a PD reply. Default 200 ms; 10 ms..=5 s.
    pub reply_timeout: Duration,
}

impl Config {
    /// Reads, parses and validates the file at `path`; every problem at once, naming the file.
    pub fn load(path: &Path, checks: FileChecks) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::new(
                path,
                vec![ConfigError::new(
                    "",
                    Problem::Io {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    },
                )],
            )
        })?;
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::from_toml_str(&text, path, &base_dir, checks)
    }

    /// Parses and validates config text. `file` labels errors; `base_dir` resolves relative paths.
    pub(crate) fn from_toml_str(
        text: &str,
        file: &Path,
        base_dir: &Path,
        checks: FileChecks,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigErrors> {
        let fail = |errors| ConfigErrors::new(file, errors);
        let parsed = raw::parse_toml::<RawConfig>(text, file).map_err(|e| fail(vec![e]))?;
        let mut errors = parsed.errors;
        let reported: Vec<String> = errors.iter().map(|e| e.key.clone()).collect();
        let (config, more, mut warnings) = validate::validate_all(parsed.raw, base_dir, checks);
        let line_of = |key: &str| parsed.lines.get(key).copied();
        // A key removed by the parser would otherwise be reported again as "missing".
        errors.extend(more.into_iter().filter(|e| !reported.iter().any(|r| covers(r, &e.key))));
        for e in &mut errors {
            e.line = e.line.or_else(|| line_of(&e.key));
        }
        for w in &mut warnings {
            w.line = w.line.or_else(|| line_of(&w.key));
        }
        match config {
            Some(config) if errors.is_empty() => Ok((config, warnings)),
            _ => {
                let mut e = fail(errors);
                e.warnings = warnings;
                Err(e)
            }
        }
    }

    /// The daemon's control socket: `<store.path>/doorsync.sock`, beside the database it guards.
    pub fn control_socket_path(&self) -> PathBuf {
        self.store.path.join(CONTROL_SOCKET_NAME)
    }

    /// The door of that name.
    pub(crate) fn door(&self, name: &str) -> Option<&DoorConfig> {
        self.doors.iter().find(|d| d.name == name)
    }

    /// The settings of the line at `port` (the defaults when it has no `[[line]]`).
    #[cfg(test)]
    pub(crate) fn line(&self, port: &Path) -> LineConfig {
        LineConfig::of_port(&self.lines, port)
    }
}

/// Whether an error at `reported` (already shown) makes one at `key` redundant.
fn covers(reported: &str, key: &str) -> bool {
    key == reported
        || key
            .strip_prefix(reported)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests;
