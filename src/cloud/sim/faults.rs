//! The fake cloud's malformed-answer modes: roster walks that do not add up, bodies that are not the
//! envelope, per-user record patches, redirects, resets and answers that never end. Each mimics what
//! a misbehaving cloud, proxy or paging race produces (README, "Roster integrity").

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How the roster endpoint misbehaves (every page, until cleared).
#[derive(Debug, Clone, PartialEq)]
pub enum RosterFault {
    /// Every page lists nobody; the total stays true (`userList: []`, `userListTotal: 30`).
    EmptyPages,
    /// Page `page_no` lists nobody; the others are true.
    EmptyPage { page_no: u32 },
    /// Only the first `users` users are listed (page 1 holds 5, total 30).
    OnlyFirst { users: usize },
    /// Pages after the first start one user early, so the boundary user is listed twice.
    Overlap,
    /// The total grows by one on every page.
    TotalChanges,
    /// The total is this JSON value (negative, huge, a string…) under `userListTotal`.
    Total(Value),
    /// The total is given under `total` instead of `userListTotal` (and `both` keeps both).
    TotalNamed { both: bool },
    /// Full pages of new made-up users forever, with no total.
    Endless,
    /// Item `index` of page 1 is replaced by this JSON (an empty or missing `userId`).
    Item { index: usize, item: Value },
    /// `data` is this JSON (null, a string, a list…).
    Data(Value),
}

/// A whole-response fault for one API path (until cleared).
#[derive(Debug, Clone, PartialEq)]
pub enum BodyFault {
    /// HTTP 200 with exactly this body (invalid JSON, `code` missing or a string…).
    Raw(String),
    /// Sends part of a body, then resets the connection.
    ResetMidBody,
    /// Sends the headers and a first chunk, then nothing, never ending.
    Hang,
    /// This HTTP status with this `X-Ca-Error-Message` (403, 500, 503 storms; 400 signature).
    Status(u16, String),
}

/// Applies `fault` to a true roster page (`listed`: the users in the roster, as JSON items).
pub(crate) fn roster_page(fault: &RosterFault, listed: &[Value], page_no: u32, page_size: u32) -> Value {
    let size = page_size as usize;
    let skip = (page_no as usize).saturating_sub(1).saturating_mul(size);
    let take = |from: usize, pool: &[Value]| -> Vec<Value> { pool.iter().skip(from).take(size).cloned().collect() };
    let total = listed.len();
    let (items, total_value): (Vec<Value>, Value) = match fault {
        RosterFault::EmptyPages => (Vec::new(), json!(total)),
        RosterFault::EmptyPage { page_no: p } if *p == page_no => (Vec::new(), json!(total)),
        RosterFault::EmptyPage { .. } => (take(skip, listed), json!(total)),
        RosterFault::OnlyFirst { users } => (
            take(skip, listed.get(..(*users).min(total)).unwrap_or_default()),
            json!(total),
        ),
        RosterFault::Overlap => (
            take(skip.saturating_sub(usize::from(page_no > 1)), listed),
            json!(total),
        ),
        RosterFault::TotalChanges => (take(skip, listed), json!(total + page_no as usize)),
        RosterFault::Total(v) => (take(skip, listed), v.clone()),
        RosterFault::TotalNamed { both } => {
            let items = take(skip, listed);
            let mut page = json!({"total": total, "pageNo": page_no, "list": items});
            if *both {
                page["userListTotal"] = json!(total);
            }
            return page;
        }
        RosterFault::Endless => {
            let items: Vec<Value> = (0..size)
                .map(|i| json!({"userId": format!("endless-{page_no}-{i}"), "userType": "IDENTITY"}))
                .collect();
            return json!({"userListPageNo": page_no, "userList": items});
        }
        RosterFault::Item { index, item } => {
            let mut items = take(skip, listed);
            if page_no == 1
                && let Some(slot) = items.get_mut(*index)
            {
                *slot = item.clone();
            }
            (items, json!(total))
        }
        RosterFault::Data(v) => return v.clone(),
    };
    json!({
        "userListTotal": total_value,
        "userListPageNo": page_no,
        "userListPageSize": page_size,
        "userList": items,
    })
}

/// The response for a whole-body fault.
pub(crate) fn body_response(fault: &BodyFault, id: &str) -> Response {
    match fault {
        BodyFault::Raw(body) => (StatusCode::OK, [("content-type", "application/json")], body.clone()).into_response(),
        BodyFault::ResetMidBody => {
            let head = format!("{{\"id\":\"{id}\",\"code\":200,\"data\":{{\"userList\":[");
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from(head)),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset mid-body",
                )),
            ];
            let mut resp = Body::from_stream(futures::stream::iter(chunks)).into_response();
            resp.headers_mut()
                .insert("content-type", axum::http::HeaderValue::from_static("application/json"));
            resp
        }
        BodyFault::Hang => {
            let first = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"id\":")) });
            let never = futures::stream::unfold((), |()| async {
                // Far longer than any request timeout; the client must give up on its own.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
            });
            Body::from_stream(futures::StreamExt::chain(first, never)).into_response()
        }
        BodyFault::Status(status, message) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [
                    ("x-ca-error-message", message.clone()),
                    ("x-ca-request-id", crate::cloud::fresh_id()),
                ],
                String::new(),
            )
                .into_response()
        }
    }
}
