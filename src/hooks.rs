//! Agent hooks: Claude Code reports its permission dialogs (with the tool
//! and its input), notifications and the end of each turn through a hook
//! command, `tmuxd hook`, that tmuxd configures for the sessions it starts
//! (`--settings`, never the user's own settings files). The command talks
//! to the daemon over a per-user socket, `RUNTIME_DIR/hooks/USER.sock`: in a
//! directory the daemon owns, owned by the user, mode 0600, and every
//! connection's peer uid is checked against the user's. The hook reports
//! and returns at once with no decision, so the agent's own dialog shows
//! (its "ask"): it can never hang the agent, and answers go through the
//! same question objects as everywhere else. Screen detection stays the
//! fallback (agents without hooks, `hooks = false`, a daemon that is down).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::names::{Name, SessionId};
use crate::recorder::Recorder;

/// A hook's message is at most this long (one JSON line).
const MAX_MESSAGE: u64 = 1024 * 1024;

/// How long a hook may take to send its message.
const HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment a session's agent gets: where to report, as whom.
pub const ENV_SOCKET: &str = "TMUXD_HOOK";
pub const ENV_SESSION: &str = "TMUXD_SESSION";

/// The directory of the hook sockets.
pub fn dir(config: &Config) -> PathBuf {
    config.runtime_dir.join("hooks")
}

/// `user`'s hook socket.
pub fn socket(config: &Config, user: &Name) -> PathBuf {
    dir(config).join(format!("{user}.sock"))
}

/// The `--settings` argument that points Claude Code's hooks at
/// `tmuxd hook` (the running binary).
pub fn claude_settings() -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tmuxd"));
    let quoted = format!("'{}'", exe.display().to_string().replace('\'', r"'\''"));
    let hook = serde_json::json!([{
        "matcher": "*",
        "hooks": [{"type": "command", "command": format!("{quoted} hook"), "timeout": 10}]
    }]);
    serde_json::json!({
        "hooks": {"PermissionRequest": hook, "Notification": hook, "Stop": hook}
    })
    .to_string()
}

/// Serves one user's hook socket until `cancel`.
pub async fn serve_user(
    path: PathBuf,
    user: Name,
    owner: (u32, u32),
    recorder: Recorder,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let listener = match bind(&path, owner) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(user = %user, path = %path.display(), error = %e, "cannot open the hook socket; agent hooks are off for this user (the screen still tells its state)");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "hook socket accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = cancel.cancelled() => break,
                    }
                }
            },
            _ = cancel.cancelled() => break,
        };
        let peer = stream.peer_cred().map(|c| c.uid()).ok();
        if peer != Some(owner.0) {
            tracing::warn!(user = %user, peer = ?peer, "hook connection from another uid refused");
            continue;
        }
        let (rec, user, cancel) = (recorder.clone(), user.clone(), cancel.clone());
        tracker.spawn(async move {
            tokio::select! {
                r = tokio::time::timeout(HOOK_TIMEOUT, serve_one(stream, &user, &rec)) => {
                    if !matches!(r, Ok(Ok(()))) {
                        tracing::debug!(user = %user, "hook connection ended early");
                    }
                }
                _ = cancel.cancelled() => {}
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Binds `path` (replacing a stale socket), owned by `owner`, mode 0600.
fn bind(path: &Path, owner: (u32, u32)) -> std::io::Result<UnixListener> {
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

async fn serve_one(stream: UnixStream, user: &Name, rec: &Recorder) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_MESSAGE))
        .read_line(&mut line)
        .await?;
    let msg: serde_json::Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    let id = msg["session"]
        .as_str()
        .and_then(|s| s.parse::<SessionId>().ok())
        .filter(|id| &id.user == user);
    let Some(id) = id else {
        write.write_all(b"{\"ok\":false}\n").await?;
        return Ok(());
    };
    rec.hook_event(&id, &msg["event"]);
    write.write_all(b"{\"ok\":true}\n").await
}

/// `tmuxd hook`: run by the agent (as the user) for each hook event, with
/// the event's JSON on stdin. Reports it and exits 0 with no output, so
/// the agent carries on as if there were no hook; never fails the agent.
pub fn run_hook_command() {
    let (Ok(socket), Ok(session)) = (std::env::var(ENV_SOCKET), std::env::var(ENV_SESSION)) else {
        return;
    };
    let mut input = Vec::new();
    use std::io::Read;
    if std::io::stdin()
        .take(MAX_MESSAGE - 4096)
        .read_to_end(&mut input)
        .is_err()
    {
        return;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&input) else {
        return;
    };
    let msg = serde_json::json!({"session": session, "event": event});
    let _ = send(Path::new(&socket), &msg);
}

fn send(socket: &Path, msg: &serde_json::Value) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(HOOK_TIMEOUT))?;
    stream.set_read_timeout(Some(HOOK_TIMEOUT))?;
    let mut line = msg.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    std::io::BufReader::new(stream).read_line(&mut answer)?;
    Ok(())
}
