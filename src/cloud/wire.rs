//! The JSON shapes on the wire: the request envelope, the response envelope, and each endpoint's
//! params and data. Shared by the client and the fake cloud so both speak exactly the same dialect.
//!
//! Response data types are lenient (every field optional, unknown fields ignored, aliases for the
//! roster's unverified names: docs/cloud-api.md §2.2) because the real service's shapes are partly unverified.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use serde::{Deserialize, Serialize};

pub const PATH_IMAGE_GET: &str = "/face/paas/image/get";
pub const PATH_IMAGE_DELETE: &str = "/face/paas/image/delete";
pub(crate) const PATH_USER_MODIFY: &str = "/entrance/paas/user/modify";
pub const PATH_ROSTER: &str = "/face/paas/permission/querybydevice";

pub(crate) const API_VER_IMAGE_GET: &str = "1.2.0";
pub(crate) const API_VER_IMAGE_DELETE: &str = "1.2.0";
pub(crate) const API_VER_USER_MODIFY: &str = "1.0.0";
pub(crate) const API_VER_ROSTER: &str = "1.0.4";

/// `{"id","version":"1.0","request":{"apiVer",…},"params":{…}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RequestEnvelope<P> {
    pub id: String,
    pub version: String,
    pub request: RequestMeta,
    pub params: P,
}

impl<P> RequestEnvelope<P> {
    pub(crate) fn new(id: impl Into<String>, api_ver: &str, params: P) -> Self {
        Self {
            id: id.into(),
            version: "1.0".into(),
            request: RequestMeta {
                api_ver: api_ver.into(),
                cloud_token: None,
            },
            params,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestMeta {
    pub api_ver: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cloud_token: Option<String>,
}

/// `{"id","code","message","localizedMsg","data"}`; `code` 200 is success whatever the HTTP status.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResponseEnvelope<D = serde_json::Value> {
    #[serde(default)]
    pub id: Option<String>,
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub localized_msg: Option<String>,
    #[serde(default = "Option::default")]
    pub data: Option<D>,
}

/// The one `ImageFormat`: the configuration's, which is also the wire spelling.
pub use crate::config::ImageFormat;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageGetParams {
    pub user_type: String,
    pub user_id: String,
    pub image_format: ImageFormat,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageGetData {
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub image_base64: Option<String>,
    #[serde(default)]
    pub face_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss` in the cloud's time zone.
    #[serde(default)]
    pub expire_time: Option<String>,
    #[serde(default)]
    pub policy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageDeleteParams {
    pub user_type: String,
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserModifyParams {
    pub identity_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ext_info: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RosterParams {
    pub iot_id: String,
    pub page_no: u32,
    pub page_size: u32,
}

/// One page of `querybydevice` (UNVERIFIED names: aliases cover the plausible spellings).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RosterPage {
    #[serde(default)]
    pub iot_id: Option<String>,
    /// Signed, so a negative total is reported as such rather than as an unreadable page.
    #[serde(default, alias = "userTotal")]
    pub user_list_total: Option<i64>,
    /// The other name of the total; both may be present (they must agree).
    #[serde(default)]
    pub total: Option<i64>,
    #[serde(default, alias = "pageNo")]
    pub user_list_page_no: Option<u32>,
    #[serde(default, alias = "pageSize")]
    pub user_list_page_size: Option<u32>,
    #[serde(default, alias = "list", alias = "data", alias = "userlist")]
    pub user_list: Vec<RosterItem>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RosterItem {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub sync_time: Option<String>,
}

/// Statuses that mean a delete was requested for the device (docs/cloud-api.md §2.2: our inference).
pub(crate) fn roster_status_is_revoked(status: Option<&str>) -> bool {
    matches!(status, Some(s) if s.eq_ignore_ascii_case("transferDeleted") || s.eq_ignore_ascii_case("deleteTimeout"))
}

/// The cloud's time format, `yyyy-MM-dd HH:mm:ss`.
const CLOUD_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// Parses a cloud time given the cloud's UTC offset; `None` for an empty string.
pub(crate) fn parse_cloud_time(s: &str, offset: Offset) -> Result<Option<Timestamp>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let dt = DateTime::strptime(CLOUD_TIME, s).map_err(|e| format!("time {s:?} is not yyyy-MM-dd HH:mm:ss: {e}"))?;
    offset
        .to_timestamp(dt)
        .map(Some)
        .map_err(|e| format!("time {s:?} is out of range: {e}"))
}

/// Formats an instant the way the cloud writes times, at the cloud's UTC offset.
#[cfg(any(test, feature = "sim"))]
pub(crate) fn format_cloud_time(t: Timestamp, offset: Offset) -> String {
    offset.to_datetime(t).strftime(CLOUD_TIME).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_time_round_trips_at_plus_eight() {
        let offset = Offset::from_hours(8).unwrap_or(Offset::UTC);
        let t = parse_cloud_time("2026-01-01 08:00:00", offset).unwrap().unwrap();
        assert_eq!(t.as_second(), 1_767_225_600);
        assert_eq!(format_cloud_time(t, offset), "2026-01-01 08:00:00");
        assert_eq!(parse_cloud_time("  ", offset), Ok(None));
        assert!(parse_cloud_time("2026/01/01", offset).is_err());
    }

    #[test]
    fn roster_page_accepts_alias_field_names() {
        let page: RosterPage =
            serde_json::from_str(r#"{"total":3,"pageNo":1,"list":[{"userId":"a","userType":"IDENTITY"}]}"#).unwrap();
        assert_eq!(page.total, Some(3));
        let both: RosterPage = serde_json::from_str(r#"{"total":3,"userListTotal":3,"userList":[]}"#).unwrap();
        assert_eq!((both.total, both.user_list_total), (Some(3), Some(3)));
        assert_eq!(page.user_list.len(), 1);
        assert!(roster_status_is_revoked(Some("transferDeleted")));
        assert!(!roster_status_is_revoked(Some("transferred")));
    }

    #[test]
    fn envelope_serialises_in_the_documented_shape() {
        let env = RequestEnvelope::new(
            "42",
            API_VER_IMAGE_GET,
            ImageGetParams {
                user_type: "OPEN".into(),
                user_id: "u-1001".into(),
                image_format: ImageFormat::Url,
            },
        );
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(
            json,
            r#"{"id":"42","version":"1.0","request":{"apiVer":"1.2.0"},"params":{"userType":"OPEN","userId":"u-1001","imageFormat":"URL"}}"#
        );
    }
}
