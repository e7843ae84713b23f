//! Answering an agent's question, from any channel (page, API, CLI, mail):
//! the user's policy is applied (which channels may answer; a question
//! whose command carries risk flags only on the page, by default), a
//! question drawn a moment ago is given time to listen, the screen is
//! brought up to date, the pending question is claimed (it
//! must still be on screen, unanswered, unexpired, and the option one it
//! offers), and only then is the option typed. Question, answer, who
//! answered and from where go into the transcript.

use std::collections::HashSet;

use crate::auth::constant_time_eq;
use crate::names::SessionId;
use crate::recorder::{AnswerError, QUESTION_SETTLE};
use crate::session::SessionError;
use crate::supervisor::Supervisor;

/// Where an answer came from (named as in `answer_from`,
/// [`crate::config::ANSWER_CHANNELS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The browser page (a cookie login).
    Page,
    /// The HTTP API with a bearer token.
    Api,
    /// `tmuxd answer` over the control socket.
    Cli,
    /// A reply to a question mail.
    Mail,
    /// A message in the user's Matrix room.
    Matrix,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Page => "page",
            Channel::Api => "api",
            Channel::Cli => "cli",
            Channel::Mail => "mail",
            Channel::Matrix => "matrix",
        }
    }
}

/// Why an answer typed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AnswerFailed {
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Refused(#[from] AnswerError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("questions need transcripts: [transcript] enabled = true")]
    NoTranscripts,
}

/// Answers question `qid` of `id` with option `key`, from `channel`, by
/// `who` (recorded as `CHANNEL:WHO`, e.g. `mail:alice@example.org`).
pub async fn answer(
    supervisor: &Supervisor,
    id: &SessionId,
    qid: &str,
    key: &str,
    channel: Channel,
    who: &str,
) -> Result<(), AnswerFailed> {
    let rec = supervisor.recorder().ok_or(AnswerFailed::NoTranscripts)?;
    let user = supervisor.server(&id.user)?.user;
    if !user.answers_from(channel.name()) {
        return Err(AnswerFailed::Policy(format!(
            "{} answers questions from {} only, not from {}; nothing was typed",
            user.name,
            user.answer_from.join(", "),
            channel.name()
        )));
    }
    let shown = rec
        .question(id)
        .filter(|q| constant_time_eq(q.id.as_bytes(), qid.as_bytes()));
    if let Some(q) = shown {
        let flags = crate::risk::flags(&q.question.detail.join("\n"));
        if channel != Channel::Page && user.risky_answers_need_page && !flags.is_empty() {
            return Err(AnswerFailed::Policy(format!(
                "this question is risky ({}): answer it on the page; nothing was typed",
                flags.join(", ")
            )));
        }
        // A question just drawn may not listen yet.
        tokio::time::sleep(QUESTION_SETTLE.saturating_sub(q.age())).await;
    }
    let source = format!("{}:{who}", channel.name());
    // The screen must show what the agent shows now, not 100 ms ago.
    rec.ingest_now(HashSet::from([id.clone()])).await;
    let question = rec.question(id);
    let (text, enter) = rec.claim_answer(id, qid, key)?;
    supervisor.send(id, &text, enter, &source).await?;
    tracing::info!(session = %id, question = qid, option = key, channel = channel.name(), by = who, "question answered");
    rec.event(
        id,
        "answer",
        serde_json::json!({
            "question": qid,
            "text": question.map(|q| q.question.text),
            "option": key,
            "by": source,
        }),
    );
    Ok(())
}
