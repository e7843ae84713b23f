//! Logging in and out of the page, and who the caller is.

use super::*;

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

/// Sets the login cookie (`value`, empty to clear it) on `headers`; in a
/// cluster also the routing cookie naming `user`, which the front router
/// sends the browser's requests to the user's node by.
pub fn set_login(
    headers: &mut axum::http::HeaderMap,
    state: &AppState,
    value: &str,
    user: &str,
    max_age: u64,
) {
    headers.append(header::SET_COOKIE, login_cookie(state, value, max_age));
    if state.config().cluster.is_some() {
        let routing = format!(
            "{}={user}; SameSite=Lax; Path=/; Max-Age={max_age}",
            crate::cluster::USER_COOKIE
        );
        if let Ok(v) = HeaderValue::from_str(&routing) {
            headers.append(header::SET_COOKIE, v);
        }
    }
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
    let user = identity.user.to_string();
    set_login(
        r.headers_mut(),
        &state,
        &cookie,
        &user,
        crate::logins::LOGIN_TTL_S,
    );
    Ok(r)
}

/// Ends the login the cookie carries, and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some((cookie, AuthVia::Cookie)) = crate::web::presented_token(&headers) {
        if let Err(e) = state.logins.remove(&cookie).await {
            return ApiError::internal(format_args!("cannot store the logout: {e}"))
                .into_response();
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    set_login(r.headers_mut(), &state, "", "", 0);
    r
}

#[derive(Serialize)]
pub struct Me {
    user: String,
    role: Role,
    /// Whether the email bridge is on (the page offers its view).
    mail: bool,
    /// Whether passkeys are on (the page offers to add one).
    passkeys: bool,
}

pub async fn me(State(state): State<AppState>, Auth(identity): Auth) -> Json<Me> {
    Json(Me {
        user: identity.user.to_string(),
        role: identity.role,
        mail: state.bridge.is_some(),
        passkeys: state.config().web.passkeys.is_some(),
    })
}

/// How the page can sign in besides a token (public: the login screen
/// offers what there is).
pub async fn auth_ways(State(state): State<AppState>) -> Json<serde_json::Value> {
    let config = state.config();
    Json(serde_json::json!({
        "oidc": config.web.oidc.is_some(),
        "passkeys": config.web.passkeys.is_some(),
    }))
}
