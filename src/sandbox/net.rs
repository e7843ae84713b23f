//! The daemon's end of a sandbox's allow-list: a per-user socket,
//! `RUNTIME_DIR/sandbox/USER.sock` (see [`crate::usersock`]), shown inside
//! the user's sandboxes. Each connection names a session and a
//! `host:port`; the daemon connects to it only if that session's policy
//! lists it, answers `ok`, and relays bytes both ways until either side
//! closes or the daemon stops. Everything else is refused and logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Network, Policy, Target};
use crate::names::{Name, SessionId};

/// How long a header may take, and a connection to the target.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Relays one user's sandboxes may have open at once.
const MAX_RELAYS_PER_USER: usize = 256;

/// `user`'s relay socket, in the daemon's `runtime_dir`.
pub fn socket(runtime_dir: &Path, user: &Name) -> PathBuf {
    runtime_dir.join("sandbox").join(format!("{user}.sock"))
}

/// A session's sandbox policy now (the config may have been reloaded).
pub type Lookup = Arc<dyn Fn(&Name) -> Option<Policy> + Send + Sync>;

/// Serves `user`'s relay socket until `cancel`; `policy` gives each of
/// the user's sessions' policy.
pub async fn serve_user(
    path: PathBuf,
    user: Name,
    owner: (u32, u32),
    policy: Lookup,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_RELAYS_PER_USER));
    let u = user.clone();
    crate::usersock::serve("sandbox network", path, u, owner, cancel, tracker, move |stream| {
        let (user, slots, policy) = (user.clone(), slots.clone(), policy.clone());
        async move {
            let Ok(_slot) = slots.try_acquire_owned() else {
                tracing::warn!(user = %user, "too many sandbox connections at once; one refused");
                return;
            };
            relay(stream, &user, &policy).await;
        }
    })
    .await;
}

/// Reads the header, checks it against the session's policy, relays.
async fn relay(stream: UnixStream, user: &Name, policy: &Lookup) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    let header =
        tokio::time::timeout(HEADER_TIMEOUT, (&mut reader).take(512).read_line(&mut line)).await;
    if !matches!(header, Ok(Ok(n)) if n > 0) {
        return;
    }
    let Some(target) = allowed(user, policy, line.trim_end()) else {
        tracing::warn!(user = %user, request = %line.trim_end().escape_debug(), "sandbox connection to a destination its policy does not list refused");
        let _ = write.write_all(b"refused\n").await;
        return;
    };
    let connect = TcpStream::connect((target.host.as_str(), target.port));
    let mut out = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        _ => {
            tracing::info!(user = %user, target = %target, "sandbox connection: the destination did not answer");
            let _ = write.write_all(b"unreachable\n").await;
            return;
        }
    };
    let _ = out.set_nodelay(true);
    if write.write_all(b"ok\n").await.is_err() {
        return;
    }
    let mut inner = match reader.into_inner().reunite(write) {
        Ok(s) => s,
        Err(_) => return,
    };
    let _ = tokio::io::copy_bidirectional(&mut inner, &mut out).await;
}

/// The target `header` (`USER/SESSION HOST:PORT`) asks for, if that
/// session of `user` is sandboxed with it on its allow-list.
fn allowed(user: &Name, policy: &Lookup, header: &str) -> Option<Target> {
    let (session, target) = header.split_once(' ')?;
    let id: SessionId = session.parse().ok()?;
    if &id.user != user {
        return None;
    }
    let target = Target::parse(target).ok()?;
    let policy = policy(&id.session)?;
    match &policy.network {
        Network::Allow(list) if policy.enabled && list.contains(&target) => Some(target),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_targets_of_the_users_own_sandboxed_sessions_pass() {
        let policy: Lookup = Arc::new(|session: &Name| {
            let network = Network::Allow(vec![Target::parse("127.0.0.1:8080").unwrap()]);
            match session.as_str() {
                "main" => Some(Policy {
                    enabled: true,
                    network,
                    writable: vec![],
                }),
                "off" => Some(Policy {
                    enabled: false,
                    network,
                    writable: vec![],
                }),
                _ => None,
            }
        });
        let alice = Name::new("alice").unwrap();
        let ok = |h: &str| allowed(&alice, &policy, h).is_some();
        assert!(ok("alice/main 127.0.0.1:8080"));
        assert!(!ok("alice/main 127.0.0.1:8081"));
        assert!(!ok("alice/main 127.0.0.2:8080"));
        assert!(!ok("bob/main 127.0.0.1:8080"));
        assert!(!ok("alice/off 127.0.0.1:8080"));
        assert!(!ok("alice/gone 127.0.0.1:8080"));
        assert!(!ok("alice/main"));
        assert!(!ok("garbage"));
    }
}
