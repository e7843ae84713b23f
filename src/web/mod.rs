//! The browser terminal and HTTP API (axum): shared state, authentication
//! (an extractor), the Origin check, security headers, and the server.
//!
//! Submodules: `api` (JSON endpoints), `terminal` (the WebSocket terminal),
//! `assets` (the embedded page).

mod api;
mod assets;
mod listener;
mod oidc;
pub(crate) mod passkeys;
mod proxy;
mod sizing;
pub(crate) mod terminal;
mod viewers;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{token_path, Identity, LoginLimiter, TokenStore};
use crate::config::{Config, Live};
use crate::logins::Logins;
use crate::supervisor::Supervisor;

/// The login cookie's name.
pub const COOKIE: &str = "tmuxd_token";

/// Shared state of the web server; cloneable handle.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    /// Replaced on reload. std lock: only cloned out, never held.
    config: Live,
    pub supervisor: Supervisor,
    pub tokens: TokenStore,
    /// Browser logins (the cookie's server side).
    pub logins: Logins,
    pub limiter: LoginLimiter,
    /// Open terminals per session id. std mutex: never held across `.await`.
    viewers: Mutex<viewers::ViewerCounts>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    /// The email bridge, when `[mail]` is configured.
    pub bridge: Option<crate::mail::Bridge>,
    /// `[web.proxy_auth]`'s shared secret.
    proxy_secret: proxy::ProxySecret,
    /// OpenID Connect sign-ins in progress.
    pub oidc: crate::oidc::Oidc,
    /// Registered passkeys and open challenges.
    pub passkeys: crate::passkeys::Passkeys,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        config: Live,
        supervisor: Supervisor,
        bridge: Option<crate::mail::Bridge>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> AppState {
        let state_dir = config.get().state_dir.clone();
        let proxy_secret = proxy::ProxySecret::load(&config.get());
        AppState(Arc::new(Inner {
            proxy_secret,
            oidc: crate::oidc::Oidc::default(),
            passkeys: crate::passkeys::Passkeys::load(state_dir.join("passkeys.json")),
            tokens: TokenStore::new(token_path(&state_dir)),
            logins: Logins::load(state_dir.join("logins.json")),
            // 20 failures per address per minute.
            limiter: LoginLimiter::new(Duration::from_secs(60), 20),
            config,
            supervisor,
            viewers: Mutex::new(viewers::ViewerCounts::default()),
            cancel,
            tracker,
            bridge,
        }))
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Checks `token` from `addr`; failures count against `addr` (a valid
    /// token is never refused for others' failures).
    /// Returns who it is and the token's public id.
    pub fn authenticate(&self, token: &str, addr: IpAddr) -> Result<(Identity, String), ApiError> {
        if let Some(found) = self.tokens.verify_with_id(token) {
            return Ok(found);
        }
        let claimed = crate::auth::token_user(token);
        tracing::warn!(%addr, user = ?claimed.as_ref().map(|u| u.as_str()), "authentication failed");
        self.refuse(addr)
    }

    /// The caller of a request: the authenticating proxy's header (from
    /// `peer`), a bearer token, or a login cookie; failures count against
    /// the client's `addr`.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
        addr: IpAddr,
    ) -> Result<Identity, ApiError> {
        if let Some(named) = proxy::identify(&self.config(), &self.proxy_secret, headers, peer) {
            return named.or_else(|e| match e.status {
                StatusCode::UNAUTHORIZED => self.refuse(addr),
                _ => Err(e),
            });
        }
        match presented_token(headers) {
            Some((token, AuthVia::Bearer)) => self.authenticate(&token, addr).map(|(i, _)| i),
            Some((cookie, AuthVia::Cookie)) => match self.logins.identity(&cookie, &self.tokens) {
                Some(identity) => Ok(identity),
                None => {
                    tracing::warn!(%addr, "unknown or ended login cookie");
                    self.refuse(addr)
                }
            },
            None => Err(ApiError::unauthorized()),
        }
    }

    /// A failed authentication from `addr`: 401, or 429 past the limit.
    pub(crate) fn refuse<T>(&self, addr: IpAddr) -> Result<T, ApiError> {
        match self.limiter.failed(addr) {
            Ok(()) => Err(ApiError::unauthorized()),
            Err(wait) => {
                tracing::warn!(%addr, "failed-login limit hit");
                Err(ApiError::too_many(wait))
            }
        }
    }

    /// Whether the request authenticates by what a browser sends on its
    /// own (the login cookie, or the proxy's identity header): our page,
    /// as far as answering goes, and only with our Origin for changes.
    pub fn ambient(&self, headers: &HeaderMap) -> bool {
        presented_token(headers).is_some_and(|(_, via)| via == AuthVia::Cookie)
            || proxy::names_someone(&self.config(), headers)
    }

    /// Whether `origin` may make state-changing requests and open terminals:
    /// the server's own origin (scheme + Host) or a configured one.
    fn origin_allowed(&self, origin: &str, headers: &HeaderMap) -> bool {
        let config = self.config();
        let scheme = if config.web.tls_proxy {
            "https"
        } else {
            "http"
        };
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("{scheme}://{host}"));
        own.iter()
            .chain(config.web.origins.iter())
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }
}

/// An API error: status and a fixed, user-facing message as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "not authenticated")
    }
    fn too_many(wait: Duration) -> ApiError {
        ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later",
            )
        }
    }
    /// Logs `detail` and answers a fixed text.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs().max(1).to_string();
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs).expect("digits"),
            );
        }
        r
    }
}

/// How a request authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthVia {
    Bearer,
    Cookie,
}

/// The authenticated caller: `Authorization: Bearer TOKEN` or the cookie.
pub struct Auth(pub Identity);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let addr = client_addr(&parts.headers, peer, state);
        state
            .identify(&parts.headers, peer.map(|p| p.ip()), addr)
            .map(Auth)
    }
}

/// The token a request carries, and how.
pub fn presented_token(headers: &HeaderMap) -> Option<(String, AuthVia)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v
            .strip_prefix("Bearer ")
            .map(|t| (t.trim().to_owned(), AuthVia::Bearer));
    }
    cookie(headers, COOKIE).map(|t| (t, AuthVia::Cookie))
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The client's address: the peer, or behind a TLS proxy at one of
/// `[web] trusted_proxies` the last address it appended to `X-Forwarded-For`.
pub fn client_addr(headers: &HeaderMap, peer: Option<SocketAddr>, state: &AppState) -> IpAddr {
    let peer = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let config = state.config();
    if config.web.tls_proxy && config.web.trusted_proxies.contains(&peer) {
        if let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return forwarded;
        }
    }
    peer
}

/// Refuses cross-origin state changes and WebSocket upgrades (403) before
/// any handler runs, and adds security headers to every response.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if is_upgrade || changes_state {
        match headers
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or(""))
        {
            Some(origin) if !state.origin_allowed(origin, headers) => {
                tracing::warn!(origin, path = %request.uri().path(), "foreign origin refused");
                return ApiError::new(StatusCode::FORBIDDEN, "origin not allowed").into_response();
            }
            Some(_) => {}
            // Browsers always send Origin on these; a cookie without one
            // is not a request our page made.
            None if changes_state && state.ambient(headers) => {
                return ApiError::new(StatusCode::FORBIDDEN, "origin required").into_response();
            }
            None => {}
        }
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            // 'wasm-unsafe-eval': the transcript player's terminal emulator
            // is WebAssembly (it allows compiling wasm, not eval).
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; img-src 'self' data:; font-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/app.css", get(assets::style))
        .route("/assets/icon.svg", get(assets::icon))
        .route("/manifest.webmanifest", get(assets::manifest))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route("/api/auth", get(api::auth_ways))
        .route(
            "/api/passkeys/register/start",
            post(passkeys::register_start),
        )
        .route(
            "/api/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .route("/api/passkeys/login/start", post(passkeys::login_start))
        .route("/api/passkeys/login/finish", post(passkeys::login_finish))
        .route("/api/passkeys/reauth/start", post(passkeys::reauth_start))
        .route("/api/passkeys/reauth/finish", post(passkeys::reauth_finish))
        .route("/auth/oidc/login", get(oidc::login))
        .route(crate::config::OIDC_CALLBACK, get(oidc::callback))
        .route("/api/sessions", get(api::list).post(api::create))
        .route(
            "/api/sessions/{user}/{session}",
            axum::routing::delete(api::delete),
        )
        .route("/api/sessions/{user}/{session}/input", post(api::input))
        .route("/api/sessions/{user}/{session}/answer", post(api::answer))
        .route("/api/sessions/{user}/{session}/restart", post(api::restart))
        .route(
            "/api/sessions/{user}/{session}/transcript",
            get(api::transcript),
        )
        .route("/api/sessions/{user}/{session}/history", get(api::history))
        .route(
            "/api/sessions/{user}/{session}/files",
            get(api::files).post(api::upload),
        )
        .route(
            "/api/sessions/{user}/{session}/snapshots",
            get(api::snapshots::list).post(api::snapshots::take),
        )
        .route(
            "/api/sessions/{user}/{session}/snapshots/{snapshot}/rollback",
            post(api::snapshots::rollback),
        )
        .route(
            "/api/sessions/{user}/{session}/diff",
            get(api::snapshots::diff),
        )
        .route("/api/events", get(api::events))
        .route("/api/cluster/sessions", get(api::cluster::node_sessions))
        .route("/api/mail/log", get(api::mail_log))
        .route("/api/mail/events", get(api::mail_events))
        .route("/api/mail/pending", get(api::mail_pending))
        .route("/api/mail/pending/{id}/confirm", post(api::mail_confirm))
        .route("/api/mail/pending/{id}/cancel", post(api::mail_cancel))
        .route("/ws/sessions/{user}/{session}", get(terminal::upgrade))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .with_state(state)
}

/// Binds `[web] listen`; a failure names the key, the config and the fix.
pub async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = config.web.listen;
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let set = |value: String| {
            format!(
                "{}: web.listen = \"{value}\"",
                crate::config::problems_fix(&config.origin, "web.listen")
            )
        };
        let fix = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another program (another tmuxd?) listens there: stop it, or {}",
                set(format!("{}:{}", addr.ip(), addr.port().wrapping_add(1)))
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "ports under 1024 need root: {}",
                set(format!("{}:7681", addr.ip()))
            ),
            _ => crate::config::problems_fix(&config.origin, "web.listen"),
        };
        anyhow::anyhow!(
            "cannot listen on {addr} ([web] listen): {}; {fix}",
            crate::config::io_reason(&e)
        )
    })
}

/// Serves until `state.cancel`; open terminals get a close frame.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) {
    let app = router(state.clone());
    listener::serve(listener, state, app).await;
}

/// Answers 408 when a request (its body included) takes longer than
/// `[web] request_timeout_s`; upgrades and streamed bodies are answered
/// before that and are not cut.
async fn request_deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config().web.bounds.request_timeout;
    // An upload's body may take longer; it is cut when it sends nothing
    // for a while instead (crate::workspace::UPLOAD_IDLE).
    if request.method() == axum::http::Method::POST && request.uri().path().ends_with("/files") {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(r) => r,
        Err(_) => {
            crate::metrics::limit_refused("request_timeout");
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "the request took too long").into_response()
        }
    }
}
