//! The email bridge's API: the audit log, pending commands, web
//! confirmation.

use super::*;
use axum::response::IntoResponse;

pub(super) fn bridge(state: &AppState) -> Result<&crate::mail::Bridge, ApiError> {
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
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let risky = bridge(&state)?.pending_is_risky(&identity.user, &id);
    if let Some(ask) = crate::web::passkeys::needs_reauth(&state, &headers, risky) {
        return Ok(ask);
    }
    decide(&state, &identity, &id, true)?;
    Ok(Json(serde_json::json!({ "confirmed": id })).into_response())
}

/// Cancels one of the caller's pending commands: nothing is typed.
pub async fn mail_cancel(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(&state, &identity, &id, false)?;
    Ok(Json(serde_json::json!({ "cancelled": id })))
}

fn decide(state: &AppState, identity: &Identity, id: &str, confirm: bool) -> Result<(), ApiError> {
    let bridge = bridge(state)?;
    if !identity.can_write(&identity.user) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "read-only token"));
    }
    let who = format!("web:{}", identity.user);
    let done = if confirm {
        bridge.confirm_web(&identity.user, id, &who)
    } else {
        bridge.cancel_web(&identity.user, id, &who)
    };
    done.map_err(|m| ApiError::new(StatusCode::NOT_FOUND, m))
}
