//! The control socket's file verbs (`tmuxd put`, `tmuxd get`, and the
//! snapshot verbs): the same work as the HTTP API's, answered as lines.

use tokio::io::{AsyncRead, AsyncWriteExt};

use super::{write_response, Request, Response};
use crate::names::SessionId;
use crate::supervisor::Supervisor;
use crate::workspace::{Archive, Exit, WorkspaceError};

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
    let files = match supervisor.session_files(&id).await {
        Ok(f) => f,
        Err(e) => return Response::from_error(&e),
    };
    match supervisor.upload(&files, &id, name, body, by).await {
        Ok(stored) => Response {
            ok: true,
            bad_input: false,
            message: serde_json::to_string(&stored).unwrap_or_default(),
        },
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
    let files = match supervisor.session_files(&id).await {
        Ok(f) => f,
        Err(e) => return Ok(Response::from_error(&e)),
    };
    let what = (path.as_str(), archive, transcript);
    let (download, name) = match supervisor.download(&files, &id, what, by).await {
        Ok(d) => d,
        Err(e) => return Ok(workspace_response(e)),
    };
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
