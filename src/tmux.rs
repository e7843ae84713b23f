//! A typed layer over the `tmux` command line, for one server socket.
//!
//! Every call is an argv (never a shell string) built from typed pieces:
//! targets are exact (`=name` for sessions, `%N` pane ids for panes), text
//! goes after `--`, and every argument is escaped against tmux's own argv
//! parser, which treats an argument ending in `;` as a command separator
//! (`send-keys -l 'ls;'` would otherwise type `ls` and run a second command).
//! We use our own builders rather than tmux_interface 0.4 because its
//! `shell_command` is a single string run through `sh -c`, and it neither
//! ends options with `--` nor escapes a trailing `;`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::names::Name;

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

/// A pane id as tmux prints it, `%N`: an exact pane target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PaneId(String);

impl PaneId {
    pub fn parse(s: &str) -> Option<PaneId> {
        let digits = s.strip_prefix('%')?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| PaneId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A target for a tmux command, always exact.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// `=name`: exactly this session (no prefix or pattern matching).
    Session(&'a Name),
    /// `=name:`: the current window of exactly this session.
    Window(&'a Name),
    /// `%N`.
    Pane(&'a PaneId),
}

impl Target<'_> {
    fn arg(&self) -> String {
        match self {
            Target::Session(n) => format!("={n}"),
            Target::Window(n) => format!("={n}:"),
            Target::Pane(p) => p.0.clone(),
        }
    }
}

/// One tmux command with its arguments.
#[derive(Clone, Debug, Default)]
pub struct Command {
    args: Vec<OsString>,
}

impl Command {
    fn new(name: &str) -> Command {
        Command {
            args: vec![name.into()],
        }
    }
    fn flag(mut self, f: &str) -> Command {
        self.args.push(f.into());
        self
    }
    fn opt(mut self, f: &str, value: impl AsRef<OsStr>) -> Command {
        self.args.push(f.into());
        self.args.push(value.as_ref().to_owned());
        self
    }
    fn target(self, t: Target<'_>) -> Command {
        self.opt("-t", t.arg())
    }
    /// Ends the options; what follows is positional, even if it starts with `-`.
    fn positional<I, S>(mut self, rest: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.push("--".into());
        self.args
            .extend(rest.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// `new-session -d -s NAME -c DIR -P -F FORMAT -- ARGV...`: a detached
    /// session running `argv` directly (no shell), printing `format`.
    pub fn new_session(name: &Name, workdir: &Path, format: &str, argv: &[String]) -> Command {
        Command::new("new-session")
            .flag("-d")
            .opt("-s", name.as_str())
            .opt("-c", workdir)
            .flag("-P")
            .opt("-F", format)
            .positional(argv)
    }

    /// `respawn-pane -c DIR -t PANE -- ARGV...` for a pane whose program exited.
    pub fn respawn_pane(pane: &PaneId, workdir: &Path, argv: &[String]) -> Command {
        Command::new("respawn-pane")
            .opt("-c", workdir)
            .target(Target::Pane(pane))
            .positional(argv)
    }

    pub fn has_session(name: &Name) -> Command {
        Command::new("has-session").target(Target::Session(name))
    }

    pub fn kill_session(name: &Name) -> Command {
        Command::new("kill-session").target(Target::Session(name))
    }

    /// `list-sessions -F FORMAT`.
    pub fn list_sessions(format: &str) -> Command {
        Command::new("list-sessions").opt("-F", format)
    }

    /// `list-panes -a -F FORMAT`: every pane of the server.
    pub fn list_all_panes(format: &str) -> Command {
        Command::new("list-panes").flag("-a").opt("-F", format)
    }

    /// A user option (`@name`) on a session. tmux 3.3a resolves the
    /// target of `set-option` as a pane: `=name` fails, `=name:` works.
    pub fn set_session_option(session: &Name, option: &str, value: &str) -> Command {
        Command::new("set-option")
            .target(Target::Window(session))
            .positional([option, value])
    }

    pub fn unset_session_option(session: &Name, option: &str) -> Command {
        Command::new("set-option")
            .flag("-u")
            .target(Target::Window(session))
            .positional([option])
    }

    /// A session user option set to `format` expanded in the session's
    /// context (`-F`), e.g. `#{pane_id}` right after `new-session`.
    pub fn set_session_option_format(session: &Name, option: &str, format: &str) -> Command {
        Command::new("set-option")
            .flag("-F")
            .target(Target::Window(session))
            .positional([option, format])
    }

    /// A window option on the current window of `session`.
    pub fn set_session_window_option(session: &Name, option: &str, value: &str) -> Command {
        Command::new("set-option")
            .flag("-w")
            .target(Target::Window(session))
            .positional([option, value])
    }

    /// A window option on the window holding `pane`.
    pub fn set_window_option(pane: &PaneId, option: &str, value: &str) -> Command {
        Command::new("set-option")
            .flag("-w")
            .target(Target::Pane(pane))
            .positional([option, value])
    }

    /// Types `text` literally (no key names) into `pane`.
    pub fn send_text(pane: &PaneId, text: &str) -> Command {
        Command::new("send-keys")
            .flag("-l")
            .target(Target::Pane(pane))
            .positional([text])
    }

    /// Presses a named key (`Enter`, `C-c`) in `pane`.
    pub fn send_key(pane: &PaneId, key: SpecialKey) -> Command {
        Command::new("send-keys")
            .target(Target::Pane(pane))
            .positional([key.name()])
    }

    /// `load-buffer -b NAME -`: a buffer from the invocation's stdin.
    pub fn load_buffer_stdin(buffer: &str) -> Command {
        Command::new("load-buffer").opt("-b", buffer).flag("-")
    }

    /// `paste-buffer -d -p -b NAME -t PANE`: paste (bracketed when the
    /// program asked for it) and delete the buffer.
    pub fn paste_buffer(buffer: &str, pane: &PaneId) -> Command {
        Command::new("paste-buffer")
            .flag("-d")
            .flag("-p")
            .opt("-b", buffer)
            .target(Target::Pane(pane))
    }

    /// `pipe-pane -O -t TARGET -- COMMAND`: everything the pane prints goes
    /// to COMMAND's stdin (run by the server with `sh -c`). Never `-o`:
    /// with a pipe already open that toggles it closed.
    pub fn pipe_pane_to(target: Target<'_>, command: &str) -> Command {
        Command::new("pipe-pane")
            .flag("-O")
            .target(target)
            .positional([command])
    }

    /// `wait-for -S CHANNEL`: wakes whoever waits on the channel.
    pub fn signal_channel(channel: &str) -> Command {
        Command::new("wait-for").flag("-S").positional([channel])
    }

    /// `attach-session -t =NAME [-r]`.
    pub fn attach(name: &Name, read_only: bool) -> Command {
        let c = Command::new("attach-session").target(Target::Session(name));
        if read_only {
            c.flag("-r")
        } else {
            c
        }
    }

    /// Length in bytes of the arguments, for tmux's message size limit.
    pub fn encoded_len(&self) -> usize {
        self.args.iter().map(|a| a.len() + 1).sum()
    }
}

/// Keys we press by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialKey {
    Enter,
    Interrupt,
}

impl SpecialKey {
    fn name(self) -> &'static str {
        match self {
            SpecialKey::Enter => "Enter",
            SpecialKey::Interrupt => "C-c",
        }
    }
}

/// Escapes one argument for tmux's argv parser: a trailing `;` would end
/// the command, so it is written `\;`, which tmux turns back into `;`.
fn escape_arg(arg: &OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = arg.as_bytes();
    if bytes.last() == Some(&b';') {
        let mut v = bytes[..bytes.len() - 1].to_vec();
        v.extend_from_slice(b"\\;");
        OsString::from_vec(v)
    } else {
        arg.to_owned()
    }
}

/// The argv after `tmux -S SOCKET` for a sequence of commands run in one
/// invocation (separated by a bare `;`).
pub fn invocation_args(commands: &[Command]) -> Vec<OsString> {
    let mut argv = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        if i > 0 {
            argv.push(OsString::from(";"));
        }
        argv.extend(c.args.iter().map(|a| escape_arg(a)));
    }
    argv
}

/// The Unix account a user's tmux server (and so their agents) runs as,
/// when the daemon is root; and their resource limits.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// `None`: the daemon's own account.
    pub account: Option<Account>,
    pub limits: crate::config::Limits,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub home: PathBuf,
    pub shell: PathBuf,
}

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

    /// The whole argv: `tmux -S SOCKET ARGS`.
    pub fn argv(&self, commands: &[Command]) -> Vec<OsString> {
        let mut argv = vec![
            OsString::from("tmux"),
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
        self.apply_identity(&mut cmd);
        cmd
    }

    /// Whether commands against this server switch to another account
    /// (the daemon is root and the user has a `unix_user`).
    pub fn switches_account(&self) -> bool {
        self.identity.account.is_some()
    }

    /// The account's uid and gid, when commands switch to it.
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
        self.apply_identity_env(&mut std_cmd);
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

    /// Runs the command as the user's account, with their environment and
    /// limits. Everything happens in `pre_exec` with async-signal-safe
    /// calls: std's own uid/gid switch would come first and leave us unable
    /// to set groups and limits.
    fn apply_identity(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let limits = self.identity.limits;
        let account = self.identity.account.clone();
        self.apply_identity_env(cmd);
        if account.is_none() && limits.max_processes.is_none() && limits.max_open_files.is_none() {
            return;
        }
        let ids = account.map(|a| (a.uid, a.gid, a.groups));
        // SAFETY: only async-signal-safe libc calls on data prepared before
        // the fork; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                set_limits(limits)?;
                if let Some((uid, gid, groups)) = &ids {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(*gid) != 0
                        || libc::setuid(*uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// The account's environment (HOME, USER, ...), for a command that runs
    /// as them.
    fn apply_identity_env(&self, cmd: &mut std::process::Command) {
        let account = &self.identity.account;
        if let Some(a) = account {
            cmd.current_dir("/")
                .env("HOME", &a.home)
                .env("USER", &a.name)
                .env("LOGNAME", &a.name)
                .env("SHELL", &a.shell)
                .env_remove("XDG_RUNTIME_DIR")
                .env_remove("XDG_CONFIG_HOME")
                .env_remove("XDG_STATE_HOME")
                .env_remove("XDG_DATA_HOME")
                .env_remove("MAIL");
        }
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
                .map(|c| c.args[0].to_string_lossy().into_owned())
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

/// rlimits for a user's processes (in a forked child, before exec).
fn set_limits(limits: crate::config::Limits) -> std::io::Result<()> {
    for (resource, value) in [
        (libc::RLIMIT_NPROC, limits.max_processes),
        (libc::RLIMIT_NOFILE, limits.max_open_files),
    ] {
        if let Some(v) = value {
            let lim = libc::rlimit {
                rlim_cur: v,
                rlim_max: v,
            };
            // SAFETY: setrlimit with a valid pointer to a local struct.
            if unsafe { libc::setrlimit(resource, &lim) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// `systemd-run --scope ...` arguments for a user's tmux server.
pub fn scope_args(unit: &str, identity: &Identity) -> Vec<String> {
    let mut args = vec![
        "systemd-run".to_owned(),
        "--scope".to_owned(),
        "--quiet".to_owned(),
        "--collect".to_owned(),
        format!("--unit={unit}"),
        "--slice=tmuxd.slice".to_owned(),
    ];
    let l = identity.limits;
    if let Some(mb) = l.memory_max_mb {
        args.push(format!("--property=MemoryMax={mb}M"));
    }
    if let Some(pct) = l.cpu_quota_percent {
        args.push(format!("--property=CPUQuota={pct}%"));
    }
    if let Some(n) = l.max_processes {
        args.push(format!("--property=TasksMax={n}"));
    }
    if let Some(a) = &identity.account {
        args.push(format!("--uid={}", a.uid));
        args.push(format!("--gid={}", a.gid));
    }
    args.push("--".to_owned());
    args
}

/// Whether to start tmux servers in systemd scopes: the daemon runs as a
/// systemd service on a systemd machine and can call systemd-run.
pub fn systemd_scopes_available() -> bool {
    std::path::Path::new("/run/systemd/system").exists()
        && std::env::var_os("INVOCATION_ID").is_some()
        && crate::config::find_in_path("systemd-run").is_some()
}

/// Oldest tmux we support (Debian 12 ships 3.3a).
pub const MIN_VERSION: (u32, u32) = (3, 2);

/// The installed tmux's version, checked against [`MIN_VERSION`].
pub fn check_version() -> Result<(u32, u32), String> {
    let out = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .map_err(|e| {
            format!(
                "cannot run tmux ({e}); install tmux {}.{} or newer",
                MIN_VERSION.0, MIN_VERSION.1
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = parse_version(&text)
        .ok_or_else(|| format!("cannot read the tmux version from {:?}", text.trim()))?;
    if version < MIN_VERSION {
        return Err(format!(
            "tmux {}.{} is too old; tmuxd needs {}.{} or newer",
            version.0, version.1, MIN_VERSION.0, MIN_VERSION.1
        ));
    }
    Ok(version)
}

/// `tmux 3.3a` -> (3, 3); `tmux next-3.4` -> (3, 4).
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s.trim().strip_prefix("tmux ")?;
    let v = v.strip_prefix("next-").unwrap_or(v);
    let (major, rest) = v.split_once('.')?;
    let minor: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_arguments() {
        let identity = Identity {
            account: Some(Account {
                name: "alice".into(),
                uid: 1001,
                gid: 1002,
                groups: vec![1002],
                home: "/home/alice".into(),
                shell: "/bin/sh".into(),
            }),
            limits: crate::config::Limits {
                max_processes: Some(64),
                max_open_files: None,
                memory_max_mb: Some(2048),
                cpu_quota_percent: Some(150),
            },
        };
        assert_eq!(
            scope_args("tmuxd-alice-1", &identity),
            [
                "systemd-run",
                "--scope",
                "--quiet",
                "--collect",
                "--unit=tmuxd-alice-1",
                "--slice=tmuxd.slice",
                "--property=MemoryMax=2048M",
                "--property=CPUQuota=150%",
                "--property=TasksMax=64",
                "--uid=1001",
                "--gid=1002",
                "--"
            ]
        );
        assert_eq!(scope_args("u", &Identity::default()).len(), 7);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("tmux 3.3a\n"), Some((3, 3)));
        assert_eq!(parse_version("tmux next-3.6"), Some((3, 6)));
        assert_eq!(parse_version("tmux 3.10"), Some((3, 10)));
        assert_eq!(parse_version("screen"), None);
    }

    fn strings(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn trailing_semicolons_are_escaped_everywhere() {
        let pane = PaneId::parse("%3").unwrap();
        let argv = strings(invocation_args(&[
            Command::send_text(&pane, "ls;"),
            Command::send_key(&pane, SpecialKey::Enter),
        ]));
        assert_eq!(
            argv,
            [
                "send-keys",
                "-l",
                "-t",
                "%3",
                "--",
                "ls\\;",
                ";",
                "send-keys",
                "-t",
                "%3",
                "--",
                "Enter"
            ]
        );
        // A text already ending in `\;` keeps its backslash.
        let argv = strings(invocation_args(&[Command::send_text(&pane, "a\\;")]));
        assert_eq!(argv.last().unwrap(), "a\\\\;");
        // Semicolons elsewhere need nothing.
        let argv = strings(invocation_args(&[Command::send_text(&pane, "a;b")]));
        assert_eq!(argv.last().unwrap(), "a;b");
    }

    #[test]
    fn targets_are_exact() {
        let n = Name::new("main").unwrap();
        let argv = strings(invocation_args(&[Command::has_session(&n)]));
        assert_eq!(argv, ["has-session", "-t", "=main"]);
        assert_eq!(Target::Window(&n).arg(), "=main:");
    }

    #[test]
    fn text_that_looks_like_a_flag_is_positional() {
        let pane = PaneId::parse("%0").unwrap();
        let argv = strings(invocation_args(&[Command::send_text(&pane, "-t =x")]));
        assert_eq!(&argv[4..], ["--", "-t =x"]);
    }

    #[test]
    fn pane_ids() {
        assert!(PaneId::parse("%12").is_some());
        for bad in ["12", "%", "%1a", "=main:", "%-1", ""] {
            assert!(PaneId::parse(bad).is_none(), "{bad}");
        }
    }
}
