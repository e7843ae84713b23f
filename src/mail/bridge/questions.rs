//! Agents' questions by mail: a mail that shows a question lists its
//! options and carries a single-use Reply-To (`ADDRESS+q-TOKEN`); a reply
//! from the same, authenticated sender whose first line is an option's key
//! (or YES / NO) answers it through [`crate::answer`], so the same policy
//! and the same "only while that question is on screen" hold. Tickets live
//! in memory: a question's id does not outlive the daemon either.

use std::collections::VecDeque;

use super::*;
use crate::answer::{AnswerFailed, Channel};
use crate::recorder::{PendingQuestion, QUESTION_TTL};

/// The tag prefix of a question's reply address.
pub const QUESTION_PREFIX: &str = "q-";

/// Tickets kept at most (the oldest go first).
const MAX_TICKETS: usize = 256;

/// A question mailed to `to`, answerable by a reply to its token.
pub(super) struct Ticket {
    token_hash: String,
    id: SessionId,
    question: String,
    to: String,
    created: std::time::Instant,
}

#[derive(Default)]
pub(super) struct Tickets(VecDeque<Ticket>);

impl Bridge {
    /// The part of a mail to `to` that shows the question `id`'s agent
    /// asks, and the Reply-To that answers it: only for a question with
    /// options, from a user who answers by mail.
    pub(in crate::mail) fn question_mail(
        &self,
        id: &SessionId,
        to: &str,
    ) -> Option<(String, String)> {
        let q = self.0.supervisor.recorder()?.question(id)?;
        let by_mail = self
            .config()
            .user(&id.user)
            .is_some_and(|u| u.answers_from("mail"));
        if q.question.options.is_empty() || !by_mail {
            return None;
        }
        let token = match sender::new_token() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "no randomness for a question token");
                return None;
            }
        };
        {
            let mut tickets = self.0.tickets.lock().expect("tickets lock");
            if tickets.0.len() >= MAX_TICKETS {
                tickets.0.pop_front();
            }
            tickets.0.push_back(Ticket {
                token_hash: sender::token_hash(&token),
                id: id.clone(),
                question: q.id.clone(),
                to: to.to_owned(),
                created: std::time::Instant::now(),
            });
        }
        let mut text = format!("{id} asks:\n\n    {}\n", q.question.text);
        for line in &q.question.detail {
            text.push_str(&format!("    | {line}\n"));
        }
        text.push('\n');
        for o in &q.question.options {
            text.push_str(&format!("  {}. {}\n", o.key, o.label));
        }
        text.push_str(
            "\nReply to this mail with an option's number as the first line (YES is the first option, NO the one that says No). It is typed only if this question is still on the screen.\n",
        );
        let reply_to = address_with_tag(&self.mail().address, &format!("{QUESTION_PREFIX}{token}"));
        Some((text, reply_to))
    }

    /// A reply to a question mail (`token` from its address), from `from`,
    /// already authenticated.
    pub(super) async fn decide_answer(
        &self,
        msg: &Inbound,
        from: &str,
        token: &str,
        mut x: Decision,
    ) -> Decision {
        let hash = sender::token_hash(token);
        let ticket = {
            let tickets = self.0.tickets.lock().expect("tickets lock");
            tickets
                .0
                .iter()
                .rfind(|t| constant_time_eq(t.token_hash.as_bytes(), hash.as_bytes()))
                .map(|t| (t.id.clone(), t.question.clone(), t.to.clone(), t.created))
        };
        let Some((id, qid, to, created)) = ticket else {
            x.decision = Outcome::Refused;
            x.reason = "unknown or already used question address".into();
            x.effect = Effect::Reply(self.reply_to_msg(
                from,
                msg,
                "This question is unknown, already answered or from before a restart. Nothing was typed.\n\nThe page shows what the agent asks now.",
            ));
            return x;
        };
        x.user = Some(id.user.to_string());
        x.session = Some(id.session.to_string());
        let config = self.config();
        let owner_ok = config
            .user(&id.user)
            .is_some_and(|u| u.emails.iter().any(|e| e == from));
        if to != from || !owner_ok {
            x.decision = Outcome::Refused;
            x.reason = "the question address belongs to another sender".into();
            return x.quarantined();
        }
        if self.limited(&self.mail(), from, id.user.as_str()) {
            x.decision = Outcome::Rejected;
            x.reason = "rate limit reached".into();
            return x;
        }
        let first = message::first_line(&msg.text).unwrap_or("");
        x.command = Some(first.to_owned());
        let Some(rec) = self.0.supervisor.recorder() else {
            x.decision = Outcome::Refused;
            x.reason = "transcripts are off".into();
            return x;
        };
        let question = rec.question(&id).filter(|q| q.id == qid);
        let key = match &question {
            Some(q) if created.elapsed() <= QUESTION_TTL => option_for(first, q),
            _ => None,
        };
        let reply = match (question, key) {
            (None, _) => {
                x.decision = Outcome::Refused;
                x.reason = "the question is no longer on screen".into();
                format!("{id} no longer shows that question, so nothing was typed.")
            }
            (Some(q), None) => {
                x.decision = Outcome::Refused;
                x.reason = "the reply names no option".into();
                let keys: Vec<&str> = q.question.options.iter().map(|o| o.key.as_str()).collect();
                format!(
                    "Your reply's first line named no option ({}, YES or NO), so nothing was typed. The question is still open: reply again.",
                    keys.join(", ")
                )
            }
            (Some(q), Some(key)) => {
                match crate::answer::answer(
                    &self.0.supervisor,
                    &id,
                    &qid,
                    &key,
                    Channel::Mail,
                    from,
                )
                .await
                {
                    Ok(()) => {
                        self.0
                            .tickets
                            .lock()
                            .expect("tickets lock")
                            .0
                            .retain(|t| t.token_hash != hash);
                        x.decision = Outcome::Answered;
                        x.reason = format!("question answered with {key}");
                        let label = q
                            .question
                            .options
                            .iter()
                            .find(|o| o.key == key)
                            .map(|o| o.label.as_str())
                            .unwrap_or("");
                        format!(
                            "Answered {key}. {label}\n\n{id} was asked: {}",
                            q.question.text
                        )
                    }
                    Err(AnswerFailed::Session(e)) => {
                        x.decision = Outcome::Failed;
                        x.reason = e.for_users();
                        format!("Nothing was typed: {}.", e.for_users())
                    }
                    Err(e) => {
                        x.decision = Outcome::Refused;
                        x.reason = e.to_string();
                        format!("Not answered: {e}.")
                    }
                }
            }
        };
        x.effect = Effect::Reply(self.reply_to_msg(from, msg, &reply));
        x
    }
}

/// The option a reply's first line names: its key, or YES (the first
/// option) or NO (the one whose label starts with "No").
fn option_for(first: &str, q: &PendingQuestion) -> Option<String> {
    let word = first
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_ascii_lowercase();
    let options = &q.question.options;
    if let Some(o) = options.iter().find(|o| o.key.to_ascii_lowercase() == word) {
        return Some(o.key.clone());
    }
    match word.as_str() {
        "yes" | "y" => options.first().map(|o| o.key.clone()),
        "no" | "n" => options
            .iter()
            .find(|o| o.label.to_ascii_lowercase().starts_with("no"))
            .map(|o| o.key.clone()),
        _ => None,
    }
}
