//! The WebSocket terminal, `GET /ws/sessions/{user}/{session}`.
//!
//! Binary frames carry raw terminal bytes both ways; text frames carry JSON
//! control (`resize` and `fit` from the client; `hello`, `agent` and
//! `exit` from the server).
//! The Origin check (403) runs before the upgrade (see `web::guard`);
//! authentication and authorization answer with close codes after it:
//! 4401 not authenticated, 4404 no such session (also for another user's
//! session, so existence does not leak), 1009 frame too large, 1008 bad
//! control message, 1001 server shutting down.

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::auth::{Identity, Role};
use crate::names::{Name, SessionId};
use crate::relay::{valid_size, ViewerPty};
use crate::session::State as SessionState;

/// Largest frame or message accepted from a viewer.
pub const MAX_FRAME: usize = 64 * 1024;
/// Largest chunk of terminal output per frame (a flood's output is
/// gathered into frames: see `ViewerPty::read`).
const READ_CHUNK: usize = 64 * 1024;

/// How much tungstenite reads from a viewer's socket at a time.
const VIEWER_READ_BUFFER: usize = 4096;

#[derive(Deserialize)]
pub struct TerminalQuery {
    cols: Option<u32>,
    rows: Option<u32>,
    /// Ask for a read-only view even with a writing token.
    #[serde(default)]
    read_only: bool,
}

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Path((user, session)): Path<(String, String)>,
    Query(query): Query<TerminalQuery>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    // Bad names never reach tmux, nor the upgrade.
    let (Ok(user), Ok(session)) = (Name::new(&user), Name::new(&session)) else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let id = SessionId::new(user, session);
    let addr = super::client_addr(&headers, Some(peer), &state);
    let auth = state.identify(&headers, Some(peer.ip()), addr).ok();
    ws.max_frame_size(MAX_FRAME)
        .max_message_size(MAX_FRAME)
        // tungstenite zeroes this much of its read buffer on every read
        // attempt, and the relay polls the socket once per PTY chunk it
        // forwards: at the 128 KiB default that memset was a third of the
        // daemon's CPU in a flood. A viewer sends keystrokes.
        .read_buffer_size(VIEWER_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let tracker = state.tracker.clone();
            // Tracked, so shutdown waits for the close frame to go out.
            let _ = tracker
                .spawn(viewer(socket, state, id, auth, query, addr))
                .await;
        })
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn viewer(
    mut socket: WebSocket,
    state: AppState,
    id: SessionId,
    auth: Option<Identity>,
    query: TerminalQuery,
    addr: std::net::IpAddr,
) {
    let Some(identity) = auth else {
        return close(&mut socket, 4401, "not authenticated").await;
    };
    if !identity.can_view(&id.user) {
        return close(&mut socket, 4404, "no such session").await;
    }
    let Ok(server) = state.supervisor.server(&id.user) else {
        return close(&mut socket, 4404, "no such session").await;
    };
    match server.info(&id.session).await {
        Ok(info) if info.state != SessionState::Stopped => {}
        _ => return close(&mut socket, 4404, "no such session").await,
    }
    let read_only = query.read_only || identity.role == Role::ReadOnly;
    let (cols, rows) = query
        .cols
        .zip(query.rows)
        .and_then(|(c, r)| valid_size(c, r))
        .unwrap_or((80, 24));
    let _counted = match state.add_viewer(&id, &identity.user) {
        Ok(guard) => guard,
        Err(why) => {
            tracing::warn!(session = %id, user = %identity.user, %addr, "{why}");
            return close(&mut socket, 4429, "too many viewers").await;
        }
    };
    let pty = match ViewerPty::spawn(&server.tmux, &id.session, read_only, cols, rows) {
        Ok(pty) => pty,
        Err(e) => {
            tracing::error!(session = %id, error = %e, "cannot start a viewer terminal");
            return close(&mut socket, 1011, "internal error").await;
        }
    };
    tracing::info!(session = %id, user = %identity.user, read_only, %addr, "viewer attached");
    let recorder = state.supervisor.recorder().cloned();
    if let Some(rec) = &recorder {
        rec.event(
            &id,
            "viewer-attach",
            serde_json::json!({"user": identity.user.as_str(), "read_only": read_only}),
        );
        rec.event(
            &id,
            "resize",
            serde_json::json!({"cols": cols, "rows": rows, "user": identity.user.as_str()}),
        );
    }
    let mut hello = match &recorder {
        Some(rec) => agent_message(rec, &id),
        None => serde_json::json!({}),
    };
    hello["type"] = "hello".into();
    hello["session"] = id.to_string().into();
    hello["user"] = identity.user.to_string().into();
    hello["read_only"] = read_only.into();
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    // Ends on shutdown, or when the session's user leaves the config.
    let stop = state
        .supervisor
        .user_cancel(&id.user)
        .unwrap_or_else(|| state.cancel.clone());
    let viewer = Viewer {
        id: &id,
        tmux: &server.tmux,
        user: identity.user.as_str(),
        read_only,
        recorder: recorder.as_ref(),
        stop: &stop,
    };
    let reason = relay(&mut socket, &pty, &state, &viewer).await;
    tracing::info!(session = %id, user = %identity.user, reason, "viewer detached");
    if let Some(rec) = &recorder {
        rec.typing_done(&id, &crate::recorder::source_web(identity.user.as_str()));
        rec.event(
            &id,
            "viewer-detach",
            serde_json::json!({"user": identity.user.as_str(), "reason": reason}),
        );
    }
}

/// Who is on the other end of a relay.
struct Viewer<'a> {
    id: &'a SessionId,
    tmux: &'a crate::tmux::Tmux,
    user: &'a str,
    read_only: bool,
    recorder: Option<&'a crate::recorder::Recorder>,
    stop: &'a tokio_util::sync::CancellationToken,
}

/// Moves bytes between the WebSocket and the PTY until one side ends.
/// Returns why it ended.
async fn relay(
    socket: &mut WebSocket,
    pty: &ViewerPty,
    state: &AppState,
    viewer: &Viewer<'_>,
) -> &'static str {
    let id = viewer.id;
    let mut buf = vec![0u8; READ_CHUNK];
    // How much of `buf` holds output not sent yet (see `ViewerPty::read`).
    let mut filled = 0;
    // Counted as on screen while the page says so (until the relay ends).
    let mut _shown: Option<super::viewers::Shown> = None;
    // Attached or resized: once the pane has been quiet for a moment (the
    // agent's redraw is complete and in the spool), its screen is taken
    // from tmux again. Armed only after a resize: no timer otherwise.
    let mut resized = true;
    let mut refresh_at: Option<tokio::time::Instant> = None;
    // The agent's state and question, pushed as they change.
    let mut states = viewer.recorder.map(|r| r.subscribe());
    // Whether this viewer's terminal sizes the window (web::sizing);
    // decided once tmux has drawn for it (it is attached then).
    let mut sizes = viewer.read_only;
    let mut attached = false;
    // When output was last read, unless this viewer typed since (see
    // `ViewerPty::read`).
    let mut last_output: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = sleep_until(refresh_at) => {
                refresh_at = None;
                resized = false;
                state.supervisor.refresh_screen(id, None);
            }
            change = next_change(&mut states) => {
                if let Some(rec) = viewer.recorder {
                    if change.as_ref().is_none_or(|c| c == id) {
                        let msg = agent_message(rec, id).to_string();
                        if socket.send(Message::Text(msg.into())).await.is_err() {
                            return "send failed";
                        }
                    }
                }
            }
            n = pty.read(&mut buf, &mut filled, last_output) => match n {
                Ok(0) | Err(_) => {
                    let exit = serde_json::json!({"type": "exit", "reason": "the session ended or was detached"});
                    let _ = socket.send(Message::Text(exit.to_string().into())).await;
                    close(socket, 1000, "session ended").await;
                    return "tmux client exited";
                }
                Ok(n) => {
                    filled = 0;
                    last_output = Some(std::time::Instant::now());
                    if !attached {
                        attached = true;
                        if !viewer.read_only {
                            super::sizing::take_if_alone(viewer.tmux, id, pty.tty());
                        }
                    }
                    if resized {
                        refresh_at = Some(tokio::time::Instant::now() + REDRAWN_AFTER);
                    }
                    crate::metrics::add(&crate::metrics::COUNTERS.bytes_to_viewers, n as u64);
                    let frame = Message::Binary(buf[..n].to_vec().into());
                    // A slow viewer blocks only this loop (and so its own
                    // tmux client); shutdown still gets through.
                    tokio::select! {
                        r = socket.send(frame) => if r.is_err() { return "send failed" },
                        _ = viewer.stop.cancelled() => return "shutdown",
                    }
                }
            },
            msg = socket.recv() => match msg {
                None => return "viewer closed",
                Some(Err(e)) => {
                    if is_too_large(&e) {
                        close(socket, 1009, "frame too large").await;
                        return "frame too large";
                    }
                    return "receive failed";
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if viewer.read_only {
                        continue;
                    }
                    if pty.write_all(&bytes).await.is_err() {
                        return "write failed";
                    }
                    last_output = None;
                    // Typing sizes the window; the terminal's own replies
                    // (a focus change, a colour query's answer) do not.
                    if !sizes && !crate::recorder::typed_part(&bytes).is_empty() {
                        sizes = true;
                        super::sizing::take(viewer.tmux, id, pty.tty());
                    }
                    crate::metrics::add(&crate::metrics::COUNTERS.bytes_from_viewers, bytes.len() as u64);
                    if let Some(rec) = viewer.recorder {
                        rec.keystrokes(id, &crate::recorder::source_web(viewer.user), &bytes);
                    }
                }
                Some(Ok(Message::Text(text))) => match control(&text) {
                    Ok(Control::Resize(cols, rows)) => match valid_size(cols, rows) {
                        Some((c, r)) => {
                            if let Err(e) = pty.resize(c, r) {
                                tracing::warn!(session = %id, error = %e, "resize failed");
                            }
                            resized = true;
                            if let Some(rec) = viewer.recorder {
                                rec.event(id, "resize", serde_json::json!({"cols": c, "rows": r, "user": viewer.user}));
                            }
                        }
                        None => tracing::warn!(session = %id, cols, rows, "resize to an unusable size ignored"),
                    },
                    // Read-only viewers never size the window.
                    Ok(Control::Fit) if viewer.read_only => {}
                    Ok(Control::Fit) => {
                        sizes = true;
                        super::sizing::take(viewer.tmux, id, pty.tty());
                    }
                    Ok(Control::Visible(v)) => _shown = v.then(|| state.shown(id)),
                    Err(reason) => {
                        close(socket, 1008, reason).await;
                        return "bad control message";
                    }
                },
                Some(Ok(Message::Close(_))) => return "viewer closed",
                Some(Ok(_)) => {} // ping/pong: axum answers pings itself
            },
            _ = viewer.stop.cancelled() => {
                if state.cancel.is_cancelled() {
                    close(socket, 1001, "server shutting down").await;
                    return "shutdown";
                }
                close(socket, 1001, "user removed from the config").await;
                return "user removed";
            }
        }
    }
}

/// A pane this long quiet after a resize has finished redrawing.
const REDRAWN_AFTER: std::time::Duration = std::time::Duration::from_millis(300);

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The agent's state and pending question, as the page shows them.
fn agent_message(rec: &crate::recorder::Recorder, id: &SessionId) -> serde_json::Value {
    let mut msg = serde_json::to_value(rec.agent_view(id)).unwrap_or_default();
    msg["type"] = "agent".into();
    msg
}

/// The next session whose agent changed (`None` if changes were missed:
/// look again). Never ready without a recorder.
async fn next_change(
    states: &mut Option<tokio::sync::broadcast::Receiver<crate::recorder::StateChange>>,
) -> Option<SessionId> {
    match states {
        Some(rx) => match rx.recv().await {
            Ok(change) => Some(change.id),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                *states = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

pub(crate) enum Control {
    Resize(u32, u32),
    /// The window takes this viewer's size (see `web::sizing`).
    Fit,
    /// The page is on screen (or hidden): no push notifications about a
    /// session someone looks at.
    Visible(bool),
}

/// Parses a control message; `Err` holds the close reason.
pub(crate) fn control(text: &str) -> Result<Control, &'static str> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "malformed control message")?;
    match value.get("type").and_then(|t| t.as_str()) {
        Some("resize") => {
            let dim = |k: &str| {
                value
                    .get(k)
                    .and_then(|v| v.as_u64())
                    .and_then(|v| u32::try_from(v).ok())
            };
            match (dim("cols"), dim("rows")) {
                (Some(c), Some(r)) => Ok(Control::Resize(c, r)),
                _ => Err("malformed control message"),
            }
        }
        Some("fit") => Ok(Control::Fit),
        Some("visible") => match value.get("visible").and_then(|v| v.as_bool()) {
            Some(v) => Ok(Control::Visible(v)),
            None => Err("malformed control message"),
        },
        Some(_) => Err("unknown control message type"),
        None => Err("malformed control message"),
    }
}

/// Whether a receive error is tungstenite's "message/frame too large".
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(t) = err.downcast_ref::<tungstenite::Error>() {
            return matches!(t, tungstenite::Error::Capacity(_));
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages() {
        assert!(matches!(
            control(r#"{"type":"resize","cols":80,"rows":24}"#),
            Ok(Control::Resize(80, 24))
        ));
        assert!(matches!(control(r#"{"type":"fit"}"#), Ok(Control::Fit)));
        assert_eq!(control("not json").err(), Some("malformed control message"));
        assert_eq!(
            control(r#"{"type":"resize","cols":"x"}"#).err(),
            Some("malformed control message")
        );
        assert_eq!(
            control(r#"{"type":"nuke"}"#).err(),
            Some("unknown control message type")
        );
        assert_eq!(control(r#"[1,2]"#).err(), Some("malformed control message"));
        assert_eq!(
            control(r#"{"type":"resize","cols":99999999999,"rows":1}"#).err(),
            Some("malformed control message")
        );
    }
}
