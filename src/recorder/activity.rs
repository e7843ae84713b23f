//! Agent state, derived from the agent's screen: `running` while output
//! arrives, `idle` after `idle_after` of quiet, `waiting` while the screen
//! shows a question its profile recognises, `exited` when the supervisor
//! says so. Transitions are recorded and broadcast.

use super::*;

/// What the agent is doing, as derived from its output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum AgentState {
    Running,
    Idle,
    /// The screen shows a question: it waits for an answer.
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
    /// Per user: the agent profile that reads questions off the screen
    /// (users without one are never `waiting`).
    pub profiles: HashMap<String, Arc<Profile>>,
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

    /// The text on `id`'s screen, if tracked.
    pub fn screen_text(&self, id: &SessionId) -> Option<String> {
        self.0
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .map(|t| t.screen.text())
    }

    /// The last `n` lines of `id`'s screen that are not blank.
    pub fn screen_tail(&self, id: &SessionId, n: usize) -> String {
        let text = self.screen_text(id).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.0.states.subscribe()
    }

    /// A listener for agents' state changes that also says each
    /// session's state before (what a notifier needs: "done" is idle
    /// after running).
    pub fn changes(&self) -> Changes {
        Changes {
            rx: self.subscribe(),
            seen: HashMap::new(),
        }
    }

    pub(super) fn set_state(&self, id: &SessionId, state: AgentState, idle_at: Option<Instant>) {
        let changed = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            t.idle_at = idle_at;
            if idle_at.is_some() {
                // Called from hooks and seeding too: the loop's timer may
                // be later than this, or unset.
                self.0.retimed.notify_one();
            }
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
                .map(|(id, t)| (id.clone(), t.question.is_some()))
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

    pub(super) fn profile(&self, id: &SessionId) -> Option<Arc<Profile>> {
        self.0
            .activity
            .read()
            .expect("activity lock")
            .profiles
            .get(id.user.as_str())
            .cloned()
    }

    /// Output arrived, in order: the screen takes it; running, or waiting
    /// if it shows a question; idle later.
    pub(super) fn observe_output(&self, id: &SessionId, bytes: &[u8]) {
        let profile = self.profile(id);
        let asked = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            t.screen.feed(bytes);
            t.reread(profile.as_deref())
        };
        self.after_screen_change(id, asked);
    }

    /// The session prints but its output is not ingested yet (a burst):
    /// running until it pauses.
    pub(super) fn observe_burst(&self, id: &SessionId) {
        if !matches!(self.state(id), Some(AgentState::Exited { .. }) | None) {
            self.set_state(
                id,
                AgentState::Running,
                Some(Instant::now() + self.idle_after()),
            );
        }
    }

    pub(super) fn after_screen_change(&self, id: &SessionId, asked: Asked) {
        if let Asked::New(q) = &asked {
            self.event(id, "question", serde_json::to_value(q).unwrap_or_default());
        }
        let state = if asked.is_waiting() {
            AgentState::Waiting
        } else {
            AgentState::Running
        };
        let before = self.state(id);
        if !matches!(before, Some(AgentState::Exited { .. })) {
            self.set_state(id, state, Some(Instant::now() + self.idle_after()));
            // Still waiting, on another question: subscribers learn of it too.
            if matches!(asked, Asked::New(_)) && before == Some(AgentState::Waiting) {
                let _ = self.0.states.send(StateChange {
                    id: id.clone(),
                    state: AgentState::Waiting,
                });
            }
        }
    }
}

/// See [`Recorder::changes`].
pub struct Changes {
    rx: broadcast::Receiver<StateChange>,
    seen: HashMap<SessionId, AgentState>,
}

impl Changes {
    /// The next change and the session's state before it (`None` the
    /// first time); `None` at `cancel` or when the recorder is gone. Changes
    /// a slow listener missed are skipped.
    pub async fn next(
        &mut self,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Option<(StateChange, Option<AgentState>)> {
        loop {
            let change = tokio::select! {
                _ = cancel.cancelled() => return None,
                r = self.rx.recv() => match r {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            let before = self.seen.insert(change.id.clone(), change.state.clone());
            return Some((change, before));
        }
    }
}
