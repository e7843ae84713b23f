//! Push notifications as webhooks (`[[webhooks]]`). When an agent starts
//! waiting for an answer, finishes a turn (running, then idle) or exits,
//! each receiver configured for that user and event gets one POST per
//! state change, deduplicated per session, and none while someone watches
//! that session in a visible page. Bodies are ntfy's, Gotify's, Slack's,
//! Discord's, Apprise's or our JSON; with a secret they are signed
//! (`X-Tmuxd-Timestamp`, `X-Tmuxd-Signature: sha256=HEX`, an HMAC-SHA256
//! over `TIMESTAMP.BODY`) so a receiver can refuse forgeries and replays.
//! `minimal` content says who needs you and links to the page, nothing
//! more: details only after login.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Live, WebhookConfig, WebhookContent, WebhookFormat};
use crate::names::SessionId;
use crate::recorder::{AgentState, Recorder};

mod message;

pub use message::{sign, Note};

/// Whether someone watches a session in a visible page.
pub type Visible = Arc<dyn Fn(&SessionId) -> bool + Send + Sync>;

/// Deliveries waiting for the sender; more are dropped (and logged).
const QUEUE: usize = 256;

/// Watches agents' states and sends notifications until `cancel`.
pub async fn run(config: Live, recorder: Recorder, visible: Visible, cancel: CancellationToken) {
    let (tx, rx) = mpsc::channel::<(WebhookConfig, Note)>(QUEUE);
    let sender = tokio::spawn(deliver(rx, cancel.clone()));
    let mut changes = recorder.changes();
    let mut sent: HashMap<SessionId, (&'static str, Option<String>)> = HashMap::new();
    while let Some((change, before)) = changes.next(&cancel).await {
        let event = match change.state {
            AgentState::Waiting => "waiting",
            AgentState::Idle if before == Some(AgentState::Running) => "done",
            AgentState::Exited { .. } => "exited",
            _ => {
                // Back at work: the next question or end is news again.
                sent.remove(&change.id);
                continue;
            }
        };
        let question = recorder.question(&change.id);
        // The agent's hook said a dialog is coming: send it once it shows.
        if event == "waiting" && question.is_none() && recorder.question_coming(&change.id) {
            continue;
        }
        let key = (event, question.as_ref().map(|q| q.id.clone()));
        if sent.get(&change.id) == Some(&key) {
            continue;
        }
        sent.insert(change.id.clone(), key);
        if visible(&change.id) {
            tracing::debug!(session = %change.id, event, "notification left out: the session is on a visible page");
            continue;
        }
        let config = config.get();
        let hooks = config.webhooks.iter().filter(|h| {
            h.events.iter().any(|e| e == event)
                && (h.users.is_empty() || h.users.contains(&change.id.user))
        });
        for hook in hooks {
            let note = Note::new(
                &change.id,
                event,
                change.state.clone(),
                question.as_ref(),
                || recorder.screen_tail(&change.id, 10),
            );
            if tx.try_send((hook.clone(), note)).is_err() {
                tracing::warn!(session = %change.id, event, "webhook queue full: notification dropped");
            }
        }
    }
    drop(tx);
    let _ = sender.await;
}

/// Sends queued notifications one after another: three tries each, a
/// deadline on every one.
async fn deliver(mut rx: mpsc::Receiver<(WebhookConfig, Note)>, cancel: CancellationToken) {
    const TRIES: [Duration; 3] = [
        Duration::ZERO,
        Duration::from_secs(2),
        Duration::from_secs(10),
    ];
    loop {
        let (hook, note) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = rx.recv() => match next {
                Some(n) => n,
                None => return,
            },
        };
        let secret = match &hook.secret_file {
            Some(f) => match tokio::fs::read_to_string(f).await {
                Ok(s) => Some(s.trim().to_owned()),
                Err(e) => {
                    tracing::error!(file = %f.display(), error = %crate::config::io_reason(&e), "cannot read a webhook's secret_file: not sent");
                    continue;
                }
            },
            None => None,
        };
        let request = message::request(&hook, &note, secret.as_deref());
        for wait in TRIES {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let post = crate::httpc::Request {
                method: hyper::Method::POST,
                url: &hook.target,
                headers: request.headers.clone(),
                body: request.body.clone(),
                max_answer: 64 * 1024,
            };
            match crate::httpc::send(post).await.map(|a| a.status) {
                Ok(status) if (200..300).contains(&status) => break,
                Ok(status) => {
                    tracing::warn!(host = %hook.target.host, status, event = note.event, "webhook refused the notification")
                }
                Err(e) => {
                    tracing::warn!(host = %hook.target.host, error = %e, event = note.event, "webhook not reached")
                }
            }
        }
    }
}

/// The content type and body a format calls for.
fn body_of(
    format: WebhookFormat,
    content: WebhookContent,
    note: &Note,
    page: Option<&str>,
) -> (&'static str, Vec<u8>) {
    let line = note.line(content, page);
    let json = |v: serde_json::Value| ("application/json", v.to_string().into_bytes());
    match format {
        WebhookFormat::Json => json(note.json(content, page)),
        WebhookFormat::Slack => json(serde_json::json!({ "text": line })),
        WebhookFormat::Discord => json(serde_json::json!({ "content": line })),
        WebhookFormat::Gotify => json(serde_json::json!({ "title": "tmuxd", "message": line })),
        WebhookFormat::Apprise => json(serde_json::json!({ "title": "tmuxd", "body": line })),
        WebhookFormat::Ntfy => ("text/plain; charset=utf-8", line.into_bytes()),
    }
}
