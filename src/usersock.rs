//! The daemon's Unix socket servers. [`accept_loop`] is the one loop they
//! all run (control, mail ingest, per-user): a task per admitted
//! connection, ended by shutdown too; a back-off on accept errors; the
//! socket removed at the end. Per-user sockets ([`serve`]), for a user's
//! own processes (the agent hooks, the sandbox's network relay), sit in a
//! directory the daemon owns (0711), each owned by the user with mode
//! 0600, and every connection's peer uid is checked against the user's
//! again.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::names::Name;

/// Binds `path` (replacing a stale socket), owned by `owner`, mode 0600.
pub fn bind(path: &Path, owner: (u32, u32)) -> std::io::Result<UnixListener> {
    let dir = path.parent().expect("socket in a directory");
    // The daemon's own directory: users pass through it, never write it.
    crate::roots::ensure(dir, 0o711).map_err(std::io::Error::other)?;
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::remove_file(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(nix::unistd::Uid::from_raw(owner.0)),
        Some(nix::unistd::Gid::from_raw(owner.1)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(listener)
}

/// Accepts on `listener` until `cancel`, then removes `path`. `admit`
/// looks at each connection: the work to do for it (run in a task of its
/// own, which `cancel` ends too), or `None` to refuse it (having said
/// why). `what` names the socket in logs.
pub async fn accept_loop<F, Fut>(
    what: &'static str,
    listener: UnixListener,
    path: &Path,
    cancel: CancellationToken,
    tracker: TaskTracker,
    mut admit: F,
) where
    F: FnMut(UnixStream) -> Option<Fut>,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::error!(error = %e, "{what} socket accept failed");
                    // Back off so a persistent error (EMFILE) cannot spin.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = cancel.cancelled() => break,
                    }
                }
            },
            _ = cancel.cancelled() => break,
        };
        let Some(work) = admit(stream) else { continue };
        let cancel = cancel.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = work => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
    let _ = std::fs::remove_file(path);
}

/// Serves `path` for `user` until `cancel`: each connection from the
/// user's uid is handed to `serve` in a task of its own (ended by
/// `cancel` too); others are refused and logged. `what` names the socket
/// in logs.
pub async fn serve<F, Fut>(
    what: &'static str,
    path: PathBuf,
    user: Name,
    owner: (u32, u32),
    cancel: CancellationToken,
    tracker: TaskTracker,
    serve: F,
) where
    F: Fn(UnixStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = match bind(&path, owner) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(user = %user, path = %path.display(), error = %e, "cannot open the {what} socket");
            return;
        }
    };
    accept_loop(what, listener, &path, cancel, tracker, |stream| {
        let peer = stream.peer_cred().map(|c| c.uid()).ok();
        if peer != Some(owner.0) {
            tracing::warn!(user = %user, peer = ?peer, "{what} connection from another uid refused");
            return None;
        }
        Some(serve(stream))
    })
    .await;
}
