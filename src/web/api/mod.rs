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
use crate::recorder::AgentView;
use crate::session::{SessionError, SessionInfo, State as SessionState};

mod answer;
pub mod cluster;
mod events;
mod files;
mod health;
mod history;
mod login;
mod mail;
pub mod snapshots;

pub use answer::answer;
pub use events::{events, mail_events};
pub use files::{files, upload};
pub use health::{healthz, metrics};
pub use history::history;
pub use login::{auth_ways, login, logout, me, set_login};
pub use mail::{mail_cancel, mail_confirm, mail_log, mail_pending};

/// A session as the API shows it.
#[derive(Serialize)]
pub struct SessionView {
    id: String,
    user: String,
    session: String,
    state: SessionState,
    /// The agent's state, profile and question (`POST .../answer`).
    #[serde(flatten)]
    agent: AgentView,
    agent_pid: Option<u32>,
    viewers: usize,
    attached_clients: u32,
    created: Option<u64>,
    last_activity: Option<u64>,
    restarts: u32,
    last_exit: Option<ExitInfo>,
    /// The agent's program (`claude`, `codex`, `bash`).
    agent_name: String,
    /// The last lines of the agent's screen with text on them.
    preview: Vec<String>,
    /// While an exited agent waits out its restart backoff: when (Unix ms)
    /// it restarts (`POST .../restart` does it now).
    restart_due: Option<u64>,
    /// How the agent is sandboxed (`null`: not).
    sandbox: Option<crate::sandbox::Summary>,
}

/// Lines of the screen a dashboard card previews, and their length.
const PREVIEW_LINES: usize = 6;
const PREVIEW_CHARS: usize = 160;

fn preview(screen: &str) -> Vec<String> {
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(PREVIEW_LINES)..]
        .iter()
        .map(|l| l.chars().take(PREVIEW_CHARS).collect())
        .collect()
}

fn view(state: &AppState, info: SessionInfo) -> SessionView {
    let recorder = state.supervisor.recorder();
    let agent = recorder.map(|r| r.agent_view(&info.id)).unwrap_or_default();
    let screen = recorder.and_then(|r| r.screen_text(&info.id));
    let agent_name = state
        .config()
        .users
        .iter()
        .find(|u| u.name == info.id.user)
        .map(|u| crate::session::window_name(&u.command))
        .unwrap_or_default();
    SessionView {
        agent,
        agent_name,
        preview: screen.as_deref().map(preview).unwrap_or_default(),
        restart_due: state.supervisor.restart_due(&info.id),
        sandbox: info.sandbox.clone(),
        user: info.id.user.to_string(),
        session: info.id.session.to_string(),
        state: info.state,
        agent_pid: info.agent_pid,
        viewers: state.viewer_count(&info.id),
        attached_clients: info.attached_clients,
        created: info.created,
        last_activity: info.last_activity,
        restarts: info.restarts,
        last_exit: info.last_exit,
        id: info.id.to_string(),
    }
}

/// Maps session errors to answers. Another user's session is answered
/// exactly like one that does not exist.
pub(super) fn session_error(e: SessionError) -> ApiError {
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
pub(super) fn path_id(user: &str, session: &str) -> Result<SessionId, ApiError> {
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

pub(super) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
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
    /// Prefix each text line with its time in the page's replay.
    times: Option<bool>,
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
    let log = state
        .supervisor
        .transcript_log(&id)
        .await
        .map_err(session_error)?;
    let times = q.times.unwrap_or(false);
    if times && format != Format::Text {
        return Err(bad("times works with format=text only".into()));
    }
    let options = ExportOptions {
        until_id: None,
        since_ms,
        grep,
        times,
    };
    let chunks = export_stream(log, format, options);
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

/// The caller's sessions (every user's for an admin).
pub async fn list(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Json<Vec<cluster::Listed>>, ApiError> {
    cluster::visible_sessions(&state, &identity).await.map(Json)
}

/// The sessions `identity` may see, as the API lists them.
pub(super) async fn session_views(
    state: &AppState,
    identity: &Identity,
) -> Result<Vec<SessionView>, ApiError> {
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
            Ok(sessions) => out.extend(sessions.into_iter().map(|s| view(state, s))),
            Err(e) if servers.len() > 1 => {
                tracing::warn!(user = %server.user.name, error = %e, "cannot list sessions; leaving them out");
            }
            Err(e) => return Err(session_error(e)),
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// `USER/SESSION`, or just `SESSION` for the caller's own user.
    id: String,
    /// In a new git worktree of the user's repository.
    #[serde(default)]
    worktree: bool,
    /// The worktree's branch.
    branch: Option<String>,
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
    let info = match (body.worktree, body.branch) {
        (true, branch) => {
            state
                .supervisor
                .create_worktree(&id, branch.as_deref())
                .await
        }
        (false, Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "branch goes with \"worktree\": true",
            ))
        }
        (false, None) => state.supervisor.create(&id).await,
    }
    .map_err(session_error)?;
    tracing::info!(session = %id, by = %identity.user, "session created over HTTP");
    Ok((StatusCode::CREATED, Json(view(&state, info))).into_response())
}

/// `POST .../restart`: an exited agent waiting out its backoff restarts now.
pub async fn restart(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    state.supervisor.restart_now(&id).map_err(session_error)?;
    tracing::info!(session = %id, by = %identity.user, "agent restart asked over HTTP");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[serde(default)]
    remove_worktree: bool,
}

pub async fn delete(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
    query: Result<axum::extract::Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    state
        .supervisor
        .kill_session(&id, q.remove_worktree)
        .await
        .map_err(session_error)?;
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
