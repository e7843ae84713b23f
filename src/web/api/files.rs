//! `/api/sessions/{user}/{session}/files`: a session's workspace over HTTP.
//! `POST ?name=N` stores the request body as a new file in the uploads
//! directory; `GET ?path=P` sends a file, or a directory (the whole
//! workdir without `path`) as a streamed archive; `GET ?path=P&list=true`
//! lists a directory. The work is the workspace helper's, as the session's
//! Unix user ([`crate::workspace`]); each upload and download is recorded
//! in the session's transcript with who did it.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::SessionState;
use super::{authorize, path_id, session_error, ApiError, Auth};
use crate::names::SessionId;
use crate::session::SessionError;
use crate::web::AppState;
use crate::workspace::{self, Archive, Exit, Place, WorkspaceError};

/// The session's server, if the session exists (404 otherwise, as for
/// another user's session).
async fn server_of(
    state: &AppState,
    id: &SessionId,
) -> Result<crate::session::UserServer, ApiError> {
    let server = state.supervisor.server(&id.user).map_err(session_error)?;
    match server.info(&id.session).await {
        Ok(info) if info.state != SessionState::Stopped => Ok(server),
        Ok(_) => Err(session_error(SessionError::NoSuchSession(id.clone()))),
        Err(e) => Err(session_error(e)),
    }
}

pub(super) fn workspace_error(e: WorkspaceError) -> ApiError {
    let status = match e.kind {
        Exit::Refused => StatusCode::BAD_REQUEST,
        Exit::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Exit::NotFound => StatusCode::NOT_FOUND,
        Exit::Failed => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.message)
}

fn record(state: &AppState, id: &SessionId, kind: &str, detail: serde_json::Value) {
    if let Some(rec) = state.supervisor.recorder() {
        rec.event(id, kind, detail);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    name: String,
}

pub async fn upload(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<workspace::Stored>), ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    let Query(q) = query
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "say the file's name: ?name=NAME"))?;
    let config = state.config();
    let caps = &config.workspace;
    // A declared size over the cap is refused before anything is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > caps.max_upload_bytes) {
        return Err(workspace_error(workspace::over_upload_cap(
            caps.max_upload_bytes,
        )));
    }
    let server = server_of(&state, &id).await?;
    let place = Place {
        tmux: &server.tmux,
        workdir: &server.user.workdir,
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut reader = tokio_util::io::StreamReader::new(stream);
    let stored = workspace::put(&place, caps, &q.name, &mut reader)
        .await
        .map_err(workspace_error)?;
    let by = crate::recorder::source_web(identity.user.as_str());
    tracing::info!(session = %id, by, bytes = stored.bytes, "upload");
    record(
        &state,
        &id,
        "upload",
        serde_json::json!({"by": by, "path": stored.path, "bytes": stored.bytes}),
    );
    Ok((StatusCode::CREATED, Json(stored)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    #[serde(default)]
    path: String,
    format: Option<String>,
    #[serde(default)]
    list: bool,
}

pub async fn files(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
    query: Result<Query<FilesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, false)?;
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let path =
        workspace::check_path(&q.path).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    let archive = match q.format.as_deref() {
        None => Archive::TarGz,
        Some(f) => Archive::parse(f).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown format {f:?}: use tar.gz"),
            )
        })?,
    };
    let server = server_of(&state, &id).await?;
    let place = Place {
        tmux: &server.tmux,
        workdir: &server.user.workdir,
    };
    if q.list {
        let listing = workspace::list(&place, &path)
            .await
            .map_err(workspace_error)?;
        return Ok(Json(listing).into_response());
    }
    let top = workspace::archive_top(id.session.as_str(), &path);
    let config = state.config();
    let download = workspace::get(&place, &config.workspace, &path, &top, archive)
        .await
        .map_err(workspace_error)?;
    let by = crate::recorder::source_web(identity.user.as_str());
    let name = workspace::download_name(id.session.as_str(), &path, &download.sending, archive);
    let (content_type, length, detail) = match &download.sending {
        workspace::Sending::File { bytes, .. } => (
            "application/octet-stream",
            Some(*bytes),
            serde_json::json!({"by": by, "path": path, "bytes": bytes}),
        ),
        workspace::Sending::Archive { files, bytes } => (
            archive.content_type(),
            None,
            serde_json::json!({"by": by, "path": path, "format": archive.extension(), "files": files, "bytes": bytes}),
        ),
    };
    tracing::info!(session = %id, by, "download");
    record(&state, &id, "download", detail);
    let mut r = Body::from_stream(download.body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Ok(v) = HeaderValue::from_str(&attachment(&name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}
