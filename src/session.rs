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

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::clock::unix_now;
use crate::config::{Config, UserConfig};
use crate::exit::ExitInfo;
use crate::names::{Name, SessionId};
use crate::tmux::{Account, Command, Identity, PaneId, SpecialKey, Target, Tmux, TmuxError};
use crate::userfs::UserDir;

/// The pane's launcher. `$0` is the gate channel, `$1` the tmux binary,
/// the rest the agent argv. A status above 128 is how sh reports a signal.
const LAUNCHER: &str = r#"gate=$0; tmux=$1; shift
"$tmux" wait-for "$gate" 2>/dev/null
if command -v "$1" >/dev/null 2>&1; then
  trap : INT QUIT TSTP
  "$@"
  st=$?
  trap - INT QUIT TSTP
else
  printf '\ntmuxd: cannot start the agent: %s: command not found\n' "$1"
  st=127
fi
if [ "$st" -gt 128 ] && [ "$st" -le 192 ]; then what="signal $((st - 128))"; else what="status $st"; fi
"$tmux" set-option -t "$TMUX_PANE" @tmuxd_last_exit "$what at $(date +%s)" 2>/dev/null
printf '\n[tmuxd] the agent exited (%s)\n' "$what"
exit "$st""#;

/// Text longer than this is typed through a paste buffer: `send-keys`
/// fails with "command too long" near 16 KiB of arguments.
const SEND_KEYS_MAX: usize = 8 * 1024;

const OPT_PANE: &str = "@tmuxd_pane";
const OPT_GATE: &str = "@tmuxd_gate";
const OPT_STARTED: &str = "@tmuxd_started";
const OPT_LAST_EXIT: &str = "@tmuxd_last_exit";
const OPT_RESTARTS: &str = "@tmuxd_restarts";

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
    pub id: String,
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
        }
    }

    pub fn id(&self, session: &Name) -> SessionId {
        SessionId::new(self.user.name.clone(), session.clone())
    }

    /// Creates the user's socket directory (0700, owned by the user's
    /// account), or checks an existing one.
    pub fn ensure_socket_dir(&self) -> Result<(), SessionError> {
        ensure_private_dir(&self.socket_dir, self.owner, "socket directory")
    }

    fn launcher_argv(&self, gate: &str, agent: &[String]) -> Vec<String> {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            LAUNCHER.to_owned(),
            gate.to_owned(),
            self.tmux_bin.to_string_lossy().into_owned(),
        ];
        argv.extend(agent.iter().cloned());
        argv
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
        let (Some(pane), false) = (&info.pane, info.piped) else {
            return Ok(());
        };
        let name = self.session_name(info)?;
        if let Some(cmd) = self.pipe_command(&name)? {
            self.tmux
                .run(&[Command::pipe_pane_to(Target::Pane(pane), &cmd)])
                .await?;
        }
        Ok(())
    }

    /// Creates session `name` running the user's agent, and opens its gate
    /// once its output is piped to the spool.
    pub async fn create(&self, name: &Name) -> Result<SessionInfo, SessionError> {
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
        let argv = self.launcher_argv(&gate, &self.user.command);
        let now = unix_now().to_string();
        let mut commands = vec![
            Command::new_session(name, &self.user.workdir, "#{pane_id}", &argv),
            // Keep the pane when the agent exits: its status stays
            // readable and its last words stay on screen.
            Command::set_session_window_option(name, "remain-on-exit", "on"),
            Command::set_session_option_format(name, OPT_PANE, "#{pane_id}"),
            Command::set_session_option(name, OPT_GATE, &gate),
            Command::set_session_option(name, OPT_STARTED, &now),
        ];
        if let Some(cmd) = &pipe {
            commands.push(Command::pipe_pane_to(Target::Window(name), cmd));
        }
        let result = if self.scope && !self.server_running().await {
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
        let argv = self.launcher_argv(&gate, &self.user.command);
        let mut commands = vec![
            Command::set_session_option(&name, OPT_GATE, &gate),
            Command::set_session_option(&name, OPT_STARTED, &unix_now().to_string()),
            Command::set_session_option(&name, OPT_RESTARTS, &(info.restarts + 1).to_string()),
            Command::respawn_pane(pane, &self.user.workdir, &argv),
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

    fn session_name(&self, info: &SessionInfo) -> Result<Name, SessionError> {
        let id: SessionId = info
            .id
            .parse()
            .map_err(|_| SessionError::Io(format!("bad session id {}", info.id)))?;
        Ok(id.session)
    }

    /// Every managed session on the user's server. `main` is always listed,
    /// as `stopped` when it does not exist.
    pub async fn list(&self) -> Result<Vec<SessionInfo>, SessionError> {
        const SESSION_FMT: &str = "S\t#{session_name}\t#{session_created}\t#{session_attached}\t#{@tmuxd_pane}\t#{@tmuxd_gate}\t#{@tmuxd_started}\t#{@tmuxd_last_exit}\t#{@tmuxd_restarts}\t#{session_activity}";
        const PANE_FMT: &str =
            "P\t#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{pane_dead_time}\t#{pane_pipe}";
        let out = match self
            .tmux
            .run(&[
                Command::list_sessions(SESSION_FMT),
                Command::list_all_panes(PANE_FMT),
            ])
            .await
        {
            Ok(out) => out,
            Err(TmuxError::NoServer(_)) => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut list = parse_listing(&out, &self.user.name, self.tmux.socket());
        if !list.iter().any(|s| s.id.ends_with("/main")) {
            list.insert(0, self.stopped(&Name::main()));
        }
        Ok(list)
    }

    fn stopped(&self, name: &Name) -> SessionInfo {
        SessionInfo {
            id: self.id(name).to_string(),
            state: State::Stopped,
            agent_pid: None,
            launcher_pid: None,
            created: None,
            agent_started: None,
            last_activity: None,
            last_exit: None,
            restarts: 0,
            attached_clients: 0,
            socket: self.tmux.socket().to_owned(),
            pane: None,
            gate: None,
            piped: false,
        }
    }

    /// One managed session; `NoSuchSession` if it does not exist.
    pub async fn info(&self, name: &Name) -> Result<SessionInfo, SessionError> {
        let id = self.id(name).to_string();
        self.list()
            .await?
            .into_iter()
            .find(|s| s.id == id && s.state != State::Stopped)
            .ok_or_else(|| SessionError::NoSuchSession(self.id(name)))
    }

    /// The agent pane of session `name`, if its agent runs.
    async fn agent_pane(&self, name: &Name) -> Result<PaneId, SessionError> {
        let info = self.info(name).await?;
        match (info.pane, info.state) {
            (Some(p), State::Running | State::Starting) => Ok(p),
            _ => Err(SessionError::AgentNotRunning(self.id(name))),
        }
    }

    /// Types `text` into the agent pane, then Enter if `enter`, in one tmux
    /// invocation. Long text goes through a paste buffer.
    pub async fn send(&self, name: &Name, text: &str, enter: bool) -> Result<(), SessionError> {
        check_typed_text(text)?;
        let pane = self.agent_pane(name).await?;
        let mut commands = Vec::new();
        let input = if text.len() <= SEND_KEYS_MAX {
            if !text.is_empty() {
                commands.push(Command::send_text(&pane, text));
            }
            None
        } else {
            let buffer = format!("tmuxd-send-{}", new_gate());
            commands.push(Command::load_buffer_stdin(&buffer));
            commands.push(Command::paste_buffer(&buffer, &pane));
            Some(text.as_bytes())
        };
        if enter {
            commands.push(Command::send_key(&pane, SpecialKey::Enter));
        }
        if commands.is_empty() {
            return Err(SessionError::BadInput(
                "nothing to send: the text is empty".into(),
            ));
        }
        self.tmux.run_with_input(&commands, input).await?;
        Ok(())
    }

    /// Sends Ctrl-C to the agent pane.
    pub async fn interrupt(&self, name: &Name) -> Result<(), SessionError> {
        let pane = self.agent_pane(name).await?;
        self.tmux
            .run_with_input(&[Command::send_key(&pane, SpecialKey::Interrupt)], None)
            .await?;
        Ok(())
    }

    /// Kills session `name` (its agent gets SIGHUP). `main` is refused:
    /// the daemon would only create it again.
    pub async fn kill(&self, name: &Name) -> Result<(), SessionError> {
        let id = self.id(name);
        if id.is_main() {
            return Err(SessionError::BadInput(format!(
                "{id} is the user's main session and is always kept running; remove the user from the config to end it"
            )));
        }
        match self.tmux.run(&[Command::kill_session(name)]).await {
            Ok(_) => Ok(()),
            Err(TmuxError::NoServer(_) | TmuxError::NotFound(_)) => {
                Err(SessionError::NoSuchSession(self.id(name)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The account a user's tmux server runs as: only a root daemon switches,
/// and never to root itself.
fn account_for(user: &UserConfig) -> Option<Account> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let u = nix::unistd::User::from_name(user.unix_user.as_deref()?).ok()??;
    if u.uid.is_root() {
        return None;
    }
    let name = std::ffi::CString::new(u.name.clone()).ok()?;
    let groups = nix::unistd::getgrouplist(&name, u.gid)
        .unwrap_or_else(|_| vec![u.gid])
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    Some(Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups,
        home: u.dir,
        shell: u.shell,
    })
}

/// A 0700 directory owned by `owner` (uid, gid), its parent created 0755
/// so users can reach their own. A directory someone else owns is refused;
/// one that is too open is fixed and logged.
fn ensure_private_dir(dir: &Path, owner: (u32, u32), what: &str) -> Result<(), SessionError> {
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| io_err("cannot create", parent, &e))?;
    }
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io_err("cannot create", dir, &e)),
    };
    // The user owns it: from here on only through a checked fd, never by
    // a path they could swap for a link.
    let mut d = UserDir::open(dir).map_err(|r| {
        SessionError::Io(format!("{what} {} {r}; refusing to use it", dir.display()))
    })?;
    let (uid, gid) = owner;
    if created && d.owner() != uid {
        d.set_owner(uid, gid)
            .map_err(|e| SessionError::Io(format!("cannot chown {}: {e}", dir.display())))?;
    }
    if d.owner() != uid {
        return Err(SessionError::Io(format!(
            "{what} {} is not a directory owned by uid {uid}; refusing to use it",
            dir.display(),
        )));
    }
    if d.mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", d.mode()), "{what} was not private; setting 0700");
        d.set_mode(0o700)
            .map_err(|e| SessionError::Io(format!("cannot chmod {}: {e}", dir.display())))?;
    }
    Ok(())
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

fn parse_listing(out: &str, user: &Name, socket: &Path) -> Vec<SessionInfo> {
    struct Pane {
        pid: Option<u32>,
        dead: bool,
        status: Option<i32>,
        signal: Option<i32>,
        time: Option<u64>,
        piped: bool,
    }
    let mut panes = std::collections::HashMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() == 8 && f[0] == "P" {
            panes.insert(
                f[1].to_owned(),
                Pane {
                    pid: f[2].parse().ok(),
                    dead: f[3] == "1",
                    status: f[4].parse().ok(),
                    signal: f[5].parse().ok(),
                    time: f[6].parse().ok(),
                    piped: f[7] == "1",
                },
            );
        }
    }
    let mut list = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 10 || f[0] != "S" {
            continue;
        }
        // Only sessions tmuxd made (they carry the pane option) with valid
        // names; others on the socket are the user's own business.
        let (Ok(session), Some(pane_id)) = (Name::new(f[1]), PaneId::parse(f[4])) else {
            continue;
        };
        let pane = panes.get(pane_id.as_str());
        let gate = Some(f[5].to_owned()).filter(|g| !g.is_empty());
        let agent_started: Option<u64> = f[6].parse().ok();
        // The launcher's record, if it is about the current agent.
        let recorded = ExitInfo::decode(f[7]);
        let current = recorded.filter(|e| e.at >= agent_started);
        let (state, last_exit) = match pane {
            None => (State::Exited, recorded),
            Some(p) if p.dead => {
                let from_pane = ExitInfo {
                    status: p.status,
                    signal: p.signal,
                    at: p.time,
                };
                let known = from_pane.status.is_some() || from_pane.signal.is_some();
                (
                    State::Exited,
                    current.or(known.then_some(from_pane)).or(recorded),
                )
            }
            Some(_) if gate.is_some() => (State::Starting, recorded),
            Some(_) => (State::Running, recorded),
        };
        let launcher_pid = pane.filter(|p| !p.dead).and_then(|p| p.pid);
        list.push(SessionInfo {
            id: SessionId::new(user.clone(), session).to_string(),
            state,
            agent_pid: launcher_pid.and_then(first_child),
            launcher_pid,
            created: f[2].parse().ok(),
            agent_started,
            last_activity: f[9].parse().ok(),
            last_exit,
            restarts: f[8].parse().unwrap_or(0),
            attached_clients: f[3].parse().unwrap_or(0),
            socket: socket.to_owned(),
            piped: pane.is_some_and(|p| p.piped),
            pane: Some(pane_id),
            gate,
        });
    }
    list.sort_by(|a, b| (!a.id.ends_with("/main"), &a.id).cmp(&(!b.id.ends_with("/main"), &b.id)));
    list
}

/// The first child of `pid` (the agent, for a launcher), from /proc.
fn first_child(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
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

fn io_err(what: &str, path: &Path, e: &std::io::Error) -> SessionError {
    SessionError::Io(format!(
        "{what} {}: {}",
        path.display(),
        crate::config::io_reason(e)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_refuses_control_characters() {
        assert!(check_typed_text("echo hi\tthere\nnext").is_ok());
        for bad in ["\x1b[31m", "a\x03", "\r", "\u{7f}", "x\u{9b}y"] {
            let e = check_typed_text(bad).unwrap_err();
            assert!(e.is_bad_input() && e.to_string().contains("control character"));
        }
    }

    #[test]
    fn listing_parses_states() {
        let user = Name::new("alice").unwrap();
        let out = "S\tmain\t100\t1\t%0\t\t101\tstatus 1 at 90\t2\t150\n\
                   S\tdocs\t200\t0\t%1\tgo-1\t201\t\t\t250\n\
                   S\tdead\t300\t0\t%2\t\t301\t\t\t350\n\
                   S\tmine\t400\t0\t\t\t\t\t\t450\n\
                   P\t%0\t42\t0\t\t\t\t1\n\
                   P\t%1\t43\t0\t\t\t\t0\n\
                   P\t%2\t44\t1\t127\t\t305\t0\n";
        let l = parse_listing(out, &user, Path::new("/s"));
        let ids: Vec<&str> = l.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["alice/main", "alice/dead", "alice/docs"]);
        assert_eq!(
            (l[0].state, l[0].launcher_pid, l[0].restarts),
            (State::Running, Some(42), 2)
        );
        assert_eq!(l[0].last_exit.unwrap().status, Some(1));
        assert_eq!(l[0].last_activity, Some(150));
        assert!(l[0].piped && !l[2].piped);
        assert_eq!((l[1].state, l[1].launcher_pid), (State::Exited, None));
        assert_eq!(l[1].last_exit.unwrap().status, Some(127));
        assert_eq!(l[2].state, State::Starting);
    }
}
