//! What every front door to a workspace shares (the HTTP API, the control
//! socket for `tmuxd put` and `tmuxd get`): the session must exist, the
//! work happens as its user ([`super::Place`]), and each upload and
//! download is recorded in its transcript with who did it.

use tokio::io::{AsyncRead, AsyncWriteExt};

use super::{Archive, Exit, Place, Sending, WorkspaceError};
use crate::control::Response;
use crate::names::SessionId;
use crate::session::{SessionError, State, UserServer};
use crate::supervisor::Supervisor;

/// The session's server, if the session exists (another user's session is
/// refused by the caller before this).
pub async fn session_server(
    supervisor: &Supervisor,
    id: &SessionId,
) -> Result<UserServer, SessionError> {
    let server = supervisor.server(&id.user)?;
    match server.info(&id.session).await {
        Ok(info) if info.state != State::Stopped => Ok(server),
        Ok(_) => Err(SessionError::NoSuchSession(id.clone())),
        Err(e) => Err(e),
    }
}

pub fn place(server: &UserServer) -> Place<'_> {
    Place {
        tmux: &server.tmux,
        workdir: &server.user.workdir,
    }
}

/// Records an upload or download in the session's transcript.
pub fn record(
    supervisor: &Supervisor,
    id: &SessionId,
    kind: &str,
    by: &str,
    detail: serde_json::Value,
) {
    tracing::info!(session = %id, by, "{kind}");
    if let Some(rec) = supervisor.recorder() {
        let mut detail = detail;
        detail["by"] = by.into();
        rec.event(id, kind, detail);
    }
}

/// What a download's event says.
pub fn download_detail(path: &str, sending: &Sending, archive: Archive) -> serde_json::Value {
    match sending {
        Sending::File { bytes, .. } => serde_json::json!({"path": path, "bytes": bytes}),
        Sending::Archive { files, bytes } => serde_json::json!({
            "path": path, "format": archive.extension(), "files": files, "bytes": bytes
        }),
    }
}

fn refused(message: impl Into<String>) -> Response {
    Response {
        ok: false,
        bad_input: true,
        message: message.into(),
    }
}

fn workspace_response(e: WorkspaceError) -> Response {
    Response {
        ok: false,
        bad_input: e.kind != Exit::Failed,
        message: e.message,
    }
}

/// `tmuxd put`: the file follows the request line until EOF; the answer is
/// the stored path and size as JSON.
pub async fn put_over_control(
    supervisor: &Supervisor,
    id: &str,
    name: &str,
    by: &str,
    body: &mut (impl AsyncRead + Unpin),
) -> Response {
    let id = match id.parse::<SessionId>() {
        Ok(id) => id,
        Err(e) => return refused(e.to_string()),
    };
    let server = match session_server(supervisor, &id).await {
        Ok(s) => s,
        Err(e) => return session_response(&e),
    };
    let caps = supervisor.workspace_config();
    match super::put(&place(&server), &caps, name, body).await {
        Ok(stored) => {
            record(
                supervisor,
                &id,
                "upload",
                by,
                serde_json::json!({"path": stored.path, "bytes": stored.bytes}),
            );
            Response {
                ok: true,
                bad_input: false,
                message: serde_json::to_string(&stored).unwrap_or_default(),
            }
        }
        Err(e) => workspace_response(e),
    }
}

/// `tmuxd get`: after an `ok` line whose message says what follows (JSON),
/// the bytes until EOF.
pub async fn get_over_control(
    supervisor: &Supervisor,
    (id, path, format): (&str, &str, Option<&str>),
    by: &str,
    write: &mut (impl AsyncWriteExt + Unpin),
) -> std::io::Result<Response> {
    let id = match id.parse::<SessionId>() {
        Ok(id) => id,
        Err(e) => return Ok(refused(e.to_string())),
    };
    let path = match super::check_path(path) {
        Ok(p) => p,
        Err(m) => return Ok(refused(m)),
    };
    let archive = match Archive::parse(format) {
        Ok(a) => a,
        Err(m) => return Ok(refused(m)),
    };
    let server = match session_server(supervisor, &id).await {
        Ok(s) => s,
        Err(e) => return Ok(session_response(&e)),
    };
    let caps = supervisor.workspace_config();
    let top = super::archive_top(id.session.as_str(), &path);
    let download = match super::get(&place(&server), &caps, &path, &top, archive).await {
        Ok(d) => d,
        Err(e) => return Ok(workspace_response(e)),
    };
    record(
        supervisor,
        &id,
        "download",
        by,
        download_detail(&path, &download.sending, archive),
    );
    let name = super::download_name(id.session.as_str(), &path, &download.sending, archive);
    let head = serde_json::json!({"name": name, "sending": download.sending});
    crate::control::write_response(
        write,
        &Response {
            ok: true,
            bad_input: false,
            message: head.to_string(),
        },
    )
    .await?;
    let mut body = download.body;
    use futures_util::StreamExt;
    while let Some(chunk) = body.next().await {
        write.write_all(&chunk?).await?;
    }
    write.flush().await?;
    // Already answered: nothing more to say.
    Ok(Response {
        ok: true,
        bad_input: false,
        message: String::new(),
    })
}

fn session_response(e: &SessionError) -> Response {
    crate::control::Response::from_error(e)
}
