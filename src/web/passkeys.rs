//! The page's passkey endpoints (`[web.passkeys]`, see `passkeys`): a
//! signed-in user gets registration options and sends the new passkey
//! back; anyone gets sign-in options, and a passkey's signature makes a
//! login like a token's. A refused sign-in counts as a failed login.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::net::SocketAddr;

use super::{client_addr, ApiError, AppState, Auth};
use crate::config::PasskeyConfig;
use crate::passkeys::{Assertion, Registration};

fn config(state: &AppState) -> Result<PasskeyConfig, ApiError> {
    state.config().web.passkeys.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "passkeys are not enabled on this server",
        )
    })
}

/// Options for `navigator.credentials.create` (the page turns the
/// base64url fields into bytes).
pub async fn register_start(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cfg = config(&state)?;
    let user = &identity.user;
    Ok(Json(serde_json::json!({
        "challenge": state.passkeys.challenge(Some(user)),
        "rp": { "id": cfg.rp_id, "name": "tmuxd" },
        "user": { "id": user.as_str(), "name": user.as_str(), "displayName": user.as_str() },
        "pubKeyCredParams": [{ "type": "public-key", "alg": -7 }],
        "authenticatorSelection": { "residentKey": "required", "userVerification": "required" },
        "excludeCredentials": state.passkeys.ids_of(user),
        "attestation": "none",
    })))
}

pub async fn register_finish(
    State(state): State<AppState>,
    Auth(identity): Auth,
    Json(body): Json<Registration>,
) -> Result<StatusCode, ApiError> {
    let cfg = config(&state)?;
    state
        .passkeys
        .register(&cfg, &identity.user, &body)
        .await
        .map_err(|why| {
            tracing::warn!(user = %identity.user, why, "passkey registration refused");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the passkey was not added: {why}"),
            )
        })?;
    tracing::info!(user = %identity.user, "passkey added");
    Ok(StatusCode::NO_CONTENT)
}

/// Options for `navigator.credentials.get` (any of the server's passkeys).
pub async fn login_start(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cfg = config(&state)?;
    Ok(Json(serde_json::json!({
        "challenge": state.passkeys.challenge(None),
        "rpId": cfg.rp_id,
        "userVerification": "required",
    })))
}

pub async fn login_finish(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<Assertion>,
) -> Result<Response, ApiError> {
    let cfg = config(&state)?;
    let addr = client_addr(&headers, Some(peer), &state);
    let user = match state.passkeys.sign_in(&cfg, &body).await {
        Ok(user) if state.config().user(&user).is_some() => user,
        Ok(user) => {
            tracing::warn!(user = %user, "a passkey of a user no longer configured refused");
            return state.refuse(addr);
        }
        Err(why) => {
            tracing::warn!(%addr, why, "passkey sign-in refused");
            return state.refuse(addr);
        }
    };
    let cookie = state
        .logins
        .create_for_user(&user, "passkey")
        .await
        .map_err(|e| ApiError::internal(format_args!("cannot store the login: {e}")))?;
    tracing::info!(user = %user, %addr, "signed in with a passkey");
    let mut r = StatusCode::NO_CONTENT.into_response();
    let name = user.to_string();
    super::api::set_login(
        r.headers_mut(),
        &state,
        &cookie,
        &name,
        crate::logins::LOGIN_TTL_S,
    );
    Ok(r)
}

/// Options for showing one's passkey again (before a risky answer).
pub async fn reauth_start(
    State(state): State<AppState>,
    Auth(identity): Auth,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cfg = config(&state)?;
    Ok(Json(serde_json::json!({
        "challenge": state.passkeys.challenge(Some(&identity.user)),
        "rpId": cfg.rp_id,
        "userVerification": "required",
        "allowCredentials": state.passkeys.ids_of(&identity.user),
    })))
}

pub async fn reauth_finish(
    State(state): State<AppState>,
    Auth(identity): Auth,
    headers: HeaderMap,
    Json(body): Json<Assertion>,
) -> Result<StatusCode, ApiError> {
    let cfg = config(&state)?;
    let Some((login, super::AuthVia::Cookie)) = super::presented_token(&headers) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "showing a passkey again is for the page's logins",
        ));
    };
    state
        .passkeys
        .reauthenticate(&cfg, &identity.user, &login, &body)
        .await
        .map_err(|why| {
            tracing::warn!(user = %identity.user, why, "passkey re-authentication refused");
            ApiError::new(StatusCode::FORBIDDEN, format!("not confirmed: {why}"))
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// When `[web.passkeys] reauth_risky` asks for it: a 403 the page answers
/// by showing the passkey again (`"reauth": true`), unless this login did
/// within the last five minutes. Only for risky actions on the page.
pub fn needs_reauth(state: &AppState, headers: &HeaderMap, risky: bool) -> Option<Response> {
    let cfg = state.config().web.passkeys.clone()?;
    if !cfg.reauth_risky || !risky {
        return None;
    }
    if let Some((login, super::AuthVia::Cookie)) = super::presented_token(headers) {
        if state.passkeys.is_fresh(&login) {
            return None;
        }
    }
    let body = serde_json::json!({
        "error": "this is risky: confirm it is you with your passkey first",
        "reauth": true,
    });
    Some((StatusCode::FORBIDDEN, Json(body)).into_response())
}
