//! Login tokens, roles, and the failed-login rate limiter.
//!
//! A token is `USER.SECRET` (SECRET: 32 random bytes, base64url). It is
//! shown once by `tmuxd token USER`; only its SHA-256 is stored, in
//! `STATE_DIR/tokens.json` (0600). Verification hashes the presented token
//! and compares it in constant time with the stored hashes of that user.
//! The file is re-read when it changes, so tokens issued or revoked while the
//! daemon runs take effect at once. Failed logins are limited per address,
//! after verification (see [`LoginLimiter`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::names::Name;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Their own sessions: view, type, create, kill.
    User,
    /// Every user's sessions.
    Admin,
    /// Their own sessions, view only (terminals attach read-only).
    ReadOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: Name,
    pub role: Role,
}

impl Identity {
    /// May see (and watch) `user`'s sessions.
    pub fn can_view(&self, user: &Name) -> bool {
        self.role == Role::Admin || &self.user == user
    }

    /// May type into, create and kill `user`'s sessions.
    pub fn can_write(&self, user: &Name) -> bool {
        self.role != Role::ReadOnly && self.can_view(user)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredToken {
    /// Short public id (first 12 hex digits of the hash), for revocation.
    id: String,
    user: Name,
    role: Role,
    sha256: String,
    created: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<StoredToken>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token file {0}: {1}")]
    Io(PathBuf, String),
    #[error("token file {0} is damaged: {1}")]
    Damaged(PathBuf, String),
    #[error("no token {0}")]
    NoSuchToken(String),
}

/// The token file, cached and re-read when it changes.
pub struct TokenStore {
    path: PathBuf,
    /// std mutex: held only for in-memory work and a stat, never across
    /// an `.await`.
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// (mtime, length, inode): writes are atomic renames, so the inode
    /// changes on every write even where mtimes are coarse.
    stamp: Option<(SystemTime, u64, u64)>,
    tokens: Vec<StoredToken>,
}

/// A newly issued token: the secret (shown once) and its public id.
pub struct IssuedToken {
    pub token: String,
    pub id: String,
}

impl TokenStore {
    pub fn new(path: PathBuf) -> TokenStore {
        TokenStore {
            path,
            cache: Mutex::new(Cache::default()),
        }
    }

    fn read_file(&self) -> Result<TokenFile, TokenError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TokenError::Damaged(self.path.clone(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
            Err(e) => Err(TokenError::Io(
                self.path.clone(),
                crate::config::io_reason(&e),
            )),
        }
    }

    /// Writes the file atomically, mode 0600.
    fn write_file(&self, file: &TokenFile) -> Result<(), TokenError> {
        let text = serde_json::to_vec_pretty(file)
            .map_err(|e| TokenError::Io(self.path.clone(), e.to_string()))?;
        write_private(&self.path, &text)
            .map_err(|e| TokenError::Io(self.path.clone(), crate::config::io_reason(&e)))
    }

    /// Issues a token for `user` with `role`; only its hash is stored.
    pub fn issue(&self, user: &Name, role: Role) -> Result<IssuedToken, TokenError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| TokenError::Io(self.path.clone(), e.to_string()))?;
        let token = format!(
            "{user}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let sha256 = hex(&sha2::Sha256::digest(token.as_bytes()));
        let id = sha256[..12].to_owned();
        let mut file = self.read_file()?;
        file.tokens.push(StoredToken {
            id: id.clone(),
            user: user.clone(),
            role,
            sha256,
            created: crate::clock::unix_now(),
        });
        self.write_file(&file)?;
        Ok(IssuedToken { token, id })
    }

    /// Revokes the token with public id `id`.
    pub fn revoke(&self, id: &str) -> Result<(), TokenError> {
        let mut file = self.read_file()?;
        let before = file.tokens.len();
        file.tokens.retain(|t| t.id != id);
        if file.tokens.len() == before {
            return Err(TokenError::NoSuchToken(id.to_owned()));
        }
        self.write_file(&file)
    }

    /// `(id, user, role, created)` of every token, for `tmuxd token --list`.
    pub fn list(&self) -> Result<Vec<(String, Name, Role, u64)>, TokenError> {
        Ok(self
            .read_file()?
            .tokens
            .into_iter()
            .map(|t| (t.id, t.user, t.role, t.created))
            .collect())
    }

    /// The identity `token` proves, if any. Fails closed: an unreadable or
    /// damaged token file admits nobody (and is logged).
    pub fn verify(&self, token: &str) -> Option<Identity> {
        self.verify_with_id(token).map(|(identity, _)| identity)
    }

    /// Like [`TokenStore::verify`], with the token's public id.
    pub fn verify_with_id(&self, token: &str) -> Option<(Identity, String)> {
        let user = token_user(token)?;
        let presented = sha2::Sha256::digest(token.as_bytes());
        let mut cache = self.cache.lock().expect("token cache lock");
        self.refresh(&mut cache);
        let mut found = None;
        // Compare with every token of the user, without stopping early.
        for t in cache.tokens.iter().filter(|t| t.user == user) {
            let stored = data_encoding::HEXLOWER
                .decode(t.sha256.as_bytes())
                .unwrap_or_default();
            if constant_time_eq(&stored, &presented) {
                found = Some((
                    Identity {
                        user: t.user.clone(),
                        role: t.role,
                    },
                    t.id.clone(),
                ));
            }
        }
        found
    }

    /// The identity of the token with public id `id`, while it exists.
    pub fn by_id(&self, id: &str) -> Option<Identity> {
        let mut cache = self.cache.lock().expect("token cache lock");
        self.refresh(&mut cache);
        cache.tokens.iter().find(|t| t.id == id).map(|t| Identity {
            user: t.user.clone(),
            role: t.role,
        })
    }

    fn refresh(&self, cache: &mut Cache) {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        });
        if stamp == cache.stamp && stamp.is_some() {
            return;
        }
        cache.stamp = stamp;
        cache.tokens = match self.read_file() {
            Ok(f) => f.tokens,
            Err(e) => {
                tracing::error!(error = %e, "cannot read tokens; refusing every token until fixed");
                Vec::new()
            }
        };
    }
}

/// The user a token claims to be for (its prefix), if well-formed.
pub fn token_user(token: &str) -> Option<Name> {
    let (user, secret) = token.split_once('.')?;
    if secret.len() != 43
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Name::new(user).ok()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Failed-login limits per client address, over a sliding window.
///
/// Tokens are verified first, and only failures are counted: a valid token
/// is never refused, whoever else failed from the same address or claimed
/// the same user name (tokens carry 256 random bits: the limit keeps logs
/// and work small, it is not what stops guessing). A claimed user name
/// counts for nothing, so junk tokens named after a user cannot lock them
/// out. Memory is bounded: stale addresses go first.
pub struct LoginLimiter {
    window: Duration,
    per_addr: usize,
    /// std mutex: in-memory work only.
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const MAX_TRACKED_KEYS: usize = 10_000;

impl LoginLimiter {
    pub fn new(window: Duration, per_addr: usize) -> LoginLimiter {
        LoginLimiter {
            window,
            per_addr,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed login from `addr`. `Err(retry_after)` once `addr`
    /// has failed more than its limit within the window.
    pub fn failed(&self, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() >= MAX_TRACKED_KEYS && !map.contains_key(&addr) {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= MAX_TRACKED_KEYS {
                map.clear();
            }
        }
        let q = map.entry(addr).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        q.push_back(now);
        if q.len() > self.per_addr {
            q.pop_front();
            let oldest = *q.front().expect("non-empty");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` whole (see [`crate::roots::write_whole`]),
/// mode 0600, making its directory if needed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::roots::write_whole(path, bytes, 0o600, None)
}

/// Where the token file lives.
pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("tokens.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().join("tokens.json"));
        (dir, store)
    }

    #[test]
    fn issued_tokens_verify_and_only_hashes_are_stored() {
        let (dir, store) = store();
        let alice = Name::new("alice").unwrap();
        let t = store.issue(&alice, Role::User).unwrap();
        assert!(t.token.starts_with("alice."));
        let id = store.verify(&t.token).unwrap();
        assert_eq!((id.user.as_str(), id.role), ("alice", Role::User));
        let file = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(!file.contains(t.token.split('.').nth(1).unwrap()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tokens.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn wrong_and_forged_tokens_fail() {
        let (_dir, store) = store();
        let alice = Name::new("alice").unwrap();
        let t = store.issue(&alice, Role::Admin).unwrap();
        let mut wrong = t.token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert!(store.verify(&wrong).is_none());
        // The same secret claimed for another user.
        let forged = t.token.replacen("alice.", "bob.", 1);
        assert!(store.verify(&forged).is_none());
        for junk in ["", "alice", "alice.", "ALICE.x", "alice.short"] {
            assert!(store.verify(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn revocation_takes_effect_without_restart() {
        let (_dir, store) = store();
        let bob = Name::new("bob").unwrap();
        let t = store.issue(&bob, Role::ReadOnly).unwrap();
        assert!(store.verify(&t.token).is_some());
        // Another process (the CLI) revokes it.
        let other = TokenStore::new(store.path.clone());
        other.revoke(&t.id).unwrap();
        assert!(store.verify(&t.token).is_none());
        assert!(matches!(
            other.revoke(&t.id),
            Err(TokenError::NoSuchToken(_))
        ));
    }

    #[test]
    fn damaged_file_admits_nobody() {
        let (_dir, store) = store();
        let alice = Name::new("alice").unwrap();
        let t = store.issue(&alice, Role::User).unwrap();
        std::fs::write(&store.path, "{ not json").unwrap();
        assert!(store.verify(&t.token).is_none());
    }

    #[test]
    fn roles() {
        let alice = Name::new("alice").unwrap();
        let bob = Name::new("bob").unwrap();
        let user = Identity {
            user: alice.clone(),
            role: Role::User,
        };
        let admin = Identity {
            user: alice.clone(),
            role: Role::Admin,
        };
        let ro = Identity {
            user: alice.clone(),
            role: Role::ReadOnly,
        };
        assert!(user.can_write(&alice) && !user.can_view(&bob));
        assert!(admin.can_write(&bob));
        assert!(ro.can_view(&alice) && !ro.can_write(&alice) && !ro.can_view(&bob));
    }

    #[test]
    fn limiter_counts_failures_per_address_only() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3);
        let a1: IpAddr = "10.0.0.1".parse().unwrap();
        let a2: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.failed(a1).is_ok());
        }
        let wait = l.failed(a1).unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(l.failed(a2).is_ok());
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
