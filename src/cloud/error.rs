//! Cloud error classes (docs/cloud-api.md §3): what went wrong on a call and what the agent should do about it.

/// What the caller should do with a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Throttling, gateway/backend failure, network trouble: already retried with backoff inside the client.
    Retryable,
    /// The cloud says this one user no longer exists: purge them (only ever from a per-user call).
    UserGone,
    /// Credentials or authorisation: app key, app secret, controller clock, tenant. Alert; do not hammer.
    Auth,
    /// Our own settings forbid the call (image host not allowed, plain http). Fix the configuration.
    Config,
    /// The request was malformed; repeating it cannot help.
    BadRequest,
    /// Wrong path or apiVer (retried at most twice, then permanent).
    WrongApi,
    /// The answer could not be understood (malformed JSON, missing fields, bad time, image too large).
    BadResponse,
}

/// A failed cloud call. No variant ever carries the app secret or a signature.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    #[error("{path}: network error talking to the cloud: {detail}")]
    Network { path: String, detail: String },
    #[error(
        "{path}: gateway answered HTTP {status}{}",
        gateway_detail(error_message, request_id)
    )]
    Gateway {
        path: String,
        status: u16,
        error_message: Option<String>,
        request_id: Option<String>,
        class: ErrorClass,
    },
    #[error("{path}: cloud error code {code} ({message}){}", gateway_detail(&None, request_id))]
    Business {
        path: String,
        code: i64,
        message: String,
        request_id: Option<String>,
        class: ErrorClass,
    },
    #[error(
        "{path}: the cloud rejected app key {app_key:?} ({detail}{}); check that the app key is right and \
         authorised for this project, that the app secret file holds its secret, and that the controller \
         clock is correct (NTP)",
        gateway_detail(error_message, request_id)
    )]
    Auth {
        path: String,
        app_key: String,
        detail: String,
        error_message: Option<String>,
        request_id: Option<String>,
    },
    #[error("{path}: bad response from the cloud: {detail}")]
    BadResponse { path: String, detail: String },
    #[error("image URL host `{host}` is not in cloud.image_hosts")]
    ImageHostNotAllowed { host: String },
    #[error("image download exceeds the {max_bytes}-byte cap (image_download_max_bytes)")]
    ImageTooLarge { max_bytes: u64 },
    /// Something about one user's image URL (scheme, redirect) the agent will not follow.
    #[error("{0}")]
    ImageRejected(String),
    #[error(
        "{path}: the response exceeds {max_bytes} bytes, more than any page of this API should hold; the \
         endpoint or a proxy in front of it is misbehaving"
    )]
    ResponseTooLarge { path: String, max_bytes: u64 },
    /// The roster walk did not add up (README, "Roster integrity"): nobody is removed because of it.
    /// `listed` holds what the last walk saw, so explicit per-user revocations still apply.
    #[error(
        "roster incomplete after {walks} walk{}: {reason}; nobody is removed because of it",
        if *walks == 1 { "" } else { "s" }
    )]
    RosterIncomplete {
        reason: String,
        walks: u32,
        listed: Vec<super::face::RosterEntry>,
    },
    #[error("cloud settings: {0}")]
    Config(String),
}

fn gateway_detail(error_message: &Option<String>, request_id: &Option<String>) -> String {
    let mut out = String::new();
    if let Some(m) = error_message.as_deref().filter(|m| !m.is_empty()) {
        out.push_str(&format!("; X-Ca-Error-Message: {m}"));
    }
    if let Some(r) = request_id.as_deref().filter(|r| !r.is_empty()) {
        out.push_str(&format!("; X-Ca-Request-Id: {r}"));
    }
    out
}

impl CloudError {
    pub fn class(&self) -> ErrorClass {
        match self {
            CloudError::Network { .. } => ErrorClass::Retryable,
            CloudError::Gateway { class, .. } | CloudError::Business { class, .. } => *class,
            CloudError::Auth { .. } => ErrorClass::Auth,
            CloudError::BadResponse { .. }
            | CloudError::ImageTooLarge { .. }
            | CloudError::ImageHostNotAllowed { .. }
            | CloudError::ImageRejected(_)
            | CloudError::ResponseTooLarge { .. }
            | CloudError::RosterIncomplete { .. } => ErrorClass::BadResponse,
            CloudError::Config(_) => ErrorClass::Config,
        }
    }
}

/// Class of a gateway answer with HTTP status ≠ 200.
pub(crate) fn classify_http(status: u16, error_message: Option<&str>) -> ErrorClass {
    match status {
        401 => ErrorClass::Auth,
        // The gateway refuses a bad signature with 400 as well as 401 ("Invalid Signature").
        400 if error_message.is_some_and(|m| m.to_ascii_lowercase().contains("signature")) => ErrorClass::Auth,
        // 403 is "Request Limited" (throttled); other 403 texts are authorisation refusals.
        403 => match error_message {
            Some(m) if !m.to_ascii_lowercase().contains("limit") => ErrorClass::Auth,
            _ => ErrorClass::Retryable,
        },
        404 => ErrorClass::WrongApi,
        429 => ErrorClass::Retryable,
        500..=599 => ErrorClass::Retryable,
        _ => ErrorClass::BadRequest,
    }
}

/// Class of a business error (HTTP 200, `code` ≠ 200). `per_user` says the call was about one user, the
/// only case where "identity does not exist" may mean the user is gone (2405 also means "company not
/// initialised", a configuration problem).
pub(crate) fn classify_business(code: i64, message: &str, per_user: bool) -> ErrorClass {
    let lower = message.to_ascii_lowercase();
    match code {
        20003 | 20004 | 20056 | 503 | 429 => ErrorClass::Retryable,
        500 if lower.contains("bad request") => ErrorClass::WrongApi,
        500 => ErrorClass::Retryable,
        404 => ErrorClass::WrongApi,
        460 if lower.contains("iottoken") => ErrorClass::Auth,
        400 | 460 | 2000 | 20055 => ErrorClass::BadRequest,
        401 | 403 | 2453 | 2401 | 2402 | 20008 => ErrorClass::Auth,
        2405 | 2062 | 2407 if per_user => ErrorClass::UserGone,
        2405 | 2062 | 2407 => ErrorClass::Auth,
        _ => ErrorClass::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_documented_actions() {
        assert_eq!(classify_http(500, None), ErrorClass::Retryable);
        assert_eq!(classify_http(503, Some("Service Unavailable")), ErrorClass::Retryable);
        assert_eq!(classify_http(403, Some("Request Limited")), ErrorClass::Retryable);
        assert_eq!(classify_http(403, None), ErrorClass::Retryable);
        assert_eq!(classify_http(403, Some("Unauthorized AppKey")), ErrorClass::Auth);
        assert_eq!(classify_http(401, Some("Empty Signature")), ErrorClass::Auth);
        assert_eq!(classify_http(400, Some("Request Format Error")), ErrorClass::BadRequest);
        assert_eq!(classify_http(400, Some("Invalid Signature")), ErrorClass::Auth);
        assert_eq!(classify_http(404, None), ErrorClass::WrongApi);
    }

    #[test]
    fn business_codes_map_to_the_documented_actions() {
        for code in [20003, 20004, 20056, 503, 429] {
            assert_eq!(classify_business(code, "x", false), ErrorClass::Retryable, "{code}");
        }
        assert_eq!(classify_business(500, "Server Error", false), ErrorClass::Retryable);
        assert_eq!(classify_business(500, "Bad Request", false), ErrorClass::WrongApi);
        assert_eq!(classify_business(404, "service not found", false), ErrorClass::WrongApi);
        for code in [400, 2000, 20055] {
            assert_eq!(classify_business(code, "x", true), ErrorClass::BadRequest, "{code}");
        }
        assert_eq!(
            classify_business(460, "request parameter error", true),
            ErrorClass::BadRequest
        );
        assert_eq!(classify_business(460, "iotToken is blank", true), ErrorClass::Auth);
        for code in [401, 403, 2453, 2401, 2402, 20008] {
            assert_eq!(classify_business(code, "x", true), ErrorClass::Auth, "{code}");
        }
    }

    #[test]
    fn user_gone_only_on_a_per_user_call() {
        for code in [2405, 2062, 2407] {
            assert_eq!(
                classify_business(code, "identity is not existed", true),
                ErrorClass::UserGone
            );
            assert_eq!(
                classify_business(code, "identity is not existed", false),
                ErrorClass::Auth
            );
        }
    }

    #[test]
    fn auth_error_text_tells_the_operator_what_to_check() {
        let e = CloudError::Auth {
            path: "/face/paas/image/get".into(),
            app_key: "24681357".into(),
            detail: "HTTP 401".into(),
            error_message: Some("Invalid Signature".into()),
            request_id: Some("REQ-1".into()),
        };
        let text = e.to_string();
        for needle in [
            "24681357",
            "app key",
            "app secret",
            "clock",
            "NTP",
            "Invalid Signature",
            "REQ-1",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        assert_eq!(e.class(), ErrorClass::Auth);
    }
}
