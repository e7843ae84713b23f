//! Browser logins: the server-side half of the login cookie.
//!
//! Logging in with a token makes a login: 256 random bits sent to the
//! browser as the cookie, of which only the SHA-256 is kept, with the token
//! it was made from and an expiry. The cookie is never the token itself, so
//! logging out revokes exactly what it logs out (the token keeps working for
//! the CLI and the API), and revoking the token ends its logins at once.
//! A sign-in at an OpenID Connect provider makes a login for its user, with
//! no token behind it. Logins are kept in `STATE_DIR/logins.json` (0600, written atomically off
//! the async workers), so they survive daemon restarts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::auth::{Identity, TokenStore};

/// How long a login lasts (the cookie's Max-Age).
pub const LOGIN_TTL_S: u64 = 30 * 86_400;
/// Logins kept at most; the oldest go first.
const MAX_LOGINS: usize = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Login {
    /// The public id of the token it was made from ("" for a sign-in at
    /// an OpenID Connect provider).
    token_id: String,
    /// Who signed in without a token (with an empty `token_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    /// How: "token", "oidc" or "passkey".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    via: Option<String>,
    expires: u64,
}

/// The logins, by the hex SHA-256 of their cookie.
#[derive(Clone)]
pub struct Logins(Arc<Inner>);

struct Inner {
    path: PathBuf,
    /// std mutex: in-memory work only; the file is written from a copy.
    logins: Mutex<HashMap<String, Login>>,
    /// Serialises file writes (a blocking thread holds it while writing).
    write: Mutex<()>,
    /// The file as last read or written (see [`Logins::refresh`]).
    stamp: Mutex<Stamp>,
}

/// A file's modification time, size and inode.
type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// One login as `tmuxd logins` lists it: its id (the start of its
/// digest), who, how, when it expires.
pub struct Listed {
    pub id: String,
    pub who: String,
    pub via: String,
    pub expires: u64,
}

/// The logins in `path`, soonest to expire last.
pub fn list(path: &std::path::Path) -> std::io::Result<Vec<Listed>> {
    let logins: HashMap<String, Login> = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => return Err(e),
    };
    let now = crate::clock::unix_now();
    let mut out: Vec<Listed> = logins
        .into_iter()
        .filter(|(_, l)| l.expires > now)
        .map(|(digest, l)| Listed {
            id: digest[..12.min(digest.len())].to_owned(),
            who: l.user.unwrap_or_else(|| format!("token {}", l.token_id)),
            via: l.via.unwrap_or_else(|| "token".into()),
            expires: l.expires,
        })
        .collect();
    out.sort_by_key(|l| std::cmp::Reverse(l.expires));
    Ok(out)
}

/// Ends the login whose id is `id` in `path` (the running daemon reads
/// the file again); false when there is none.
pub fn revoke(path: &std::path::Path, id: &str) -> std::io::Result<bool> {
    let mut logins: HashMap<String, Login> = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let before = logins.len();
    logins.retain(|digest, _| id.len() < 12 || !digest.starts_with(id));
    if logins.len() == before {
        return Ok(false);
    }
    let text = serde_json::to_vec(&logins).map_err(std::io::Error::other)?;
    crate::auth::write_private(path, &text)?;
    Ok(true)
}

/// The hex SHA-256 a login is kept under (never the cookie itself).
pub(crate) fn digest(cookie: &str) -> String {
    crate::auth::hex(&sha2::Sha256::digest(cookie.as_bytes()))
}

impl Logins {
    /// Loads `path` (missing: no logins; damaged: no logins, logged).
    pub fn load(path: PathBuf) -> Logins {
        let logins = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "login file damaged; everyone logs in again");
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        };
        Logins(Arc::new(Inner {
            stamp: Mutex::new(stamp(&path)),
            path,
            logins: Mutex::new(logins),
            write: Mutex::new(()),
        }))
    }

    /// A new login for the token `token_id`; returns the cookie value.
    pub async fn create(&self, token_id: String) -> std::io::Result<String> {
        self.add(token_id, None, "token").await
    }

    /// A new login for `user`, signed in `via` an OpenID Connect provider
    /// or a passkey (role `user`); returns the cookie value.
    pub async fn create_for_user(
        &self,
        user: &crate::names::Name,
        via: &str,
    ) -> std::io::Result<String> {
        self.add(String::new(), Some(user.to_string()), via).await
    }

    async fn add(
        &self,
        token_id: String,
        user: Option<String>,
        via: &str,
    ) -> std::io::Result<String> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(std::io::Error::other)?;
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let now = crate::clock::unix_now();
        {
            let mut logins = self.0.logins.lock().expect("logins lock");
            crate::bounded::insert(
                &mut logins,
                MAX_LOGINS,
                |l| l.expires > now,
                |l| l.expires,
                digest(&cookie),
                Login {
                    token_id,
                    user,
                    via: Some(via.to_owned()),
                    expires: now + LOGIN_TTL_S,
                },
            );
        }
        self.save().await?;
        Ok(cookie)
    }

    /// Ends the login `cookie` (if it is one).
    pub async fn remove(&self, cookie: &str) -> std::io::Result<()> {
        let removed = self
            .0
            .logins
            .lock()
            .expect("logins lock")
            .remove(&digest(cookie))
            .is_some();
        if removed {
            self.save().await?;
        }
        Ok(())
    }

    /// Who the login `cookie` is: unexpired, its token not revoked, and
    /// not revoked itself (`tmuxd logins --revoke` rewrites the file: it
    /// is read again when it changed).
    pub fn identity(&self, cookie: &str, tokens: &TokenStore) -> Option<Identity> {
        self.refresh();
        let login = self
            .0
            .logins
            .lock()
            .expect("logins lock")
            .get(&digest(cookie))
            .cloned()?;
        if login.expires <= crate::clock::unix_now() {
            return None;
        }
        match &login.user {
            Some(user) if login.token_id.is_empty() => Some(Identity {
                user: crate::names::Name::new(user).ok()?,
                role: crate::auth::Role::User,
            }),
            _ => tokens.by_id(&login.token_id),
        }
    }

    /// Reads the file again when it changed under us.
    fn refresh(&self) {
        let now = stamp(&self.0.path);
        let mut seen = self.0.stamp.lock().expect("logins stamp lock");
        if *seen == now {
            return;
        }
        *seen = now;
        let read: HashMap<String, Login> = std::fs::read(&self.0.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        *self.0.logins.lock().expect("logins lock") = read;
    }

    /// Writes the logins atomically (tmp, fsync, rename) on a blocking thread.
    async fn save(&self) -> std::io::Result<()> {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = inner.write.lock().expect("login write lock");
            let text = {
                let logins = inner.logins.lock().expect("logins lock");
                serde_json::to_vec(&*logins).map_err(std::io::Error::other)?
            };
            crate::auth::write_private(&inner.path, &text)?;
            *inner.stamp.lock().expect("logins stamp lock") = stamp(&inner.path);
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::names::Name;

    #[tokio::test]
    async fn logins_end_on_logout_on_revocation_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenStore::new(dir.path().join("tokens.json"));
        let alice = Name::new("alice").unwrap();
        let t = tokens.issue(&alice, Role::User).unwrap();
        let logins = Logins::load(dir.path().join("logins.json"));
        let a = logins.create(t.id.clone()).await.unwrap();
        let b = logins.create(t.id.clone()).await.unwrap();
        assert_ne!(a, t.token);
        assert_eq!(logins.identity(&a, &tokens).unwrap().user, alice);
        // Only hashes reach the file.
        let file = std::fs::read_to_string(dir.path().join("logins.json")).unwrap();
        assert!(!file.contains(&a) && file.contains(&digest(&a)));
        logins.remove(&a).await.unwrap();
        assert!(logins.identity(&a, &tokens).is_none());
        // A restart keeps the other login.
        let again = Logins::load(dir.path().join("logins.json"));
        assert!(again.identity(&a, &tokens).is_none());
        assert!(again.identity(&b, &tokens).is_some());
        // Revoking the token ends its logins.
        tokens.revoke(&t.id).unwrap();
        assert!(again.identity(&b, &tokens).is_none());
        assert!(again.identity("junk", &tokens).is_none());
    }
}
