//! A tmux host: where users' tmux servers start when tmuxd runs in a
//! container of its own (`[daemon] tmux_host`). A server lives in the
//! cgroup of whoever started it, so one started by tmuxd in its container
//! ends when that container restarts. `tmuxd tmux-host --socket PATH`
//! runs in a container beside it (same pod, shared sockets, spools and
//! PID namespace) and runs the tmux invocations that start a server; the
//! server, and every agent it starts, then belong to the host's container
//! and outlive tmuxd's restarts, which adopt them as after any restart.
//!
//! The socket is the host's own (0600); a connection from another uid is
//! refused. A request is one JSON line `{"argv": ["tmux", ...]}` (only
//! tmux, with a deadline); the answer `{"status", "stdout", "stderr"}`.

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A request is at most this long.
const MAX_REQUEST: u64 = 1024 * 1024;

/// How long a request may take to arrive, and tmux to run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const RUN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Serialize, Deserialize)]
pub struct HostRequest {
    pub argv: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub struct HostAnswer {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `tmuxd tmux-host --socket PATH`: serves until killed.
pub fn serve(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            )))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let me = nix::unistd::geteuid().as_raw();
    eprintln!("tmuxd tmux-host: serving {}", path.display());
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let peer = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
            .map(|c| c.uid())
            .ok();
        if peer != Some(me) {
            eprintln!("tmuxd tmux-host: a connection from uid {peer:?} refused");
            continue;
        }
        std::thread::spawn(move || {
            if let Err(e) = answer(conn) {
                eprintln!("tmuxd tmux-host: {e}");
            }
        });
    }
    Ok(())
}

fn answer(conn: UnixStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = String::new();
    std::io::BufReader::new((&conn).take(MAX_REQUEST)).read_line(&mut line)?;
    let request: HostRequest = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    let reply = match request.argv.split_first() {
        Some((tmux, args)) if tmux == "tmux" => run(args),
        _ => HostAnswer {
            status: 2,
            stdout: String::new(),
            stderr: "the tmux host runs tmux only".into(),
        },
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&conn).write_all(&out)
}

/// Runs tmux with `args`, the environment scrubbed as the daemon's.
fn run(args: &[String]) -> HostAnswer {
    let mut cmd = std::process::Command::new("tmux");
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for var in super::SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let failed = |e: String| HostAnswer {
        status: 1,
        stdout: String::new(),
        stderr: e,
    };
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot run tmux: {e}")),
    };
    match crate::deadline::output_within(child, RUN_TIMEOUT) {
        Ok(out) => HostAnswer {
            status: out.status.code().unwrap_or(1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => failed(format!("tmux: {e}")),
    }
}
