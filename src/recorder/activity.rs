//! Agent state, derived from what the agent prints: `running` while
//! output arrives, `idle` after `idle_after` of quiet, `waiting` when the
//! recent text matches the prompt pattern, `exited` when the supervisor
//! says so. Transitions are recorded and broadcast.

use super::*;

/// What the agent is doing, as derived from its output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum AgentState {
    Running,
    Idle,
    /// The recent output matches the prompt pattern: it waits for input.
    Waiting,
    Exited {
        status: Option<i32>,
        signal: Option<i32>,
    },
}

impl AgentState {
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::Running => "running",
            AgentState::Idle => "idle",
            AgentState::Waiting => "waiting",
            AgentState::Exited { .. } => "exited",
        }
    }
}

/// A state transition, as broadcast to subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub id: SessionId,
    pub state: AgentState,
}

/// How agent state is derived.
#[derive(Clone, Debug)]
pub struct ActivityConfig {
    pub idle_after: Duration,
    /// Per user: the prompt pattern that means "waiting for you".
    pub waiting: HashMap<String, regex::Regex>,
}

/// Who typed something (recorded with the input).
pub fn source_web(user: &str) -> String {
    format!("web:{user}")
}

impl Recorder {
    /// The current state of `id`, if tracked.
    pub fn state(&self, id: &SessionId) -> Option<AgentState> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .map(|t| t.state.clone())
    }

    /// The recent rendered text of `id` (what prompt patterns match), if
    /// tracked: current even before the latest output is ingested.
    pub fn recent_text(&self, id: &SessionId) -> Option<String> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .map(recent_view)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.0.states.subscribe()
    }

    pub(super) fn set_state(&self, id: &SessionId, state: AgentState, idle_at: Option<Instant>) {
        let changed = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            t.idle_at = idle_at;
            let changed = t.state != state;
            t.state = state.clone();
            changed.then(|| t.log.clone())
        };
        if let Some(log) = changed {
            let _ = log.event("state", serde_json::to_value(&state).unwrap_or_default());
            let _ = self.0.states.send(StateChange {
                id: id.clone(),
                state,
            });
        }
    }

    pub(super) fn next_idle(&self) -> Option<Instant> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .values()
            .filter_map(|t| t.idle_at)
            .min()
    }

    pub(super) fn idle_transitions(&self) {
        let now = Instant::now();
        let due: Vec<(SessionId, bool)> = {
            let sessions = self.0.sessions.lock().expect("sessions lock");
            sessions
                .iter()
                .filter(|(_, t)| t.idle_at.is_some_and(|at| at <= now))
                .map(|(id, t)| (id.clone(), self.waiting_matches(id, &recent_view(t))))
                .collect()
        };
        for (id, waiting) in due {
            let current = self.state(&id);
            let next = match current {
                Some(AgentState::Exited { .. }) | None => continue,
                _ if waiting => AgentState::Waiting,
                _ => AgentState::Idle,
            };
            self.set_state(&id, next, None);
        }
    }

    pub(super) fn waiting_matches(&self, id: &SessionId, recent: &str) -> bool {
        self.0
            .activity
            .read()
            .expect("activity lock")
            .waiting
            .get(id.user.as_str())
            .is_some_and(|re| re.is_match(recent))
    }

    /// Output arrived: running (or waiting if the prompt shows), idle later.
    pub(super) fn observe_output(&self, id: &SessionId, bytes: &[u8]) {
        let waiting = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            let done = t.text.feed(bytes);
            t.recent.push_str(&done);
            if t.recent.len() > RECENT_TEXT {
                let cut = t.recent.len() - RECENT_TEXT;
                let cut = (cut..t.recent.len())
                    .find(|i| t.recent.is_char_boundary(*i))
                    .unwrap_or(0);
                t.recent.drain(..cut);
            }
            self.waiting_matches(id, &recent_view(t))
        };
        let state = if waiting {
            AgentState::Waiting
        } else {
            AgentState::Running
        };
        let exited = matches!(self.state(id), Some(AgentState::Exited { .. }));
        if !exited {
            self.set_state(id, state, Some(Instant::now() + self.idle_after()));
        }
    }
}

/// The recent text a prompt pattern is matched against: the last lines and
/// the line being written (prompts rarely end with a newline).
fn recent_view(t: &Tracked) -> String {
    let mut view = t.recent.clone();
    view.push_str(&t.text.current_line());
    view
}
