//! Configuration: the TOML file, its validation, and the embedded default.
//!
//! Parsing is split from the file system so tests feed it a `&str`:
//! [`Config::parse`] checks syntax, types, unknown keys and every rule that
//! needs only the text; [`Config::check_host`] checks what needs the machine
//! (directories exist, Unix users exist). Every error names the exact key
//! (`users[1].command`) and the reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::names::Name;

/// The documented example, printed by `tmuxd default-config`.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

/// Longest Unix socket path the kernel accepts (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A configuration error: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}: {reason}")]
pub struct ConfigError {
    /// The file, or "embedded default config".
    pub origin: String,
    /// The key path, e.g. `users[1].command`; `(file)` for whole-file problems.
    pub key: String,
    pub reason: String,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config came from (a path, or the embedded default).
    pub origin: String,
    /// Persistent state (transcripts, mail state).
    pub state_dir: PathBuf,
    /// Sockets: the daemon's control socket and one 0700 directory per user.
    pub runtime_dir: PathBuf,
    /// A root daemon may run agents of users without `unix_user` as root.
    pub allow_root_agents: bool,
    /// Sessions one user may have at once (`main` included).
    pub max_sessions_per_user: usize,
    pub restart: RestartPolicy,
    pub web: WebConfig,
    pub transcript: TranscriptConfig,
    /// Quiet time after which a running agent counts as idle.
    pub idle_after: Duration,
    /// The email bridge; `None` when `[mail]` is absent or disabled.
    pub mail: Option<MailConfig>,
    pub users: Vec<UserConfig>,
}

/// The email bridge.
#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    /// Our address, without a tag: `agent@example.org`. Users write to
    /// `agent+SECRET@example.org`; confirmations come back to
    /// `agent+c-TOKEN@example.org`.
    pub address: String,
    /// The authserv-id our MTA writes in `Authentication-Results`.
    pub authserv_id: String,
    pub confirm_ttl: Duration,
    /// How long the bridge waits for the agent's answer before replying
    /// "still running".
    pub result_timeout: Duration,
    pub max_message_bytes: usize,
    pub max_mime_depth: usize,
    /// Authenticated messages accepted per hour, per sender and per user.
    pub sender_per_hour: u32,
    pub user_per_hour: u32,
    /// The page's public URL, for links in mail (confirm, transcript).
    pub web_url: Option<String>,
    /// Inbound by IMAP IDLE; without it only `tmuxd mail-ingest` delivers.
    pub imap: Option<ImapConfig>,
    pub smtp: MailServer,
}

/// How a mail connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailSecurity {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain, upgraded with STARTTLS before login (IMAP 143, submission 587).
    Starttls,
    /// No TLS: only allowed to a loopback host.
    Plain,
}

/// An IMAP or SMTP server.
#[derive(Debug, Clone, PartialEq)]
pub struct MailServer {
    pub host: String,
    pub port: u16,
    pub security: MailSecurity,
    pub username: Option<String>,
    /// Read at connect time; never in the config itself.
    pub password_file: Option<PathBuf>,
}

/// The mailbox the bridge watches.
#[derive(Debug, Clone, PartialEq)]
pub struct ImapConfig {
    pub server: MailServer,
    pub mailbox: String,
    /// Where unauthenticated mail is moved.
    pub quarantine_mailbox: String,
}

/// When a mailed command needs a confirming reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfirmPolicy {
    #[default]
    Always,
    /// Only when the command raises a risk flag.
    Risky,
    Never,
}

/// Recording of sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptConfig {
    pub enabled: bool,
    /// Spool files (tmux's pipe-pane output, not yet ingested).
    pub spool_dir: PathBuf,
    /// Stored bytes kept per session; older chunks are dropped first.
    pub max_bytes: u64,
    pub max_age: Duration,
}

/// The browser terminal and HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// A TLS-terminating proxy is in front: the page is https, cookies are
    /// `Secure`, and a non-loopback `listen` is allowed.
    pub tls_proxy: bool,
    /// Origins allowed besides the server's own (`https://host[:port]`).
    pub origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client (with `tls_proxy`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub bounds: WebBounds,
}

/// Timeouts and caps of the web side: what one client may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebBounds {
    /// A request's headers (and an idle keep-alive connection's next
    /// request) must arrive within this.
    pub header_timeout: Duration,
    /// A request (body included) must be answered within this; terminals
    /// and streamed transcripts are not cut by it once they started.
    pub request_timeout: Duration,
    pub max_connections_per_address: usize,
    pub max_viewers_per_session: usize,
    pub max_viewers_per_user: usize,
}

impl Default for WebBounds {
    fn default() -> WebBounds {
        WebBounds {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections_per_address: 128,
            max_viewers_per_session: 16,
            max_viewers_per_user: 32,
        }
    }
}

/// One user: a tmux server of their own, session `main` running `command`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfig {
    pub name: Name,
    /// The agent's argv (the user's own, else `[agent] command`).
    pub command: Vec<String>,
    pub workdir: PathBuf,
    pub unix_user: Option<String>,
    pub emails: Vec<String>,
    /// Resource limits for the user's tmux server and agents.
    pub limits: Limits,
    /// The prompt that means the agent waits for input (matched against
    /// its recent output, escape sequences removed).
    pub waiting_pattern: Option<String>,
    /// Mailed commands: when to ask for confirmation.
    pub confirm: ConfirmPolicy,
    /// Risk flags that refuse a mailed command outright.
    pub block: Vec<String>,
    /// Mail the user when one of their sessions starts waiting for input.
    pub notify_waiting: bool,
}

/// Per-user resource limits (rlimits of the tmux server and its agents).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_NPROC.
    pub max_processes: Option<u64>,
    /// RLIMIT_NOFILE.
    pub max_open_files: Option<u64>,
    /// MemoryMax= of the user's scope, in MiB (under systemd).
    pub memory_max_mb: Option<u64>,
    /// CPUQuota= of the user's scope, in percent of one CPU (under systemd).
    pub cpu_quota_percent: Option<u64>,
}

/// When an agent that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Whatever the exit status.
    Always,
    /// Only after a non-zero status or a signal.
    OnFailure,
    /// Never; the pane stays dead until `tmuxd kill` and `tmuxd new`.
    Never,
}

/// Restart with exponential backoff: the first restart waits
/// `initial_delay`, each quick failure doubles it up to `max_delay`, and a run
/// that lasted `reset_after` starts again from `initial_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub mode: RestartMode,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub reset_after: Duration,
}

impl RestartPolicy {
    /// The delay before restart number `failures` (1-based) in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.initial_delay
            .saturating_mul(1u32 << shift)
            .min(self.max_delay)
    }

    /// Whether an agent that ended with `status` (None: killed by a signal)
    /// should be restarted.
    pub fn wants_restart(&self, status: Option<i32>) -> bool {
        match self.mode {
            RestartMode::Always => true,
            RestartMode::OnFailure => status != Some(0),
            RestartMode::Never => false,
        }
    }
}

// ---- the file format (serde) -------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    transcript: RawTranscript,
    mail: Option<RawMail>,
    #[serde(default)]
    users: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    enabled: Option<bool>,
    address: String,
    authserv_id: String,
    confirm_ttl_s: Option<u64>,
    result_timeout_s: Option<u64>,
    max_message_bytes: Option<usize>,
    max_mime_depth: Option<usize>,
    sender_per_hour: Option<u32>,
    user_per_hour: Option<u32>,
    web_url: Option<String>,
    imap: Option<RawImap>,
    smtp: RawServer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    host: String,
    port: Option<u16>,
    security: MailSecurity,
    username: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    #[serde(flatten)]
    server: RawServer,
    mailbox: Option<String>,
    quarantine_mailbox: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTranscript {
    enabled: Option<bool>,
    spool_dir: Option<PathBuf>,
    max_bytes: Option<u64>,
    max_age_days: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    state_dir: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    #[serde(default)]
    allow_root_agents: bool,
    max_sessions_per_user: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    command: Option<Vec<String>>,
    restart: Option<RestartMode>,
    restart_delay_ms: Option<u64>,
    restart_max_delay_ms: Option<u64>,
    restart_reset_after_s: Option<u64>,
    idle_after_s: Option<u64>,
    waiting_pattern: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<String>,
    #[serde(default)]
    tls_proxy: bool,
    #[serde(default)]
    origins: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    header_timeout_s: Option<u64>,
    request_timeout_s: Option<u64>,
    max_connections_per_address: Option<usize>,
    max_viewers_per_session: Option<usize>,
    max_viewers_per_user: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    command: Option<Vec<String>>,
    workdir: Option<PathBuf>,
    unix_user: Option<String>,
    #[serde(default)]
    emails: Vec<String>,
    waiting_pattern: Option<String>,
    max_processes: Option<u64>,
    max_open_files: Option<u64>,
    memory_max_mb: Option<u64>,
    cpu_quota_percent: Option<u64>,
    #[serde(default)]
    confirm: ConfirmPolicy,
    #[serde(default)]
    block: Vec<String>,
    #[serde(default)]
    notify_waiting: bool,
}

/// Claude Code's permission questions.
pub const DEFAULT_WAITING_PATTERN: &str =
    r"(?i)do you want to (proceed|make this edit|create|run|allow)";

const DEFAULT_LISTEN: &str = "127.0.0.1:7681";
const DEFAULT_MAX_SESSIONS: usize = 16;

/// Facts about the environment the defaults depend on; a parameter so tests
/// can fix them.
#[derive(Debug, Clone)]
pub struct HostDefaults {
    /// `$XDG_STATE_HOME/tmuxd` or `~/.local/state/tmuxd`.
    pub state_dir: PathBuf,
    /// `claude` when on PATH, else the login shell.
    pub agent: Vec<String>,
    /// The daemon user's home, the default workdir.
    pub home: PathBuf,
    /// The login user's name.
    pub login: String,
}

impl HostDefaults {
    pub fn detect() -> HostDefaults {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| passwd_home(nix::unistd::getuid()))
            .unwrap_or_else(|| PathBuf::from("/"));
        let state_dir = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".local/state"))
            .join("tmuxd");
        let agent = if find_in_path("claude").is_some() {
            vec!["claude".to_owned()]
        } else {
            let shell = std::env::var("SHELL")
                .ok()
                .filter(|s| s.starts_with('/'))
                .unwrap_or_else(|| "/bin/sh".to_owned());
            vec![shell]
        };
        let login = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "user".to_owned());
        HostDefaults {
            state_dir,
            agent,
            home,
            login,
        }
    }
}

fn passwd_home(uid: nix::unistd::Uid) -> Option<PathBuf> {
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// The first executable `name` on PATH.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

impl Config {
    /// The embedded default: one user named after the login user, running
    /// `claude` if it is on PATH, else the login shell.
    pub fn embedded(host: &HostDefaults) -> Config {
        let state_dir = host.state_dir.clone();
        Config {
            origin: "embedded default config".to_owned(),
            runtime_dir: state_dir.join("run"),
            state_dir,
            // Whoever runs the embedded default runs their own agent.
            allow_root_agents: true,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS,
            restart: default_restart(),
            web: WebConfig {
                listen: DEFAULT_LISTEN.parse().expect("valid default address"),
                tls_proxy: false,
                origins: Vec::new(),
                trusted_proxies: Vec::new(),
                bounds: WebBounds::default(),
            },
            users: vec![UserConfig {
                name: Name::sanitize(&host.login),
                command: host.agent.clone(),
                workdir: host.home.clone(),
                unix_user: None,
                emails: Vec::new(),
                limits: Limits::default(),
                waiting_pattern: Some(DEFAULT_WAITING_PATTERN.to_owned()),
                confirm: ConfirmPolicy::Always,
                block: Vec::new(),
                notify_waiting: false,
            }],
            transcript: default_transcript(&host.state_dir.join("run")),
            idle_after: Duration::from_secs(DEFAULT_IDLE_AFTER_S),
            mail: None,
        }
    }

    /// Loads `path`: read, parse, validate (no host checks).
    pub fn load(path: &Path, host: &HostDefaults) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            key: "(file)".to_owned(),
            reason: format!("cannot read: {}", io_reason(&e)),
        })?;
        Config::parse(&text, &origin, host)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, origin: &str, host: &HostDefaults) -> Result<Config, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            origin: origin.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let at_least_one = |v: Option<usize>, key: &str, default: usize| match v {
            Some(0) => Err(err(key, "must be at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let de = toml::Deserializer::parse(text).map_err(|e| {
            err(
                "(syntax)",
                format!("{} {}", e.message(), line_of(text, e.span())),
            )
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let reason = format!("{} {}", inner.message(), line_of(text, inner.span()));
            err(&key, reason.trim_end().to_owned())
        })?;

        let state_dir = raw.daemon.state_dir.unwrap_or(host.state_dir.clone());
        if !state_dir.is_absolute() {
            return Err(err("daemon.state_dir", "must be an absolute path".into()));
        }
        let runtime_dir = raw
            .daemon
            .runtime_dir
            .unwrap_or_else(|| state_dir.join("run"));
        if !runtime_dir.is_absolute() {
            return Err(err("daemon.runtime_dir", "must be an absolute path".into()));
        }

        let agent_command = raw.agent.command.unwrap_or(host.agent.clone());
        check_argv(&agent_command).map_err(|r| err("agent.command", r))?;

        let mut restart = default_restart();
        if let Some(mode) = raw.agent.restart {
            restart.mode = mode;
        }
        if let Some(ms) = raw.agent.restart_delay_ms {
            if ms == 0 {
                return Err(err("agent.restart_delay_ms", "must be at least 1".into()));
            }
            restart.initial_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = raw.agent.restart_max_delay_ms {
            restart.max_delay = Duration::from_millis(ms);
        }
        if restart.max_delay < restart.initial_delay {
            return Err(err(
                "agent.restart_max_delay_ms",
                "must not be less than agent.restart_delay_ms".into(),
            ));
        }
        if let Some(s) = raw.agent.restart_reset_after_s {
            restart.reset_after = Duration::from_secs(s);
        }
        let idle_after =
            Duration::from_secs(raw.agent.idle_after_s.unwrap_or(DEFAULT_IDLE_AFTER_S));
        if idle_after.is_zero() {
            return Err(err("agent.idle_after_s", "must be at least 1".into()));
        }
        let agent_waiting = match raw.agent.waiting_pattern {
            Some(p) => {
                check_pattern(&p).map_err(|r| err("agent.waiting_pattern", r))?;
                Some(p).filter(|p| !p.is_empty())
            }
            None => Some(DEFAULT_WAITING_PATTERN.to_owned()),
        };
        let mut transcript = default_transcript(&runtime_dir);
        if let Some(dir) = raw.transcript.spool_dir {
            if !dir.is_absolute() {
                return Err(err(
                    "transcript.spool_dir",
                    "must be an absolute path".into(),
                ));
            }
            transcript.spool_dir = dir;
        }
        if let Some(enabled) = raw.transcript.enabled {
            transcript.enabled = enabled;
        }
        if let Some(b) = raw.transcript.max_bytes {
            if b < 1024 * 1024 {
                return Err(err(
                    "transcript.max_bytes",
                    "must be at least 1048576 (1 MiB)".into(),
                ));
            }
            transcript.max_bytes = b;
        }
        if let Some(d) = raw.transcript.max_age_days {
            if d == 0 {
                return Err(err("transcript.max_age_days", "must be at least 1".into()));
            }
            transcript.max_age = Duration::from_secs(d.saturating_mul(86_400));
        }

        let listen = raw.web.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen.parse().map_err(|_| {
            err(
                "web.listen",
                format!("{listen:?} is not an address like 127.0.0.1:7681"),
            )
        })?;

        if !listen.ip().is_loopback() && !raw.web.tls_proxy {
            return Err(err(
                "web.listen",
                format!(
                    "{listen} is not a loopback address, and tmuxd serves plain HTTP: put a TLS-terminating proxy in front and set web.tls_proxy = true, or listen on 127.0.0.1"
                ),
            ));
        }
        for (i, origin) in raw.web.origins.iter().enumerate() {
            if !is_origin(origin) {
                return Err(err(
                    &format!("web.origins[{i}]"),
                    format!("{origin:?} is not an origin like https://tmuxd.example.com"),
                ));
            }
        }
        let mut trusted_proxies = Vec::new();
        for (i, p) in raw.web.trusted_proxies.iter().enumerate() {
            trusted_proxies.push(p.parse().map_err(|_| {
                err(
                    &format!("web.trusted_proxies[{i}]"),
                    format!("{p:?} is not an IP address like 192.0.2.10"),
                )
            })?);
        }
        let d = WebBounds::default();
        let secs = |v: Option<u64>, key: &str, default: Duration| match v {
            Some(0) => Err(err(key, "must be at least 1".into())),
            Some(n) => Ok(Duration::from_secs(n)),
            None => Ok(default),
        };
        let bounds = WebBounds {
            header_timeout: secs(
                raw.web.header_timeout_s,
                "web.header_timeout_s",
                d.header_timeout,
            )?,
            request_timeout: secs(
                raw.web.request_timeout_s,
                "web.request_timeout_s",
                d.request_timeout,
            )?,
            max_connections_per_address: at_least_one(
                raw.web.max_connections_per_address,
                "web.max_connections_per_address",
                d.max_connections_per_address,
            )?,
            max_viewers_per_session: at_least_one(
                raw.web.max_viewers_per_session,
                "web.max_viewers_per_session",
                d.max_viewers_per_session,
            )?,
            max_viewers_per_user: at_least_one(
                raw.web.max_viewers_per_user,
                "web.max_viewers_per_user",
                d.max_viewers_per_user,
            )?,
        };
        let web = WebConfig {
            listen,
            tls_proxy: raw.web.tls_proxy,
            origins: raw.web.origins,
            trusted_proxies,
            bounds,
        };
        let max_sessions_per_user = at_least_one(
            raw.daemon.max_sessions_per_user,
            "daemon.max_sessions_per_user",
            DEFAULT_MAX_SESSIONS,
        )?;

        if raw.users.is_empty() {
            return Err(err(
                "users",
                "at least one [[users]] entry is required".into(),
            ));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut users = Vec::with_capacity(raw.users.len());
        for (i, u) in raw.users.into_iter().enumerate() {
            let key = |k: &str| format!("users[{i}].{k}");
            let name = Name::new(&u.name).map_err(|e| err(&key("name"), e.to_string()))?;
            if let Some(first) = seen.insert(u.name.clone(), i) {
                return Err(err(
                    &key("name"),
                    format!("duplicate user {:?} (also users[{first}])", u.name),
                ));
            }
            let command = match u.command {
                Some(c) => {
                    check_argv(&c).map_err(|r| err(&key("command"), r))?;
                    c
                }
                None => agent_command.clone(),
            };
            let workdir = u.workdir.unwrap_or(host.home.clone());
            if !workdir.is_absolute() {
                return Err(err(&key("workdir"), "must be an absolute path".into()));
            }
            if let Some(unix_user) = &u.unix_user {
                if unix_user.is_empty() || unix_user.contains(['\0', ':', '/']) {
                    return Err(err(
                        &key("unix_user"),
                        format!("{unix_user:?} is not a Unix user name"),
                    ));
                }
            }
            for (j, email) in u.emails.iter().enumerate() {
                if !is_plausible_email(email) {
                    return Err(err(
                        &format!("users[{i}].emails[{j}]"),
                        format!("{email:?} is not an email address"),
                    ));
                }
            }
            let emails = u.emails.iter().map(|e| e.to_ascii_lowercase()).collect();
            let waiting_pattern = match u.waiting_pattern {
                Some(p) => {
                    check_pattern(&p).map_err(|r| err(&key("waiting_pattern"), r))?;
                    Some(p).filter(|p| !p.is_empty())
                }
                None => agent_waiting.clone(),
            };
            for (k, v) in [
                ("max_processes", u.max_processes),
                ("max_open_files", u.max_open_files),
            ] {
                if v == Some(0) {
                    return Err(err(&key(k), "must be at least 1".into()));
                }
            }
            for (j, flag) in u.block.iter().enumerate() {
                if !crate::mail::risk::is_flag(flag) {
                    let known: Vec<&str> = crate::mail::risk::FLAGS.iter().map(|f| f.0).collect();
                    return Err(err(
                        &format!("users[{i}].block[{j}]"),
                        format!(
                            "unknown risk flag {flag:?}; the flags are {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
            users.push(UserConfig {
                name,
                command,
                workdir,
                unix_user: u.unix_user,
                emails,
                limits: Limits {
                    max_processes: u.max_processes,
                    max_open_files: u.max_open_files,
                    memory_max_mb: u.memory_max_mb,
                    cpu_quota_percent: u.cpu_quota_percent,
                },
                waiting_pattern,
                confirm: u.confirm,
                block: u.block,
                notify_waiting: u.notify_waiting,
            });
        }
        let mail = match raw.mail {
            Some(m) if m.enabled.unwrap_or(true) => {
                if !transcript.enabled {
                    return Err(err(
                        "mail.enabled",
                        "the email bridge reports what the agent printed, so it needs transcript.enabled = true".into(),
                    ));
                }
                Some(parse_mail(m).map_err(|(k, r)| err(&k, r))?)
            }
            _ => None,
        };

        let config = Config {
            origin: origin.to_owned(),
            state_dir,
            runtime_dir,
            allow_root_agents: raw.daemon.allow_root_agents,
            max_sessions_per_user,
            restart,
            web,
            transcript,
            idle_after,
            mail,
            users,
        };
        for user in &config.users {
            let sock = config.tmux_socket(&user.name);
            if sock.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(err(
                    "daemon.runtime_dir",
                    format!(
                        "socket path {} is longer than {MAX_SOCKET_PATH} bytes; choose a shorter directory",
                        sock.display()
                    ),
                ));
            }
        }
        Ok(config)
    }

    /// Checks what needs the machine: each workdir is a directory and each
    /// `unix_user` exists.
    pub fn check_host(&self) -> Result<(), ConfigError> {
        for (i, u) in self.users.iter().enumerate() {
            let err = |k: &str, reason: String| ConfigError {
                origin: self.origin.clone(),
                key: format!("users[{i}].{k}"),
                reason,
            };
            match std::fs::metadata(&u.workdir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(err(
                        "workdir",
                        format!("{} is not a directory", u.workdir.display()),
                    ))
                }
                Err(e) => {
                    return Err(err(
                        "workdir",
                        format!("{}: {}", u.workdir.display(), io_reason(&e)),
                    ))
                }
            }
            let me = nix::unistd::geteuid();
            match &u.unix_user {
                None if me.is_root() && !self.allow_root_agents => {
                    return Err(err(
                        "unix_user",
                        "the daemon runs as root: name the Unix account this user's agent runs as (unix_user = \"root\", or [daemon] allow_root_agents = true, only on purpose)".into(),
                    ))
                }
                None => {}
                Some(unix_user) => {
                    let target = match nix::unistd::User::from_name(unix_user) {
                        Ok(Some(target)) => target,
                        _ => return Err(err("unix_user", format!("no such Unix user {unix_user:?}"))),
                    };
                    // Only root can start processes as someone else.
                    if !me.is_root() && target.uid != me {
                        return Err(err(
                            "unix_user",
                            format!("{unix_user:?} is not the user running tmuxd (uid {me}); only a daemon running as root can run agents as other users"),
                        ));
                    }
                }
            }
        }
        self.check_roots()?;
        self.check_shared_dirs()
    }

    /// The daemon's own directories, each with its config key.
    pub fn roots(&self) -> Vec<(&'static str, &Path, u32)> {
        let mut roots = vec![
            ("daemon.state_dir", self.state_dir.as_path(), 0o700),
            ("daemon.runtime_dir", self.runtime_dir.as_path(), 0o755),
        ];
        if self.transcript.enabled {
            roots.push((
                "transcript.spool_dir",
                self.transcript.spool_dir.as_path(),
                0o755,
            ));
        }
        roots
    }

    /// No other user can swap or pre-create the daemon's directories.
    fn check_roots(&self) -> Result<(), ConfigError> {
        for (key, dir, _) in self.roots() {
            crate::roots::check_parents(dir)
                .and_then(|()| crate::roots::check_existing(dir))
                .map_err(|reason| ConfigError {
                    origin: self.origin.clone(),
                    key: key.to_owned(),
                    reason,
                })?;
        }
        Ok(())
    }

    /// When agents run as other accounts, their tmux servers must reach
    /// their socket and spool directories, while STATE_DIR stays private.
    fn check_shared_dirs(&self) -> Result<(), ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let me = nix::unistd::geteuid();
        let isolating = me.is_root()
            && self.users.iter().any(|u| {
                u.unix_user
                    .as_deref()
                    .and_then(|n| nix::unistd::User::from_name(n).ok().flatten())
                    .is_some_and(|a| !a.uid.is_root())
            });
        if !isolating {
            return Ok(());
        }
        let err = |key: &str, reason: String| ConfigError {
            origin: self.origin.clone(),
            key: key.to_owned(),
            reason,
        };
        let dirs = [
            ("daemon.runtime_dir", &self.runtime_dir),
            ("transcript.spool_dir", &self.transcript.spool_dir),
        ];
        for (key, dir) in dirs {
            if key == "transcript.spool_dir" && !self.transcript.enabled {
                continue;
            }
            if dir.starts_with(&self.state_dir) {
                return Err(err(
                    key,
                    format!(
                        "{} is inside state_dir ({}), which is private to the daemon; agents running as their own users need it elsewhere, e.g. /run/tmuxd",
                        dir.display(),
                        self.state_dir.display()
                    ),
                ));
            }
            for ancestor in dir.ancestors().skip(1) {
                if let Ok(m) = std::fs::metadata(ancestor) {
                    if m.permissions().mode() & 0o001 == 0 {
                        return Err(err(
                            key,
                            format!(
                                "{} is not searchable by other users (mode {:o}), so agents running as their own users cannot reach {}",
                                ancestor.display(),
                                m.permissions().mode() & 0o777,
                                dir.display()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn user(&self, name: &Name) -> Option<&UserConfig> {
        self.users.iter().find(|u| &u.name == name)
    }

    /// The 0700 directory holding a user's tmux socket.
    pub fn user_socket_dir(&self, user: &Name) -> PathBuf {
        self.runtime_dir.join(user.as_str())
    }

    /// A user's tmux socket, for `tmux -S PATH attach`.
    pub fn tmux_socket(&self, user: &Name) -> PathBuf {
        self.user_socket_dir(user).join("tmux")
    }

    /// Spool files: `SPOOL_ROOT/USER/SESSION.out`.
    pub fn spool_root(&self) -> PathBuf {
        self.transcript.spool_dir.clone()
    }

    /// The transcript database.
    pub fn transcript_db(&self) -> PathBuf {
        self.state_dir.join("transcripts")
    }

    /// The daemon's control socket, used by the CLI.
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir.join("tmuxd.sock")
    }
}

const DEFAULT_IDLE_AFTER_S: u64 = 10;

fn default_transcript(runtime_dir: &Path) -> TranscriptConfig {
    TranscriptConfig {
        enabled: true,
        // Spools need to outlive the daemon, not a reboot (tmux sessions do
        // not survive one either): the runtime directory, a tmpfs under
        // systemd, keeps tmux's writes off the disk.
        spool_dir: runtime_dir.join("spool"),
        max_bytes: 1024 * 1024 * 1024,
        max_age: Duration::from_secs(30 * 86_400),
    }
}

fn check_pattern(p: &str) -> Result<(), String> {
    regex::Regex::new(p).map(|_| ()).map_err(|e| {
        format!(
            "{p:?} is not a valid regular expression: {}",
            e.to_string().lines().last().unwrap_or("")
        )
    })
}

fn default_restart() -> RestartPolicy {
    RestartPolicy {
        mode: RestartMode::Always,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        reset_after: Duration::from_secs(60),
    }
}

fn check_argv(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => Err("must name a program: an argv list like [\"claude\"]".into()),
        Some(p) if p.is_empty() => Err("the program name is empty".into()),
        Some(_) if argv.iter().any(|a| a.contains('\0')) => {
            Err("arguments must not contain NUL".into())
        }
        Some(_) => Ok(()),
    }
}

/// `scheme://host[:port]`, nothing after.
fn is_origin(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        }
        None => false,
    }
}

fn parse_mail(m: RawMail) -> Result<MailConfig, (String, String)> {
    let bad = |k: &str, r: String| (format!("mail.{k}"), r);
    if !is_plausible_email(&m.address) || m.address.contains('+') {
        return Err(bad(
            "address",
            format!(
                "{:?} is not an address like agent@example.org (without a +tag)",
                m.address
            ),
        ));
    }
    if m.authserv_id.trim().is_empty() || m.authserv_id.contains([';', ' ']) {
        return Err(bad(
            "authserv_id",
            "must name your MTA's authserv-id, as in its Authentication-Results header (e.g. mx.example.org)".into(),
        ));
    }
    let positive = |k: &str, v: Option<u64>, default: u64| -> Result<u64, (String, String)> {
        match v {
            Some(0) => Err(bad(k, "must be at least 1".into())),
            Some(v) => Ok(v),
            None => Ok(default),
        }
    };
    let confirm_ttl = Duration::from_secs(positive("confirm_ttl_s", m.confirm_ttl_s, 600)?);
    let result_timeout =
        Duration::from_secs(positive("result_timeout_s", m.result_timeout_s, 300)?);
    let max_message_bytes = positive(
        "max_message_bytes",
        m.max_message_bytes.map(|v| v as u64),
        256 * 1024,
    )? as usize;
    if max_message_bytes > 2 * 1024 * 1024 {
        return Err(bad(
            "max_message_bytes",
            "must be at most 2097152 (2 MiB)".into(),
        ));
    }
    let max_mime_depth =
        positive("max_mime_depth", m.max_mime_depth.map(|v| v as u64), 8)? as usize;
    let sender_per_hour = positive("sender_per_hour", m.sender_per_hour.map(u64::from), 30)? as u32;
    let user_per_hour = positive("user_per_hour", m.user_per_hour.map(u64::from), 60)? as u32;
    if let Some(url) = &m.web_url {
        if !is_origin(url.trim_end_matches('/'))
            && !url.starts_with("https://")
            && !url.starts_with("http://")
        {
            return Err(bad(
                "web_url",
                format!("{url:?} is not a URL like https://tmuxd.example.org"),
            ));
        }
    }
    let server = |k: &str,
                  s: RawServer,
                  default_ports: [u16; 3]|
     -> Result<MailServer, (String, String)> {
        if s.host.trim().is_empty() {
            return Err(bad(&format!("{k}.host"), "must not be empty".into()));
        }
        let loopback = s.host == "localhost"
            || s.host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if s.security == MailSecurity::Plain && !loopback {
            return Err(bad(
                &format!("{k}.security"),
                format!("\"plain\" sends passwords and mail unencrypted; it is only allowed to a loopback host, not {:?}: use \"tls\" or \"starttls\"", s.host),
            ));
        }
        match (&s.username, &s.password_file) {
            (Some(_), None) => {
                return Err(bad(
                    &format!("{k}.password_file"),
                    "is required with a username".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    &format!("{k}.username"),
                    "is required with a password_file".into(),
                ))
            }
            (_, Some(p)) if !p.is_absolute() => {
                return Err(bad(
                    &format!("{k}.password_file"),
                    "must be an absolute path".into(),
                ))
            }
            _ => {}
        }
        let port = s.port.unwrap_or(match s.security {
            MailSecurity::Tls => default_ports[0],
            MailSecurity::Starttls => default_ports[1],
            MailSecurity::Plain => default_ports[2],
        });
        Ok(MailServer {
            host: s.host,
            port,
            security: s.security,
            username: s.username,
            password_file: s.password_file,
        })
    };
    let smtp = server("smtp", m.smtp, [465, 587, 25])?;
    let imap = match m.imap {
        Some(i) => {
            if i.server.username.is_none() {
                return Err(bad(
                    "imap.username",
                    "is required: the bridge logs in to read its mailbox".into(),
                ));
            }
            Some(ImapConfig {
                server: server("imap", i.server, [993, 143, 143])?,
                mailbox: i.mailbox.unwrap_or_else(|| "INBOX".into()),
                quarantine_mailbox: i
                    .quarantine_mailbox
                    .unwrap_or_else(|| "tmuxd-quarantine".into()),
            })
        }
        None => None,
    };
    Ok(MailConfig {
        address: m.address.to_ascii_lowercase(),
        authserv_id: m.authserv_id.to_ascii_lowercase(),
        confirm_ttl,
        result_timeout,
        max_message_bytes,
        max_mime_depth,
        sender_per_hour,
        user_per_hour,
        web_url: m.web_url.map(|u| u.trim_end_matches('/').to_owned()),
        imap,
        smtp,
    })
}

fn is_plausible_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && !s.contains(['<', '>', ',', ';'])
        }
        None => false,
    }
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("(line {line})")
        }
        None => String::new(),
    }
}

/// An io error's reason without the "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostDefaults {
        HostDefaults {
            state_dir: "/var/lib/tmuxd".into(),
            agent: vec!["/bin/sh".into()],
            home: "/home/test".into(),
            login: "test".into(),
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "t.toml", &host())
    }

    fn key_of(text: &str) -> String {
        let e = parse(text).unwrap_err();
        assert!(e.to_string().starts_with("t.toml: "), "{e}");
        e.key
    }

    #[test]
    fn example_config_is_valid() {
        let c = Config::parse(EXAMPLE, "example", &host()).unwrap();
        assert!(c.users.len() >= 2);
        assert_eq!(c.web.listen.to_string(), "127.0.0.1:7681");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("[[users]]\nname = \"alice\"\n").unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/tmuxd"));
        assert_eq!(c.runtime_dir, PathBuf::from("/var/lib/tmuxd/run"));
        assert_eq!(c.users[0].command, vec!["/bin/sh"]);
        assert_eq!(c.users[0].workdir, PathBuf::from("/home/test"));
        assert_eq!(
            c.tmux_socket(&c.users[0].name),
            PathBuf::from("/var/lib/tmuxd/run/alice/tmux")
        );
        assert_eq!(c.restart.mode, RestartMode::Always);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[[users]]\nname = \"alice\"\nnmae = 1\n", "users[0].nmae"),
            ("[daemon]\nstate_dri = \"/x\"\n", "daemon.state_dri"),
            ("bogus = 1\n[[users]]\nname = \"a\"\n", "bogus"),
            (
                "[[users]]\nname = \"alice\"\ncommand = \"claude\"\n",
                "users[0].command",
            ),
            ("[[users]]\nname = 7\n", "users[0].name"),
            ("[[users]]\nname = \"Alice\"\n", "users[0].name"),
            (
                "[[users]]\nname = \"a\"\n[[users]]\nname = \"b\"\n[[users]]\nname = \"a\"\n",
                "users[2].name",
            ),
            (
                "[[users]]\nname = \"a\"\ncommand = []\n",
                "users[0].command",
            ),
            (
                "[[users]]\nname = \"a\"\nworkdir = \"rel\"\n",
                "users[0].workdir",
            ),
            (
                "[[users]]\nname = \"a\"\nemails = [\"nope\"]\n",
                "users[0].emails[0]",
            ),
            (
                "[web]\nlisten = \"localhost\"\n[[users]]\nname = \"a\"\n",
                "web.listen",
            ),
            (
                "[agent]\nrestart = \"sometimes\"\n[[users]]\nname = \"a\"\n",
                "agent.restart",
            ),
            (
                "[agent]\nrestart_delay_ms = -1\n[[users]]\nname = \"a\"\n",
                "agent.restart_delay_ms",
            ),
            (
                "[daemon]\nstate_dir = \"x\"\n[[users]]\nname = \"a\"\n",
                "daemon.state_dir",
            ),
            ("users = 3\n", "users"),
            ("", "users"),
            ("[[users]\n", "(syntax)"),
        ];
        for (text, key) in cases {
            assert_eq!(key_of(text), key, "for {text:?}");
        }
    }

    #[test]
    fn duplicate_user_names_the_first() {
        let e = parse("[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"\n").unwrap_err();
        assert!(e.reason.contains("users[0]"), "{e}");
    }

    #[test]
    fn bounds_default_and_refuse_zero() {
        let c = parse("[[users]]\nname = \"a\"\n").unwrap();
        assert_eq!(c.web.bounds, WebBounds::default());
        assert_eq!(c.max_sessions_per_user, 16);
        let c = parse("[daemon]\nmax_sessions_per_user = 3\n[web]\nheader_timeout_s = 4\nmax_viewers_per_user = 5\ntrusted_proxies = [\"192.0.2.1\"]\n[[users]]\nname = \"a\"\n").unwrap();
        assert_eq!(c.max_sessions_per_user, 3);
        assert_eq!(c.web.bounds.header_timeout, Duration::from_secs(4));
        assert_eq!(c.web.bounds.max_viewers_per_user, 5);
        assert_eq!(
            c.web.trusted_proxies,
            ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );
        for (text, key) in [
            ("[web]\nheader_timeout_s = 0\n", "web.header_timeout_s"),
            (
                "[web]\nmax_viewers_per_session = 0\n",
                "web.max_viewers_per_session",
            ),
            (
                "[daemon]\nmax_sessions_per_user = 0\n",
                "daemon.max_sessions_per_user",
            ),
            (
                "[web]\ntrusted_proxies = [\"proxy\"]\n",
                "web.trusted_proxies[0]",
            ),
        ] {
            let e = parse(&format!("{text}[[users]]\nname = \"a\"\n")).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
    }

    #[test]
    fn public_listen_needs_a_tls_proxy() {
        let text = "[web]\nlisten = \"0.0.0.0:443\"\ntls_proxy = true\norigins = [\"https://t.example.com\"]\n[[users]]\nname = \"a\"\n";
        let c = parse(text).unwrap();
        assert!(c.web.tls_proxy);
        assert_eq!(c.web.origins, ["https://t.example.com"]);
        let e = parse("[web]\nlisten = \"0.0.0.0:80\"\n[[users]]\nname = \"a\"\n").unwrap_err();
        assert!(e.reason.contains("tls_proxy"), "{e}");
    }

    #[test]
    fn overlong_socket_path_is_refused() {
        let dir = format!("/{}", "d".repeat(100));
        let text = format!("[daemon]\nruntime_dir = \"{dir}\"\n[[users]]\nname = \"alice\"\n");
        assert_eq!(key_of(&text), "daemon.runtime_dir");
    }

    #[test]
    fn mail_errors_name_the_key() {
        let base = "[[users]]\nname = \"a\"\nblock = [\"nope\"]\n";
        assert_eq!(key_of(base), "users[0].block[0]");
        let mail = |extra: &str| {
            format!("[mail]\naddress = \"agent@example.org\"\nauthserv_id = \"mx.example.org\"\n{extra}\n[[users]]\nname = \"a\"\n")
        };
        let smtp = "[mail.smtp]\nhost = \"smtp.example.org\"\nsecurity = \"plain\"\n";
        assert_eq!(key_of(&mail(smtp)), "mail.smtp.security");
        let ok = "[mail.smtp]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n";
        let c = parse(&mail(ok)).unwrap();
        assert_eq!(c.mail.as_ref().unwrap().smtp.port, 25);
        assert_eq!(
            key_of(&mail(&format!("max_message_bytes = 99999999\n{ok}"))),
            "mail.max_message_bytes"
        );
        assert_eq!(
            key_of(&mail(&format!(
                "{ok}[mail.imap]\nhost = \"127.0.0.1\"\nsecurity = \"plain\"\n"
            ))),
            "mail.imap.username"
        );
        assert_eq!(
            key_of(&format!("[transcript]\nenabled = false\n{}", mail(ok))),
            "mail.enabled"
        );
        assert_eq!(
            key_of(&mail(ok).replace("agent@example.org", "agent+x@example.org")),
            "mail.address"
        );
        let off = mail(ok).replace("[mail]\n", "[mail]\nenabled = false\n");
        assert!(parse(&off).unwrap().mail.is_none());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RestartPolicy {
            mode: RestartMode::OnFailure,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            reset_after: Duration::from_secs(10),
        };
        let d: Vec<u128> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(u32::MAX).as_millis(), 1000);
        assert!(p.wants_restart(Some(1)) && p.wants_restart(None));
        assert!(!p.wants_restart(Some(0)));
    }

    #[test]
    fn embedded_default_sanitizes_login() {
        let mut h = host();
        h.login = "John.Doe".into();
        let c = Config::embedded(&h);
        assert_eq!(c.users[0].name.as_str(), "john-doe");
        assert_eq!(c.web.listen.ip().to_string(), "127.0.0.1");
    }
}
