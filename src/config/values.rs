//! Parsers for the value types of the configuration: endpoints, host patterns, offsets, durations.
//! Each returns a message (without the key; the caller adds it) that states the rule.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use jiff::tz::Offset;
use serde::{Deserialize, Serialize};

use crate::clock::duration_text;

/// Baud rates OSDP defines.
pub(crate) const OSDP_BAUD_RATES: [u32; 6] = [9600, 19200, 38400, 57600, 115200, 230400];

/// A host image URLs may point to: `exact.host.name`, an IP literal, or `*.suffix` (any host strictly
/// below `suffix`, not `suffix` itself). Compared without case; the port is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPattern {
    Exact(String),
    /// The suffix without the `*.`, lower case.
    Subdomains(String),
}

impl HostPattern {
    /// Parses a pattern; the message explains the accepted forms.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if let Some(suffix) = t.strip_prefix("*.") {
            if suffix.parse::<IpAddr>().is_err() && is_hostname(suffix) {
                return Ok(Self::Subdomains(suffix.to_owned()));
            }
        } else if t.parse::<IpAddr>().is_ok() || is_hostname(&t) {
            return Ok(Self::Exact(t));
        }
        Err(format!(
            "{s:?} is not a host pattern; write a host name (\"oss.example.com\"), an IP address, or \
             \"*.example.com\" for any host below example.com (no scheme, port, path or other wildcard)"
        ))
    }

    /// Whether `host` (from a URL; IPv6 may be in brackets) is allowed by this pattern.
    pub(crate) fn matches(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
        let host = host.to_ascii_lowercase();
        match self {
            Self::Exact(h) => {
                host == *h || matches!((host.parse::<IpAddr>(), h.parse::<IpAddr>()), (Ok(a), Ok(b)) if a == b)
            }
            Self::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        }
    }

    /// Number of labels in the suffix of a wildcard (`*.com` → 1), for the "too broad" warning.
    pub(crate) fn wildcard_labels(&self) -> Option<usize> {
        match self {
            Self::Exact(_) => None,
            Self::Subdomains(s) => Some(s.split('.').count()),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Subdomains(s) => write!(f, "*.{s}"),
        }
    }
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks an endpoint URL: `https://host[:port][/path]` (or `http://` when `allow_http`). Returns it
/// without a trailing `/`.
pub(crate) fn parse_endpoint(s: &str, allow_http: bool) -> Result<String, String> {
    let t = s.trim();
    let (scheme, rest) = t
        .split_once("://")
        .ok_or_else(|| format!("{s:?} is not a URL; write e.g. \"https://api.link.aliyun.com\""))?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(format!(
                "{s:?} uses plain http, which would send signed requests and faces unencrypted; use https:// \
                 (or set cloud.allow_insecure_http = true for a test server)"
            ));
        }
        other => return Err(format!("{s:?}: scheme {other:?} is not supported; use https://")),
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if rest.contains(['?', '#']) {
        return Err(format!("{s:?}: an endpoint has no query or fragment"));
    }
    if authority.contains('@') {
        return Err(format!("{s:?}: credentials do not belong in the endpoint"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| format!("{s:?}: unclosed [ in host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.parse::<IpAddr>().is_err() && !is_hostname(host) {
        return Err(format!("{s:?}: {host:?} is not a valid host"));
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("{s:?}: {p:?} is not a port number"));
    }
    Ok(t.trim_end_matches('/').to_owned())
}

/// `"+08:00"`, `"-05:30"`, `"+0800"`, `"Z"` → a fixed UTC offset.
pub(crate) fn parse_offset(s: &str) -> Result<Offset, String> {
    let bad = || format!("{s:?} is not a UTC offset; write e.g. \"+08:00\" or \"-05:30\"");
    let t = s.trim();
    if t.eq_ignore_ascii_case("Z") || t.eq_ignore_ascii_case("UTC") {
        return Ok(Offset::UTC);
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, t.get(1..).unwrap_or_default()),
        Some(b'-') => (-1, t.get(1..).unwrap_or_default()),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let hours: i32 = digits.get(..2).and_then(|h| h.parse().ok()).ok_or_else(bad)?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())
        .ok_or_else(bad)?;
    if hours > 14 || minutes > 59 {
        return Err(format!("{s:?} is outside -14:00..=+14:00"));
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).map_err(|_| bad())
}

/// A duration as people write it (`"60s"`, `"1h 30m"`, `"200ms"`; [`crate::clock::duration_text`])
/// within `[min, max]`.
pub(crate) fn parse_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = duration_text::parse(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. \"60s\", \"500ms\" or \"1h\""))?;
    if d < min || d > max {
        return Err(format!(
            "{s:?} is outside {}..={}",
            duration_text::format(min),
            duration_text::format(max)
        ));
    }
    Ok(d)
}

/// A door name: 1–64 of `[A-Za-z0-9_-]` (it appears in store keys, logs and `--door NAME`).
pub(crate) fn check_door_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(format!(
            "{s:?} is not a door name; use 1-64 characters from A-Z a-z 0-9 _ -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_accept_names_ips_and_leading_wildcards() {
        assert_eq!(
            HostPattern::parse("*.Aliyuncs.com").unwrap(),
            HostPattern::Subdomains("aliyuncs.com".into())
        );
        assert_eq!(
            HostPattern::parse("127.0.0.1").unwrap(),
            HostPattern::Exact("127.0.0.1".into())
        );
        assert!(HostPattern::parse("::1").is_ok());
        for bad in [
            "*",
            "*.",
            "a.*.com",
            "https://x.com",
            "x.com:443",
            "x.com/a",
            "-a.com",
            "",
            "*.1.2.3.4",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = HostPattern::parse("*.aliyuncs.com").unwrap();
        assert!(p.matches("oss-cn-shanghai.aliyuncs.com"));
        assert!(p.matches("a.b.ALIYUNCS.com"));
        assert!(!p.matches("aliyuncs.com"));
        assert!(!p.matches("evilaliyuncs.com"));
        assert!(!p.matches("aliyuncs.com.evil.net"));
        let e = HostPattern::parse("::1").unwrap();
        assert!(e.matches("[::1]") && e.matches("0:0::1"));
    }

    #[test]
    fn endpoint_requires_https_unless_allowed() {
        assert_eq!(
            parse_endpoint("https://api.link.aliyun.com/", false).unwrap(),
            "https://api.link.aliyun.com"
        );
        assert!(
            parse_endpoint("http://127.0.0.1:8080", false)
                .unwrap_err()
                .contains("plain http")
        );
        assert!(parse_endpoint("http://127.0.0.1:8080", true).is_ok());
        assert!(parse_endpoint("https://[::1]:8443/api", false).is_ok());
        for bad in [
            "api.link.aliyun.com",
            "ftp://x",
            "https://",
            "https://a b",
            "https://x:0",
            "https://x?a=1",
        ] {
            assert!(parse_endpoint(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_parse_to_seconds() {
        assert_eq!(parse_offset("+08:00").unwrap().seconds(), 8 * 3600);
        assert_eq!(parse_offset("-05:30").unwrap().seconds(), -(5 * 3600 + 30 * 60));
        assert_eq!(parse_offset("+0800").unwrap().seconds(), 8 * 3600);
        assert_eq!(parse_offset("Z").unwrap().seconds(), 0);
        for bad in ["08:00", "+8", "+15:00", "+08:60", "Asia/Shanghai", "+08:00:00"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        let d = parse_duration("1m 30s", Duration::from_secs(1), Duration::from_secs(3600)).unwrap();
        assert_eq!(d, Duration::from_secs(90));
        assert!(parse_duration("0s", Duration::from_secs(1), Duration::MAX).is_err());
        assert!(
            parse_duration("soon", Duration::ZERO, Duration::MAX)
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn door_names_are_restricted() {
        assert!(check_door_name("lobby-1_B").is_ok());
        for bad in ["", "lobby door", "lobby/1", "é", &"x".repeat(65)] {
            assert!(check_door_name(bad).is_err(), "{bad}");
        }
    }
}
