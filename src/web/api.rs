//! The JSON HTTP API: login, the caller's identity, and sessions (list,
//! create, delete, type into). Errors answer fixed text; details are logged.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{client_addr, ApiError, AppState, Auth, AuthVia, COOKIE};
use crate::auth::{Identity, Role};
use crate::exit::ExitInfo;
use crate::names::{Name, SessionId};
use crate::session::{SessionError, SessionInfo, State as SessionState};

/// A session as the API shows it.
#[derive(Serialize)]
pub struct SessionView {
    id: String,
    user: String,
    session: String,
    state: SessionState,
    /// Derived from the output: running, idle, waiting, exited.
    agent_state: Option<&'static str>,
    agent_pid: Option<u32>,
    viewers: usize,
    attached_clients: u32,
    created: Option<u64>,
    last_activity: Option<u64>,
    restarts: u32,
    last_exit: Option<ExitInfo>,
}

fn view(state: &AppState, info: SessionInfo) -> SessionView {
    let (user, session) = info.id.split_once('/').unwrap_or((&info.id, ""));
    let agent_state = info
        .id
        .parse::<SessionId>()
        .ok()
        .and_then(|id| state.supervisor.recorder()?.state(&id))
        .map(|s| s.name());
    SessionView {
        agent_state,
        user: user.to_owned(),
        session: session.to_owned(),
        state: info.state,
        agent_pid: info.agent_pid,
        viewers: state.viewer_count(&info.id),
        attached_clients: info.attached_clients,
        created: info.created,
        last_activity: info.last_activity,
        restarts: info.restarts,
        last_exit: info.last_exit,
        id: info.id,
    }
}

/// Maps session errors to answers. Another user's session is answered
/// exactly like one that does not exist.
fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::NoSuchSession(id) => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no such session {id}"))
        }
        SessionError::NoSuchUser(u) => {
            ApiError::new(StatusCode::NOT_FOUND, format!("no such session {u}/main"))
        }
        SessionError::AlreadyExists(id) => {
            ApiError::new(StatusCode::CONFLICT, format!("session {id} already exists"))
        }
        SessionError::AgentNotRunning(id) => ApiError::new(
            StatusCode::CONFLICT,
            format!("the agent of {id} is not running"),
        ),
        SessionError::BadInput(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        SessionError::Tmux(e @ crate::tmux::TmuxError::Timeout(..)) => {
            tracing::warn!(error = %e, "tmux server not answering");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the session's tmux server is not answering; try again later",
            )
        }
        e @ (SessionError::Tmux(_) | SessionError::Io(_)) => ApiError::internal(e),
    }
}

/// Parses URL names; tmux is never called with a bad one.
fn path_id(user: &str, session: &str) -> Result<SessionId, ApiError> {
    let user =
        Name::new(user).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let session =
        Name::new(session).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(SessionId::new(user, session))
}

/// Checks that `identity` may act on `id` (`write`: type, create, kill).
pub fn authorize(identity: &Identity, id: &SessionId, write: bool) -> Result<(), ApiError> {
    if !identity.can_view(&id.user) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such session {id}"),
        ));
    }
    if write && !identity.can_write(&id.user) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token is read-only",
        ));
    }
    Ok(())
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {}", e.body_text()),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    format: Option<String>,
    since: Option<String>,
    grep: Option<String>,
}

/// `GET .../transcript?format=raw|text|asciicast&since=TIME&grep=RE`, streamed.
pub async fn transcript(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
    query: Result<axum::extract::Query<TranscriptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::transcript::{export_stream, parse_since, ExportOptions, Format};
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, false)?;
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let format: Format = q.format.as_deref().unwrap_or("text").parse().map_err(bad)?;
    let since_ms = q
        .since
        .as_deref()
        .map(|s| parse_since(s, crate::transcript::now().0))
        .transpose()
        .map_err(bad)?;
    let grep = q
        .grep
        .as_deref()
        .filter(|g| !g.is_empty())
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| bad(format!("invalid grep pattern: {e}")))?;
    if grep.is_some() && format != Format::Text {
        return Err(bad("grep works with format=text only".into()));
    }
    let log = crate::control::transcript_log(&state.supervisor, &id)
        .await
        .map_err(session_error)?;
    let chunks = export_stream(log, format, ExportOptions { since_ms, grep });
    let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk.map_err(std::io::Error::other), rx))
    });
    let content_type = match format {
        Format::Raw => "application/octet-stream",
        Format::Text => "text/plain; charset=utf-8",
        Format::Asciicast => "application/x-asciicast",
    };
    let mut r = axum::body::Body::from_stream(stream).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(r)
}

/// Liveness (it answers) and readiness (sessions adopted, listeners up).
pub async fn healthz(State(state): State<AppState>) -> Response {
    let ready = crate::metrics::COUNTERS
        .ready
        .load(std::sync::atomic::Ordering::Relaxed);
    let body = serde_json::json!({
        "status": if ready { "ok" } else { "starting" },
        "live": true,
        "ready": ready,
        "users": state.config().users.len(),
        "recording": state.supervisor.recorder().is_some(),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus text format. No secrets and no session names: counts only.
pub async fn metrics(State(state): State<AppState>) -> Response {
    use crate::metrics::{get, Exposition, COUNTERS};
    let mut by_state: std::collections::BTreeMap<&'static str, u64> =
        ["starting", "running", "exited", "stopped"]
            .into_iter()
            .map(|k| (k, 0))
            .collect();
    let mut agent_states: std::collections::BTreeMap<&'static str, u64> =
        ["running", "idle", "waiting", "exited"]
            .into_iter()
            .map(|k| (k, 0))
            .collect();
    let mut viewers = 0u64;
    let servers = state.supervisor.servers();
    let lists = futures_util::future::join_all(servers.iter().map(|s| s.list())).await;
    for listed in lists {
        let Ok(list) = listed else {
            continue;
        };
        for s in list {
            let key = match s.state {
                SessionState::Starting => "starting",
                SessionState::Running => "running",
                SessionState::Exited => "exited",
                SessionState::Stopped => "stopped",
            };
            *by_state.entry(key).or_default() += 1;
            viewers += state.viewer_count(&s.id) as u64;
            if let Some(a) =
                s.id.parse::<SessionId>()
                    .ok()
                    .and_then(|id| state.supervisor.recorder()?.state(&id))
            {
                *agent_states.entry(a.name()).or_default() += 1;
            }
        }
    }
    let labelled =
        |label: &str, m: std::collections::BTreeMap<&'static str, u64>| -> Vec<(String, u64)> {
            m.into_iter()
                .map(|(k, v)| (format!("{label}=\"{k}\""), v))
                .collect()
        };
    let one = |v: u64| vec![(String::new(), v)];
    let mut e = Exposition::default();
    e.family(
        "tmuxd_sessions",
        "gauge",
        "Sessions by tmux state.",
        &labelled("state", by_state),
    );
    e.family(
        "tmuxd_agents",
        "gauge",
        "Agents by state derived from their output.",
        &labelled("state", agent_states),
    );
    e.family(
        "tmuxd_viewers",
        "gauge",
        "Open browser terminals.",
        &one(viewers),
    );
    e.family(
        "tmuxd_viewer_bytes_sent_total",
        "counter",
        "Terminal bytes relayed to viewers.",
        &one(get(&COUNTERS.bytes_to_viewers)),
    );
    e.family(
        "tmuxd_viewer_bytes_received_total",
        "counter",
        "Keystroke bytes relayed from viewers.",
        &one(get(&COUNTERS.bytes_from_viewers)),
    );
    e.family(
        "tmuxd_agent_restarts_total",
        "counter",
        "Agents restarted after they exited.",
        &one(get(&COUNTERS.agent_restarts)),
    );
    e.family(
        "tmuxd_transcript_bytes_total",
        "counter",
        "Output bytes stored in transcripts.",
        &one(get(&COUNTERS.transcript_bytes)),
    );
    let lag = state
        .supervisor
        .recorder()
        .map(|r| r.total_backlog())
        .unwrap_or(0);
    e.family(
        "tmuxd_transcript_ingest_lag_bytes",
        "gauge",
        "Spooled output not yet stored.",
        &one(lag),
    );
    e.family(
        "tmuxd_mail_decisions_total",
        "counter",
        "Email bridge decisions by kind (rejected, pending, confirmed, executed, ...).",
        &crate::metrics::mail_decisions(),
    );
    e.family(
        "tmuxd_connections",
        "gauge",
        "Open HTTP connections.",
        &one(get(&COUNTERS.connections)),
    );
    let config = state.config();
    let b = config.web.bounds;
    e.family(
        "tmuxd_limit",
        "gauge",
        "Configured caps ([web] max_*, [daemon] max_sessions_per_user).",
        &labelled(
            "limit",
            [
                ("connections_per_address", b.max_connections_per_address),
                ("viewers_per_session", b.max_viewers_per_session),
                ("viewers_per_user", b.max_viewers_per_user),
                ("sessions_per_user", config.max_sessions_per_user),
            ]
            .into_iter()
            .map(|(k, v)| (k, v as u64))
            .collect(),
        ),
    );
    e.family(
        "tmuxd_limit_refusals_total",
        "counter",
        "Connections and requests refused by a cap or timeout, by limit.",
        &crate::metrics::limit_refusals(),
    );
    let mut r = e.finish().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    token: String,
}

fn login_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config().web.tls_proxy {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is ASCII")
}

/// Turns a token into the login cookie.
pub async fn login(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let addr = client_addr(&parts.headers, peer, &state);
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?;
    let body: LoginBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))?;
    let (identity, token_id) = state.authenticate(body.token.trim(), addr)?;
    // The cookie is a login of its own, never the token: logging out ends
    // it, and revoking the token ends it too.
    let cookie = state
        .logins
        .create(token_id)
        .await
        .map_err(|e| ApiError::internal(format_args!("cannot store the login: {e}")))?;
    tracing::info!(user = %identity.user, role = ?identity.role, %addr, "logged in");
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        login_cookie(&state, &cookie, crate::logins::LOGIN_TTL_S),
    );
    Ok(r)
}

/// Ends the login the cookie carries, and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some((cookie, AuthVia::Cookie)) = super::presented_token(&headers) {
        if let Err(e) = state.logins.remove(&cookie).await {
            return ApiError::internal(format_args!("cannot store the logout: {e}"))
                .into_response();
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, login_cookie(&state, "", 0));
    r
}

#[derive(Serialize)]
pub struct Me {
    user: String,
    role: Role,
}

pub async fn me(Auth(identity): Auth) -> Json<Me> {
    Json(Me {
        user: identity.user.to_string(),
        role: identity.role,
    })
}

/// The caller's sessions (every user's for an admin).
pub async fn list(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let config = state.config();
    let servers = config
        .users
        .iter()
        .filter(|u| identity.can_view(&u.name))
        .map(|u| state.supervisor.server(&u.name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(session_error)?;
    // Every user's server at once: one that does not answer costs its
    // own timeout, not the sum, and hides only its own sessions.
    let lists = futures_util::future::join_all(servers.iter().map(|s| s.list())).await;
    let mut out = Vec::new();
    for (server, listed) in servers.iter().zip(lists) {
        match listed {
            Ok(sessions) => out.extend(sessions.into_iter().map(|s| view(&state, s))),
            Err(e) if servers.len() > 1 => {
                tracing::warn!(user = %server.user.name, error = %e, "cannot list sessions; leaving them out");
            }
            Err(e) => return Err(session_error(e)),
        }
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// `USER/SESSION`, or just `SESSION` for the caller's own user.
    id: String,
}

pub async fn create(
    State(state): State<AppState>,
    Auth(identity): Auth,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let raw = if body.id.contains('/') {
        body.id.clone()
    } else {
        format!("{}/{}", identity.user, body.id)
    };
    let id: SessionId = raw.parse().map_err(|e: crate::names::NameError| {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    })?;
    authorize(&identity, &id, true)?;
    let info = state.supervisor.create(&id).await.map_err(session_error)?;
    tracing::info!(session = %id, by = %identity.user, "session created over HTTP");
    Ok((StatusCode::CREATED, Json(view(&state, info))).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    state.supervisor.kill(&id).await.map_err(session_error)?;
    tracing::info!(session = %id, by = %identity.user, "session killed over HTTP");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputBody {
    text: String,
    #[serde(default = "yes")]
    enter: bool,
}

fn yes() -> bool {
    true
}

pub async fn input(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
    body: Result<Json<InputBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    let body = json_body(body)?;
    state
        .supervisor
        .send(
            &id,
            &body.text,
            body.enter,
            &format!("api:{}", identity.user),
        )
        .await
        .map_err(session_error)?;
    tracing::info!(session = %id, by = %identity.user, bytes = body.text.len(), "input over HTTP");
    Ok(StatusCode::NO_CONTENT)
}

fn bridge(state: &AppState) -> Result<&crate::mail::Bridge, ApiError> {
    state
        .bridge
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the email bridge is not configured"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailLogQuery {
    limit: Option<usize>,
}

/// The caller's mail audit log, newest last (every user's for an admin).
pub async fn mail_log(
    State(state): State<AppState>,
    Auth(identity): Auth,
    query: Result<axum::extract::Query<MailLogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::mail::state::AuditEntry>>, ApiError> {
    let query = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bridge = bridge(&state)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let dir = bridge.store().dir().to_owned();
    let entries = tokio::task::spawn_blocking(move || {
        crate::mail::state::read_audit(&dir, limit, |e| {
            e.user
                .as_deref()
                .and_then(|u| crate::names::Name::new(u).ok())
                .is_some_and(|u| identity.can_view(&u))
        })
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?
    .map_err(|e| {
        tracing::error!(error = %e, "cannot read the mail audit log");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    Ok(Json(entries))
}

/// A pending confirmation as the page shows it (no token hash).
#[derive(Serialize)]
pub struct PendingView {
    id: String,
    session: String,
    command: String,
    flags: Vec<String>,
    from: String,
    expires_ms: u64,
}

/// The caller's commands waiting for confirmation.
pub async fn mail_pending(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Json<Vec<PendingView>>, ApiError> {
    let bridge = bridge(&state)?;
    let out = bridge
        .pending_for(&identity.user)
        .into_iter()
        .map(|p| PendingView {
            session: format!("{}/{}", p.user, p.session),
            command: p.action.describe(),
            flags: p.flags,
            from: p.thread.to,
            expires_ms: p.expires_ms,
            id: p.id,
        })
        .collect();
    Ok(Json(out))
}

/// Confirms one of the caller's pending commands.
pub async fn mail_confirm(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bridge = bridge(&state)?;
    if !identity.can_write(&identity.user) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "read-only token"));
    }
    bridge
        .confirm_web(&identity.user, &id, &format!("web:{}", identity.user))
        .map_err(|m| ApiError::new(StatusCode::NOT_FOUND, m))?;
    Ok(Json(serde_json::json!({ "confirmed": id })))
}
