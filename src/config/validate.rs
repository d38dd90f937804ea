//! Phase two: [`RawConfig`] → [`Config`], checking every rule of the contract and collecting every
//! problem. The only defaults applied are the documented ones (see `firmware-config/README.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::Profile;

use super::error::{ConfigError, ConfigWarning, Problem};
use super::line::{LineConfig, RS485_VALUES, RawLine, Rs485Mode, parse_rs485};
use super::raw::{RawCloud, RawConfig, RawDoor, RawStore, RawSync};
use super::secret::{FileChecks, check_port, read_ca_file, read_scbk_file, read_secret_file};
use super::values::{HostPattern, OSDP_BAUD_RATES, check_door_name, parse_duration, parse_endpoint, parse_offset};
use super::{
    CloudConfig, Config, DEFAULT_ENDPOINT, DEFAULT_IMAGE_DOWNLOAD_MAX_BYTES, DoorConfig, ImageFormat, StoreConfig,
    SyncConfig, UserType, load_profile,
};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// Validates a raw config. `base_dir` resolves relative paths (and local profiles); `checks` says
/// whether missing files are errors. Returns every problem, in file order of sections, and the warnings
/// also when there are errors (so `check-config` shows both).
pub(super) fn validate_all(
    raw: RawConfig,
    base_dir: &Path,
    checks: FileChecks,
) -> (Option<Config>, Vec<ConfigError>, Vec<ConfigWarning>) {
    let mut v = Validator {
        base_dir,
        checks,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let cloud = match raw.cloud {
        Some(c) => v.cloud(c),
        None => v.missing_section(
            "cloud",
            "add a [cloud] section (endpoint, app_key, app_secret_file, device_iot_id)",
        ),
    };
    let store = match raw.store {
        Some(s) => v.store(s),
        None => v.missing_section("store", "add a [store] section with path = \"/var/lib/doorsync\""),
    };
    let sync = v.sync(raw.sync.unwrap_or_default());
    let doors = v.doors(raw.door.unwrap_or_default());
    let lines = v.lines(raw.line.unwrap_or_default(), doors.as_deref().unwrap_or_default());

    let config = match (cloud, store, sync, doors, lines) {
        (Some(cloud), Some(store), Some(sync), Some(doors), Some(lines)) if v.errors.is_empty() => Some(Config {
            base_dir: base_dir.to_path_buf(),
            cloud,
            store,
            sync,
            doors,
            lines,
        }),
        _ => None,
    };
    (config, v.errors, v.warnings)
}

struct Validator<'a> {
    base_dir: &'a Path,
    checks: FileChecks,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl Validator<'_> {
    fn err(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::invalid(key, message));
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings
            .push(ConfigWarning::new(key, Problem::Invalid(message.into())));
    }

    fn missing_section<T>(&mut self, key: &str, hint: &str) -> Option<T> {
        self.errors
            .push(ConfigError::new(key, Problem::Missing { hint: hint.into() }));
        None
    }

    fn required<T>(&mut self, v: Option<T>, key: &str, hint: &str) -> Option<T> {
        if v.is_none() {
            self.errors
                .push(ConfigError::new(key, Problem::Missing { hint: hint.into() }));
        }
        v
    }

    /// A problem with a referenced file: a missing file is only a warning with `WarnOnly`.
    fn file_problem(&mut self, key: &str, e: ConfigError) {
        let e = e.at(key);
        if self.checks == FileChecks::WarnOnly && matches!(e.problem, Problem::FileMissing { .. }) {
            self.warnings.push(e.into());
        } else {
            self.errors.push(e);
        }
    }

    /// A required path key, resolved against the config dir (`join` keeps an absolute path as is).
    fn path(&mut self, v: Option<PathBuf>, key: &str, hint: &str) -> Option<PathBuf> {
        let p = self.required(v, key, hint)?;
        self.resolve_non_empty(p, key)
    }

    fn resolve_non_empty(&mut self, p: PathBuf, key: &str) -> Option<PathBuf> {
        if p.as_os_str().is_empty() {
            self.err(key, "must not be empty");
            return None;
        }
        Some(self.base_dir.join(p))
    }

    fn duration(
        &mut self,
        v: Option<&str>,
        key: &str,
        default: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        match parse_duration(v.unwrap_or(default), min, max) {
            Ok(d) => Some(d),
            Err(msg) => {
                self.err(key, msg);
                None
            }
        }
    }

    fn int_in(&mut self, v: i64, key: &str, min: i64, max: i64) -> Option<i64> {
        if (min..=max).contains(&v) {
            Some(v)
        } else {
            self.err(key, format!("{v} is not in {min}..={max}"));
            None
        }
    }

    fn non_empty(&mut self, v: Option<String>, key: &str, hint: &str) -> Option<String> {
        let s = self.required(v, key, hint)?;
        let t = s.trim();
        if t.is_empty() || t.contains(char::is_whitespace) {
            self.err(key, "must be non-empty and contain no spaces");
            return None;
        }
        Some(t.to_owned())
    }

    fn cloud(&mut self, c: RawCloud) -> Option<CloudConfig> {
        let allow_insecure_http = c.allow_insecure_http.unwrap_or(false);
        let endpoint = match parse_endpoint(c.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT), allow_insecure_http) {
            Ok(e) => {
                if e.to_ascii_lowercase().starts_with("http://") {
                    self.warn(
                        "cloud.endpoint",
                        "plain http: signed requests and faces travel unencrypted (allowed by allow_insecure_http)",
                    );
                } else if allow_insecure_http {
                    self.warn(
                        "cloud.allow_insecure_http",
                        "has no effect with an https endpoint; remove it",
                    );
                }
                Some(e)
            }
            Err(msg) => {
                self.err("cloud.endpoint", msg);
                None
            }
        };
        let app_key = self.non_empty(
            c.app_key,
            "cloud.app_key",
            "set it to the AppKey of the cloud application",
        );
        let device_iot_id = self.non_empty(
            c.device_iot_id,
            "cloud.device_iot_id",
            "set it to the iotId of the device whose permissions this gateway serves",
        );
        let app_secret_file = self.path(
            c.app_secret_file,
            "cloud.app_secret_file",
            "set it to a file (mode 0600) holding the AppSecret",
        );
        let app_secret = app_secret_file.as_deref().and_then(|p| {
            read_secret_file(p)
                .map_err(|e| self.file_problem("cloud.app_secret_file", e))
                .ok()
        });

        let user_type = match c.user_type.as_deref().map(str::trim) {
            None => Some(UserType::Identity),
            Some(s) => {
                let found = UserType::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(s));
                if found.is_none() {
                    self.err(
                        "cloud.user_type",
                        format!("{s:?} is not one of IDENTITY, OPEN, YUNDUN, PHONE"),
                    );
                }
                found
            }
        };
        let image_format = match c.image_format.as_deref().map(str::trim) {
            None => Some(ImageFormat::Url),
            Some(s) if s.eq_ignore_ascii_case("URL") => Some(ImageFormat::Url),
            Some(s) if s.eq_ignore_ascii_case("BASE64") => Some(ImageFormat::Base64),
            Some(s) => {
                self.err("cloud.image_format", format!("{s:?} is not one of URL, BASE64"));
                None
            }
        };
        let timezone = match parse_offset(c.timezone.as_deref().unwrap_or("+08:00")) {
            Ok(o) => Some(o),
            Err(msg) => {
                self.err("cloud.timezone", msg);
                None
            }
        };
        let poll_interval = self.duration(c.poll_interval.as_deref(), "cloud.poll_interval", "60s", SEC, DAY);
        if poll_interval.is_some_and(|d| d < Duration::from_secs(10)) {
            self.warn("cloud.poll_interval", "under 10s; the cloud may throttle the app key");
        }
        let request_timeout = self.duration(
            c.request_timeout.as_deref(),
            "cloud.request_timeout",
            "10s",
            Duration::from_millis(100),
            10 * MIN,
        );
        let max_concurrency = self
            .int_in(c.max_concurrency.unwrap_or(8), "cloud.max_concurrency", 1, 64)
            .and_then(|n| u32::try_from(n).ok());
        let ca_file = c.ca_file.and_then(|p| self.resolve_non_empty(p, "cloud.ca_file"));
        let ca_pem = ca_file
            .as_deref()
            .and_then(|p| read_ca_file(p).map_err(|e| self.file_problem("cloud.ca_file", e)).ok());

        let host_strings = c.image_hosts.unwrap_or_else(|| vec!["*.aliyuncs.com".to_owned()]);
        let mut image_hosts = Vec::with_capacity(host_strings.len());
        for (i, h) in host_strings.iter().enumerate() {
            let key = format!("cloud.image_hosts[{i}]");
            match HostPattern::parse(h) {
                Ok(p) => {
                    if p.wildcard_labels() == Some(1) {
                        self.warn(&key, format!("{p} allows every host under a top-level domain"));
                    }
                    image_hosts.push(p);
                }
                Err(msg) => self.err(&key, msg),
            }
        }
        if host_strings.is_empty() && image_format == Some(ImageFormat::Url) {
            self.err(
                "cloud.image_hosts",
                "is empty, so no face image could be downloaded with image_format = \"URL\"; list the image hosts",
            );
        }
        let image_download_max_bytes = self
            .int_in(
                c.image_download_max_bytes
                    .unwrap_or(i64::from(DEFAULT_IMAGE_DOWNLOAD_MAX_BYTES)),
                "cloud.image_download_max_bytes",
                1024,
                64 * 1024 * 1024,
            )
            .and_then(|n| u32::try_from(n).ok());

        Some(CloudConfig {
            endpoint: endpoint?,
            app_key: app_key?,
            app_secret_file: app_secret_file?,
            app_secret,
            device_iot_id: device_iot_id?,
            user_type: user_type?,
            image_format: image_format?,
            timezone: timezone?,
            poll_interval: poll_interval?,
            request_timeout: request_timeout?,
            max_concurrency: max_concurrency?,
            ca_file,
            ca_pem,
            image_hosts,
            allow_insecure_http,
            image_download_max_bytes: image_download_max_bytes?,
        })
    }

    fn store(&mut self, s: RawStore) -> Option<StoreConfig> {
        let path = self.path(
            s.path,
            "store.path",
            "set it to the database directory, e.g. \"/var/lib/doorsync\"",
        )?;
        if path.exists() && !path.is_dir() {
            self.err(
                "store.path",
                format!("{} exists and is not a directory", path.display()),
            );
            return None;
        }
        Some(StoreConfig { path })
    }

    fn sync(&mut self, s: RawSync) -> Option<SyncConfig> {
        let verify_interval = self.duration(s.verify_interval.as_deref(), "sync.verify_interval", "1h", MIN, 7 * DAY);
        // Every key is checked before giving up, so all problems are reported at once.
        let max_implicit_removals = s
            .max_implicit_removals
            .map(|v| self.int_in(v, "sync.max_implicit_removals", 0, 1_000_000));
        let removal_hold = self.duration(
            s.removal_hold.as_deref(),
            "sync.removal_hold",
            "10m",
            Duration::ZERO,
            7 * DAY,
        );
        Some(SyncConfig {
            verify_interval: verify_interval?,
            max_implicit_removals: match max_implicit_removals {
                Some(v) => Some(v?.unsigned_abs()),
                None => None,
            },
            removal_hold: removal_hold?,
        })
    }

    fn doors(&mut self, raw: Vec<RawDoor>) -> Option<Vec<DoorConfig>> {
        if raw.is_empty() {
            self.errors.push(ConfigError::new(
                "door",
                Problem::Missing {
                    hint: "at least one [[door]] is required".into(),
                },
            ));
            return None;
        }
        let mut seen = Seen::default();
        let mut doors = Vec::with_capacity(raw.len());
        let mut all_ok = true;
        for (i, d) in raw.into_iter().enumerate() {
            match self.door(i, d, &mut seen) {
                Some(door) => doors.push(door),
                None => all_ok = false,
            }
        }
        all_ok.then_some(doors)
    }

    fn door(&mut self, i: usize, d: RawDoor, seen: &mut Seen) -> Option<DoorConfig> {
        let k = |field: &str| format!("door[{i}].{field}");

        let name = self
            .required(d.name, &k("name"), "set it to a unique name such as \"lobby\"")
            .and_then(|n| match check_door_name(&n) {
                Ok(()) => Some(n),
                Err(msg) => {
                    self.err(&k("name"), msg);
                    None
                }
            });
        if let Some(n) = &name {
            if let Some((j, _)) = seen.names.iter().find(|(_, m)| m == n) {
                self.err(
                    &k("name"),
                    format!("{n:?} is already the name of door[{j}]; names must be unique"),
                );
            }
            seen.names.push((i, n.clone()));
        }

        let port = self.path(d.port, &k("port"), "set it to the serial device, e.g. \"/dev/ttyS1\"");
        if let Some(p) = &port
            && let Err(e) = check_port(p)
        {
            self.file_problem(&k("port"), e);
        }
        let baud = self
            .required(d.baud, &k("baud"), "set it to the PD's baud rate, e.g. 9600")
            .and_then(|b| {
                let ok = u32::try_from(b).ok().filter(|b| OSDP_BAUD_RATES.contains(b));
                if ok.is_none() {
                    let rates: Vec<String> = OSDP_BAUD_RATES.iter().map(ToString::to_string).collect();
                    self.err(
                        &k("baud"),
                        format!("{b} is not an OSDP baud rate ({})", rates.join(", ")),
                    );
                }
                ok
            });
        let osdp_address = self
            .required(
                d.osdp_address,
                &k("osdp_address"),
                "set it to the PD's OSDP address (0..=126)",
            )
            .and_then(|a| {
                let ok = u8::try_from(a).ok().filter(|a| *a <= 126);
                if ok.is_none() {
                    self.err(
                        &k("osdp_address"),
                        format!("{a} is not a PD address (0..=126; 127 is broadcast)"),
                    );
                }
                ok
            });
        if let Some(p) = &port {
            self.bus_rules(i, p, baud, osdp_address, seen);
        }

        let profile_spec = self.required(
            d.profile,
            &k("profile"),
            "set it to a profile name (\"generic-face-v1\") or a .toml path",
        );
        let profile = profile_spec
            .as_deref()
            .and_then(|spec| self.profile(spec, &k("profile")));
        let scbk_file = d.scbk_file.and_then(|p| self.resolve_non_empty(p, &k("scbk_file")));
        let scbk = scbk_file.as_deref().and_then(|p| {
            read_scbk_file(p)
                .map_err(|e| self.file_problem(&k("scbk_file"), e))
                .ok()
        });
        let reply_timeout = self.duration(
            d.reply_timeout.as_deref(),
            &k("reply_timeout"),
            "200ms",
            Duration::from_millis(10),
            5 * SEC,
        );

        Some(DoorConfig {
            name: name?,
            port: port?,
            baud: baud?,
            osdp_address: osdp_address?,
            profile_spec: profile_spec?,
            profile: profile?,
            scbk_file,
            scbk,
            reply_timeout: reply_timeout?,
        })
    }

    fn lines(&mut self, raw: Vec<RawLine>, doors: &[DoorConfig]) -> Option<Vec<LineConfig>> {
        let mut lines: Vec<LineConfig> = Vec::with_capacity(raw.len());
        let mut all_ok = true;
        for (i, l) in raw.into_iter().enumerate() {
            let k = |field: &str| format!("line[{i}].{field}");
            let port = self.path(l.port, &k("port"), "set it to the port of the doors it applies to");
            if let Some(p) = &port {
                if !doors.is_empty() && !doors.iter().any(|d| d.port == *p) {
                    self.err(
                        &k("port"),
                        format!(
                            "no [[door]] uses {}; a [[line]] sets up the port of its doors",
                            p.display()
                        ),
                    );
                }
                if let Some(j) = lines.iter().position(|other| other.port == *p) {
                    self.err(&k("port"), format!("line[{j}] already sets up {}", p.display()));
                }
            }
            let rts = match l.rs485.as_deref().map(parse_rs485) {
                None => Some(None),
                Some(Ok(rts)) => Some(rts),
                Some(Err(msg)) => {
                    self.err(&k("rs485"), msg);
                    None
                }
            };
            let before = self.duration(
                l.rs485_delay_before_send.as_deref(),
                &k("rs485_delay_before_send"),
                "0ms",
                Duration::ZERO,
                Duration::from_millis(100),
            );
            let after = self.duration(
                l.rs485_delay_after_send.as_deref(),
                &k("rs485_delay_after_send"),
                "0ms",
                Duration::ZERO,
                Duration::from_millis(100),
            );
            if rts == Some(None) && (l.rs485_delay_before_send.is_some() || l.rs485_delay_after_send.is_some()) {
                self.warn(
                    &k("rs485"),
                    format!("the RS-485 delays apply only with rs485 = {RS485_VALUES} other than \"off\""),
                );
            }
            match (port, rts, before, after) {
                (Some(port), Some(rts), Some(delay_before_send), Some(delay_after_send)) => lines.push(LineConfig {
                    port,
                    rs485: rts.map(|rts| Rs485Mode {
                        rts,
                        delay_before_send,
                        delay_after_send,
                    }),
                    discard_echo: l.discard_echo.unwrap_or(false),
                }),
                _ => all_ok = false,
            }
        }
        all_ok.then_some(lines)
    }

    /// RS-485 is multidrop: PDs on one port share its baud rate and need distinct addresses.
    fn bus_rules(&mut self, i: usize, port: &Path, baud: Option<u32>, address: Option<u8>, seen: &mut Seen) {
        for (j, other_port, other_baud, other_address) in &seen.buses {
            if other_port != port {
                continue;
            }
            if let (Some(a), Some(b)) = (address, other_address)
                && a == *b
            {
                self.err(
                    &format!("door[{i}].osdp_address"),
                    format!(
                        "{a} on {} is already used by door[{j}]; PDs sharing an RS-485 bus need distinct addresses",
                        port.display()
                    ),
                );
            }
            if let (Some(a), Some(b)) = (baud, other_baud)
                && a != *b
            {
                self.err(
                    &format!("door[{i}].baud"),
                    format!("{a} differs from door[{j}] ({b}) on the same port; one bus runs at one baud rate"),
                );
            }
        }
        seen.buses.push((i, port.to_path_buf(), baud, address));
    }

    /// Loads a door's profile; problems inside a profile file are shown with that file's name.
    fn profile(&mut self, spec: &str, key: &str) -> Option<Profile> {
        match load_profile(spec, self.base_dir) {
            Ok(p) => Some(p),
            Err(errs) => {
                for e in errs.errors {
                    let problem = if e.key.is_empty() {
                        e.problem
                    } else {
                        Problem::InFile {
                            file: errs.file.clone(),
                            error: Box::new(e),
                        }
                    };
                    self.errors.push(ConfigError::new(key, problem));
                }
                None
            }
        }
    }
}

/// Earlier doors, for the uniqueness rules: `(index, name)` and `(index, port, baud, address)`.
#[derive(Default)]
struct Seen {
    names: Vec<(usize, String)>,
    buses: Vec<(usize, PathBuf, Option<u32>, Option<u8>)>,
}
