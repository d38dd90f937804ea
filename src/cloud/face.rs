//! What the cloud hands the agent: roster entries, face records with a change fingerprint, and the
//! `FaceCloud` boundary trait the sync engine is written against.

use async_trait::async_trait;
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

use super::error::CloudError;
use crate::domain::{Policy, UserKey};

/// One person on the device's roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub key: UserKey,
    pub name: Option<String>,
    pub status: Option<String>,
    /// The roster status says a delete was requested (`transferDeleted`, `deleteTimeout`).
    pub revoked: bool,
}

/// Where a face image's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A short-lived (signed OSS) URL: download promptly.
    Url(String),
    Inline(Vec<u8>),
}

/// One user's face record as the cloud describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudFace {
    pub key: UserKey,
    pub face_id: Option<String>,
    pub name: Option<String>,
    pub expire_at: Option<Timestamp>,
    pub policy: Policy,
    pub image: ImageSource,
}

impl CloudFace {
    /// A hex digest that stays the same across calls while the face record is unchanged. Signed image
    /// URLs change on every call, so their query string is left out.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        match (&self.face_id, &self.image) {
            (Some(id), _) if !id.is_empty() => h.update(format!("face:{id}")),
            (_, ImageSource::Url(url)) => h.update(format!("url:{}", url.split(['?', '#']).next().unwrap_or(""))),
            (_, ImageSource::Inline(bytes)) => h.update(format!("inline:{}", hex::encode(Sha256::digest(bytes)))),
        }
        h.update(format!("\nname:{:?}", self.name));
        h.update(format!("\nexpire:{:?}", self.expire_at.map(|t| t.as_second())));
        h.update(format!("\npolicy:{:?}", self.policy));
        hex::encode(h.finalize())
    }
}

/// The cloud as the sync engine sees it.
#[async_trait]
#[cfg_attr(test, mockall::automock)]
pub trait FaceCloud: Send + Sync {
    /// The full roster of the configured device; any failed page fails the whole walk.
    async fn roster(&self) -> Result<Vec<RosterEntry>, CloudError>;
    /// One user's face record (image by URL or inline, per settings).
    async fn get_face(&self, key: &UserKey) -> Result<CloudFace, CloudError>;
    /// The bytes of a face image, from an allowed host and within the size cap.
    async fn fetch_image(&self, src: &ImageSource) -> Result<Vec<u8>, CloudError>;
    async fn delete_face(&self, key: &UserKey) -> Result<(), CloudError>;
    async fn modify_user(
        &self,
        identity_id: &str,
        name: Option<&str>,
        ext_info: Option<&str>,
    ) -> Result<(), CloudError>;
    /// The `Date` header of the last successful signed call and when it arrived, if known.
    fn last_date(&self) -> Option<(Timestamp, tokio::time::Instant)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(face_id: Option<&str>, image: ImageSource) -> CloudFace {
        CloudFace {
            key: UserKey::new("IDENTITY", "u-0001"),
            face_id: face_id.map(str::to_string),
            name: Some("Ann".into()),
            expire_at: None,
            policy: Policy::Permission,
            image,
        }
    }

    #[test]
    fn fingerprint_ignores_the_signed_url_query_but_not_the_object() {
        let a = face(
            None,
            ImageSource::Url("https://b.oss.aliyuncs.com/f/1.jpg?Expires=1&Signature=x".into()),
        );
        let b = face(
            None,
            ImageSource::Url("https://b.oss.aliyuncs.com/f/1.jpg?Expires=2&Signature=y".into()),
        );
        let c = face(
            None,
            ImageSource::Url("https://b.oss.aliyuncs.com/f/2.jpg?Expires=2".into()),
        );
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn fingerprint_prefers_face_id_and_tracks_name_expire_and_policy() {
        let a = face(Some("F1"), ImageSource::Url("https://h/1.jpg?x=1".into()));
        let b = face(Some("F1"), ImageSource::Url("https://h/other.jpg".into()));
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut renamed = a.clone();
        renamed.name = Some("Bob".into());
        let mut denied = a.clone();
        denied.policy = Policy::Deny;
        let mut expiring = a.clone();
        expiring.expire_at = Some(Timestamp::from_second(1_767_225_600).unwrap());
        for changed in [renamed, denied, expiring] {
            assert_ne!(a.fingerprint(), changed.fingerprint());
        }
    }

    #[test]
    fn fingerprint_of_inline_images_follows_the_bytes() {
        let a = face(None, ImageSource::Inline(vec![1, 2, 3]));
        let b = face(None, ImageSource::Inline(vec![1, 2, 3]));
        let c = face(None, ImageSource::Inline(vec![1, 2, 4]));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
