//! The API gateway's APP signature (X-Ca-Signature, HmacSHA256), as pure functions.
//!
//! docs/cloud-api.md §4: string-to-sign = `METHOD\nAccept\nContent-MD5\nContent-Type\nDate\n` + one
//! `name:value\n` per signed `X-Ca-*` header (names sorted by byte order, spelled as listed in
//! `X-Ca-Signature-Headers`) + the path. The JSON body is covered only through Content-MD5.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// The inputs of one signature, exactly as they go on the wire.
#[derive(Debug, Clone)]
pub struct SignInput<'a> {
    pub method: &'a str,
    pub accept: &'a str,
    pub content_md5: &'a str,
    pub content_type: &'a str,
    /// RFC 1123 date, or empty when not sent.
    pub date: &'a str,
    /// The `X-Ca-*` headers to sign, as `(name as spelled, value)`; order does not matter.
    pub signed_headers: &'a [(&'a str, &'a str)],
    /// Path plus sorted query/form parameters; for our JSON POSTs just the path.
    pub url: &'a str,
}

/// `base64(md5(body))`, the Content-MD5 header value.
pub fn content_md5(body: &[u8]) -> String {
    B64.encode(Md5::digest(body))
}

/// The string-to-sign and the `X-Ca-Signature-Headers` value for `input`.
pub fn string_to_sign(input: &SignInput<'_>) -> (String, String) {
    let mut headers: Vec<&(&str, &str)> = input.signed_headers.iter().collect();
    headers.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = String::with_capacity(256);
    for part in [
        input.method,
        input.accept,
        input.content_md5,
        input.content_type,
        input.date,
    ] {
        s.push_str(part);
        s.push('\n');
    }
    for (name, value) in &headers {
        s.push_str(name);
        s.push(':');
        s.push_str(value);
        s.push('\n');
    }
    s.push_str(input.url);
    let names = headers.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",");
    (s, names)
}

/// `base64(HMAC-SHA256(secret, string_to_sign))`.
pub fn signature(secret: &[u8], string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty MAC defensively.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(string_to_sign.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Why a received request's signature does not verify (used by the fake cloud).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[cfg(any(test, feature = "sim"))]
pub(crate) enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("signed header {0} listed in X-Ca-Signature-Headers is absent")]
    MissingSignedHeader(String),
    #[error("Content-MD5 does not match the body")]
    ContentMd5Mismatch,
    #[error("unknown app key")]
    UnknownAppKey,
    /// Carries the server's string-to-sign (newlines stripped), as Alibaba's gateway reports it.
    #[error("signature mismatch")]
    SignatureMismatch { server_string_to_sign: String },
}

/// Verifies a request the way the gateway does: rebuilds the string-to-sign from the header list
/// named in `X-Ca-Signature-Headers`. `header` looks a header up case-insensitively.
#[cfg(any(test, feature = "sim"))]
pub(crate) fn verify<'h>(
    method: &str,
    path: &str,
    body: &[u8],
    header: impl Fn(&str) -> Option<&'h str>,
    app_key: &str,
    secret: &[u8],
) -> Result<(), VerifyError> {
    let got = header("x-ca-signature").ok_or(VerifyError::MissingHeader("X-Ca-Signature"))?;
    let key = header("x-ca-key").ok_or(VerifyError::MissingHeader("X-Ca-Key"))?;
    if key != app_key {
        return Err(VerifyError::UnknownAppKey);
    }
    let md5 = header("content-md5").unwrap_or("");
    if !md5.is_empty() && md5 != content_md5(body) {
        return Err(VerifyError::ContentMd5Mismatch);
    }
    let list = header("x-ca-signature-headers").unwrap_or("");
    let mut signed = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let value = header(name).ok_or_else(|| VerifyError::MissingSignedHeader(name.to_string()))?;
        signed.push((name, value));
    }
    let input = SignInput {
        method,
        accept: header("accept").unwrap_or(""),
        content_md5: md5,
        content_type: header("content-type").unwrap_or(""),
        date: header("date").unwrap_or(""),
        signed_headers: &signed,
        url: path,
    };
    let (sts, _) = string_to_sign(&input);
    if signature(secret, &sts) == got {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch {
            server_string_to_sign: sts.replace('\n', ""),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn test_vector_a_official_tea_sdk() {
        let body = br#"{"id":"42","version":"1.0","params":{"userType":"OPEN","userId":"u-1001","imageFormat":"URL"},"request":{"apiVer":"1.2.0"}}"#;
        let md5 = content_md5(body);
        assert_eq!(md5, "BdgiVMV1wqPekqaPCEughw==");
        let input = SignInput {
            method: "POST",
            accept: "application/json",
            content_md5: &md5,
            content_type: "application/octet-stream",
            date: "Thu, 01 Jan 2026 00:00:00 GMT",
            signed_headers: &[
                ("x-ca-signaturemethod", "HmacSHA256"),
                ("x-ca-nonce", "c9f1a3b2e4d5f60718293a4b5c6d7e8f"),
                ("x-ca-key", "24681357"),
            ],
            url: "/face/paas/image/get",
        };
        let (sts, names) = string_to_sign(&input);
        assert_eq!(
            sts,
            "POST\napplication/json\nBdgiVMV1wqPekqaPCEughw==\napplication/octet-stream\nThu, 01 Jan 2026 00:00:00 GMT\nx-ca-key:24681357\nx-ca-nonce:c9f1a3b2e4d5f60718293a4b5c6d7e8f\nx-ca-signaturemethod:HmacSHA256\n/face/paas/image/get"
        );
        assert_eq!(names, "x-ca-key,x-ca-nonce,x-ca-signaturemethod");
        assert_eq!(signature(SECRET, &sts), "hB4JAjHOoAwfeB8nqNJzT5VW0N+/HnZEBCHUSJH5bCU=");
    }

    #[test]
    fn test_vector_b_demo_sdk_without_date() {
        let body = br#"{"id":"1700000000001","version":"1.0","request":{"apiVer":"1.2.0"},"params":{"userType":"OPEN","userId":"u-1001"}}"#;
        let md5 = content_md5(body);
        assert_eq!(md5, "lxcQ+VBd5TBF+NmsPnT+DQ==");
        let input = SignInput {
            method: "POST",
            accept: "application/json",
            content_md5: &md5,
            content_type: "application/octet-stream",
            date: "",
            signed_headers: &[
                ("X-Ca-Key", "24681357"),
                ("X-Ca-Nonce", "5d2f0c1e-7a3b-4c8d-9e0f-112233445566"),
                ("X-Ca-Timestamp", "1767225600000"),
            ],
            url: "/face/paas/image/delete",
        };
        let (sts, names) = string_to_sign(&input);
        assert_eq!(
            sts,
            "POST\napplication/json\nlxcQ+VBd5TBF+NmsPnT+DQ==\napplication/octet-stream\n\nX-Ca-Key:24681357\nX-Ca-Nonce:5d2f0c1e-7a3b-4c8d-9e0f-112233445566\nX-Ca-Timestamp:1767225600000\n/face/paas/image/delete"
        );
        assert_eq!(names, "X-Ca-Key,X-Ca-Nonce,X-Ca-Timestamp");
        assert_eq!(signature(SECRET, &sts), "uZYfv6n0opckeJThfoiAGbSa8qtRbPkN5Hrtm0R1L2U=");
    }

    #[test]
    fn test_vector_c_json_content_type_with_timestamp() {
        let body = br#"{"id":"1700000000000","version":"1.0","request":{"apiVer":"1.0.0"},"params":{"identityId":"50ab12cd34ef","name":"Door User","extInfo":"{}"}}"#;
        let md5 = content_md5(body);
        assert_eq!(md5, "yex4VELGtjs8uKmgzzz5pw==");
        let input = SignInput {
            method: "POST",
            accept: "application/json",
            content_md5: &md5,
            content_type: "application/json; charset=utf-8",
            date: "Thu, 01 Jan 2026 00:00:00 GMT",
            signed_headers: &[
                ("x-ca-timestamp", "1767225600000"),
                ("x-ca-key", "24681357"),
                ("x-ca-nonce", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"),
                ("x-ca-signature-method", "HmacSHA256"),
            ],
            url: "/entrance/paas/user/modify",
        };
        let (sts, names) = string_to_sign(&input);
        assert_eq!(
            sts,
            "POST\napplication/json\nyex4VELGtjs8uKmgzzz5pw==\napplication/json; charset=utf-8\nThu, 01 Jan 2026 00:00:00 GMT\nx-ca-key:24681357\nx-ca-nonce:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0\nx-ca-signature-method:HmacSHA256\nx-ca-timestamp:1767225600000\n/entrance/paas/user/modify"
        );
        assert_eq!(names, "x-ca-key,x-ca-nonce,x-ca-signature-method,x-ca-timestamp");
        assert_eq!(signature(SECRET, &sts), "NNebdJhFZhdyyK/fY0EyR1tgA/vLcZC2R/8iPTRgr20=");
    }

    /// docs/cloud-api.md §4 vector A: the complete signed header set (also checked against the client).
    pub(crate) fn vector_a_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("accept", "application/json"),
            ("content-type", "application/octet-stream"),
            ("content-md5", "BdgiVMV1wqPekqaPCEughw=="),
            ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("x-ca-key", "24681357"),
            ("x-ca-nonce", "c9f1a3b2e4d5f60718293a4b5c6d7e8f"),
            ("x-ca-signaturemethod", "HmacSHA256"),
            ("x-ca-signature-headers", "x-ca-key,x-ca-nonce,x-ca-signaturemethod"),
            ("x-ca-signature", "hB4JAjHOoAwfeB8nqNJzT5VW0N+/HnZEBCHUSJH5bCU="),
        ]
    }

    const BODY_A: &[u8] = br#"{"id":"42","version":"1.0","params":{"userType":"OPEN","userId":"u-1001","imageFormat":"URL"},"request":{"apiVer":"1.2.0"}}"#;

    fn lookup<'h>(h: &'h [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<&'h str> {
        move |name| h.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    #[test]
    fn verify_accepts_vector_a_and_rejects_a_tampered_body_or_wrong_secret() {
        let h = vector_a_headers();
        assert_eq!(
            verify("POST", "/face/paas/image/get", BODY_A, lookup(&h), "24681357", SECRET),
            Ok(())
        );
        let tampered = BODY_A
            .to_vec()
            .into_iter()
            .map(|b| if b == b'1' { b'2' } else { b })
            .collect::<Vec<_>>();
        assert_eq!(
            verify(
                "POST",
                "/face/paas/image/get",
                &tampered,
                lookup(&h),
                "24681357",
                SECRET
            ),
            Err(VerifyError::ContentMd5Mismatch)
        );
        let wrong = verify(
            "POST",
            "/face/paas/image/get",
            BODY_A,
            lookup(&h),
            "24681357",
            b"not the secret",
        );
        assert!(matches!(wrong, Err(VerifyError::SignatureMismatch { .. })));
        assert_eq!(
            verify("POST", "/face/paas/image/get", BODY_A, lookup(&h), "other", SECRET),
            Err(VerifyError::UnknownAppKey)
        );
    }
}
