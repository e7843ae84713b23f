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

use super::{authorize, path_id, session_error, ApiError, Auth};
use crate::web::AppState;
use crate::workspace::{self, Archive, Exit, WorkspaceError};

pub(super) fn workspace_error(e: WorkspaceError) -> ApiError {
    let status = match e.kind {
        Exit::Refused => StatusCode::BAD_REQUEST,
        Exit::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Exit::NotFound => StatusCode::NOT_FOUND,
        Exit::Failed => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.message)
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
    let max = state.config().workspace.max_upload_bytes;
    // A declared size over the cap is refused before anything is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(workspace_error(workspace::over_upload_cap(max)));
    }
    let files = state
        .supervisor
        .session_files(&id)
        .await
        .map_err(session_error)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut reader = tokio_util::io::StreamReader::new(stream);
    let by = crate::recorder::source_web(identity.user.as_str());
    let stored = state
        .supervisor
        .upload(&files, &id, &q.name, &mut reader, &by)
        .await
        .map_err(workspace_error)?;
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
    /// Add the session's transcript (text and asciicast) to an archive.
    #[serde(default)]
    transcript: bool,
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
    let archive = Archive::parse(q.format.as_deref())
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    let files = state
        .supervisor
        .session_files(&id)
        .await
        .map_err(session_error)?;
    if q.list {
        let listing = workspace::list(&files.place(), &path)
            .await
            .map_err(workspace_error)?;
        return Ok(Json(listing).into_response());
    }
    let by = crate::recorder::source_web(identity.user.as_str());
    let what = (path.as_str(), archive, q.transcript);
    let (download, name) = state
        .supervisor
        .download(&files, &id, what, &by)
        .await
        .map_err(workspace_error)?;
    let (content_type, length) = match &download.sending {
        workspace::Sending::File { bytes, .. } => ("application/octet-stream", Some(*bytes)),
        workspace::Sending::Archive { .. } => (archive.content_type(), None),
    };
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
