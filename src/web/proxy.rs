//! Sign-in by an authenticating reverse proxy (`[web.proxy_auth]`): nginx
//! with basic auth, oauth2-proxy, Authelia or Tailscale Serve in front
//! names the person in a header. The header is honoured only from a
//! configured proxy address and only with the shared secret the proxy
//! adds (compared in constant time): a client that sends the header
//! itself, straight to tmuxd or through a proxy that passes it on, is
//! refused. The name must be a tmuxd user, or one of a user's `emails`;
//! unknown identities are refused, never created.

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::ApiError;
use crate::auth::{Identity, Role};
use crate::config::{Config, ProxyAuthConfig};

/// The shared secret, read once when the web server starts.
pub struct ProxySecret(Option<Vec<u8>>);

impl ProxySecret {
    /// Reads `[web.proxy_auth] secret_file`; without it no proxy is
    /// believed (the failure is logged).
    pub fn load(config: &Config) -> ProxySecret {
        let Some(auth) = &config.web.proxy_auth else {
            return ProxySecret(None);
        };
        match std::fs::read_to_string(&auth.secret_file) {
            Ok(s) if !s.trim().is_empty() => ProxySecret(Some(s.trim().as_bytes().to_vec())),
            Ok(_) => {
                tracing::error!(file = %auth.secret_file.display(), "web.proxy_auth.secret_file is empty: no proxy identity is accepted");
                ProxySecret(None)
            }
            Err(e) => {
                tracing::error!(file = %auth.secret_file.display(), error = %crate::config::io_reason(&e), "cannot read web.proxy_auth.secret_file: no proxy identity is accepted");
                ProxySecret(None)
            }
        }
    }
}

/// Whether a request carries the proxy's identity header (an ambient
/// credential, like the login cookie: state changes need our Origin).
pub fn names_someone(config: &Config, headers: &HeaderMap) -> bool {
    config
        .web
        .proxy_auth
        .as_ref()
        .is_some_and(|a| headers.contains_key(a.header.as_str()))
}

/// The person the proxy names, when the request carries its header:
/// `None` without the header; an error when it is not believed.
pub fn identify(
    config: &Config,
    secret: &ProxySecret,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Option<Result<Identity, ApiError>> {
    let auth = config.web.proxy_auth.as_ref()?;
    let named = headers.get(auth.header.as_str())?;
    Some(believe(
        config,
        auth,
        secret,
        headers,
        peer,
        named.as_bytes(),
    ))
}

fn believe(
    config: &Config,
    auth: &ProxyAuthConfig,
    secret: &ProxySecret,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    named: &[u8],
) -> Result<Identity, ApiError> {
    let from_proxy = peer.is_some_and(|p| auth.from.contains(&p));
    let presented = headers
        .get(auth.secret_header.as_str())
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let with_secret = secret
        .0
        .as_deref()
        .is_some_and(|s| crate::auth::constant_time_eq(s, presented));
    if !from_proxy || !with_secret {
        tracing::warn!(peer = ?peer, from_proxy, with_secret, "an identity header not from the configured proxy refused");
        return Err(ApiError::unauthorized());
    }
    let named = std::str::from_utf8(named).unwrap_or("").trim();
    let user = config.users.iter().find(|u| {
        u.name.as_str() == named || u.emails.iter().any(|e| e.eq_ignore_ascii_case(named))
    });
    match user {
        Some(u) => Ok(Identity {
            user: u.name.clone(),
            role: Role::User,
        }),
        None => {
            tracing::warn!("the proxy named someone who is not a tmuxd user: refused");
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "you are signed in, but not a tmuxd user: ask the operator to add you",
            ))
        }
    }
}
