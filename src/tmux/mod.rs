//! A typed layer over the `tmux` command line, for one server socket:
//! `argv` builds commands, `identity` says whose they are, `version`
//! checks tmux; this file runs them, each with a deadline.
//!
//! Every call is an argv (never a shell string) built from typed pieces:
//! targets are exact (`=name` for sessions, `%N` pane ids for panes), text
//! goes after `--`, and every argument is escaped against tmux's own argv
//! parser, which treats an argument ending in `;` as a command separator
//! (`send-keys -l 'ls;'` would otherwise type `ls` and run a second command).
//! We use our own builders rather than tmux_interface 0.4 because its
//! `shell_command` is a single string run through `sh -c`, and it neither
//! ends options with `--` nor escapes a trailing `;`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::names::Name;

mod argv;
pub mod host;
mod identity;
mod version;

pub use argv::{invocation_args, Command, PaneId, SpecialKey, Target};
pub use identity::{scope_args, systemd_scopes_available, Account, Identity};
pub use version::{check_version, MIN_VERSION};

/// Environment variables of the daemon that must not leak into tmux servers
/// (and so into agents): systemd's service plumbing and tmux's own.
pub const SCRUBBED_ENV: &[&str] = &[
    "TMUX",
    "TMUX_PANE",
    "NOTIFY_SOCKET",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "MONITOR_EXIT_CODE",
    "TMUXD_CONFIG",
];

#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    /// No tmux server listens on the socket.
    #[error("no tmux server on {0}")]
    NoServer(PathBuf),
    /// The target (session, window or pane) does not exist.
    #[error("tmux: {0}")]
    NotFound(String),
    #[error("tmux {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("cannot run tmux: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("unexpected tmux output: {0}")]
    Parse(String),
    /// The server did not answer in time (e.g. its user stopped it); the
    /// tmux client was killed.
    #[error("the tmux server on {0} did not answer within {1:?}")]
    Timeout(PathBuf, std::time::Duration),
}

/// How long one tmux invocation may take: a server its user froze
/// (SIGSTOP) must not hold up anything else.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Starting a server in a systemd scope goes through the service manager.
const SCOPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// One tmux server, reached through its socket.
#[derive(Clone, Debug)]
pub struct Tmux {
    socket: PathBuf,
    identity: Identity,
}

impl Tmux {
    pub fn new(socket: PathBuf) -> Tmux {
        Tmux {
            socket,
            identity: Identity::default(),
        }
    }

    /// A server whose commands run as `identity` (so a server they start
    /// belongs to that account).
    pub fn with_identity(socket: PathBuf, identity: Identity) -> Tmux {
        Tmux { socket, identity }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The whole argv: `tmux -u -S SOCKET ARGS`. `-u`: without a UTF-8
    /// locale (a daemon started by `env -i`, cron or a bare container)
    /// tmux turns the tabs of `-F` output into `_`, and viewers (xterm.js)
    /// are UTF-8 terminals anyway.
    pub fn argv(&self, commands: &[Command]) -> Vec<OsString> {
        let mut argv = vec![
            OsString::from("tmux"),
            "-u".into(),
            "-S".into(),
            self.socket.clone().into(),
        ];
        argv.extend(invocation_args(commands));
        argv
    }

    /// A `std` command running `tmux -S SOCKET ARGS` as the server's
    /// account (never as root against a user's server: a tmux server can
    /// make its clients run commands, e.g. `detach-client -E`), with the
    /// environment scrubbed (it may start the server, whose environment
    /// agents inherit).
    pub fn std_command(&self, commands: &[Command]) -> std::process::Command {
        let argv = self.argv(commands);
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        self.identity.apply(&mut cmd);
        cmd
    }

    /// `program` run as the server's account (its uid, groups, limits and
    /// environment), with the environment scrubbed as for tmux: how the
    /// daemon does work on the user's files.
    pub fn account_command(&self, program: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        self.identity.apply(&mut cmd);
        cmd
    }

    /// The account's home (the daemon's own `$HOME` when commands do not
    /// switch accounts).
    pub fn account_home(&self) -> Option<PathBuf> {
        match &self.identity.account {
            Some(a) => Some(a.home.clone()),
            None => std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    /// The account's uid and gid, when commands switch to it (the daemon
    /// is root and the user has a `unix_user`).
    pub fn account_ids(&self) -> Option<(u32, u32)> {
        self.identity.account.as_ref().map(|a| (a.uid, a.gid))
    }

    /// Runs `commands` in one invocation and returns stdout.
    pub async fn run(&self, commands: &[Command]) -> Result<String, TmuxError> {
        self.run_with_input(commands, None).await
    }

    /// Runs `commands` (which start the tmux server) inside a new systemd
    /// scope of their own, `unit`, so the server lives outside the daemon's
    /// cgroup; systemd-run switches to the user's account itself.
    pub async fn run_in_scope(
        &self,
        commands: &[Command],
        unit: &str,
    ) -> Result<String, TmuxError> {
        let mut argv: Vec<OsString> = scope_args(unit, &self.identity)
            .into_iter()
            .map(OsString::from)
            .collect();
        argv.extend(self.argv(commands));
        let mut std_cmd = std::process::Command::new(&argv[0]);
        std_cmd.args(&argv[1..]);
        for var in SCRUBBED_ENV {
            std_cmd.env_remove(var);
        }
        self.identity.apply_env(&mut std_cmd);
        let out = tokio::process::Command::from(std_cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(SCOPE_TIMEOUT, out)
            .await
            .map_err(|_| TmuxError::Timeout(self.socket.clone(), SCOPE_TIMEOUT))??;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(self.classify(commands, stderr))
    }

    /// Runs `commands` (which start the tmux server) through the tmux host
    /// at `host` (see [`host`]), so the server lives in the host's
    /// container, not the daemon's. Only for the daemon's own account:
    /// the host runs tmux as itself.
    pub async fn run_via_host(
        &self,
        host: &Path,
        commands: &[Command],
    ) -> Result<String, TmuxError> {
        use tokio::io::AsyncReadExt;
        let argv: Vec<String> = self
            .argv(commands)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut line = serde_json::to_vec(&host::HostRequest { argv })
            .map_err(|e| TmuxError::Parse(e.to_string()))?;
        line.push(b'\n');
        let exchange = async {
            let mut stream = tokio::net::UnixStream::connect(host).await?;
            stream.write_all(&line).await?;
            let mut answer = Vec::new();
            stream
                .take(16 * 1024 * 1024)
                .read_to_end(&mut answer)
                .await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(SCOPE_TIMEOUT, exchange)
            .await
            .map_err(|_| TmuxError::Timeout(self.socket.clone(), SCOPE_TIMEOUT))??;
        let answer: host::HostAnswer = serde_json::from_slice(&answer)
            .map_err(|e| TmuxError::Parse(format!("the tmux host's answer: {e}")))?;
        if answer.status == 0 {
            return Ok(answer.stdout);
        }
        Err(self.classify(commands, answer.stderr.trim().to_owned()))
    }

    /// Like [`Tmux::run`], feeding `input` on stdin (for `load-buffer -`).
    pub async fn run_with_input(
        &self,
        commands: &[Command],
        input: Option<&[u8]>,
    ) -> Result<String, TmuxError> {
        let std_cmd = self.std_command(commands);
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        // Dropping the child on timeout kills it (kill_on_drop).
        let run = async move {
            if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
                stdin.write_all(input).await?;
                drop(stdin);
            }
            child.wait_with_output().await
        };
        let out = tokio::time::timeout(CALL_TIMEOUT, run)
            .await
            .map_err(|_| TmuxError::Timeout(self.socket.clone(), CALL_TIMEOUT))??;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(self.classify(commands, stderr))
    }

    fn classify(&self, commands: &[Command], stderr: String) -> TmuxError {
        if stderr.starts_with("no server running")
            || stderr.starts_with("error connecting to")
            || stderr.starts_with("server exited")
            || stderr.contains("lost server")
        {
            TmuxError::NoServer(self.socket.clone())
        } else if stderr.starts_with("can't find") || stderr.starts_with("no current") {
            TmuxError::NotFound(stderr)
        } else {
            let command = commands
                .iter()
                .map(Command::name)
                .collect::<Vec<_>>()
                .join(";");
            TmuxError::Failed { command, stderr }
        }
    }

    /// Whether session `name` exists; `false` also when no server runs.
    pub async fn has_session(&self, name: &Name) -> Result<bool, TmuxError> {
        match self.run(&[Command::has_session(name)]).await {
            Ok(_) => Ok(true),
            Err(TmuxError::NoServer(_) | TmuxError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
