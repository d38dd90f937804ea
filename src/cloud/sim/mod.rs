//! The fake Alibaba IoT face-access cloud: a real axum HTTP server with the four endpoints the agent
//! uses, the gateway's APP-signature check, deterministic fault injection, and a test inspection API.

mod faults;
mod images;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use jiff::tz::Offset;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::sign;
use super::wire::{self, ImageFormat};
use crate::domain::{Policy, Secret, UserKey};

pub use faults::{BodyFault, RosterFault};
pub use images::{HEIGHT_PX as IMAGE_HEIGHT_PX, WIDTH_PX as IMAGE_WIDTH_PX, face_jpeg};

/// An injected failure, as the real gateway or backend would produce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 Service Unavailable.
    ServerError,
    /// HTTP 403 with `X-Ca-Error-Message: Request Limited`.
    RequestLimited,
    /// HTTP 200 with a truncated JSON body.
    MalformedJson,
    /// HTTP 200, business code 20056 Hsf Invoke Timeout.
    HsfTimeout,
}

/// Per-request probabilities of each fault (0.0–1.0), drawn from the seeded generator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    pub server_error: f64,
    pub request_limited: f64,
    pub malformed_json: f64,
    pub hsf_timeout: f64,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub app_key: String,
    pub app_secret: Secret,
    pub device_iot_id: String,
    pub user_type: String,
    /// Generated users `u-0001` … `u-NNNN`.
    pub users: usize,
    pub seed: u64,
    pub latency_ms: u64,
    pub faults: FaultRates,
    /// The cloud's UTC offset for `expireTime` strings.
    pub timezone: Offset,
    /// Users whose image is served as bytes that are not an image.
    pub corrupt_image_users: Vec<String>,
    /// Users whose image is `oversize_image_bytes` long.
    pub oversize_image_users: Vec<String>,
    pub oversize_image_bytes: usize,
}

impl SimConfig {
    pub fn new(app_key: impl Into<String>, app_secret: Secret, users: usize) -> Self {
        Self {
            app_key: app_key.into(),
            app_secret,
            device_iot_id: "sim-device-0001".into(),
            user_type: "IDENTITY".into(),
            users,
            seed: 1,
            latency_ms: 0,
            faults: FaultRates::default(),
            timezone: Offset::constant(8),
            corrupt_image_users: Vec::new(),
            oversize_image_users: Vec::new(),
            oversize_image_bytes: 4 * 1024 * 1024,
        }
    }
}

/// One person in the fake cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    pub key: UserKey,
    pub name: String,
    pub status: Option<String>,
    pub expire_at: Option<Timestamp>,
    pub policy: Policy,
    /// Bumped whenever the image changes; part of `faceId`.
    pub face_version: u32,
    pub has_face: bool,
    pub in_roster: bool,
    /// Bytes served instead of the generated JPEG (corrupt or oversize images).
    pub image_override: Option<Vec<u8>>,
}

/// A `/entrance/paas/user/modify` call the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyCall {
    pub identity_id: String,
    pub name: Option<String>,
    pub ext_info: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

struct SimState {
    app_key: String,
    secret: Secret,
    device_iot_id: String,
    timezone: Offset,
    users: Vec<SimUser>,
    nonces: HashSet<String>,
    rng: StdRng,
    rates: FaultRates,
    latency_ms: u64,
    queued: HashMap<String, VecDeque<Fault>>,
    page_faults: HashMap<u32, Fault>,
    requests: HashMap<String, u64>,
    image_bytes_served: u64,
    deletes: Vec<UserKey>,
    modifies: Vec<ModifyCall>,
    image_cache: HashMap<(String, u32), Arc<Vec<u8>>>,
    url_counter: u64,
    base_url: String,
    roster_ignores_page_no: bool,
    roster_fault: Option<RosterFault>,
    body_faults: HashMap<String, BodyFault>,
    face_patches: HashMap<String, Value>,
    signature_status: StatusCode,
}

type Shared = Arc<Mutex<SimState>>;

fn lock(s: &Shared) -> MutexGuard<'_, SimState> {
    // A panicking test thread must not wedge the server for the others.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn generate_users(cfg: &SimConfig) -> Vec<SimUser> {
    const FIRST: [&str; 8] = ["Ann", "Bo", "Chen", "Dana", "Eli", "Fang", "Gus", "Hui"];
    const LAST: [&str; 6] = ["Li", "Wang", "Smith", "Zhao", "Novak", "Kim"];
    (1..=cfg.users)
        .map(|n| SimUser {
            key: UserKey::new(cfg.user_type.clone(), format!("u-{n:04}")),
            name: format!(
                "{} {}",
                FIRST.get(n % FIRST.len()).unwrap_or(&"X"),
                LAST.get(n % LAST.len()).unwrap_or(&"Y")
            ),
            status: Some(if n % 7 == 0 { "toBeTransferred" } else { "transferred" }.to_string()),
            // A few users expire, years from now, so nothing expires during a test.
            expire_at: (n % 5 == 0)
                .then(|| Timestamp::from_second(1_893_456_000 + n as i64 * 3600).ok())
                .flatten(),
            policy: Policy::Permission,
            face_version: 1,
            has_face: true,
            in_roster: true,
            image_override: None,
        })
        .collect()
}

/// Starts fake clouds.
pub struct SimCloud;

impl SimCloud {
    pub async fn start(listen: SocketAddr, cfg: SimConfig) -> Result<SimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind { addr: listen, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: listen, source })?;
        let mut users = generate_users(&cfg);
        for u in &mut users {
            if cfg.corrupt_image_users.contains(&u.key.user_id) {
                u.image_override = Some(b"this is not an image".to_vec());
            }
            if cfg.oversize_image_users.contains(&u.key.user_id) {
                u.image_override = Some(oversize(cfg.oversize_image_bytes));
            }
        }
        let state = Arc::new(Mutex::new(SimState {
            app_key: cfg.app_key,
            secret: cfg.app_secret,
            device_iot_id: cfg.device_iot_id,
            timezone: cfg.timezone,
            users,
            nonces: HashSet::new(),
            rng: StdRng::seed_from_u64(cfg.seed),
            rates: cfg.faults,
            latency_ms: cfg.latency_ms,
            queued: HashMap::new(),
            page_faults: HashMap::new(),
            requests: HashMap::new(),
            image_bytes_served: 0,
            deletes: Vec::new(),
            modifies: Vec::new(),
            image_cache: HashMap::new(),
            url_counter: 0,
            roster_ignores_page_no: false,
            roster_fault: None,
            body_faults: HashMap::new(),
            face_patches: HashMap::new(),
            signature_status: StatusCode::UNAUTHORIZED,
            base_url: format!("http://{addr}"),
        }));
        let app = Router::new()
            .route(wire::PATH_ROSTER, post(api))
            .route(wire::PATH_IMAGE_GET, post(api))
            .route(wire::PATH_IMAGE_DELETE, post(api))
            .route(wire::PATH_USER_MODIFY, post(api))
            .route("/images/{file}", get(image_file))
            .route("/redirect/{hops}/{file}", get(redirect))
            .route("/offhost/{file}", get(offhost))
            .route(PATH_STATS, get(stats))
            .with_state(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "fake cloud server stopped");
            }
        });
        tracing::info!(%addr, "fake cloud listening");
        Ok(SimHandle {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

fn oversize(len: usize) -> Vec<u8> {
    let mut v = vec![0x55u8; len];
    if let Some(head) = v.get_mut(..3) {
        head.copy_from_slice(&[0xFF, 0xD8, 0xFF]);
    }
    v
}

/// A running fake cloud: its address, shutdown, and the knobs tests turn.
pub struct SimHandle {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give the client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn with_user<R>(&self, user_id: &str, f: impl FnOnce(&mut SimUser) -> R) -> Option<R> {
        let mut s = lock(&self.state);
        s.users.iter_mut().find(|u| u.key.user_id == user_id).map(f)
    }

    /// A snapshot of every user the server knows (in or out of the roster).
    pub fn users(&self) -> Vec<SimUser> {
        lock(&self.state).users.clone()
    }

    /// Adds a user, or replaces the one with the same user id.
    pub fn upsert_user(&self, user: SimUser) {
        let mut s = lock(&self.state);
        match s.users.iter_mut().find(|u| u.key.user_id == user.key.user_id) {
            Some(existing) => *existing = user,
            None => s.users.push(user),
        }
    }

    /// Takes the user off the device roster (their face record stays). Returns whether they existed.
    pub fn remove_from_roster(&self, user_id: &str) -> bool {
        self.with_user(user_id, |u| u.in_roster = false).is_some()
    }

    pub fn set_status(&self, user_id: &str, status: Option<&str>) -> bool {
        self.with_user(user_id, |u| u.status = status.map(str::to_string))
            .is_some()
    }

    pub fn set_policy(&self, user_id: &str, policy: Policy) -> bool {
        self.with_user(user_id, |u| u.policy = policy).is_some()
    }

    pub fn set_expire(&self, user_id: &str, expire_at: Option<Timestamp>) -> bool {
        self.with_user(user_id, |u| u.expire_at = expire_at).is_some()
    }

    pub fn set_name(&self, user_id: &str, name: &str) -> bool {
        self.with_user(user_id, |u| u.name = name.to_string()).is_some()
    }

    /// Serves `bytes` as the user's image from now on (any bytes: corrupt or oversize on purpose).
    pub fn set_image(&self, user_id: &str, bytes: Vec<u8>) -> bool {
        self.with_user(user_id, |u| {
            u.image_override = Some(bytes);
            u.face_version += 1;
            u.has_face = true;
        })
        .is_some()
    }

    /// Replaces the user's image with a fresh generated face (a visible change of face).
    pub fn regenerate_image(&self, user_id: &str) -> bool {
        self.with_user(user_id, |u| {
            u.image_override = None;
            u.face_version += 1;
            u.has_face = true;
        })
        .is_some()
    }

    pub fn set_latency_ms(&self, latency_ms: u64) {
        lock(&self.state).latency_ms = latency_ms;
    }

    /// The next `times` requests to `path` fail with `fault`, then behaviour returns to normal.
    pub fn push_fault(&self, path: &str, fault: Fault, times: usize) {
        let mut s = lock(&self.state);
        let q = s.queued.entry(path.to_string()).or_default();
        q.extend(std::iter::repeat_n(fault, times));
    }

    /// Forgets the faults still queued for `path` by [`SimHandle::push_fault`].
    pub fn clear_faults(&self, path: &str) {
        lock(&self.state).queued.remove(path);
    }

    /// Every request for roster page `page_no` fails with `fault` (None clears it).
    pub fn set_roster_page_fault(&self, page_no: u32, fault: Option<Fault>) {
        let mut s = lock(&self.state);
        match fault {
            Some(f) => s.page_faults.insert(page_no, f),
            None => s.page_faults.remove(&page_no),
        };
    }

    /// Serve page 1 whatever `pageNo` asks for: what a gateway does when it does not know our (unverified)
    /// paging parameter names.
    pub fn set_roster_ignores_page_no(&self, ignore: bool) {
        lock(&self.state).roster_ignores_page_no = ignore;
    }

    /// The roster endpoint misbehaves this way from now on (`None`: answers truthfully again).
    pub fn set_roster_fault(&self, fault: Option<RosterFault>) {
        lock(&self.state).roster_fault = fault;
    }

    /// Every request on `path` gets this answer from now on (`None` clears it).
    pub fn set_body_fault(&self, path: &str, fault: Option<BodyFault>) {
        let mut s = lock(&self.state);
        match fault {
            Some(f) => s.body_faults.insert(path.to_string(), f),
            None => s.body_faults.remove(path),
        };
    }

    /// Fields merged into this user's `image/get` data (`{base}` in a string becomes the server's
    /// base URL): a bad `imageUrl`, `expireTime`, `policy`, `userName`… `Value::Null` clears it.
    pub fn set_face_patch(&self, user_id: &str, patch: Value) {
        let mut s = lock(&self.state);
        if patch.is_null() {
            s.face_patches.remove(user_id);
        } else {
            s.face_patches.insert(user_id.to_string(), patch);
        }
    }

    /// The HTTP status a bad signature gets (the real gateway answers 400 as well as 401).
    pub fn set_signature_refusal_status(&self, status: u16) {
        lock(&self.state).signature_status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    }

    /// Requests received on `path` (API paths, or `/images` for image downloads), signed or not.
    pub fn request_count(&self, path: &str) -> u64 {
        lock(&self.state).requests.get(path).copied().unwrap_or(0)
    }

    pub fn image_bytes_served(&self) -> u64 {
        lock(&self.state).image_bytes_served
    }

    pub fn deletes(&self) -> Vec<UserKey> {
        lock(&self.state).deletes.clone()
    }

    pub fn modifies(&self) -> Vec<ModifyCall> {
        lock(&self.state).modifies.clone()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn image_for(s: &mut SimState, user: &SimUser) -> Arc<Vec<u8>> {
    if let Some(bytes) = &user.image_override {
        return Arc::new(bytes.clone());
    }
    let key = (user.key.user_id.clone(), user.face_version);
    s.image_cache
        .entry(key)
        .or_insert_with(|| Arc::new(face_jpeg(&format!("{}/{}", user.key.user_id, user.face_version))))
        .clone()
}

fn envelope(id: &str, code: i64, message: Option<&str>, data: Value) -> Response {
    let body = json!({"id": id, "code": code, "message": message, "localizedMsg": message, "data": data});
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    let request_id = crate::cloud::fresh_id();
    (
        status,
        [
            ("x-ca-error-message", message.to_string()),
            ("x-ca-request-id", request_id),
        ],
        String::new(),
    )
        .into_response()
}

fn fault_response(fault: Fault, id: &str) -> Response {
    match fault {
        Fault::ServerError => gateway_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        Fault::RequestLimited => gateway_error(StatusCode::FORBIDDEN, "Request Limited"),
        Fault::MalformedJson => (
            StatusCode::OK,
            format!("{{\"id\":\"{id}\",\"code\":200,\"data\":{{\"user"),
        )
            .into_response(),
        Fault::HsfTimeout => envelope(id, 20056, Some("Hsf Invoke Timeout"), Value::Null),
    }
}

fn draw_fault(s: &mut SimState, path: &str, page_no: Option<u32>) -> Option<Fault> {
    if let Some(f) = s.queued.get_mut(path).and_then(VecDeque::pop_front) {
        return Some(f);
    }
    if let Some(f) = page_no.and_then(|p| s.page_faults.get(&p).copied()) {
        return Some(f);
    }
    let r = s.rates;
    let x: f64 = s.rng.random();
    let mut edge = 0.0;
    for (rate, fault) in [
        (r.server_error, Fault::ServerError),
        (r.request_limited, Fault::RequestLimited),
        (r.malformed_json, Fault::MalformedJson),
        (r.hsf_timeout, Fault::HsfTimeout),
    ] {
        edge += rate;
        if x < edge {
            return Some(fault);
        }
    }
    None
}

fn params<P: DeserializeOwned>(env: &Value) -> Result<P, String> {
    serde_json::from_value(env.get("params").cloned().unwrap_or(Value::Null)).map_err(|e| e.to_string())
}

async fn api(State(state): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let latency_ms = {
        let mut s = lock(&state);
        *s.requests.entry(path.clone()).or_default() += 1;
        s.latency_ms
    };
    if latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency_ms)).await;
    }
    let mut s = lock(&state);
    let look = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Err(e) = sign::verify("POST", &path, &body, look, &s.app_key, s.secret.expose()) {
        let message = match e {
            sign::VerifyError::SignatureMismatch { server_string_to_sign } => {
                format!("Invalid Signature, Server StringToSign:`{server_string_to_sign}`")
            }
            other => other.to_string(),
        };
        return gateway_error(s.signature_status, &message);
    }
    let nonce = look("x-ca-nonce").unwrap_or("").to_string();
    if nonce.is_empty() || !s.nonces.insert(nonce) {
        return gateway_error(StatusCode::BAD_REQUEST, "Invalid Nonce");
    }
    let Ok(env) = serde_json::from_slice::<Value>(&body) else {
        return gateway_error(StatusCode::BAD_REQUEST, "Request Format Error");
    };
    let id = env.get("id").and_then(Value::as_str).unwrap_or("").to_string();
    let page_no = (path == wire::PATH_ROSTER)
        .then(|| env.pointer("/params/pageNo").and_then(Value::as_u64))
        .flatten()
        .and_then(|p| u32::try_from(p).ok());
    if let Some(fault) = draw_fault(&mut s, &path, page_no) {
        return fault_response(fault, &id);
    }
    if let Some(fault) = s.body_faults.get(&path) {
        return faults::body_response(fault, &id);
    }
    let result = match path.as_str() {
        wire::PATH_ROSTER => roster(&s, &env),
        wire::PATH_IMAGE_GET => image_get(&mut s, &env),
        wire::PATH_IMAGE_DELETE => image_delete(&mut s, &env),
        wire::PATH_USER_MODIFY => user_modify(&mut s, &env),
        _ => Err((404, "service not found".to_string())),
    };
    match result {
        Ok(data) => envelope(&id, 200, None, data),
        Err((code, message)) => envelope(&id, code, Some(&message), Value::Null),
    }
}

type ApiResult = Result<Value, (i64, String)>;

fn roster(s: &SimState, env: &Value) -> ApiResult {
    let p: wire::RosterParams = params(env).map_err(|e| (460, format!("request parameter error: {e}")))?;
    if p.iot_id != s.device_iot_id {
        return Err((2000, format!("param invalid: unknown iotId {}", p.iot_id)));
    }
    if !(1..=100).contains(&p.page_size) || p.page_no == 0 {
        return Err((460, "pageSize should between 1-100".into()));
    }
    let listed: Vec<&SimUser> = s.users.iter().filter(|u| u.in_roster).collect();
    let page_no = if s.roster_ignores_page_no { 1 } else { p.page_no };
    let skip = (page_no as usize - 1).saturating_mul(p.page_size as usize);
    let item = |u: &&SimUser| json!({"userId": u.key.user_id, "userType": u.key.user_type, "userName": u.name, "status": u.status});
    if let Some(fault) = &s.roster_fault {
        let all: Vec<Value> = listed.iter().map(item).collect();
        return Ok(faults::roster_page(fault, &all, page_no, p.page_size));
    }
    let items: Vec<Value> = listed.iter().skip(skip).take(p.page_size as usize).map(item).collect();
    Ok(json!({
        "iotId": s.device_iot_id,
        "userListTotal": listed.len(),
        "userListPageNo": p.page_no,
        "userListPageSize": p.page_size,
        "userList": items,
    }))
}

fn find_user<'a>(s: &'a SimState, user_type: &str, user_id: &str) -> Result<&'a SimUser, (i64, String)> {
    s.users
        .iter()
        .find(|u| u.key.user_id == user_id && u.key.user_type == user_type && u.has_face)
        .ok_or((2405, "identity is not existed".to_string()))
}

fn image_get(s: &mut SimState, env: &Value) -> ApiResult {
    let p: wire::ImageGetParams = params(env).map_err(|e| (460, format!("request parameter error: {e}")))?;
    let user = find_user(s, &p.user_type, &p.user_id)?.clone();
    let mut data = json!({
        "faceId": format!("face-{}-v{}", user.key.user_id, user.face_version),
        "userId": user.key.user_id,
        "userType": user.key.user_type,
        "userName": user.name,
        "expireTime": user.expire_at.map(|t| wire::format_cloud_time(t, s.timezone)),
        "policy": match user.policy { Policy::Permission => "PERMISSION", Policy::Deny => "DENY" },
    });
    match p.image_format {
        ImageFormat::Url => {
            // Like OSS: a fresh signed query on every call, same object path.
            s.url_counter += 1;
            let url = format!(
                "{}/images/{}.jpg?Expires={}&Signature=sim{}",
                s.base_url,
                user.key.user_id,
                1_900_000_000 + s.url_counter,
                s.url_counter
            );
            data["imageUrl"] = json!(url);
        }
        ImageFormat::Base64 => {
            let bytes = image_for(s, &user);
            s.image_bytes_served += bytes.len() as u64;
            data["imageBase64"] = json!(B64.encode(bytes.as_slice()));
        }
    }
    if let (Some(Value::Object(patch)), Some(fields)) = (s.face_patches.get(&user.key.user_id), data.as_object_mut()) {
        for (k, v) in patch {
            let v = match v.as_str() {
                Some(text) => json!(text.replace("{base}", &s.base_url)),
                None => v.clone(),
            };
            fields.insert(k.clone(), v);
        }
    }
    Ok(data)
}

fn image_delete(s: &mut SimState, env: &Value) -> ApiResult {
    let p: wire::ImageDeleteParams = params(env).map_err(|e| (460, format!("request parameter error: {e}")))?;
    find_user(s, &p.user_type, &p.user_id)?;
    s.deletes.push(UserKey::new(p.user_type.clone(), p.user_id.clone()));
    if let Some(u) = s.users.iter_mut().find(|u| u.key.user_id == p.user_id) {
        u.has_face = false;
    }
    Ok(Value::Null)
}

fn user_modify(s: &mut SimState, env: &Value) -> ApiResult {
    let p: wire::UserModifyParams = params(env).map_err(|e| (460, format!("request parameter error: {e}")))?;
    if p.identity_id.is_empty() {
        return Err((460, "identityId is blank".into()));
    }
    if let (Some(name), Some(u)) = (&p.name, s.users.iter_mut().find(|u| u.key.user_id == p.identity_id)) {
        u.name = name.clone();
    }
    s.modifies.push(ModifyCall {
        identity_id: p.identity_id,
        name: p.name,
        ext_info: p.ext_info,
    });
    Ok(Value::Null)
}

/// Where the fake cloud serves its request counters (not part of the real API).
pub const PATH_STATS: &str = "/sim/stats";

/// The request counters of [`SimHandle::request_count`] and the image bytes served, as JSON
/// (`{"requests": {path: n}, "image_bytes_served": n}`), for benchmarks that run the fake cloud as
/// its own process (`scripts/bench-rss`). Not counted itself.
async fn stats(State(state): State<Shared>) -> Response {
    let s = lock(&state);
    axum::Json(json!({
        "requests": s.requests,
        "image_bytes_served": s.image_bytes_served,
    }))
    .into_response()
}

async fn image_file(State(state): State<Shared>, Path(file): Path<String>) -> Response {
    let mut s = lock(&state);
    *s.requests.entry("/images".to_string()).or_default() += 1;
    let user_id = file.strip_suffix(".jpg").unwrap_or(&file);
    let Some(user) = s.users.iter().find(|u| u.key.user_id == user_id && u.has_face).cloned() else {
        return (StatusCode::NOT_FOUND, "NoSuchKey").into_response();
    };
    let bytes = image_for(&mut s, &user);
    s.image_bytes_served += bytes.len() as u64;
    (StatusCode::OK, [("content-type", "image/jpeg")], bytes.to_vec()).into_response()
}

/// `/redirect/{hops}/{file}`: redirects `hops` more times, then to `/images/{file}`.
async fn redirect(Path((hops, file)): Path<(u32, String)>) -> Response {
    let location = match hops.checked_sub(1) {
        Some(left) => format!("/redirect/{left}/{file}"),
        None => format!("/images/{file}"),
    };
    (StatusCode::FOUND, [("location", location)], String::new()).into_response()
}

/// `/offhost/{file}`: redirects to the same image under the name `localhost`, a host the tests leave
/// off `image_hosts`.
async fn offhost(State(state): State<Shared>, Path(file): Path<String>) -> Response {
    let base = lock(&state).base_url.replace("127.0.0.1", "localhost");
    (
        StatusCode::FOUND,
        [("location", format!("{base}/images/{file}"))],
        String::new(),
    )
        .into_response()
}
