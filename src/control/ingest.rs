//! The mail socket (`RUNTIME_DIR/mail.sock`): how an MTA hands a message
//! to a root daemon without root. Postfix's pipe(8) and Exim's pipe
//! transport run their command as an unprivileged account, which the main
//! control socket (root and the daemon's uid only) refuses; this socket
//! takes one thing, `mail-ingest`, from members of `[mail] ingest_group`.
//!
//! It is mode 0660, owned by the daemon's account and that group, so the
//! kernel refuses other accounts at `connect` (the client reports that as
//! a permanent error, not "try later"); the daemon checks the peer's
//! groups again, and every message still goes through the bridge's sender
//! authentication and confirmation.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{mail_ingest, write_response, ControlError, Request, Response, REQUEST_TIMEOUT};

/// A message (base64) and its request line: the bridge's 2 MiB cap, and room.
const MAX_LINE: u64 = 4 * 1024 * 1024;

/// The bound mail socket.
pub struct IngestServer {
    listener: UnixListener,
    path: PathBuf,
    group: nix::unistd::Gid,
}

impl IngestServer {
    /// Binds `path` (in the daemon's runtime directory, which the control
    /// socket's bind already showed no other daemon serves) for `group`.
    pub fn bind(path: &Path, group: &str) -> Result<IngestServer, ControlError> {
        let ioe = |e: io::Error| ControlError::Io(path.to_owned(), crate::config::io_reason(&e));
        let gid = match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => g.gid,
            _ => {
                return Err(ControlError::Io(
                    path.to_owned(),
                    format!("no such group {group:?} ([mail] ingest_group)"),
                ))
            }
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ioe(e)),
        }
        let listener = UnixListener::bind(path).map_err(ioe)?;
        nix::unistd::chown(path, None, Some(gid)).map_err(|e| ioe(e.into()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(ioe)?;
        Ok(IngestServer {
            listener,
            path: path.to_owned(),
            group: gid,
        })
    }

    /// Serves until `cancel`; then removes the socket file.
    pub async fn run(
        self,
        bridge: crate::mail::Bridge,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) {
        let group = self.group;
        let listener = self.listener;
        crate::usersock::accept_loop("mail", listener, &self.path, cancel, tracker, |stream| {
            let bridge = bridge.clone();
            Some(async move {
                if let Err(e) = serve_one(stream, &bridge, group).await {
                    tracing::debug!(error = %e, "mail socket connection ended");
                }
            })
        })
        .await;
    }
}

async fn serve_one(
    stream: UnixStream,
    bridge: &crate::mail::Bridge,
    group: nix::unistd::Gid,
) -> io::Result<()> {
    let cred = stream.peer_cred()?;
    let (uid, gid) = (cred.uid(), cred.gid());
    let (read, mut write) = stream.into_split();
    let allowed = tokio::task::spawn_blocking(move || may_deliver(uid, gid, group))
        .await
        .unwrap_or(false);
    if !allowed {
        tracing::warn!(
            uid,
            "mail socket: a caller outside [mail] ingest_group refused"
        );
        let refused = Response {
            ok: false,
            bad_input: true,
            message: format!("uid {uid} may not deliver mail here: not in [mail] ingest_group"),
        };
        return write_response(&mut write, &refused).await;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))??;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(Request::MailIngest { message }) => mail_ingest(Some(bridge), &message).await,
        _ => Response {
            ok: false,
            bad_input: true,
            message: "the mail socket takes `tmuxd mail-ingest` only".into(),
        },
    };
    write_response(&mut write, &response).await
}

/// Root, the daemon's account, or a member of `group` (primary or
/// supplementary); blocking (the group database).
fn may_deliver(uid: u32, gid: u32, group: nix::unistd::Gid) -> bool {
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() || gid == group.as_raw() {
        return true;
    }
    let Ok(Some(user)) = nix::unistd::User::from_uid(uid.into()) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&group))
}
