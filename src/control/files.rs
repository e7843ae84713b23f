//! The control socket's file verbs (`tmuxd put`, `tmuxd get`, and the
//! snapshot verbs): the same work as the HTTP API's, answered as lines.

use tokio::io::{AsyncRead, AsyncWriteExt};

use super::{write_response, Request, Response};
use crate::names::SessionId;
use crate::session::SessionError;
use crate::supervisor::Supervisor;
use crate::workspace::{self, Archive, Exit, WorkspaceError};

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
    let server = match supervisor.session_files(&id).await {
        Ok(s) => s,
        Err(e) => return session_response(&e),
    };
    let caps = supervisor.workspace_config();
    match workspace::put(&server.place(), &caps, name, body).await {
        Ok(stored) => {
            let detail = serde_json::json!({"path": stored.path, "bytes": stored.bytes});
            supervisor.record_file_event(&id, "upload", by, detail);
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
    (id, path, format, transcript): (&str, &str, Option<&str>, bool),
    by: &str,
    write: &mut (impl AsyncWriteExt + Unpin),
) -> std::io::Result<Response> {
    let id = match id.parse::<SessionId>() {
        Ok(id) => id,
        Err(e) => return Ok(refused(e.to_string())),
    };
    let path = match crate::config::check_path(path) {
        Ok(p) => p,
        Err(m) => return Ok(refused(m)),
    };
    let archive = match Archive::parse(format) {
        Ok(a) => a,
        Err(m) => return Ok(refused(m)),
    };
    let server = match supervisor.session_files(&id).await {
        Ok(s) => s,
        Err(e) => return Ok(session_response(&e)),
    };
    let caps = supervisor.workspace_config();
    let top = workspace::archive_top(id.session.as_str(), &path);
    let extras = if transcript {
        match supervisor.transcript_extras(&id).await {
            Ok(e) => e,
            Err(e) => return Ok(session_response(&e)),
        }
    } else {
        Vec::new()
    };
    let download =
        match workspace::get(&server.place(), &caps, (&path, &top), archive, extras).await {
            Ok(d) => d,
            Err(e) => return Ok(workspace_response(e)),
        };
    let detail = workspace::download_detail(&path, &download.sending, archive);
    supervisor.record_file_event(&id, "download", by, detail);
    let name = workspace::download_name(id.session.as_str(), &path, &download.sending, archive);
    let head = serde_json::json!({"name": name, "sending": download.sending});
    write_response(
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
    Response::from_error(e)
}

/// `tmuxd snapshot`, `snapshots` and `rollback`: the answer's message is
/// JSON.
pub async fn snapshots(supervisor: &Supervisor, request: Request, by: &str) -> Response {
    let (Request::Snapshot { id } | Request::Snapshots { id } | Request::Rollback { id, .. }) =
        &request
    else {
        return refused("not a snapshot request");
    };
    let id = match id.parse::<SessionId>() {
        Ok(id) => id,
        Err(e) => return refused(e.to_string()),
    };
    let done = match &request {
        Request::Snapshot { .. } => supervisor
            .snapshot(&id, "on request", by)
            .await
            .map(|s| serde_json::to_string(&s)),
        Request::Snapshots { .. } => supervisor
            .snapshots(&id)
            .await
            .map(|s| serde_json::to_string(&s)),
        Request::Rollback { snapshot, .. } => supervisor
            .rollback(&id, snapshot, by)
            .await
            .map(|s| serde_json::to_string(&s)),
        _ => unreachable!("matched above"),
    };
    match done {
        Ok(json) => Response {
            ok: true,
            bad_input: false,
            message: json.unwrap_or_default(),
        },
        Err(e) => workspace_response(e),
    }
}
