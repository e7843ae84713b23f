//! The page's OpenID Connect sign-in (`[web.oidc]`, see `oidc`):
//! `/auth/oidc/login` sends the browser to the provider with a state kept
//! in a short cookie; `/auth/oidc/callback` finishes it, maps the claim to
//! a tmuxd user (unknown people are refused, never created) and makes a
//! login (the same server-side logins as tokens': revocable by logout,
//! expiring). Refusals answer a short page saying what to do; the reason
//! behind them goes to the log only.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{cookie, AppState};

/// The cookie that carries a sign-in's state from start to callback.
const STATE_COOKIE: &str = "tmuxd_oidc";

/// A small HTML page (no script: the CSP allows none inline).
fn page(status: StatusCode, title: &str, text: &str, next: &str) -> Response {
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=\"{}\"><title>tmuxd</title><h1>{title}</h1><p>{text}</p><p><a href=\"{next}\">Continue</a></p>",
        if status == StatusCode::OK { format!("0;url={next}") } else { "600".into() },
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// The answer when `[web.oidc]` is off.
fn off() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "No single sign-on",
        "This server signs in with tokens only.",
        "/",
    )
}

pub async fn login(State(state): State<AppState>) -> Response {
    let config = state.config();
    let Some(oidc) = &config.web.oidc else {
        return off();
    };
    match state.oidc.start(oidc).await {
        Ok((url, st)) => {
            let secure = if config.web.tls_proxy { "; Secure" } else { "" };
            let mut r = (StatusCode::FOUND, [(header::LOCATION, url)]).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&format!(
                    "{STATE_COOKIE}={st}; HttpOnly; SameSite=Lax; Path=/auth/oidc; Max-Age=600{secure}"
                ))
                .expect("ASCII"),
            );
            r
        }
        Err(e) => page(
            StatusCode::BAD_GATEWAY,
            "Sign-in unavailable",
            &e.to_string(),
            "/",
        ),
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let config = state.config();
    let Some(oidc) = &config.web.oidc else {
        return off();
    };
    let again = "/auth/oidc/login";
    let (Some(code), Some(st)) = (q.code, q.state) else {
        let why = q.error.unwrap_or_else(|| "no code".into());
        tracing::warn!(error = %why, "OIDC callback without a code");
        return page(
            StatusCode::BAD_REQUEST,
            "Not signed in",
            "The provider did not sign you in.",
            again,
        );
    };
    let claimed = match state
        .oidc
        .finish(oidc, &st, cookie(&headers, STATE_COOKIE).as_deref(), &code)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            return page(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                &e.to_string(),
                again,
            )
        }
    };
    let by_email = oidc.claim == "email";
    let user = config.users.iter().find(|u| match by_email {
        true => u.emails.iter().any(|e| e.eq_ignore_ascii_case(&claimed)),
        false => u.name.as_str() == claimed,
    });
    let Some(user) = user else {
        tracing::warn!(claim = %oidc.claim, "an OIDC sign-in of someone who is not a tmuxd user refused");
        return page(StatusCode::FORBIDDEN, "Not a tmuxd user", "You are signed in at your provider, but not a user of this server: ask its operator to add you.", "/");
    };
    let cookie_value = match state.logins.create_for_user(&user.name, "oidc").await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot store the login");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not signed in",
                "internal error",
                again,
            );
        }
    };
    tracing::info!(user = %user.name, "signed in with OIDC");
    // A page of our own, not a redirect: the login cookie is SameSite
    // Strict, and a redirect chain that began at the provider would not
    // carry it.
    let mut r = page(
        StatusCode::OK,
        "Signed in",
        &format!("Signed in as {}.", user.name),
        "/",
    );
    let h = r.headers_mut();
    let name = user.name.to_string();
    super::api::set_login(h, &state, &cookie_value, &name, crate::logins::LOGIN_TTL_S);
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static("tmuxd_oidc=; HttpOnly; SameSite=Lax; Path=/auth/oidc; Max-Age=0"),
    );
    r
}
