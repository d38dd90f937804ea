//! The signed HTTPS client (the project's only reqwest user) and the `FaceCloud` boundary trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt as _;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::error::{CloudError, ErrorClass, classify_business, classify_http};
use super::face::{CloudFace, FaceCloud, ImageSource, RosterEntry};
use super::roster::{RosterWalk, Step};
use super::settings::CloudSettings;
use super::sign::{self, SignInput};
use super::wire::{self, ImageDeleteParams, ImageGetData, ImageGetParams, RosterPage, RosterParams, UserModifyParams};
use crate::domain::{Policy, UserKey};
use crate::retry::Backoff;

/// Items per roster page: the family's observed default and within every documented cap.
pub const ROSTER_PAGE_SIZE: u32 = 20;
/// A roster walk longer than this is treated as a misbehaving server, not a huge roster: 100 000
/// users, twice the largest gateway the memory budget is measured for (BENCHMARKS.md, 50 000 users).
pub const ROSTER_MAX_PAGES: u32 = 5_000;
/// An inconsistent roster walk is tried this many times in all before the pull is reported incomplete.
pub const ROSTER_MAX_WALKS: u32 = 3;
/// The pause before walking an inconsistent roster again (the list was probably changing).
const ROSTER_REWALK_PAUSE: Duration = Duration::from_millis(500);
/// Wrong-API answers get this many attempts in total (docs/cloud-api.md §3: retry ≤ 2 times).
const WRONG_API_MAX_ATTEMPTS: u32 = 3;
/// Redirects an image download follows at most.
pub(crate) const IMAGE_MAX_REDIRECTS: usize = 3;
/// Room for JSON framing around a BASE64 image in a response body.
const JSON_OVERHEAD_BYTES: u64 = 256 * 1024;

const ACCEPT: &str = "application/json";
const CONTENT_TYPE: &str = "application/octet-stream";

/// Installs ring as rustls' process-wide crypto provider; safe to call any number of times.
pub fn install_crypto_provider() {
    // An Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The real client: APP-signed JSON POSTs over rustls, retried per docs/cloud-api.md §3.
#[derive(Debug, Clone)]
pub struct CloudClient {
    http: reqwest::Client,
    settings: Arc<CloudSettings>,
    permits: Arc<Semaphore>,
    /// The `Date` of the last successful signed call and when it arrived (the clock trust rule's input).
    last_date: Arc<std::sync::Mutex<Option<(Timestamp, tokio::time::Instant)>>>,
}

impl CloudClient {
    pub fn new(settings: CloudSettings) -> Result<Self, CloudError> {
        install_crypto_provider();
        let endpoint = reqwest::Url::parse(&settings.endpoint)
            .map_err(|e| CloudError::Config(format!("endpoint {:?} is not a URL: {e}", settings.endpoint)))?;
        match endpoint.scheme() {
            "https" => {}
            "http" if settings.allow_insecure_http => {}
            s => {
                return Err(CloudError::Config(format!(
                    "endpoint scheme {s:?} not allowed (https only unless allow_insecure_http)"
                )));
            }
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = &settings.extra_ca_pem {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject as _;
            let mut added = 0usize;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| CloudError::Config(format!("extra CA PEM is not valid: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| CloudError::Config(format!("extra CA certificate rejected: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(CloudError::Config("extra CA PEM holds no certificate".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CloudError::Config(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.request_timeout)
            .https_only(!settings.allow_insecure_http)
            // Redirects are followed by hand for images (each hop re-checked) and never for the API.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| CloudError::Config(format!("HTTP client setup failed: {e}")))?;
        let permits = Arc::new(Semaphore::new(settings.max_concurrency.max(1)));
        Ok(Self {
            http,
            settings: Arc::new(settings),
            permits,
            last_date: Arc::default(),
        })
    }

    /// One API call with retries; returns the `data` member (absent or null → `None`).
    async fn call<P: Serialize, D: DeserializeOwned>(
        &self,
        path: &str,
        api_ver: &str,
        params: &P,
        per_user: bool,
    ) -> Result<Option<D>, CloudError> {
        let request_id = super::fresh_id();
        let body = serde_json::to_vec(&wire::RequestEnvelope::new(request_id.clone(), api_ver, params))
            .map_err(|e| CloudError::Config(format!("{path}: cannot serialise request: {e}")))?;
        let url = format!("{}{}", self.settings.endpoint.trim_end_matches('/'), path);
        let mut backoff = Backoff::new(self.settings.retry);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self.attempt(&url, path, &body, per_user).await;
            match result {
                Ok(data) => {
                    tracing::debug!(request_id = %request_id, path, attempt, code = 200, "cloud call ok");
                    return data
                        .map(|v| {
                            serde_json::from_value(v).map_err(|e| CloudError::BadResponse {
                                path: path.into(),
                                detail: format!("data has an unexpected shape: {e}"),
                            })
                        })
                        .transpose();
                }
                Err(err) => {
                    let again = match err.class() {
                        ErrorClass::Retryable => backoff.policy().allows_another(attempt),
                        ErrorClass::WrongApi => {
                            attempt < WRONG_API_MAX_ATTEMPTS && backoff.policy().allows_another(attempt)
                        }
                        _ => false,
                    };
                    tracing::info!(request_id = %request_id, path, attempt, error = %err, "cloud call failed");
                    if !again {
                        return Err(err);
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// One signed attempt: fresh nonce and date, the same body bytes.
    async fn attempt(
        &self,
        url: &str,
        path: &str,
        body: &[u8],
        per_user: bool,
    ) -> Result<Option<serde_json::Value>, CloudError> {
        let headers = self.signed_headers(path, body)?;
        let _permit = self.permits.acquire().await.map_err(|_| CloudError::Network {
            path: path.into(),
            detail: "client is shutting down".into(),
        })?;
        let resp = self
            .http
            .post(url)
            .headers(headers)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| network(path, &e))?;
        let status = resp.status().as_u16();
        let error_message = header_string(resp.headers(), "x-ca-error-message");
        let gateway_request_id = header_string(resp.headers(), "x-ca-request-id");
        let date = header_string(resp.headers(), "date").and_then(|d| crate::clock::trust::parse_http_date(&d));
        let max_bytes = self.settings.image_download_max_bytes.saturating_mul(2) + JSON_OVERHEAD_BYTES;
        let bytes = read_capped(resp, path, max_bytes, || CloudError::ResponseTooLarge {
            path: path.into(),
            max_bytes,
        })
        .await?;
        if status != 200 {
            let class = classify_http(status, error_message.as_deref());
            if class == ErrorClass::Auth {
                return Err(CloudError::Auth {
                    path: path.into(),
                    app_key: self.settings.app_key.clone(),
                    detail: format!("HTTP {status}"),
                    error_message,
                    request_id: gateway_request_id,
                });
            }
            return Err(CloudError::Gateway {
                path: path.into(),
                status,
                error_message,
                request_id: gateway_request_id,
                class,
            });
        }
        let env: wire::ResponseEnvelope = serde_json::from_slice(&bytes).map_err(|e| CloudError::BadResponse {
            path: path.into(),
            detail: format!("response is not the JSON envelope: {e}"),
        })?;
        if env.code != 200 {
            let message = env.message.or(env.localized_msg).unwrap_or_default();
            let class = classify_business(env.code, &message, per_user);
            if class == ErrorClass::Auth {
                return Err(CloudError::Auth {
                    path: path.into(),
                    app_key: self.settings.app_key.clone(),
                    detail: format!("code {} {message}", env.code),
                    error_message,
                    request_id: gateway_request_id,
                });
            }
            return Err(CloudError::Business {
                path: path.into(),
                code: env.code,
                message,
                request_id: gateway_request_id,
                class,
            });
        }
        if let Some(date) = date {
            *self.last_date.lock().unwrap_or_else(|p| p.into_inner()) = Some((date, tokio::time::Instant::now()));
        }
        Ok(env.data.filter(|v| !v.is_null()))
    }

    /// The header set of docs/cloud-api.md test vector A, signed over exactly `body`, with a fresh nonce.
    fn signed_headers(&self, path: &str, body: &[u8]) -> Result<HeaderMap, CloudError> {
        let date = Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let nonce = super::fresh_id();
        self.signed_headers_at(path, body, &date, &nonce)
    }

    /// [`Self::signed_headers`] with the date and nonce given (the test vectors pin them).
    fn signed_headers_at(&self, path: &str, body: &[u8], date: &str, nonce: &str) -> Result<HeaderMap, CloudError> {
        let md5 = sign::content_md5(body);
        let custom = [
            ("x-ca-key", self.settings.app_key.as_str()),
            ("x-ca-nonce", nonce),
            ("x-ca-signaturemethod", "HmacSHA256"),
        ];
        let (sts, signed_list) = sign::string_to_sign(&SignInput {
            method: "POST",
            accept: ACCEPT,
            content_md5: &md5,
            content_type: CONTENT_TYPE,
            date,
            signed_headers: &custom,
            url: path,
        });
        let signature = sign::signature(self.settings.app_secret.expose(), &sts);
        let mut map = HeaderMap::new();
        let pairs = [
            ("accept", ACCEPT),
            ("content-type", CONTENT_TYPE),
            ("content-md5", md5.as_str()),
            ("date", date),
            ("x-ca-signature-headers", signed_list.as_str()),
            ("x-ca-signature", signature.as_str()),
        ];
        for (name, value) in custom.iter().chain(pairs.iter()) {
            let value = HeaderValue::from_str(value)
                .map_err(|_| CloudError::Config(format!("header {name} has a value that cannot be sent (app key?)")))?;
            map.insert(HeaderName::from_static(name), value);
        }
        Ok(map)
    }

    /// One walk of the roster: `Ok(Ok(entries))` when it adds up, `Ok(Err((reason, listed)))` when it
    /// does not, `Err` when a page could not be had at all.
    async fn walk_roster(&self) -> Result<Walk, CloudError> {
        let path = wire::PATH_ROSTER;
        let mut walk = RosterWalk::new(ROSTER_PAGE_SIZE, ROSTER_MAX_PAGES, self.settings.user_type.clone());
        for page_no in 1..=ROSTER_MAX_PAGES {
            let params = RosterParams {
                iot_id: self.settings.device_iot_id.clone(),
                page_no,
                page_size: ROSTER_PAGE_SIZE,
            };
            let page: RosterPage = self
                .call(path, wire::API_VER_ROSTER, &params, false)
                .await?
                .ok_or_else(|| bad(path, format!("page {page_no} has no data")))?;
            match walk.page(page) {
                Step::Next => {}
                Step::Complete => {
                    tracing::debug!(pages = page_no, users = walk.entries().len(), "roster walk complete");
                    return Ok(Ok(walk.into_entries()));
                }
                Step::Inconsistent(reason) => return Ok(Err((reason, walk.into_entries(), false))),
                Step::Runaway(reason) => return Ok(Err((reason, walk.into_entries(), true))),
            }
        }
        Ok(Err((
            format!("the walk passed {ROSTER_MAX_PAGES} pages without reaching its end"),
            walk.into_entries(),
            true,
        )))
    }

    /// Checks one image URL (the first or a redirect target) against the scheme rule and `image_hosts`.
    fn check_image_url(&self, url: &reqwest::Url) -> Result<String, CloudError> {
        match url.scheme() {
            "https" => {}
            "http" if self.settings.allow_insecure_http => {}
            s => {
                return Err(CloudError::ImageRejected(format!(
                    "image URL scheme `{s}` is not allowed (https only)"
                )));
            }
        }
        let host = url.host_str().unwrap_or("").to_string();
        if !self.settings.image_host_allowed(&host) {
            return Err(CloudError::ImageHostNotAllowed { host });
        }
        Ok(host)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, CloudError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| CloudError::ImageRejected(format!("image URL is not a URL: {e}")))?;
        let host = self.check_image_url(&parsed)?;
        let mut backoff = Backoff::new(self.settings.retry);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self.download_following(parsed.clone()).await;
            match result {
                Ok(bytes) => return Ok(bytes),
                Err(err) => {
                    tracing::info!(host = %host, attempt, error = %err, "image download failed");
                    if err.class() != ErrorClass::Retryable || !backoff.policy().allows_another(attempt) {
                        return Err(err);
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Downloads, following at most [`IMAGE_MAX_REDIRECTS`] redirects, each target re-checked: an
    /// allowed host must not be able to send the agent anywhere.
    async fn download_following(&self, mut url: reqwest::Url) -> Result<Vec<u8>, CloudError> {
        let mut hops = 0usize;
        loop {
            let host = self.check_image_url(&url)?;
            match self.download_once(url.clone(), &host).await? {
                Fetched::Body(bytes) => return Ok(bytes),
                Fetched::Redirect(location) => {
                    hops += 1;
                    if hops > IMAGE_MAX_REDIRECTS {
                        return Err(CloudError::ImageRejected(format!(
                            "image URL redirects more than {IMAGE_MAX_REDIRECTS} times"
                        )));
                    }
                    let Some(location) = location else {
                        return Err(CloudError::ImageRejected(format!(
                            "image host `{host}` answered a redirect without a Location"
                        )));
                    };
                    url = url
                        .join(&location)
                        .map_err(|e| CloudError::ImageRejected(format!("image redirect target is not a URL: {e}")))?;
                }
            }
        }
    }

    async fn download_once(&self, url: reqwest::Url, host: &str) -> Result<Fetched, CloudError> {
        let label = format!("image from {host}");
        let _permit = self.permits.acquire().await.map_err(|_| CloudError::Network {
            path: label.clone(),
            detail: "client is shutting down".into(),
        })?;
        let resp = self.http.get(url).send().await.map_err(|e| network(&label, &e))?;
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            return Ok(Fetched::Redirect(header_string(resp.headers(), "location")));
        }
        if status != 200 {
            let class = match status {
                403 | 404 | 410 => ErrorClass::BadResponse,
                s => classify_http(s, None),
            };
            return Err(CloudError::Gateway {
                path: label,
                status,
                error_message: None,
                request_id: None,
                class,
            });
        }
        let max_bytes = self.settings.image_download_max_bytes;
        let too_large = || CloudError::ImageTooLarge { max_bytes };
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        read_capped(resp, &label, max_bytes, too_large).await.map(Fetched::Body)
    }
}

/// One roster walk: the entries when it adds up, else the inconsistency, what was listed, and whether
/// walking again is pointless (the walk ran past its page bound).
type Walk = Result<Vec<RosterEntry>, (String, Vec<RosterEntry>, bool)>;

/// What one image GET gave.
enum Fetched {
    Body(Vec<u8>),
    Redirect(Option<String>),
}

fn network(path: &str, e: &reqwest::Error) -> CloudError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transfer failed"
    };
    CloudError::Network {
        path: path.into(),
        detail: format!("{kind}: {e}"),
    }
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Reads a body, aborting with `too_large()` as soon as it passes `max_bytes`.
async fn read_capped(
    resp: reqwest::Response,
    path: &str,
    max_bytes: u64,
    too_large: impl Fn() -> CloudError,
) -> Result<Vec<u8>, CloudError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| network(path, &e))?;
        if out.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn bad(path: &str, detail: String) -> CloudError {
    CloudError::BadResponse {
        path: path.into(),
        detail,
    }
}

#[async_trait]
impl FaceCloud for CloudClient {
    fn last_date(&self) -> Option<(Timestamp, tokio::time::Instant)> {
        *self.last_date.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn roster(&self) -> Result<Vec<RosterEntry>, CloudError> {
        let mut walks = 0u32;
        loop {
            walks += 1;
            match self.walk_roster().await? {
                Ok(entries) => return Ok(entries),
                Err((reason, listed, runaway)) if runaway || walks >= ROSTER_MAX_WALKS => {
                    tracing::warn!(walks, %reason, "roster walk inconsistent; removing nobody because of it");
                    return Err(CloudError::RosterIncomplete { reason, walks, listed });
                }
                Err((reason, _, _)) => {
                    tracing::info!(walks, %reason, "roster walk inconsistent; walking again");
                    tokio::time::sleep(ROSTER_REWALK_PAUSE).await;
                }
            }
        }
    }

    async fn get_face(&self, key: &UserKey) -> Result<CloudFace, CloudError> {
        let path = wire::PATH_IMAGE_GET;
        let params = ImageGetParams {
            user_type: key.user_type.clone(),
            user_id: key.user_id.clone(),
            image_format: self.settings.image_format,
        };
        let data: ImageGetData = self
            .call(path, wire::API_VER_IMAGE_GET, &params, true)
            .await?
            .ok_or_else(|| bad(path, format!("no data for user {key}")))?;
        let image = match (
            data.image_url.filter(|u| !u.is_empty()),
            data.image_base64.filter(|b| !b.is_empty()),
        ) {
            (Some(url), _) => ImageSource::Url(url),
            (None, Some(b64)) => ImageSource::Inline(
                B64.decode(b64.trim())
                    .map_err(|e| bad(path, format!("imageBase64 of user {key} is not base64: {e}")))?,
            ),
            (None, None) => return Err(bad(path, format!("user {key} has neither imageUrl nor imageBase64"))),
        };
        let expire_at = match data.expire_time.as_deref() {
            Some(s) => wire::parse_cloud_time(s, self.settings.timezone)
                .map_err(|e| bad(path, format!("expireTime of user {key}: {e}")))?,
            None => None,
        };
        // An unknown policy is a bad record, never read as a grant.
        let policy = match data.policy.as_deref().map(str::trim) {
            None | Some("") => Policy::Permission,
            Some(p) if p.eq_ignore_ascii_case("PERMISSION") || p.eq_ignore_ascii_case("DENY") => {
                Policy::from_cloud(Some(p))
            }
            Some(p) => {
                let shown: String = p.chars().filter(|c| !c.is_control()).take(32).collect();
                return Err(bad(
                    path,
                    format!("policy `{shown}` of user {key} is neither PERMISSION nor DENY"),
                ));
            }
        };
        Ok(CloudFace {
            key: key.clone(),
            face_id: data.face_id.filter(|s| !s.is_empty()),
            name: data.user_name,
            expire_at,
            policy,
            image,
        })
    }

    async fn fetch_image(&self, src: &ImageSource) -> Result<Vec<u8>, CloudError> {
        match src {
            ImageSource::Url(url) => self.download(url).await,
            ImageSource::Inline(bytes) if bytes.len() as u64 > self.settings.image_download_max_bytes => {
                Err(CloudError::ImageTooLarge {
                    max_bytes: self.settings.image_download_max_bytes,
                })
            }
            ImageSource::Inline(bytes) => Ok(bytes.clone()),
        }
    }

    async fn delete_face(&self, key: &UserKey) -> Result<(), CloudError> {
        let params = ImageDeleteParams {
            user_type: key.user_type.clone(),
            user_id: key.user_id.clone(),
        };
        self.call::<_, serde_json::Value>(wire::PATH_IMAGE_DELETE, wire::API_VER_IMAGE_DELETE, &params, true)
            .await
            .map(|_| ())
    }

    async fn modify_user(
        &self,
        identity_id: &str,
        name: Option<&str>,
        ext_info: Option<&str>,
    ) -> Result<(), CloudError> {
        let params = UserModifyParams {
            identity_id: identity_id.into(),
            name: name.map(str::to_string),
            ext_info: ext_info.map(str::to_string),
        };
        self.call::<_, serde_json::Value>(wire::PATH_USER_MODIFY, wire::API_VER_USER_MODIFY, &params, true)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_a_client() -> CloudClient {
        let settings = CloudSettings::new(
            "https://api.link.aliyun.com",
            "24681357",
            crate::domain::Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()),
            "dev",
        );
        CloudClient::new(settings).unwrap()
    }

    /// docs/cloud-api.md §4 test vector A, produced by Alibaba's own SDK: the exact header set the real
    /// client sends, signature included, for the vector's body, date and nonce.
    #[test]
    fn the_client_signs_vector_a_exactly() {
        let body = br#"{"id":"42","version":"1.0","params":{"userType":"OPEN","userId":"u-1001","imageFormat":"URL"},"request":{"apiVer":"1.2.0"}}"#;
        let h = vector_a_client()
            .signed_headers_at(
                "/face/paas/image/get",
                body,
                "Thu, 01 Jan 2026 00:00:00 GMT",
                "c9f1a3b2e4d5f60718293a4b5c6d7e8f",
            )
            .unwrap();
        let want = crate::cloud::sign::tests::vector_a_headers();
        for &(name, value) in &want {
            assert_eq!(h.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
        }
        assert_eq!(
            h.len(),
            want.len(),
            "no other headers are sent signed or unsigned: {h:?}"
        );
    }

    #[test]
    fn every_request_gets_a_fresh_nonce_and_an_rfc_1123_date() {
        let client = vector_a_client();
        let body = br#"{"id":"42"}"#;
        let h = client.signed_headers("/face/paas/image/get", body).unwrap();
        let again = client.signed_headers("/face/paas/image/get", body).unwrap();
        assert_ne!(
            h["x-ca-nonce"], again["x-ca-nonce"],
            "every attempt needs a fresh nonce"
        );
        let date = h["date"].to_str().unwrap();
        assert!(
            jiff::fmt::rfc2822::parse(date).is_ok() && date.ends_with(" GMT"),
            "RFC 1123 date: {date}"
        );
    }
}
