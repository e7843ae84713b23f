//! Managed sessions: creating, respawning, listing, typing into, killing.
//!
//! A managed session is an ordinary tmux session on the user's own socket
//! whose agent pane tmuxd started. Everything tmuxd knows about it lives in
//! tmux itself, as session user options (`@tmuxd_pane`, `@tmuxd_last_exit`,
//! ...), so the CLI can list sessions with the daemon down and a restarted
//! daemon adopts them without a database.
//!
//! The agent pane runs a fixed launcher, `sh -c LAUNCHER GATE TMUX ARGV...`:
//! it waits on a tmux channel (the gate) so tmuxd can finish setting the
//! pane up (options now, the transcript pipe later) before the agent prints
//! its first byte, runs the agent, and records its exit status in the
//! session (`@tmuxd_last_exit`) before it ends itself. tmux 3.3a does not
//! reliably report the status of a respawned pane (`respawn-pane` clears
//! `PANE_STATUSREADY` but not `PANE_EXITED`, so the pane can be marked dead
//! before its status is collected), so the launcher stays the agent's
//! parent instead of `exec`ing it. It traps INT, QUIT and TSTP with a no-op
//! handler so Ctrl-C reaches only the agent (handlers, unlike ignored
//! signals, are reset for the program it runs). User text never enters the
//! script: the agent argv is passed as positional parameters.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::clock::unix_now;
use crate::config::{Config, UserConfig};
use crate::exit::ExitInfo;
use crate::names::{Name, SessionId};
use crate::tmux::{Account, Command, Identity, PaneId, SpecialKey, Target, Tmux, TmuxError};

mod account;
mod launch;
mod listing;
mod options;

pub use options::window_name;
#[cfg(test)]
mod tests;

use account::{account_for, ensure_private_dir};
use launch::sandbox_option;

/// Text longer than this is typed through a paste buffer: `send-keys`
/// fails with "command too long" near 16 KiB of arguments.
const SEND_KEYS_MAX: usize = 8 * 1024;

const OPT_PANE: &str = "@tmuxd_pane";

const OPT_GATE: &str = "@tmuxd_gate";

const OPT_STARTED: &str = "@tmuxd_started";

const OPT_LAST_EXIT: &str = "@tmuxd_last_exit";

const OPT_RESTARTS: &str = "@tmuxd_restarts";
/// A session's own workdir, when it is not its user's (a worktree).
const OPT_WORKDIR: &str = "@tmuxd_workdir";
/// How the session's agent is sandboxed ([`crate::sandbox::Summary`]).
const OPT_SANDBOX: &str = "@tmuxd_sandbox";

/// The tmux hook run when a session's window changes size.
const RESIZED_HOOK: &str = "window-resized";

/// The tmux hook run when the pane's process has exited and tmux has
/// marked the pane dead; it signals [`died_channel`].
const DIED_HOOK: &str = "pane-died";

fn died_channel(name: &Name) -> String {
    format!("tmuxd-died-{name}")
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no such session {0}")]
    NoSuchSession(SessionId),
    #[error("no such user {0}")]
    NoSuchUser(Name),
    #[error("session {0} already exists")]
    AlreadyExists(SessionId),
    #[error("the agent of {0} is not running")]
    AgentNotRunning(SessionId),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Tmux(#[from] TmuxError),
    #[error("{0}")]
    Io(String),
}

impl SessionError {
    /// Whether the caller asked for something wrong (exit 2), as opposed
    /// to something failing.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SessionError::Tmux(_) | SessionError::Io(_))
    }

    /// What a user may be told (mail, chat): the error itself when it is
    /// about what they asked, else fixed text, with the detail (tmux
    /// stderr, paths) logged instead.
    pub fn for_users(&self) -> String {
        if self.is_bad_input() {
            return self.to_string();
        }
        tracing::error!(error = %self, "session operation failed");
        match self {
            SessionError::Tmux(crate::tmux::TmuxError::Timeout(..)) => {
                "the session's tmux server is not answering; try again later".to_owned()
            }
            _ => "tmuxd could not reach the session (an internal error, logged for the operator)"
                .to_owned(),
        }
    }
}

/// How a session's agent is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting on its gate: tmuxd is setting the pane up.
    Starting,
    Running,
    /// The agent exited; the pane shows why until it is restarted.
    Exited,
    /// No such session on the server (or no server): `main` is recreated
    /// by the daemon.
    Stopped,
}

/// One session as `tmuxd sessions` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SessionInfo {
    pub id: SessionId,
    pub state: State,
    /// The agent process (the launcher's child).
    pub agent_pid: Option<u32>,
    /// The pane's process, the launcher: it ends after the agent, once the
    /// exit is recorded. The daemon watches this one.
    pub launcher_pid: Option<u32>,
    /// Unix time the session was created.
    pub created: Option<u64>,
    /// Unix time the current agent was started.
    pub agent_started: Option<u64>,
    /// Unix time of the session's last activity (tmux's own record).
    pub last_activity: Option<u64>,
    pub last_exit: Option<ExitInfo>,
    pub restarts: u32,
    pub attached_clients: u32,
    pub socket: PathBuf,
    #[serde(skip)]
    pub pane: Option<PaneId>,
    #[serde(skip)]
    pub gate: Option<String>,
    /// Whether the agent pane's output is piped to its spool file.
    #[serde(skip)]
    pub piped: bool,
    /// The session's own workdir (a git worktree made for it); `None`:
    /// its user's `workdir`.
    pub workdir: Option<PathBuf>,
    /// The agent's sandbox as it was started; `None`: not sandboxed.
    pub sandbox: Option<crate::sandbox::Summary>,
}

/// A user's tmux server and the sessions tmuxd manages on it.
#[derive(Clone, Debug)]
pub struct UserServer {
    pub user: UserConfig,
    pub tmux: Tmux,
    socket_dir: PathBuf,
    tmux_bin: PathBuf,
    /// Where spool files go; `None` when transcripts are off.
    spool_root: Option<PathBuf>,
    /// Who owns the user's directories (uid, gid).
    owner: (u32, u32),
    /// Start the tmux server in a systemd scope of its own.
    scope: bool,
    /// `[daemon] max_sessions_per_user`.
    max_sessions: usize,
    /// The hook socket, when the agent's hooks report to the daemon.
    hook_socket: Option<PathBuf>,
    /// Where the user's copies of systemd credentials go.
    credentials_dir: PathBuf,
    /// bubblewrap, for sandboxed agents.
    sandbox_tool: Option<PathBuf>,
    /// What sandboxed agents must not see: tmuxd's own directories.
    sandbox_hide: Vec<PathBuf>,
    /// The daemon's relay for sandboxes with an allow-list.
    net_socket: PathBuf,
    /// Where servers start when tmuxd runs in a container of its own.
    tmux_host: Option<PathBuf>,
}

impl UserServer {
    pub fn new(config: &Config, user: &UserConfig) -> UserServer {
        let account = account_for(user);
        let owner = account.as_ref().map(|a| (a.uid, a.gid)).unwrap_or((
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ));
        let identity = Identity {
            account,
            limits: user.limits,
        };
        UserServer {
            user: user.clone(),
            tmux: Tmux::with_identity(config.tmux_socket(&user.name), identity),
            owner,
            scope: crate::tmux::systemd_scopes_available(),
            socket_dir: config.user_socket_dir(&user.name),
            tmux_bin: crate::config::find_in_path("tmux").unwrap_or_else(|| "tmux".into()),
            spool_root: config.transcript.enabled.then(|| config.spool_root()),
            max_sessions: config.max_sessions_per_user,
            hook_socket: (user.hooks
                && crate::hooks::PROFILES.contains(&user.profile.as_str())
                && config.transcript.enabled)
                .then(|| crate::hooks::socket(config, &user.name)),
            credentials_dir: config.credentials_dir(),
            sandbox_tool: config.sandbox_tool.clone(),
            sandbox_hide: std::iter::once(config.runtime_dir.clone())
                .chain([config.state_dir.clone(), config.spool_root()])
                .collect(),
            net_socket: crate::sandbox::net::socket(&config.runtime_dir, &user.name),
            tmux_host: config.tmux_host.clone(),
        }
    }

    /// The daemon's relay socket for this user's sandboxes.
    pub fn net_socket(&self) -> &Path {
        &self.net_socket
    }

    /// The hook socket, if this user's agent reports through hooks.
    pub fn hook_socket(&self) -> Option<&Path> {
        self.hook_socket.as_deref()
    }

    /// Who owns the user's files (uid, gid).
    pub fn owner(&self) -> (u32, u32) {
        self.owner
    }

    pub fn id(&self, session: &Name) -> SessionId {
        SessionId::new(self.user.name.clone(), session.clone())
    }

    /// Creates the user's socket directory (0700, owned by the user's
    /// account), or checks an existing one.
    pub fn ensure_socket_dir(&self) -> Result<(), SessionError> {
        ensure_private_dir(&self.socket_dir, self.owner, "socket directory")?;
        self.copy_credentials();
        Ok(())
    }

    /// Copies the systemd credentials this user's agents name where they
    /// can read them; a failure is logged (the agent's pane says which
    /// secret it could not read).
    fn copy_credentials(&self) {
        let mut names: Vec<&str> = std::iter::once(&self.user.env)
            .chain(self.user.session_env.values())
            .flat_map(|env| env.secrets.values())
            .filter_map(|p| crate::credentials::name_of(p))
            .collect();
        names.sort_unstable();
        names.dedup();
        let (dir, user) = (&self.credentials_dir, &self.user.name);
        if let Err(e) = crate::credentials::copy_for(dir, user, self.owner, &names) {
            tracing::error!(user = %user, error = %e, "cannot give the agent its credentials");
        }
    }

    /// The `pipe-pane` command for session `name`, creating the spool
    /// directory; `None` when transcripts are off.
    fn pipe_command(&self, name: &Name) -> Result<Option<String>, SessionError> {
        let Some(root) = &self.spool_root else {
            return Ok(None);
        };
        let id = self.id(name);
        let path = crate::spool::spool_path(root, &id);
        if let Some(dir) = path.parent() {
            // tmux (as the user) writes the spool; the daemon reads it.
            ensure_private_dir(dir, self.owner, "spool directory")?;
        }
        Ok(Some(crate::spool::pipe_command(&path)))
    }

    /// Pipes the agent pane of `info` to its spool file if it is not.
    pub async fn ensure_pipe(&self, info: &SessionInfo) -> Result<(), SessionError> {
        let Some(pane) = &info.pane else {
            return Ok(());
        };
        let name = self.session_name(info)?;
        let mut commands = Vec::new();
        if !info.piped {
            if let Some(cmd) = self.pipe_command(&name)? {
                commands.push(Command::pipe_pane_to(Target::Pane(pane), &cmd));
            }
        }
        // Sessions made before the hooks existed get them too.
        commands.extend(self.hooks(&name, |o, v| Command::set_window_option(pane, o, v)));
        self.tmux.run(&commands).await?;
        Ok(())
    }

    /// tmuxd's hooks on session `name`'s window, each set with `set(hook,
    /// command)`: `pane-died` signals [`died_channel`], `window-resized`
    /// notes the resize beside the spool.
    fn hooks(&self, name: &Name, set: impl Fn(&str, &str) -> Command) -> Vec<Command> {
        let mut commands = vec![set(
            DIED_HOOK,
            &format!("wait-for -S {}", died_channel(name)),
        )];
        if let Some(hook) = self.resized_hook(name) {
            commands.push(set(RESIZED_HOOK, &hook));
        }
        commands
    }

    /// The `window-resized` hook of session `name` (see
    /// [`crate::spool::resized_hook`]); none without transcripts.
    fn resized_hook(&self, name: &Name) -> Option<String> {
        let hook = crate::spool::resized_hook(self.spool_root.as_ref()?, &self.id(name));
        if hook.is_none() {
            tracing::warn!(session = %self.id(name), "the spool path has characters tmux would read specially; resizes by plain tmux clients are not followed");
        }
        hook
    }

    /// Creates session `name` running the user's agent, and opens its gate
    /// once its output is piped to the spool.
    pub async fn create(&self, name: &Name) -> Result<SessionInfo, SessionError> {
        self.create_in(name, None).await
    }

    /// [`UserServer::create`] with the session's own `workdir` (kept as a
    /// session option, so restarts and the daemon's next start use it).
    pub async fn create_in(
        &self,
        name: &Name,
        workdir: Option<&Path>,
    ) -> Result<SessionInfo, SessionError> {
        self.ensure_socket_dir()?;
        let pipe = self.pipe_command(name)?;
        if self.tmux.has_session(name).await? {
            return Err(SessionError::AlreadyExists(self.id(name)));
        }
        if name != &Name::main() {
            let running = self.list().await?;
            let n = running.iter().filter(|s| s.state != State::Stopped).count();
            if n >= self.max_sessions {
                crate::metrics::limit_refused("sessions_per_user");
                return Err(SessionError::BadInput(format!(
                    "{} has {n} sessions, the most [daemon] max_sessions_per_user allows; kill one first",
                    self.user.name
                )));
            }
        }
        let gate = new_gate();
        let (agent, env, sandbox) = self.agent(name, workdir.unwrap_or(&self.user.workdir));
        let argv = self.launcher_argv(&gate, &agent);
        let now = unix_now().to_string();
        let mut commands = options::server();
        commands.extend([
            Command::new_session(
                name,
                &options::window_name(&self.user.command),
                workdir.unwrap_or(&self.user.workdir),
                "#{pane_id}",
                &env,
                &argv,
            ),
            // Keep the pane when the agent exits: its status stays
            // readable and its last words stay on screen.
            Command::set_session_window_option(name, "remain-on-exit", "on"),
            Command::set_session_option_format(name, OPT_PANE, "#{pane_id}"),
            Command::set_session_option(name, OPT_GATE, &gate),
            Command::set_session_option(name, OPT_STARTED, &now),
        ]);
        if let Some(w) = workdir {
            commands.push(Command::set_session_option(
                name,
                OPT_WORKDIR,
                &w.to_string_lossy(),
            ));
        }
        commands.extend(options::session(name));
        commands.push(sandbox_option(name, sandbox.as_ref()));
        if let Some(cmd) = &pipe {
            commands.push(Command::pipe_pane_to(Target::Window(name), cmd));
        }
        commands.extend(self.hooks(name, |o, v| Command::set_session_window_option(name, o, v)));
        let result = if let (Some(host), false) = (&self.tmux_host, self.server_running().await) {
            // In a container: the server starts in the tmux host's.
            self.tmux.run_via_host(host, &commands).await
        } else if self.scope && !self.server_running().await {
            // Under systemd the server gets a scope of its own, outside the
            // daemon's cgroup (and under the user's MemoryMax/CPUQuota).
            let unit = format!("tmuxd-{}-{}", self.user.name, unix_now());
            match self.tmux.run_in_scope(&commands, &unit).await {
                Ok(out) => Ok(out),
                Err(e) => {
                    tracing::warn!(user = %self.user.name, error = %e, "cannot start tmux in a systemd scope; starting it in the daemon's cgroup");
                    self.tmux.run(&commands).await
                }
            }
        } else {
            self.tmux.run(&commands).await
        };
        match result {
            Ok(_) => {}
            // Lost a race with another creator.
            Err(TmuxError::Failed { stderr, .. }) if stderr.starts_with("duplicate session") => {
                return Err(SessionError::AlreadyExists(self.id(name)))
            }
            Err(e) => return Err(e.into()),
        }
        self.open_gate(name, &gate).await?;
        self.info(name).await
    }

    async fn server_running(&self) -> bool {
        !matches!(
            self.tmux
                .run(&[Command::list_sessions("#{session_name}")])
                .await,
            Err(TmuxError::NoServer(_))
        )
    }

    /// What `pane` shows now, as tmux keeps it (the agent's screen).
    pub async fn capture(&self, pane: &PaneId) -> Result<crate::screen::Captured, SessionError> {
        let out = self
            .tmux
            .run(&[
                Command::display(pane, crate::screen::CAPTURE_FORMAT),
                Command::capture_screen(pane),
            ])
            .await?;
        crate::screen::Captured::parse(&out)
            .ok_or_else(|| SessionError::Tmux(TmuxError::Parse("capture-pane output".into())))
    }

    /// Returns once tmux has marked session `name`'s pane dead (its
    /// `pane-died` hook ran; at once if it ran before), or after `within`.
    pub async fn pane_died(&self, name: &Name, within: std::time::Duration) {
        let wait = [Command::wait_channel(&died_channel(name))];
        // On timeout the waiting client is dropped, and so killed.
        let _ = tokio::time::timeout(within, self.tmux.run(&wait)).await;
    }

    /// Lets a waiting agent start: the pane is set up.
    pub async fn open_gate(&self, name: &Name, gate: &str) -> Result<(), SessionError> {
        self.tmux
            .run(&[
                Command::signal_channel(gate),
                Command::unset_session_option(name, OPT_GATE),
            ])
            .await?;
        Ok(())
    }

    /// Records how the agent of `name` ended (kept across restarts).
    pub async fn record_exit(&self, name: &Name, exit: &ExitInfo) -> Result<(), SessionError> {
        self.tmux
            .run(&[Command::set_session_option(
                name,
                OPT_LAST_EXIT,
                &exit.encode(),
            )])
            .await?;
        Ok(())
    }

    /// Starts the agent again in the dead pane of `info`.
    pub async fn respawn(&self, info: &SessionInfo) -> Result<(), SessionError> {
        let name = self.session_name(info)?;
        let pane = info
            .pane
            .as_ref()
            .ok_or_else(|| SessionError::NoSuchSession(self.id(&name)))?;
        let gate = new_gate();
        let (agent, env, sandbox) = self.agent(&name, self.workdir_of(info));
        let argv = self.launcher_argv(&gate, &agent);
        let mut commands = vec![
            sandbox_option(&name, sandbox.as_ref()),
            Command::set_session_option(&name, OPT_GATE, &gate),
            Command::set_session_option(&name, OPT_STARTED, &unix_now().to_string()),
            Command::set_session_option(&name, OPT_RESTARTS, &(info.restarts + 1).to_string()),
            Command::respawn_pane(pane, self.workdir_of(info), &env, &argv),
        ];
        // The pipe survives a respawn; start one if it was missing.
        if !info.piped {
            if let Some(cmd) = self.pipe_command(&name)? {
                commands.push(Command::pipe_pane_to(Target::Pane(pane), &cmd));
            }
        }
        self.tmux.run(&commands).await?;
        self.open_gate(&name, &gate).await
    }

    /// Where `info`'s session works: its own workdir, or its user's.
    pub fn workdir_of<'a>(&'a self, info: &'a SessionInfo) -> &'a Path {
        info.workdir.as_deref().unwrap_or(&self.user.workdir)
    }

    fn session_name(&self, info: &SessionInfo) -> Result<Name, SessionError> {
        Ok(info.id.session.clone())
    }
}

/// Refuses text that must not be typed: control characters other than tab
/// and newline (they would be keystrokes, e.g. escape sequences).
pub fn check_typed_text(text: &str) -> Result<(), SessionError> {
    if let Some((i, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(SessionError::BadInput(format!(
            "the text contains the control character {c:?} at byte {i}; only printable text, tabs and newlines can be typed"
        )));
    }
    Ok(())
}

/// A gate channel name, unique on this machine: stale signals for old
/// gates can never open a new one.
fn new_gate() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "tmuxd-go-{}-{}-{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
