//! `GET /api/sessions/{user}/{session}/history?lines=N`: what the page's
//! scrollback shows, the pane's history and screen as tmux keeps them
//! (text with colour sequences), so scrolling back never sends the agent a
//! key and never moves another viewer's screen.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{authorize, path_id, session_error, ApiError, Auth};
use crate::web::AppState;

/// Lines of history by default, and at most (tmux keeps 2000 by default).
const DEFAULT_LINES: u32 = 2000;
const MAX_LINES: u32 = 50_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    lines: Option<u32>,
}

pub async fn history(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path((user, session)): Path<(String, String)>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(&user, &session)?;
    authorize(&identity, &id, false)?;
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let lines = q.lines.unwrap_or(DEFAULT_LINES);
    if !(1..=MAX_LINES).contains(&lines) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("lines must be between 1 and {MAX_LINES}"),
        ));
    }
    let server = state.supervisor.server(&id.user).map_err(session_error)?;
    let text = server
        .history(&id.session, lines)
        .await
        .map_err(session_error)?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}
