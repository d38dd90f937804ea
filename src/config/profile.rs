//! Firmware profiles: TOML files describing a hardware model's limits, parsed into [`Profile`], and the
//! built-in copies of `firmware-config/profiles/*.toml` compiled into the binary.
//!
//! Resolution of a door's `profile = "…"`: a value containing `/` or ending in `.toml` is a path
//! (relative to the config file's directory); otherwise `<config dir>/profiles/<name>.toml` if it
//! exists, else the built-in profile of that name. A file that exists but is broken is an error, never
//! silently replaced by the built-in one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::{DEFAULT_MAX_FT_DELAY_MS, ImageLimits, OsdpLimits, Profile};

use super::error::{ConfigError, ConfigErrors, Problem};
use super::raw::parse_toml;
use super::values::parse_duration;

/// The profiles shipped in `firmware-config/profiles/`, embedded so a gateway needs only the binary
/// and its config.
const BUILTIN: &[(&str, &str)] = &[
    (
        "generic-face-v1",
        include_str!("../../firmware-config/profiles/generic-face-v1.toml"),
    ),
    (
        "libosdp-reference",
        include_str!("../../firmware-config/profiles/libosdp-reference.toml"),
    ),
];

/// OSDP bytes around the vendor data of an osdp_MFG with secure channel: SOM, ADDR, LEN(2), CTRL,
/// SCB(3), command, vendor code(3), MAC(4), CRC(2).
pub const MFG_PACKET_OVERHEAD_BYTES: u16 = 18;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Option<String>,
    capacity_users: Option<i64>,
    vendor_code: Option<String>,
    image: Option<RawImage>,
    osdp: Option<RawOsdp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    format: Option<String>,
    max_width_px: Option<i64>,
    max_height_px: Option<i64>,
    max_bytes: Option<i64>,
    jpeg_quality: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOsdp {
    max_packet_bytes: Option<i64>,
    max_mfg_data_bytes: Option<i64>,
    /// Optional, a duration (`"2s"`); FtDelay requests are obeyed up to it (PROTOCOL.md §8).
    max_ft_delay: Option<String>,
}

/// Names of the built-in profiles.
pub fn builtin_profile_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

/// A built-in profile by name. Every built-in parses (a test checks it), so `None` means no such name.
pub fn builtin_profile(name: &str) -> Option<Profile> {
    let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
    parse_profile(name, text, Path::new(name)).ok()
}

/// Resolves and loads a door's `profile` value (see the module doc for the order).
pub fn load_profile(spec: &str, base_dir: &Path) -> Result<Profile, ConfigErrors> {
    let spec_trimmed = spec.trim();
    if spec_trimmed.is_empty() {
        return Err(ConfigErrors::new(
            base_dir,
            vec![ConfigError::invalid("", "empty profile name")],
        ));
    }
    if spec_trimmed.contains('/') || spec_trimmed.ends_with(".toml") {
        let path = base_dir.join(spec_trimmed);
        return load_profile_file(&path);
    }
    let local = base_dir.join("profiles").join(format!("{spec_trimmed}.toml"));
    if local.exists() {
        return load_profile_file(&local);
    }
    builtin_profile(spec_trimmed).ok_or_else(|| {
        let names: Vec<_> = builtin_profile_names().collect();
        ConfigErrors::new(
            &local,
            vec![ConfigError::invalid(
                "",
                format!(
                    "no profile {spec_trimmed:?}: {} does not exist and no built-in profile has that name \
                     (built-in: {})",
                    local.display(),
                    names.join(", ")
                ),
            )],
        )
    })
}

/// Loads one profile file; its name is the file stem.
pub fn load_profile_file(path: &Path) -> Result<Profile, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let problem = if e.kind() == std::io::ErrorKind::NotFound {
            Problem::FileMissing {
                path: path.to_path_buf(),
            }
        } else {
            Problem::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        };
        ConfigErrors::new(path, vec![ConfigError::new("", problem)])
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_profile(&name, &text, path)
}

/// Parses and validates profile text; every problem at once. `file` only labels errors.
pub fn parse_profile(name: &str, text: &str, file: &Path) -> Result<Profile, ConfigErrors> {
    let fail = |errors| ConfigErrors::new(PathBuf::from(file), errors);
    let parsed = parse_toml::<RawProfile>(text, file).map_err(|e| fail(vec![e]))?;
    let mut errors = parsed.errors;
    let raw = parsed.raw;
    let mut out = ProfileBuilder {
        errors: Vec::new(),
        reported: errors.iter().map(|e| e.key.clone()).collect(),
    };

    let description = out.required(raw.description, "description", "a one-line description of the model");
    let capacity_users = out.range(raw.capacity_users, "capacity_users", 1, i64::from(u32::MAX));
    let vendor_code = out
        .required(
            raw.vendor_code,
            "vendor_code",
            "the OSDP vendor code (OUI), e.g. \"02:44:53\"",
        )
        .and_then(|v| match parse_vendor_code(&v) {
            Ok(c) => Some(c),
            Err(msg) => {
                out.push(ConfigError::invalid("vendor_code", msg));
                None
            }
        });

    let image = raw.image;
    if image.is_none() {
        out.missing("image", "add an [image] table");
    }
    let image = image.unwrap_or(RawImage {
        format: None,
        max_width_px: None,
        max_height_px: None,
        max_bytes: None,
        jpeg_quality: None,
    });
    if let Some(format) = &image.format
        && !format.eq_ignore_ascii_case("JPEG")
    {
        out.push(ConfigError::invalid(
            "image.format",
            format!("{format:?} is not supported; the only format is \"JPEG\""),
        ));
    }
    let max_width_px = out.range(image.max_width_px, "image.max_width_px", 16, 8192);
    let max_height_px = out.range(image.max_height_px, "image.max_height_px", 16, 8192);
    let max_bytes = out.range(image.max_bytes, "image.max_bytes", 1024, 16 * 1024 * 1024);
    let jpeg_quality = out.range(image.jpeg_quality, "image.jpeg_quality", 1, 100);

    let osdp = raw.osdp;
    if osdp.is_none() {
        out.missing("osdp", "add an [osdp] table");
    }
    let osdp = osdp.unwrap_or(RawOsdp {
        max_packet_bytes: None,
        max_mfg_data_bytes: None,
        max_ft_delay: None,
    });
    let max_ft_delay_ms = match osdp.max_ft_delay.as_deref() {
        None => Some(DEFAULT_MAX_FT_DELAY_MS),
        Some(text) => match parse_duration(text, Duration::ZERO, Duration::from_millis(u64::from(u16::MAX))) {
            Ok(d) => Some(u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            Err(e) => {
                out.push(ConfigError::invalid("osdp.max_ft_delay", e));
                None
            }
        },
    };
    let max_packet = out.range(osdp.max_packet_bytes, "osdp.max_packet_bytes", 64, i64::from(u16::MAX));
    let max_mfg = out.range(
        osdp.max_mfg_data_bytes,
        "osdp.max_mfg_data_bytes",
        16,
        i64::from(u16::MAX),
    );
    if let (Some(p), Some(m)) = (max_packet, max_mfg)
        && m + i64::from(MFG_PACKET_OVERHEAD_BYTES) > p
    {
        out.push(ConfigError::invalid(
            "osdp.max_mfg_data_bytes",
            format!(
                "{m} does not fit in a {p}-byte packet (an osdp_MFG needs {MFG_PACKET_OVERHEAD_BYTES} bytes \
                 around its vendor data); at most {}",
                p - i64::from(MFG_PACKET_OVERHEAD_BYTES)
            ),
        ));
    }

    errors.extend(out.errors);
    let (
        Some(description),
        Some(capacity_users),
        Some(vendor_code),
        Some(w),
        Some(h),
        Some(b),
        Some(q),
        Some(p),
        Some(m),
        Some(ft_delay_ms),
    ) = (
        description,
        capacity_users,
        vendor_code,
        max_width_px,
        max_height_px,
        max_bytes,
        jpeg_quality,
        max_packet,
        max_mfg,
        max_ft_delay_ms,
    )
    else {
        return Err(fail(errors));
    };
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    // Every value was range-checked above, so these conversions cannot fail; map to an error anyway.
    let conv = || fail(vec![ConfigError::invalid("", "internal: value out of range")]);
    Ok(Profile {
        name: name.to_owned(),
        description,
        image: ImageLimits {
            max_width_px: u32::try_from(w).map_err(|_| conv())?,
            max_height_px: u32::try_from(h).map_err(|_| conv())?,
            max_bytes: u32::try_from(b).map_err(|_| conv())?,
            jpeg_quality: u8::try_from(q).map_err(|_| conv())?,
        },
        osdp: OsdpLimits {
            max_packet_bytes: u16::try_from(p).map_err(|_| conv())?,
            max_mfg_data_bytes: u16::try_from(m).map_err(|_| conv())?,
            max_ft_delay_ms: ft_delay_ms,
        },
        capacity_users: u32::try_from(capacity_users).map_err(|_| conv())?,
        vendor_code,
    })
}

/// `"02:44:53"`, `"02-44-53"`, `"024453"` or `"0x024453"` → bytes in wire order.
pub fn parse_vendor_code(s: &str) -> Result<[u8; 3], String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = t.chars().filter(|c| *c != ':' && *c != '-').collect();
    let mut code = [0u8; 3];
    if digits.len() != 6 || hex::decode_to_slice(&digits, &mut code).is_err() {
        return Err(format!(
            "{s:?} is not a vendor code; write three hex bytes like \"02:44:53\" or \"024453\""
        ));
    }
    Ok(code)
}

struct ProfileBuilder {
    errors: Vec<ConfigError>,
    /// Keys the parser already reported (and removed); not reported again as missing.
    reported: Vec<String>,
}

impl ProfileBuilder {
    fn push(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    fn missing(&mut self, key: &str, hint: &str) {
        if !self.reported.iter().any(|r| r == key) {
            self.push(ConfigError::new(key, Problem::Missing { hint: hint.into() }));
        }
    }

    fn required<T>(&mut self, v: Option<T>, key: &str, hint: &str) -> Option<T> {
        if v.is_none() {
            self.missing(key, &format!("set it to {hint}"));
        }
        v
    }

    fn range(&mut self, v: Option<i64>, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.required(v, key, &format!("an integer in {min}..={max}"))?;
        if (min..=max).contains(&v) {
            Some(v)
        } else {
            self.push(ConfigError::invalid(key, format!("{v} is not in {min}..={max}")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "test"
capacity_users = 100
vendor_code = "0A:0B:0C"
[image]
format = "JPEG"
max_width_px = 480
max_height_px = 640
max_bytes = 40960
jpeg_quality = 85
[osdp]
max_packet_bytes = 1024
max_mfg_data_bytes = 64
"#;

    #[test]
    fn every_builtin_profile_parses() {
        for name in builtin_profile_names() {
            let p = builtin_profile(name).unwrap_or_else(|| panic!("built-in {name} does not parse"));
            assert_eq!(p.name, name);
        }
        assert!(builtin_profile("no-such").is_none());
    }

    #[test]
    fn generic_face_v1_has_the_documented_limits() {
        let p = builtin_profile("generic-face-v1").unwrap();
        assert_eq!(
            (
                p.image.max_width_px,
                p.image.max_height_px,
                p.image.max_bytes,
                p.image.jpeg_quality
            ),
            (480, 640, 40960, 85)
        );
        assert_eq!((p.osdp.max_packet_bytes, p.osdp.max_mfg_data_bytes), (1024, 64));
        assert_eq!(p.capacity_users, 10_000);
        let r = builtin_profile("libosdp-reference").unwrap();
        assert_eq!(r.osdp.max_packet_bytes, 256);
        assert_eq!(r.image, p.image);
    }

    #[test]
    fn max_ft_delay_defaults_to_2s_and_is_range_checked() {
        let p = parse_profile("t", GOOD, Path::new("t.toml")).unwrap();
        assert_eq!(p.osdp.max_ft_delay_ms, 2_000);
        let text = format!("{GOOD}max_ft_delay = \"500ms\"\n");
        assert_eq!(
            parse_profile("t", &text, Path::new("t.toml"))
                .unwrap()
                .osdp
                .max_ft_delay_ms,
            500
        );
        let text = format!("{GOOD}max_ft_delay = \"2min\"\n");
        let err = parse_profile("t", &text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("osdp.max_ft_delay"), "{err}");
    }

    #[test]
    fn profile_parses_vendor_code_in_wire_order() {
        let p = parse_profile("t", GOOD, Path::new("t.toml")).unwrap();
        assert_eq!(p.vendor_code, [0x0a, 0x0b, 0x0c]);
        for ok in ["0a0b0c", "0x0A0B0C", "0a-0b-0c"] {
            assert_eq!(parse_vendor_code(ok).unwrap(), [0x0a, 0x0b, 0x0c], "{ok}");
        }
        for bad in ["0a0b", "0a:0b:0c:0d", "zz:00:00", ""] {
            assert!(parse_vendor_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profile_reports_every_problem_with_its_key() {
        let text = GOOD
            .replace("jpeg_quality = 85", "jpeg_quality = 0\nsharpness = 3")
            .replace("max_mfg_data_bytes = 64", "max_mfg_data_bytes = 1020")
            .replace("capacity_users = 100\n", "");
        let e = parse_profile("t", &text, Path::new("t.toml")).unwrap_err();
        let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
        for k in [
            "image.sharpness",
            "image.jpeg_quality",
            "osdp.max_mfg_data_bytes",
            "capacity_users",
        ] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
    }

    #[test]
    fn profile_spec_resolves_path_then_local_dir_then_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("profiles")).unwrap();
        let local = GOOD.replace("capacity_users = 100", "capacity_users = 7");
        std::fs::write(dir.path().join("profiles/generic-face-v1.toml"), &local).unwrap();
        std::fs::write(dir.path().join("mine.toml"), GOOD).unwrap();

        // A local file shadows the built-in of the same name.
        assert_eq!(load_profile("generic-face-v1", dir.path()).unwrap().capacity_users, 7);
        // A value ending in .toml is a path relative to the config dir.
        let p = load_profile("mine.toml", dir.path()).unwrap();
        assert_eq!((p.name.as_str(), p.capacity_users), ("mine", 100));
        assert_eq!(load_profile("./mine.toml", dir.path()).unwrap().capacity_users, 100);
        // Not local: the built-in copy.
        assert_eq!(
            load_profile("libosdp-reference", dir.path())
                .unwrap()
                .osdp
                .max_packet_bytes,
            256
        );
        // Nowhere.
        let e = load_profile("nope", dir.path()).unwrap_err().to_string();
        assert!(e.contains("generic-face-v1, libosdp-reference"), "{e}");
        assert!(load_profile("missing.toml", dir.path()).is_err());
    }

    #[test]
    fn broken_local_profile_is_an_error_not_the_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("profiles")).unwrap();
        std::fs::write(dir.path().join("profiles/generic-face-v1.toml"), "description = 3").unwrap();
        assert!(load_profile("generic-face-v1", dir.path()).is_err());
    }
}
