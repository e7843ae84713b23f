//! Pending questions: when a session's screen shows a question its agent
//! profile recognises, it becomes one approval object with a single-use
//! id, bound to the session and to the exact question shown (and to the
//! tool call the agent's hook reported). Answering claims it: only while
//! the screen still shows that same question, once, before it expires.

use super::*;
use crate::agent::{AnswerOption, Profile, Question};

/// A question is answerable this long after it was first shown.
pub const QUESTION_TTL: Duration = Duration::from_secs(3600);

/// A hook's report of a tool call names the next question shown within
/// this long (the hook runs as the dialog is being drawn).
const HOOK_FRESH: Duration = Duration::from_secs(30);

/// An answer is typed no sooner than this after its question appeared:
/// agents drawn with Ink (Claude Code) drop keys that arrive before the
/// dialog listens, moments after it is drawn (measured: a key typed
/// 100–200 ms after the dialog appeared was lost in 1 of 7 runs).
pub const QUESTION_SETTLE: Duration = Duration::from_millis(500);

/// A question on a session's screen, waiting for an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingQuestion {
    /// Single-use: a new id for every new question shown.
    pub id: String,
    #[serde(flatten)]
    pub question: Question,
    /// The tool call it is about, as the agent's hook reported it
    /// (`{"name": "Bash", "input": {"command": ...}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<serde_json::Value>,
    /// Unix time it was first shown.
    pub asked: u64,
    #[serde(skip)]
    shown: Instant,
    #[serde(skip)]
    answered: bool,
}

impl PendingQuestion {
    /// How long it has been on screen.
    pub fn age(&self) -> Duration {
        self.shown.elapsed()
    }

    fn new(question: Question, tool: Option<serde_json::Value>) -> PendingQuestion {
        let mut b = [0u8; 16];
        let _ = getrandom::fill(&mut b);
        PendingQuestion {
            id: crate::auth::hex(&b),
            question,
            tool,
            asked: crate::clock::unix_now(),
            shown: Instant::now(),
            answered: false,
        }
    }
}

/// What re-reading a screen found.
pub(super) enum Asked {
    Nothing,
    Same,
    New(PendingQuestion),
}

impl Asked {
    pub(super) fn is_waiting(&self) -> bool {
        !matches!(self, Asked::Nothing)
    }
}

/// Why an answer typed nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("{0} is not waiting for an answer")]
    NotWaiting(SessionId),
    #[error("that question is no longer on the screen of {0}; nothing was typed (answer the one it shows now)")]
    Stale(SessionId),
    #[error("that question was already answered; nothing was typed")]
    Answered,
    #[error("that question expired; nothing was typed (answer the one {0} shows now)")]
    Expired(SessionId),
    #[error("{0:?} is not one of the options ({1}); nothing was typed")]
    NoSuchOption(String, String),
}

impl Tracked {
    /// The tool call the agent's hook reported lately, if any.
    fn fresh_hook_tool(&self) -> Option<&serde_json::Value> {
        let (tool, at) = self.hook_tool.as_ref()?;
        (at.elapsed() < HOOK_FRESH).then_some(tool)
    }

    /// Reads the screen for a question: the same one keeps its id, a new
    /// one gets a new id, none clears it.
    pub(super) fn reread(&mut self, profile: Option<&Profile>) -> Asked {
        let read = profile.and_then(|p| p.read(&self.screen.lines()));
        match (read, &self.question) {
            (None, _) => {
                // A question answered or gone takes its hook report along;
                // a report that came before its dialog was drawn waits.
                if self.question.take().is_some() {
                    self.hook_tool = None;
                }
                Asked::Nothing
            }
            (Some(q), Some(p)) if p.question == q => Asked::Same,
            (Some(q), _) => {
                let p = PendingQuestion::new(q, self.fresh_hook_tool().cloned());
                self.question = Some(p.clone());
                Asked::New(p)
            }
        }
    }
}

/// What the daemon knows of a session's agent, as the API, the CLI and the
/// page show it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentView {
    /// Derived from the agent's screen: running, idle, waiting, exited.
    pub agent_state: Option<&'static str>,
    /// The profile the agent's screen is read with.
    pub agent_profile: Option<&'static str>,
    /// While waiting: what the agent asks, its options, and the id that
    /// answers it.
    pub question: Option<PendingQuestion>,
}

impl Recorder {
    /// `id`'s agent: its state, profile and pending question.
    pub fn agent_view(&self, id: &SessionId) -> AgentView {
        AgentView {
            agent_state: self.state(id).map(|s| s.name()),
            agent_profile: self.profile_name(id),
            question: self.question(id),
        }
    }

    /// The question `id`'s screen shows, if it is waiting for an answer.
    pub fn question(&self, id: &SessionId) -> Option<PendingQuestion> {
        let sessions = self.0.sessions.lock().expect("sessions lock");
        sessions.get(id)?.question.clone()
    }

    /// Whether `id`'s agent hook reported a permission request whose
    /// dialog is not on the screen yet (its question is coming).
    pub fn question_coming(&self, id: &SessionId) -> bool {
        let sessions = self.0.sessions.lock().expect("sessions lock");
        sessions
            .get(id)
            .is_some_and(|t| t.question.is_none() && t.fresh_hook_tool().is_some())
    }

    /// The session showing question `qid`, if any.
    pub fn find_question(&self, qid: &str) -> Option<SessionId> {
        let sessions = self.0.sessions.lock().expect("sessions lock");
        sessions
            .iter()
            .find(|(_, t)| t.question.as_ref().is_some_and(|q| q.id == qid))
            .map(|(id, _)| id.clone())
    }

    /// The profile name `id`'s agent is read with.
    pub fn profile_name(&self, id: &SessionId) -> Option<&'static str> {
        self.profile(id).map(|p| p.name)
    }

    /// Claims question `qid` of `id` for the answer `key`: what to type
    /// and whether Enter follows. Fails, typing nothing, unless the screen
    /// still shows that question, unanswered and unexpired, and `key` is
    /// one of its options (or it offers none: then any one line is typed).
    pub fn claim_answer(
        &self,
        id: &SessionId,
        qid: &str,
        key: &str,
    ) -> Result<(String, bool), AnswerError> {
        let profile = self
            .profile(id)
            .ok_or_else(|| AnswerError::NotWaiting(id.clone()))?;
        let mut sessions = self.0.sessions.lock().expect("sessions lock");
        let pending = sessions
            .get_mut(id)
            .and_then(|t| t.question.as_mut())
            .ok_or_else(|| AnswerError::NotWaiting(id.clone()))?;
        if !crate::auth::constant_time_eq(pending.id.as_bytes(), qid.as_bytes()) {
            return Err(AnswerError::Stale(id.clone()));
        }
        if pending.answered {
            return Err(AnswerError::Answered);
        }
        if pending.shown.elapsed() > QUESTION_TTL {
            // Offer it again under a new id.
            *pending = PendingQuestion::new(pending.question.clone(), pending.tool.clone());
            return Err(AnswerError::Expired(id.clone()));
        }
        let options = &pending.question.options;
        if !options.is_empty() && !options.iter().any(|o| o.key == key) {
            return Err(AnswerError::NoSuchOption(key.to_owned(), keys(options)));
        }
        pending.answered = true;
        Ok(profile.keys_for(key))
    }

    /// An agent hook reported `event` (already checked to come from `id`'s
    /// user): recorded; a permission request names the tool of the
    /// question on screen (or about to be) and means waiting; the end of a
    /// turn means idle.
    pub fn hook_event(&self, id: &SessionId, event: &serde_json::Value) {
        let name = event["hook_event_name"].as_str().unwrap_or("").to_owned();
        let tool = (name == "PermissionRequest")
            .then(|| serde_json::json!({"name": event["tool_name"], "input": event["tool_input"]}));
        {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            // Only sessions being recorded: a hook cannot make new ones.
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            if let Some(tool) = &tool {
                t.hook_tool = Some((tool.clone(), Instant::now()));
                if let Some(q) = &mut t.question {
                    q.tool = Some(tool.clone());
                }
            }
        }
        self.event(
            id,
            "hook",
            serde_json::json!({"event": name, "tool": tool, "message": event["message"]}),
        );
        match name.as_str() {
            "PermissionRequest" => self.set_state(id, AgentState::Waiting, None),
            "Stop" if self.question(id).is_none() => self.set_state(id, AgentState::Idle, None),
            _ => {}
        }
    }
}

fn keys(options: &[AnswerOption]) -> String {
    let keys: Vec<&str> = options.iter().map(|o| o.key.as_str()).collect();
    keys.join(", ")
}
