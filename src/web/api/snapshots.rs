//! A session's snapshots and what changed, over HTTP: `GET .../snapshots`
//! lists them (oldest first, each with the files changed after it),
//! `POST .../snapshots` takes one, `POST .../snapshots/{id}/rollback`
//! restores one (taking a snapshot of the present first), `GET .../diff`
//! shows the working tree's changes per file. All as the session's Unix
//! user, recorded in its transcript.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::files::workspace_error;
use super::{authorize, path_id, session_error, ApiError, Auth};
use crate::web::AppState;
use crate::workspace::{self, snapshot::Snapshot};

type SessionPath = Path<(String, String)>;

pub async fn list(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): SessionPath,
) -> Result<Json<Vec<Snapshot>>, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, false)?;
    let list = state
        .supervisor
        .snapshots(&id)
        .await
        .map_err(workspace_error)?;
    Ok(Json(list))
}

pub async fn take(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): SessionPath,
) -> Result<(StatusCode, Json<Snapshot>), ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    let by = crate::recorder::source_web(identity.user.as_str());
    let snap = state
        .supervisor
        .snapshot(&id, "on request", &by)
        .await
        .map_err(workspace_error)?;
    Ok((StatusCode::CREATED, Json(snap)))
}

pub async fn rollback(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session, snap)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, true)?;
    let by = crate::recorder::source_web(identity.user.as_str());
    let before = state
        .supervisor
        .rollback(&id, &snap, &by)
        .await
        .map_err(workspace_error)?;
    Ok(Json(
        serde_json::json!({"restored": snap, "before": before}),
    ))
}

pub async fn diff(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): SessionPath,
) -> Result<Json<workspace::diff::Diff>, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, false)?;
    let server = state
        .supervisor
        .session_files(&id)
        .await
        .map_err(session_error)?;
    let d = workspace::diff::diff(&server.place(), id.session.as_str())
        .await
        .map_err(workspace_error)?;
    Ok(Json(d))
}
