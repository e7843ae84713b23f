//! The daemon's control socket (`RUNTIME_DIR/tmuxd.sock`) and the CLI's
//! client for it.
//!
//! The protocol is one JSON request line and one JSON response line per
//! connection. The socket is 0600 and the daemon also checks the peer's
//! credentials: only its own uid and root may talk to it. When no daemon
//! listens, the CLI acts on tmux directly (see `cli`).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::names::SessionId;
use crate::session::SessionError;
use crate::supervisor::Supervisor;

mod client;
mod files;
mod ingest;
pub use client::{request, request_stream, request_with_body};
pub use ingest::IngestServer;

/// Longest request line accepted (typed text included).
const MAX_REQUEST: u64 = 4 * 1024 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Is a daemon there?
    Ping,
    New {
        id: String,
        /// In a new git worktree of the user's repository.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        worktree: bool,
        /// The worktree's branch (made if missing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
    },
    Kill {
        id: String,
        /// Remove the session's worktree too, if it is clean.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remove_worktree: bool,
    },
    Send {
        id: String,
        text: String,
        enter: bool,
    },
    /// The response line is followed by the export, until EOF.
    Transcript {
        id: String,
        format: crate::transcript::Format,
        since_ms: Option<u64>,
        grep: Option<String>,
    },
    /// One RFC 5322 message for the email bridge (base64).
    MailIngest { message: String },
    /// Every recorded session's agent state, profile and pending question
    /// (the message is a JSON object keyed by session id).
    Agents,
    /// Answers pending question `question` with `option`.
    Answer { question: String, option: String },
    /// Stores the bytes after the request line (until EOF) as a new file
    /// in the session's uploads directory.
    Put { id: String, name: String },
    /// The response line (its message says what follows, as JSON) is
    /// followed by a file or a directory's archive, until EOF.
    Get {
        id: String,
        path: String,
        format: Option<String>,
        /// Add the session's transcript to a directory's archive.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        transcript: bool,
    },
    /// Takes a snapshot of the session's workspace; the message is it, as
    /// JSON.
    Snapshot { id: String },
    /// The session's snapshots, oldest first, as JSON.
    Snapshots { id: String },
    /// Restores the session's workspace to `snapshot`; the message is the
    /// snapshot of the present taken first, as JSON.
    Rollback { id: String, snapshot: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    /// The request was wrong (exit 2), rather than something failing.
    #[serde(default)]
    pub bad_input: bool,
    pub message: String,
}

impl Response {
    fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            bad_input: false,
            message: message.into(),
        }
    }
    pub fn from_error(e: &SessionError) -> Response {
        if e.is_bad_input() {
            Response {
                ok: false,
                bad_input: true,
                message: e.to_string(),
            }
        } else {
            // The detail goes to the log, not to the caller.
            tracing::error!(error = %e, "control request failed");
            Response {
                ok: false,
                bad_input: false,
                message: "internal error; see the daemon's log".into(),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another tmuxd is already running (its control socket {0} answers)")]
    AlreadyRunning(PathBuf),
    #[error("control socket {0}: {1}")]
    Io(PathBuf, String),
}

/// The bound control socket.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds `path`, replacing a stale socket but refusing when another
    /// daemon answers on it.
    pub async fn bind(path: &Path) -> Result<ControlServer, ControlError> {
        let ioe = |e: io::Error| ControlError::Io(path.to_owned(), crate::config::io_reason(&e));
        if path.exists() {
            // Another daemon only if it answers a ping; a socket nobody
            // serves (a daemon that was killed) is replaced.
            let answered =
                tokio::time::timeout(Duration::from_secs(1), request(path, &Request::Ping))
                    .await
                    .is_ok_and(|r| r.is_ok_and(|r| r.is_some_and(|r| r.ok)));
            if answered {
                return Err(ControlError::AlreadyRunning(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(ioe)?;
        }
        let listener = UnixListener::bind(path).map_err(ioe)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(ioe)?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
        })
    }

    /// Serves requests until `cancel`; then removes the socket file.
    pub async fn run(
        self,
        supervisor: Supervisor,
        bridge: Option<crate::mail::Bridge>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) {
        let me = nix::unistd::geteuid().as_raw();
        let listener = self.listener;
        crate::usersock::accept_loop("control", listener, &self.path, cancel, tracker, |stream| {
            let uid = stream.peer_cred().map(|c| c.uid()).ok();
            let Some(uid) = uid.filter(|u| *u == me || *u == 0) else {
                tracing::warn!("control connection from another uid refused");
                return None;
            };
            let (supervisor, bridge) = (supervisor.clone(), bridge.clone());
            Some(async move {
                if let Err(e) = serve_one(stream, &supervisor, bridge.as_ref(), uid).await {
                    tracing::debug!(error = %e, "control connection ended");
                }
            })
        })
        .await;
    }
}

async fn serve_one(
    stream: UnixStream,
    supervisor: &Supervisor,
    bridge: Option<&crate::mail::Bridge>,
    uid: u32,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))??;
    let request = serde_json::from_str::<Request>(&line);
    if let Ok(Request::Transcript {
        id,
        format,
        since_ms,
        grep,
    }) = &request
    {
        return transcript(
            &mut write,
            supervisor,
            id,
            *format,
            *since_ms,
            grep.as_deref(),
        )
        .await;
    }
    let by = format!("cli:uid={uid}");
    if let Ok(Request::Put { id, name }) = &request {
        // The file follows the request line: no longer bounded by
        // MAX_REQUEST (the upload cap bounds it).
        reader.get_mut().set_limit(u64::MAX);
        let response = files::put_over_control(supervisor, id, name, &by, &mut reader).await;
        return write_response(&mut write, &response).await;
    }
    if let Ok(Request::Get {
        id,
        path,
        format,
        transcript,
    }) = &request
    {
        let what = (id.as_str(), path.as_str(), format.as_deref(), *transcript);
        let response = files::get_over_control(supervisor, what, &by, &mut write).await?;
        if !response.ok {
            write_response(&mut write, &response).await?;
        }
        return Ok(());
    }
    let response = match request {
        Ok(
            r @ (Request::Snapshot { .. } | Request::Snapshots { .. } | Request::Rollback { .. }),
        ) => files::snapshots(supervisor, r, &by).await,
        Ok(Request::MailIngest { message }) => mail_ingest(bridge, &message).await,
        Ok(request) => handle(request, supervisor, uid).await,
        Err(_) if !line.ends_with('\n') => Response {
            ok: false,
            bad_input: true,
            message: format!("request longer than {MAX_REQUEST} bytes or incomplete"),
        },
        Err(e) => Response {
            ok: false,
            bad_input: true,
            message: format!("malformed request: {e}"),
        },
    };
    write_response(&mut write, &response).await
}

pub async fn write_response(
    write: &mut (impl AsyncWriteExt + Unpin),
    response: &Response,
) -> io::Result<()> {
    let mut out = serde_json::to_vec(response).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

/// Streams a transcript after an `ok` line (or answers the error).
async fn transcript(
    write: &mut (impl AsyncWriteExt + Unpin),
    supervisor: &Supervisor,
    id: &str,
    format: crate::transcript::Format,
    since_ms: Option<u64>,
    grep: Option<&str>,
) -> io::Result<()> {
    let bad = |m: String| Response {
        ok: false,
        bad_input: true,
        message: m,
    };
    let id = match id.parse::<SessionId>() {
        Ok(id) => id,
        Err(e) => return write_response(write, &bad(e.to_string())).await,
    };
    let grep = match grep.map(regex::Regex::new).transpose() {
        Ok(g) => g,
        Err(e) => return write_response(write, &bad(format!("invalid --grep pattern: {e}"))).await,
    };
    let log = match supervisor.transcript_log(&id).await {
        Ok(log) => log,
        Err(e) => return write_response(write, &Response::from_error(&e)).await,
    };
    write_response(write, &Response::ok("")).await?;
    let options = crate::transcript::ExportOptions {
        until_id: None,
        since_ms,
        grep,
        times: false,
    };
    let mut chunks = crate::transcript::export_stream(log, format, options);
    while let Some(chunk) = chunks.recv().await {
        match chunk {
            Ok(bytes) => write.write_all(&bytes).await?,
            Err(_) => return Err(io::Error::other("export failed")),
        }
    }
    write.flush().await
}

async fn handle(request: Request, supervisor: &Supervisor, uid: u32) -> Response {
    let parse = |id: &str| {
        id.parse::<SessionId>()
            .map_err(|e| SessionError::BadInput(e.to_string()))
    };
    let result = match &request {
        Request::New {
            id,
            worktree,
            branch,
        } => match parse(id) {
            Ok(id) if *worktree => supervisor
                .create_worktree(&id, branch.as_deref())
                .await
                .map(|info| match &info.workdir {
                    Some(w) => format!("created {id} in the worktree {}", w.display()),
                    None => format!("created {id}"),
                }),
            Ok(_) if branch.is_some() => Err(SessionError::BadInput(
                "--branch goes with --worktree".into(),
            )),
            Ok(id) => supervisor
                .create(&id)
                .await
                .map(|_| format!("created {id}")),
            Err(e) => Err(e),
        },
        Request::Kill {
            id,
            remove_worktree,
        } => match parse(id) {
            Ok(id) => supervisor.kill_session(&id, *remove_worktree).await,
            Err(e) => Err(e),
        },
        Request::Send { id, text, enter } => match parse(id) {
            Ok(id) => supervisor
                .send(&id, text, *enter, &format!("cli:uid={uid}"))
                .await
                .map(|_| String::new()),
            Err(e) => Err(e),
        },
        Request::Ping => Ok("pong".to_owned()),
        Request::Agents => Ok(agents(supervisor).to_string()),
        Request::Answer { question, option } => {
            answer(supervisor, question, option, &format!("uid={uid}")).await
        }
        Request::Transcript { .. }
        | Request::Put { .. }
        | Request::Get { .. }
        | Request::Snapshot { .. }
        | Request::Snapshots { .. }
        | Request::Rollback { .. } => unreachable!("handled in serve_one"),
        Request::MailIngest { .. } => unreachable!("handled in serve_one"),
    };
    match result {
        Ok(message) => Response::ok(message),
        Err(e) => Response::from_error(&e),
    }
}

/// What the daemon knows of each recorded session's agent.
fn agents(supervisor: &Supervisor) -> serde_json::Value {
    let Some(rec) = supervisor.recorder() else {
        return serde_json::json!({});
    };
    let all: serde_json::Map<String, serde_json::Value> = rec
        .tracked()
        .into_iter()
        .map(|id| {
            let agent = serde_json::to_value(rec.agent_view(&id)).unwrap_or_default();
            (id.to_string(), agent)
        })
        .collect();
    serde_json::Value::Object(all)
}

async fn answer(
    supervisor: &Supervisor,
    question: &str,
    option: &str,
    who: &str,
) -> Result<String, SessionError> {
    use crate::answer::{AnswerFailed, Channel};
    let id = supervisor
        .recorder()
        .and_then(|r| r.find_question(question))
        .ok_or_else(|| {
            SessionError::BadInput(format!(
                "no session shows question {question} now; nothing was typed (`tmuxd sessions` lists the questions waiting)"
            ))
        })?;
    match crate::answer::answer(supervisor, &id, question, option, Channel::Cli, who).await {
        Ok(()) => Ok(format!("answered {id}: {option}")),
        Err(AnswerFailed::Session(e)) => Err(e),
        Err(e) => Err(SessionError::BadInput(e.to_string())),
    }
}

async fn mail_ingest(bridge: Option<&crate::mail::Bridge>, message: &str) -> Response {
    use base64::Engine;
    let Some(bridge) = bridge else {
        return Response {
            ok: false,
            bad_input: true,
            message: "the email bridge is not configured ([mail] in the config)".into(),
        };
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(message) else {
        return Response {
            ok: false,
            bad_input: true,
            message: "the message is not valid base64".into(),
        };
    };
    let handled = bridge.handle(&raw).await;
    Response {
        ok: handled.decision != crate::mail::Outcome::Failed,
        bad_input: false,
        message: format!("{}: {}", handled.decision, handled.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = Request::Send {
            id: "alice/main".into(),
            text: "ls;".into(),
            enter: true,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"send","id":"alice/main","text":"ls;","enter":true}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert!(serde_json::from_str::<Request>(r#"{"op":"rm","id":"x"}"#).is_err());
    }
}
