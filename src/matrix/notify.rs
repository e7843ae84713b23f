//! What the bot posts on its own: each new question (with its options)
//! and each finished turn, in the user's room, once.

use tokio_util::sync::CancellationToken;

use super::Bot;
use crate::names::SessionId;
use crate::recorder::AgentState;

impl Bot {
    /// Posts each new question (with its options) and each finished turn
    /// in the user's room.
    pub(super) async fn notify(self, rec: crate::recorder::Recorder, cancel: CancellationToken) {
        let mut changes = rec.changes();
        while let Some((change, before)) = changes.next(&cancel).await {
            let room = self
                .state
                .lock()
                .expect("matrix lock")
                .rooms
                .get(change.id.user.as_str())
                .cloned();
            let Some(room) = room else { continue };
            match change.state {
                AgentState::Waiting => {
                    if let Some(q) = rec.question(&change.id) {
                        self.post_question(&room, &change.id, &q).await;
                    }
                }
                AgentState::Idle if before == Some(AgentState::Running) => {
                    self.posted.lock().expect("matrix lock").remove(&change.id);
                    self.say(&room, &format!("{} is done.", change.id)).await;
                }
                _ => {}
            }
        }
    }
    /// Posts `id`'s question `q` with its options, once.
    pub(super) async fn post_question(
        &self,
        room: &str,
        id: &SessionId,
        q: &crate::recorder::PendingQuestion,
    ) {
        {
            let mut posted = self.posted.lock().expect("matrix lock");
            if posted.get(id) == Some(&q.id) {
                return;
            }
            posted.insert(id.clone(), q.id.clone());
        }
        let mut text = format!("{id} asks: {}", q.question.text);
        for o in &q.question.options {
            text.push_str(&format!("\n  {}. {}", o.key, o.label));
        }
        text.push_str("\nReply with an option's key to answer it.");
        self.say(room, &text).await;
    }
}
