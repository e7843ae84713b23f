//! The daemon's supervision of sessions: adopting what exists, creating
//! `main`, and one watcher task per managed session that restarts its agent.
//!
//! A watcher sleeps on the agent's pidfd (no polling); when the agent exits
//! it records the status in tmux, waits out the backoff of the user's
//! restart policy and respawns the pane. A watcher whose session disappears
//! ends, except for `main`, which is created again (with the same backoff).
//! Every watcher stops on the shared cancellation token; tmux and the agents
//! keep running.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, RestartPolicy};
use crate::names::{Name, SessionId};
use crate::pidfd::PidFd;
use crate::recorder::Recorder;
use crate::session::{SessionError, SessionInfo, State, UserServer};
use crate::tmux::PaneId;

mod sockets;
mod watch;
mod workspace;

/// What start-up found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StartReport {
    pub created: usize,
    pub adopted: usize,
    pub failed_users: usize,
}

/// A configured user: their server, and a token that stops their watchers
/// and terminals when the user is removed from the config.
#[derive(Clone)]
struct UserEntry {
    server: UserServer,
    cancel: CancellationToken,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<Name>,
    /// Detached from web and mail; their tmux sessions keep running.
    pub removed: Vec<Name>,
    pub changed: Vec<Name>,
}

/// The supervisor: per-user servers and the set of watched sessions.
/// Cloneable handle; all clones share state.
#[derive(Clone)]
pub struct Supervisor(Arc<Inner>);

struct Inner {
    /// Per-user servers; replaced on reload. std lock: never held across
    /// an `.await` (callers get clones).
    users: RwLock<HashMap<Name, UserEntry>>,
    restart: RwLock<RestartPolicy>,
    /// `[workspace]`, for the control socket's `put` and `get`.
    workspace: RwLock<crate::config::WorkspaceConfig>,
    /// Transcripts and agent state; `None` when recording is off.
    recorder: Option<Recorder>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// Sessions that have a watcher. A std mutex: it is never held across
    /// an `.await`.
    watched: Mutex<HashSet<SessionId>>,
    /// Counts changes a dashboard shows (sessions, agents, viewers); the
    /// page's event stream waits on it.
    changes: tokio::sync::watch::Sender<u64>,
    /// Watchers waiting out a restart's backoff: a notify that ends the
    /// wait (`restart_now`). A std mutex, never held across an `.await`.
    /// With the time (Unix ms) the restart is due.
    backoffs: Mutex<HashMap<SessionId, (Arc<tokio::sync::Notify>, u64)>>,
}

impl Supervisor {
    pub fn new(
        config: &Config,
        recorder: Option<Recorder>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Supervisor {
        let users = config
            .users
            .iter()
            .map(|u| {
                let entry = UserEntry {
                    server: UserServer::new(config, u),
                    cancel: cancel.child_token(),
                };
                (u.name.clone(), entry)
            })
            .collect();
        Supervisor(Arc::new(Inner {
            users: RwLock::new(users),
            restart: RwLock::new(config.restart),
            workspace: RwLock::new(config.workspace.clone()),
            recorder,
            cancel,
            tracker,
            watched: Mutex::new(HashSet::new()),
            changes: tokio::sync::watch::channel(0).0,
            backoffs: Mutex::new(HashMap::new()),
        }))
    }

    /// Something a dashboard shows changed.
    pub fn changed(&self) {
        self.0.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes on each [`Supervisor::changed`].
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    /// The current `[workspace]` caps.
    pub fn workspace_config(&self) -> crate::config::WorkspaceConfig {
        self.0.workspace.read().expect("workspace lock").clone()
    }

    pub fn recorder(&self) -> Option<&Recorder> {
        self.0.recorder.as_ref()
    }

    /// What `id` printed since `since_ms`, as text without tmuxd's own
    /// lines (for mail results); empty when transcripts are off.
    pub fn output_text(&self, id: &SessionId, since_ms: Option<u64>) -> String {
        match self.recorder().map(|r| r.log(id)) {
            Some(Ok(log)) => crate::transcript::output_text(&log, since_ms),
            Some(Err(e)) => {
                tracing::warn!(session = %id, error = %e, "cannot read the transcript");
                String::new()
            }
            None => String::new(),
        }
    }

    /// Starts recording `id` and records `kind` (`created`, `adopted`, ...);
    /// its screen is then taken from tmux.
    fn record_start(&self, id: &SessionId, kind: &str, info: &SessionInfo) {
        if let Some(rec) = &self.0.recorder {
            if let Err(e) = rec.track(id) {
                tracing::error!(session = %id, error = %e, "cannot record session");
            }
            rec.agent_started(id, kind, info.agent_pid);
            self.refresh_screen(id, info.pane.clone());
        }
    }

    /// Rebuilds `id`'s screen from what tmux shows, in the background
    /// (after a restart, or once the agent redrew after a viewer resized
    /// it). `pane`: its agent pane, if known.
    pub fn refresh_screen(&self, id: &SessionId, pane: Option<PaneId>) {
        let (this, id) = (self.clone(), id.clone());
        self.0.tracker.spawn(async move {
            let (Some(rec), Ok(server)) = (this.recorder(), this.server(&id.user)) else {
                return;
            };
            let pane = match pane {
                Some(p) => p,
                None => match server.info(&id.session).await.map(|i| i.pane) {
                    Ok(Some(p)) => p,
                    // Gone or not running: nothing on screen to read.
                    _ => return,
                },
            };
            let upto = rec.spool_size(&id);
            match server.capture(&pane).await {
                Ok(captured) => rec.seed_screen(&id, &captured, upto),
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "cannot read the screen from tmux")
                }
            }
        });
    }

    /// Every configured user's server.
    pub fn servers(&self) -> Vec<UserServer> {
        let users = self.0.users.read().expect("users lock");
        users.values().map(|e| e.server.clone()).collect()
    }

    pub fn server(&self, user: &Name) -> Result<UserServer, SessionError> {
        let users = self.0.users.read().expect("users lock");
        users
            .get(user)
            .map(|e| e.server.clone())
            .ok_or_else(|| SessionError::NoSuchUser(user.clone()))
    }

    /// Cancelled when `user` is removed from the config (or on shutdown).
    pub fn user_cancel(&self, user: &Name) -> Option<CancellationToken> {
        let users = self.0.users.read().expect("users lock");
        users.get(user).map(|e| e.cancel.clone())
    }

    /// Applies a new config: added users get sessions, removed users are
    /// detached (watchers and terminals end; tmux keeps running), changed
    /// users' settings apply from their next (re)start.
    pub async fn reload(&self, config: &Config) -> ReloadReport {
        let mut report = ReloadReport::default();
        *self.0.restart.write().expect("restart lock") = config.restart;
        *self.0.workspace.write().expect("workspace lock") = config.workspace.clone();
        let mut added = Vec::new();
        let mut relays = Vec::new();
        {
            let mut users = self.0.users.write().expect("users lock");
            let keep: HashSet<&Name> = config.users.iter().map(|u| &u.name).collect();
            users.retain(|name, entry| {
                if keep.contains(name) {
                    return true;
                }
                entry.cancel.cancel();
                report.removed.push(name.clone());
                false
            });
            for u in &config.users {
                let server = UserServer::new(config, u);
                match users.get_mut(&u.name) {
                    Some(entry) if entry.server.user != *u => {
                        if u.any_sandbox() && !entry.server.user.any_sandbox() {
                            relays.push(server.clone());
                        }
                        entry.server = server;
                        report.changed.push(u.name.clone());
                    }
                    Some(_) => {}
                    None => {
                        users.insert(
                            u.name.clone(),
                            UserEntry {
                                server: server.clone(),
                                cancel: self.0.cancel.child_token(),
                            },
                        );
                        report.added.push(u.name.clone());
                        added.push(server);
                    }
                }
            }
        }
        for server in &relays {
            self.serve_sandbox_net(server);
        }
        for server in added {
            self.serve_hooks(&server);
            self.serve_sandbox_net(&server);
            let _ = self.start_user(&server).await;
        }
        report
    }

    /// Resized windows (by any client), once quiet: their screens are taken
    /// from tmux at the new size, until shutdown.
    fn follow_resizes(&self) {
        let Some(mut requests) = self.recorder().and_then(|r| r.screen_requests()) else {
            return;
        };
        let (this, cancel) = (self.clone(), self.0.cancel.clone());
        self.0.tracker.spawn(async move {
            loop {
                tokio::select! {
                    id = requests.recv() => match id {
                        Some(id) => this.refresh_screen(&id, None),
                        None => break,
                    },
                    _ = cancel.cancelled() => break,
                }
            }
        });
    }

    /// Agents' state changes (running, waiting, idle) count as changes
    /// for the dashboards, until shutdown.
    fn follow_agent_states(&self) {
        let Some(mut states) = self.recorder().map(|r| r.subscribe()) else {
            return;
        };
        let (this, cancel) = (self.clone(), self.0.cancel.clone());
        self.0.tracker.spawn(async move {
            loop {
                tokio::select! {
                    r = states.recv() => match r {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => this.changed(),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    _ = cancel.cancelled() => break,
                }
            }
        });
    }

    /// Adopts every user's existing sessions and creates missing `main`s,
    /// all users at once. A user that fails is logged and retried by its
    /// watcher; the others are served regardless.
    pub async fn start(&self) -> StartReport {
        self.follow_resizes();
        self.follow_agent_states();
        let mut set = tokio::task::JoinSet::new();
        for server in self.servers() {
            self.serve_hooks(&server);
            self.serve_sandbox_net(&server);
            let this = self.clone();
            set.spawn(async move { this.start_user(&server).await });
        }
        let mut report = StartReport::default();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok((created, adopted))) => {
                    report.created += created;
                    report.adopted += adopted;
                }
                Ok(Err(())) | Err(_) => report.failed_users += 1,
            }
        }
        report
    }

    async fn start_user(&self, server: &UserServer) -> Result<(usize, usize), ()> {
        let user = server.user.name.clone();
        let main_id = server.id(&Name::main());
        let mut result = Ok((0, 0));
        let listed = match server.ensure_socket_dir() {
            Ok(()) => server.list().await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(list) => {
                let mut adopted = 0;
                for info in list.iter().filter(|s| s.state != State::Stopped) {
                    let id = info.id.clone();
                    tracing::info!(session = %id, state = ?info.state, pid = ?info.agent_pid, "adopted session");
                    if let Err(e) = server.ensure_pipe(info).await {
                        tracing::error!(session = %id, error = %e, "cannot pipe output to the transcript");
                    }
                    self.record_start(&id, "adopted", info);
                    self.watch(id);
                    adopted += 1;
                }
                let mut created = 0;
                if !self.is_watched(&main_id) {
                    match server.create(&Name::main()).await {
                        Ok(info) => {
                            tracing::info!(session = %main_id, pid = ?info.agent_pid, "created session");
                            self.record_start(&main_id, "created", &info);
                            created = 1;
                        }
                        Err(e) => {
                            tracing::error!(user = %user, error = %e, "cannot create the main session");
                            result = Err(());
                        }
                    }
                    // Its watcher retries creation if that failed.
                    self.watch(main_id);
                }
                result.map(|_| (created, adopted))
            }
            Err(e) => {
                tracing::error!(user = %user, error = %e, "cannot adopt sessions");
                self.watch(main_id);
                Err(())
            }
        }
    }

    fn is_watched(&self, id: &SessionId) -> bool {
        self.0.watched.lock().expect("watched lock").contains(id)
    }

    /// Starts a watcher for `id` unless one runs already.
    pub fn watch(&self, id: SessionId) {
        if !self
            .0
            .watched
            .lock()
            .expect("watched lock")
            .insert(id.clone())
        {
            return;
        }
        let this = self.clone();
        self.0.tracker.spawn(async move {
            this.watch_session(&id).await;
            this.0.watched.lock().expect("watched lock").remove(&id);
        });
    }

    /// Creates `id` and watches it.
    pub async fn create(&self, id: &SessionId) -> Result<SessionInfo, SessionError> {
        self.create_in(id, None).await
    }

    /// [`Supervisor::create`] with the session's own workdir.
    pub(crate) async fn create_in(
        &self,
        id: &SessionId,
        workdir: Option<&std::path::Path>,
    ) -> Result<SessionInfo, SessionError> {
        let info = self
            .server(&id.user)?
            .create_in(&id.session, workdir)
            .await?;
        tracing::info!(session = %id, pid = ?info.agent_pid, "created session");
        self.record_start(id, "created", &info);
        self.watch(id.clone());
        self.changed();
        Ok(info)
    }

    /// Types `text` into `id` and records it with its `source`.
    pub async fn send(
        &self,
        id: &SessionId,
        text: &str,
        enter: bool,
        source: &str,
    ) -> Result<(), SessionError> {
        let server = self.server(&id.user)?;
        self.snapshot_before_input(id, text, source).await;
        server.send(&id.session, text, enter).await?;
        if let Some(rec) = &self.0.recorder {
            let typed = if enter {
                format!("{text}\n")
            } else {
                text.to_owned()
            };
            rec.input(id, source, &typed).await;
        }
        Ok(())
    }

    /// Sends Ctrl-C to `id` and records it (as `^C`) with its `source`.
    pub async fn interrupt(&self, id: &SessionId, source: &str) -> Result<(), SessionError> {
        self.server(&id.user)?.interrupt(&id.session).await?;
        if let Some(rec) = &self.0.recorder {
            rec.input(id, source, "^C").await;
        }
        Ok(())
    }

    /// Restarts `id`'s exited agent now instead of at the end of its
    /// backoff; refused unless its watcher is waiting to restart it.
    pub fn restart_now(&self, id: &SessionId) -> Result<(), SessionError> {
        let backoffs = self.0.backoffs.lock().expect("backoffs lock");
        let Some((notify, _)) = backoffs.get(id) else {
            return Err(SessionError::BadInput(format!(
                "{id}'s agent is not waiting to be restarted (it restarts by itself after it exits)"
            )));
        };
        notify.notify_one();
        Ok(())
    }

    /// When (Unix ms) `id`'s exited agent is due to restart, if it waits.
    pub fn restart_due(&self, id: &SessionId) -> Option<u64> {
        let backoffs = self.0.backoffs.lock().expect("backoffs lock");
        backoffs.get(id).map(|(_, due)| *due)
    }

    /// Kills `id`; its watcher sees the agent go and ends.
    pub async fn kill(&self, id: &SessionId) -> Result<(), SessionError> {
        self.kill_session(id, false).await.map(|_| ())
    }

    /// Kills `id`; a session in a worktree of its own leaves it (removed
    /// if `remove_worktree` and clean). Returns what became of it.
    pub async fn kill_session(
        &self,
        id: &SessionId,
        remove_worktree: bool,
    ) -> Result<String, SessionError> {
        let files = self.session_files(id).await.ok();
        self.server(&id.user)?.kill(&id.session).await?;
        tracing::info!(session = %id, "killed session");
        self.changed();
        let mut said = format!("killed {id}");
        if let Some(f) = files.filter(|f| f.worktree) {
            said = format!(
                "{said}; {}",
                crate::workspace::worktree::after_kill(&f.place(), remove_worktree).await
            );
        }
        Ok(said)
    }
}
