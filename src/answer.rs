//! Answering an agent's question, from any channel (page, API, CLI, mail):
//! a question drawn a moment ago is given time to listen, the screen is
//! brought up to date, the pending question is claimed (it
//! must still be on screen, unanswered, unexpired, and the option one it
//! offers), and only then is the option typed. Question, answer, who
//! answered and from where go into the transcript.

use std::collections::HashSet;

use crate::names::SessionId;
use crate::recorder::{AnswerError, QUESTION_SETTLE};
use crate::session::SessionError;
use crate::supervisor::Supervisor;

/// Why an answer typed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AnswerFailed {
    #[error("{0}")]
    Refused(#[from] AnswerError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("questions need transcripts: [transcript] enabled = true")]
    NoTranscripts,
}

/// Answers question `qid` of `id` with option `key`, as `source`
/// (`web:alice`, `cli:alice`, `mail:alice@example.org`).
pub async fn answer(
    supervisor: &Supervisor,
    id: &SessionId,
    qid: &str,
    key: &str,
    source: &str,
) -> Result<(), AnswerFailed> {
    let rec = supervisor.recorder().ok_or(AnswerFailed::NoTranscripts)?;
    // A question just drawn may not listen yet.
    if let Some(q) = rec.question(id).filter(|q| q.id == qid) {
        tokio::time::sleep(QUESTION_SETTLE.saturating_sub(q.age())).await;
    }
    // The screen must show what the agent shows now, not 100 ms ago.
    rec.ingest_now(HashSet::from([id.clone()])).await;
    let question = rec.question(id);
    let (text, enter) = rec.claim_answer(id, qid, key)?;
    supervisor.send(id, &text, enter, source).await?;
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
