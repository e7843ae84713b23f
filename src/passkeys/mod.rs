//! Passkeys (WebAuthn, `[web.passkeys]`): a signed-in user registers one
//! from the page; afterwards "Sign in with a passkey" logs them in without
//! a token (a discoverable credential: the authenticator says whose it
//! is, and its signature proves it). Challenges are random, single-use,
//! five minutes; the relying party id and origin come from the config;
//! public keys are kept in `STATE_DIR/passkeys.json` (0600).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::PasskeyConfig;
use crate::names::Name;

mod cbor;
pub mod webauthn;

const CHALLENGE_TTL: Duration = Duration::from_secs(300);
const MAX_CHALLENGES: usize = 1000;
/// How long a passkey shown again vouches for risky answers.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// Passkeys kept at most (all users).
const MAX_PASSKEYS: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stored {
    user: String,
    /// The credential id, base64url.
    id: String,
    key: webauthn::PublicKey,
    created: u64,
}

/// What the page sends back from `navigator.credentials.create`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    pub client_data_json: String,
    pub attestation_object: String,
}

/// What the page sends back from `navigator.credentials.get`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assertion {
    pub id: String,
    pub client_data_json: String,
    pub authenticator_data: String,
    pub signature: String,
}

/// An open challenge: the user registering (none for a sign-in), and when
/// it was made.
type Open = (Option<Name>, Instant);

/// Registered passkeys and open challenges.
pub struct Passkeys {
    path: PathBuf,
    stored: Arc<Mutex<Vec<Stored>>>,
    challenges: Mutex<HashMap<Vec<u8>, Open>>,
    /// Logins (by their cookie's digest) whose user showed their passkey
    /// lately, and when.
    fresh: Mutex<HashMap<String, Instant>>,
    /// Serialises file writes (a blocking thread holds it while writing).
    write: Arc<Mutex<()>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Passkeys {
    /// Loads `path` (missing: none; damaged: none, logged).
    pub fn load(path: PathBuf) -> Passkeys {
        let stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "passkey file damaged; passkeys must be added again");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Passkeys {
            path,
            stored: Arc::new(Mutex::new(stored)),
            challenges: Mutex::new(HashMap::new()),
            fresh: Mutex::new(HashMap::new()),
            write: Arc::new(Mutex::new(())),
        }
    }

    /// A new challenge, for `user` registering (or a sign-in), base64url.
    pub fn challenge(&self, user: Option<&Name>) -> String {
        let mut c = vec![0u8; 32];
        getrandom::fill(&mut c).expect("the system's random source");
        let mut open = self.challenges.lock().expect("passkeys lock");
        crate::bounded::insert(
            &mut open,
            MAX_CHALLENGES,
            |(_, at)| at.elapsed() < CHALLENGE_TTL,
            |(_, at)| *at,
            c.clone(),
            (user.cloned(), Instant::now()),
        );
        b64(&c)
    }

    /// The challenge the client data names, if it is open and for `user`
    /// (taken: used once).
    fn take(&self, client_data_json: &str, user: Option<&Name>) -> Result<Vec<u8>, String> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(client_data_json.trim_end_matches('='))
            .map_err(|_| "client data that is not base64url")?;
        let data: serde_json::Value =
            serde_json::from_slice(&json).map_err(|_| "client data that is not JSON")?;
        let c = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                data["challenge"]
                    .as_str()
                    .unwrap_or("")
                    .trim_end_matches('='),
            )
            .map_err(|_| "a challenge that is not base64url")?;
        match self.challenges.lock().expect("passkeys lock").remove(&c) {
            Some((for_user, at)) if at.elapsed() < CHALLENGE_TTL && for_user.as_ref() == user => {
                Ok(c)
            }
            _ => Err("a challenge that was not issued here, expired or was used".into()),
        }
    }

    /// The credential ids `user` has (the page asks not to register one
    /// twice).
    pub fn ids_of(&self, user: &Name) -> Vec<String> {
        let stored = self.stored.lock().expect("passkeys lock");
        stored
            .iter()
            .filter(|s| s.user == user.as_str())
            .map(|s| s.id.clone())
            .collect()
    }

    /// Checks a registration for `user` and keeps its public key.
    pub async fn register(
        &self,
        config: &PasskeyConfig,
        user: &Name,
        r: &Registration,
    ) -> Result<(), String> {
        let challenge = self.take(&r.client_data_json, Some(user))?;
        let expect = webauthn::Expect {
            rp_id: &config.rp_id,
            origin: &config.origin,
            challenge: &challenge,
        };
        let (id, key) = webauthn::register(&r.client_data_json, &r.attestation_object, &expect)?;
        {
            let mut stored = self.stored.lock().expect("passkeys lock");
            if stored.iter().any(|s| s.id == id) {
                return Err("this passkey is registered already".into());
            }
            if stored.len() >= MAX_PASSKEYS {
                return Err("too many passkeys on this server".into());
            }
            stored.push(Stored {
                user: user.to_string(),
                id,
                key,
                created: crate::clock::unix_now(),
            });
        }
        self.save().await.map_err(|e| format!("storing it: {e}"))
    }

    /// Checks a sign-in; whose passkey it is.
    pub async fn sign_in(&self, config: &PasskeyConfig, a: &Assertion) -> Result<Name, String> {
        let user = self.assert(config, None, a).await?;
        Name::new(&user).map_err(|e| e.to_string())
    }

    /// Checks that `user` shows one of their own passkeys again (for the
    /// login `login`, which then counts as fresh for five minutes).
    pub async fn reauthenticate(
        &self,
        config: &PasskeyConfig,
        user: &Name,
        login: &str,
        a: &Assertion,
    ) -> Result<(), String> {
        self.assert(config, Some(user), a).await?;
        let mut fresh = self.fresh.lock().expect("passkeys lock");
        fresh.retain(|_, at| at.elapsed() < FRESH_FOR);
        fresh.insert(crate::logins::digest(login), Instant::now());
        Ok(())
    }

    /// Checks an assertion against an open challenge (for `user`, or a
    /// sign-in) and the stored passkey it names (one of `user`'s, when
    /// given); keeps its new counter. Whose passkey it is.
    async fn assert(
        &self,
        config: &PasskeyConfig,
        user: Option<&Name>,
        a: &Assertion,
    ) -> Result<String, String> {
        let challenge = self.take(&a.client_data_json, user)?;
        let found = {
            let stored = self.stored.lock().expect("passkeys lock");
            stored
                .iter()
                .find(|s| s.id == a.id && user.is_none_or(|u| s.user == u.as_str()))
                .cloned()
        };
        let found = found.ok_or(match user {
            Some(_) => "not one of your passkeys",
            None => "an unknown passkey",
        })?;
        let expect = webauthn::Expect {
            rp_id: &config.rp_id,
            origin: &config.origin,
            challenge: &challenge,
        };
        let count = webauthn::authenticate(
            &found.key,
            &a.client_data_json,
            &a.authenticator_data,
            &a.signature,
            &expect,
        )?;
        {
            let mut stored = self.stored.lock().expect("passkeys lock");
            if let Some(s) = stored.iter_mut().find(|s| s.id == a.id) {
                s.key.sign_count = count;
            }
        }
        self.save().await.map_err(|e| format!("storing it: {e}"))?;
        Ok(found.user)
    }

    /// Whether the login `login` showed its passkey in the last minutes.
    pub fn is_fresh(&self, login: &str) -> bool {
        let fresh = self.fresh.lock().expect("passkeys lock");
        fresh
            .get(&crate::logins::digest(login))
            .is_some_and(|at| at.elapsed() < FRESH_FOR)
    }

    /// Writes the file (0600) on a blocking thread.
    async fn save(&self) -> std::io::Result<()> {
        let (stored, write, path) = (self.stored.clone(), self.write.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let _writing = write.lock().expect("passkeys write lock");
            let text = {
                let stored = stored.lock().expect("passkeys lock");
                serde_json::to_vec(&*stored).map_err(std::io::Error::other)?
            };
            crate::auth::write_private(&path, &text)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}
