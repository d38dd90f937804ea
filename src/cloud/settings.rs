//! The cloud client's own settings (the config module maps its TOML onto these).

use std::time::Duration;

use crate::config::ImageFormat;
use crate::domain::Secret;
pub use crate::retry::RetryPolicy;
use jiff::tz::Offset;

/// Everything the cloud client needs. `Debug` is safe: the secret prints as redacted.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    /// Base URL, e.g. `https://api.link.aliyun.com`; request paths are appended to it.
    pub endpoint: String,
    pub app_key: String,
    pub app_secret: Secret,
    /// The door controller's iotId: whose roster `querybydevice` walks.
    pub device_iot_id: String,
    /// `IDENTITY`, `OPEN`, `YUNDUN` or `PHONE`; used when a roster item omits its own.
    pub user_type: String,
    pub image_format: ImageFormat,
    /// The cloud's UTC offset for `yyyy-MM-dd HH:mm:ss` times (China: +08).
    pub timezone: Offset,
    pub request_timeout: Duration,
    /// Upper bound on concurrent HTTP requests from this client.
    pub max_concurrency: usize,
    /// Extra PEM CA certificates trusted in addition to webpki-roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Hosts image URLs may point at: `*.aliyuncs.com` (any subdomain), exact names, IP literals.
    pub image_hosts: Vec<String>,
    /// Permit `http://` for the endpoint and image URLs (tests and the fake cloud only).
    pub allow_insecure_http: bool,
    pub image_download_max_bytes: u64,
    pub retry: RetryPolicy,
}

impl CloudSettings {
    /// Settings with the documented defaults for everything but the identity of the caller.
    pub fn new(
        endpoint: impl Into<String>,
        app_key: impl Into<String>,
        app_secret: Secret,
        device_iot_id: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            app_key: app_key.into(),
            app_secret,
            device_iot_id: device_iot_id.into(),
            user_type: "IDENTITY".into(),
            image_format: ImageFormat::Url,
            timezone: Offset::constant(8),
            request_timeout: Duration::from_secs(30),
            max_concurrency: 4,
            extra_ca_pem: None,
            image_hosts: vec!["*.aliyuncs.com".into()],
            allow_insecure_http: false,
            image_download_max_bytes: 2 * 1024 * 1024,
            retry: RetryPolicy::default(),
        }
    }

    /// Whether `host` (as it appears in a URL) matches the image allow-list.
    pub(crate) fn image_host_allowed(&self, host: &str) -> bool {
        host_matches(&self.image_hosts, host)
    }
}

/// Whether `host` matches one of `patterns`, by the configuration's own matcher
/// ([`crate::config::HostPattern`]: IPv6 literals, IP comparison); a pattern that does not parse
/// matches nothing.
pub(crate) fn host_matches(patterns: &[String], host: &str) -> bool {
    patterns
        .iter()
        .filter_map(|p| crate::config::HostPattern::parse(p).ok())
        .any(|p| p.matches(host))
}

impl CloudSettings {
    /// Maps the validated `[cloud]` section onto client settings. The config must have been loaded
    /// with `FileChecks::Required`, so the app secret was read (and its permissions checked).
    pub(crate) fn from_config(c: &crate::config::CloudConfig) -> Result<Self, super::CloudError> {
        let app_secret = c.app_secret.clone().ok_or_else(|| {
            super::CloudError::Config(format!(
                "the app secret was not read from {}",
                c.app_secret_file.display()
            ))
        })?;
        Ok(Self {
            endpoint: c.endpoint.clone(),
            app_key: c.app_key.clone(),
            app_secret,
            device_iot_id: c.device_iot_id.clone(),
            user_type: c.user_type.as_str().to_string(),
            image_format: c.image_format,
            timezone: c.timezone,
            request_timeout: c.request_timeout,
            max_concurrency: c.max_concurrency as usize,
            extra_ca_pem: c.ca_pem.clone(),
            image_hosts: c.image_hosts.iter().map(ToString::to_string).collect(),
            allow_insecure_http: c.allow_insecure_http,
            image_download_max_bytes: u64::from(c.image_download_max_bytes),
            retry: RetryPolicy::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_subdomains_exact_names_and_ips() {
        let pats = vec![
            "*.aliyuncs.com".to_string(),
            "cdn.example.com".into(),
            "127.0.0.1".into(),
        ];
        assert!(host_matches(&pats, "bucket.oss-cn-shanghai.aliyuncs.com"));
        assert!(host_matches(&pats, "CDN.example.com"));
        assert!(host_matches(&pats, "127.0.0.1"));
        assert!(!host_matches(&pats, "aliyuncs.com"));
        assert!(!host_matches(&pats, "evilaliyuncs.com"));
        assert!(!host_matches(&pats, "aliyuncs.com.evil.net"));
        assert!(!host_matches(&pats, "x.cdn.example.com"));
        assert!(!host_matches(&pats, "127.0.0.2"));
        let v6 = vec!["::1".to_string()];
        assert!(host_matches(&v6, "[::1]"));
        assert!(host_matches(&v6, "[0:0:0:0:0:0:0:1]"));
    }
}
