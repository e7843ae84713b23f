//! Who watches what: open terminals per session and per user (the
//! `[web] max_viewers_per_*` caps), and those whose page is on screen (no
//! push notification about a session someone looks at).

use std::collections::HashMap;

use super::AppState;
use crate::names::{Name, SessionId};

impl AppState {
    pub fn viewer_count(&self, id: &SessionId) -> usize {
        self.viewers
            .lock()
            .expect("viewers lock")
            .by_session
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Counts a terminal of `id` whose page is on screen.
    pub(crate) fn shown(&self, id: &SessionId) -> Shown {
        let mut counts = self.viewers.lock().expect("viewers lock");
        *counts.visible.entry(id.clone()).or_default() += 1;
        Shown {
            state: self.clone(),
            id: id.clone(),
        }
    }

    /// Whether someone looks at `id` in a page on screen.
    pub fn on_screen(&self, id: &SessionId) -> bool {
        let counts = self.viewers.lock().expect("viewers lock");
        counts.visible.get(id).is_some_and(|n| *n > 0)
    }

    /// Counts a viewer of `id` opened by `user` until the guard is dropped,
    /// or says which cap (`[web] max_viewers_per_*`) refuses it.
    pub(super) fn add_viewer(&self, id: &SessionId, user: &Name) -> Result<ViewerGuard, String> {
        let bounds = self.config().web.bounds;
        let mut counts = self.viewers.lock().expect("viewers lock");
        let (on_session, by_user) = (
            counts.by_session.get(id).copied().unwrap_or(0),
            counts.by_user.get(user).copied().unwrap_or(0),
        );
        if on_session >= bounds.max_viewers_per_session {
            crate::metrics::limit_refused("viewers_per_session");
            return Err(format!(
                "{id} has {on_session} viewers, the most max_viewers_per_session allows"
            ));
        }
        if by_user >= bounds.max_viewers_per_user {
            crate::metrics::limit_refused("viewers_per_user");
            return Err(format!(
                "{user} has {by_user} terminals open, the most max_viewers_per_user allows"
            ));
        }
        *counts.by_session.entry(id.clone()).or_default() += 1;
        *counts.by_user.entry(user.clone()).or_default() += 1;
        drop(counts);
        self.supervisor.changed();
        Ok(ViewerGuard {
            state: self.clone(),
            id: id.clone(),
            user: user.clone(),
        })
    }
}

/// Open terminals per session id and per user who opened them, and
/// those whose page is on screen.
#[derive(Default)]
pub(super) struct ViewerCounts {
    by_session: HashMap<SessionId, usize>,
    by_user: HashMap<Name, usize>,
    visible: HashMap<SessionId, usize>,
}

/// A terminal whose page is on screen, counted until dropped.
pub(crate) struct Shown {
    state: AppState,
    id: SessionId,
}

impl Drop for Shown {
    fn drop(&mut self) {
        let mut counts = self.state.viewers.lock().expect("viewers lock");
        decrement(&mut counts.visible, &self.id);
    }
}

pub(super) struct ViewerGuard {
    state: AppState,
    id: SessionId,
    user: Name,
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        {
            let mut counts = self.state.viewers.lock().expect("viewers lock");
            decrement(&mut counts.by_session, &self.id);
            decrement(&mut counts.by_user, &self.user);
        }
        self.state.supervisor.changed();
    }
}
