//! Sign-in with an OpenID Connect provider (`[web.oidc]`): the
//! authorization code flow with PKCE (S256), the provider found by
//! discovery, the ID token verified (signature by the provider's JWKS,
//! issuer, audience, expiry, nonce) and one claim mapped to a tmuxd user.
//! Each sign-in's state, nonce and PKCE verifier are kept here, in memory,
//! for ten minutes and used once; the browser also carries the state in a
//! cookie so a sign-in started elsewhere cannot be finished in it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use sha2::Digest;

use crate::config::{HttpUrl, OidcConfig};

pub mod jwt;

/// How long a sign-in may take at the provider.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Sign-ins started and not finished, at most; the oldest go first.
const MAX_PENDING: usize = 1000;
/// The provider's metadata and keys are re-read after this.
const KEYS_TTL: Duration = Duration::from_secs(3600);

/// A sign-in started at the provider.
struct Pending {
    verifier: String,
    nonce: String,
    started: Instant,
}

/// What discovery found, and the provider's keys.
#[derive(Clone)]
struct Provider {
    authorization_endpoint: String,
    token_endpoint: HttpUrl,
    keys: Vec<jwt::Jwk>,
    read: Instant,
}

/// Why a sign-in was refused: shown to the person (fixed texts).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("this sign-in was not started here, expired or was already used: start again")]
    State,
    #[error("the provider did not sign you in: {0}")]
    Provider(String),
    #[error("the provider's answer could not be verified")]
    Token,
    #[error("the provider cannot be reached now: try again later")]
    Unreachable,
}

/// Sign-ins in progress and what the provider published.
#[derive(Default)]
pub struct Oidc {
    pending: Mutex<HashMap<String, Pending>>,
    provider: Mutex<Option<Provider>>,
}

fn random(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Oidc {
    /// Starts a sign-in: the provider's URL to send the browser to, and
    /// the state to keep in its cookie.
    pub async fn start(&self, config: &OidcConfig) -> Result<(String, String), Refused> {
        let provider = self.provider(config, false).await?;
        let (state, nonce, verifier) = (random(16), random(16), random(32));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        {
            let mut pending = self.pending.lock().expect("oidc lock");
            crate::bounded::insert(
                &mut pending,
                MAX_PENDING,
                |p| p.started.elapsed() < PENDING_TTL,
                |p| p.started,
                state.clone(),
                Pending {
                    verifier,
                    nonce: nonce.clone(),
                    started: Instant::now(),
                },
            );
        }
        let url = format!(
            "{}{}response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
            provider.authorization_endpoint,
            if provider.authorization_endpoint.contains('?') { "&" } else { "?" },
            crate::httpc::encode(&config.client_id),
            crate::httpc::encode(&config.redirect_url),
            crate::httpc::encode(&config.scopes.join(" ")),
        );
        Ok((url, state))
    }

    /// Finishes a sign-in: `state` (from the provider) must be one we
    /// started and the browser's cookie's; the code is exchanged with our
    /// PKCE verifier, the ID token verified. Returns the configured claim.
    pub async fn finish(
        &self,
        config: &OidcConfig,
        state: &str,
        cookie_state: Option<&str>,
        code: &str,
    ) -> Result<String, Refused> {
        let pending = self.pending.lock().expect("oidc lock").remove(state);
        let pending = match pending {
            Some(p) if p.started.elapsed() < PENDING_TTL && cookie_state == Some(state) => p,
            _ => return Err(Refused::State),
        };
        let provider = self.provider(config, false).await?;
        let mut form = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={}",
            crate::httpc::encode(code),
            crate::httpc::encode(&config.redirect_url),
            crate::httpc::encode(&config.client_id),
            crate::httpc::encode(&pending.verifier)
        );
        if let Some(file) = &config.client_secret_file {
            let secret = tokio::fs::read_to_string(file).await.map_err(|e| {
                tracing::error!(file = %file.display(), error = %crate::config::io_reason(&e), "cannot read web.oidc.client_secret_file");
                Refused::Unreachable
            })?;
            form.push_str(&format!(
                "&client_secret={}",
                crate::httpc::encode(secret.trim())
            ));
        }
        let answer = crate::httpc::send(crate::httpc::Request {
            method: hyper::Method::POST,
            url: &provider.token_endpoint,
            headers: vec![
                ("Content-Type", "application/x-www-form-urlencoded".into()),
                ("Accept", "application/json".into()),
            ],
            body: form.into_bytes(),
            max_answer: 256 * 1024,
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "OIDC token endpoint not reached");
            Refused::Unreachable
        })?;
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status != 200 {
            let why = body["error"].as_str().unwrap_or("refused").to_owned();
            tracing::warn!(status = answer.status, error = %why, "OIDC code exchange refused");
            return Err(Refused::Provider(why));
        }
        let id_token = body["id_token"].as_str().ok_or(Refused::Token)?;
        let expect = jwt::Expect {
            issuer: &config.issuer,
            client_id: &config.client_id,
            nonce: &pending.nonce,
            now: crate::clock::unix_now(),
        };
        let verified = match jwt::verify(id_token, &provider.keys, &expect) {
            // A key the provider rotated in since we read them: once more.
            Err(e) if e.contains("signature") => {
                let fresh = self.provider(config, true).await?;
                jwt::verify(id_token, &fresh.keys, &expect)
            }
            other => other,
        };
        let claims = verified.map_err(|e| {
            tracing::warn!(error = %e, "OIDC ID token refused");
            Refused::Token
        })?;
        claims[config.claim.as_str()]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                tracing::warn!(claim = %config.claim, "the ID token lacks the configured claim");
                Refused::Token
            })
    }

    /// The provider's metadata and keys, read again when older than an
    /// hour or when `fresh`.
    async fn provider(&self, config: &OidcConfig, fresh: bool) -> Result<Provider, Refused> {
        if !fresh {
            let cached = self.provider.lock().expect("oidc lock").clone();
            if let Some(p) = cached.filter(|p| p.read.elapsed() < KEYS_TTL) {
                return Ok(p);
            }
        }
        let p = discover(config).await.map_err(|e| {
            tracing::warn!(issuer = %config.issuer, error = %e, "OIDC discovery failed");
            Refused::Unreachable
        })?;
        *self.provider.lock().expect("oidc lock") = Some(p.clone());
        Ok(p)
    }
}

async fn get_json(url: &HttpUrl) -> Result<serde_json::Value, String> {
    let answer = crate::httpc::send(crate::httpc::Request {
        method: hyper::Method::GET,
        url,
        headers: vec![("Accept", "application/json".into())],
        body: Vec::new(),
        max_answer: 512 * 1024,
    })
    .await?;
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("not JSON: {e}"))
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<jwt::Jwk>,
}

async fn discover(config: &OidcConfig) -> Result<Provider, String> {
    let well_known = HttpUrl::parse(&format!(
        "{}/.well-known/openid-configuration",
        config.issuer
    ))
    .ok_or("the issuer is not a URL")?;
    let meta = get_json(&well_known).await?;
    if meta["issuer"].as_str() != Some(config.issuer.as_str()) {
        return Err("the discovery document names another issuer".into());
    }
    let url = |k: &str| -> Result<HttpUrl, String> {
        let text = meta[k].as_str().ok_or(format!("no {k}"))?;
        HttpUrl::parse(text)
            .filter(|u| u.tls || u.is_loopback())
            .ok_or(format!("{k} is not an https:// URL"))
    };
    let token_endpoint = url("token_endpoint")?;
    let jwks_uri = url("jwks_uri")?;
    url("authorization_endpoint")?;
    let jwks: Jwks =
        serde_json::from_value(get_json(&jwks_uri).await?).map_err(|e| format!("JWKS: {e}"))?;
    Ok(Provider {
        authorization_endpoint: meta["authorization_endpoint"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        token_endpoint,
        keys: jwks.keys,
        read: Instant::now(),
    })
}
