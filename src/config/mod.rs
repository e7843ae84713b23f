//! Configuration: the TOML file, its validation, and the embedded default.
//!
//! Parsing is split from the file system so tests feed it a `&str`:
//! [`Config::parse`] checks syntax, types, unknown keys and every rule that
//! needs only the text; [`Config::check_host`] checks what needs the machine
//! (directories exist, Unix users exist, agent programs exist). Both go
//! on past a problem, so one run names every problem, each with its exact
//! key (`users[1].command`) and reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::names::Name;

mod agent_env;
mod cluster;
mod host;
mod mail;
mod parse;
mod problems;
mod raw;
mod sandbox;
#[cfg(test)]
mod tests;
mod users;
mod web;
mod webhooks;
mod workspace;

pub use agent_env::{credential_name, valid_credential_name, AgentEnv};
pub use cluster::ClusterConfig;
pub use host::{check_program, find_in_path, io_reason, on_tmpfs, tmpfs_spool, HostDefaults};
use mail::{is_plausible_email, parse_mail};
use parse::is_origin;
use problems::Problems;
pub use problems::{
    fix as problems_fix, init_target, user_config_file, ConfigError, Inspected, Problem, EMBEDDED,
};
use raw::*;
pub use webhooks::{HttpUrl, WebhookConfig, WebhookContent, WebhookFormat, WEBHOOK_EVENTS};
pub use workspace::{check_path, SnapshotPolicy, WorkspaceConfig};
use workspace::{parse_workspace, RawWorkspace};

/// The documented example, printed by `tmuxd default-config`.
pub const EXAMPLE: &str = include_str!("../../config.example.toml");

/// The path the OpenID Connect provider sends the browser back to.
pub const OIDC_CALLBACK: &str = "/auth/oidc/callback";

/// A line only the example has: a file holding it is still the example.
const EXAMPLE_MARK: &str = "the example printed by `tmuxd default-config`";

/// Longest Unix socket path the kernel accepts (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The running config as the parts that read it hold it: each read sees
/// the latest whole config, and a reload is one send on the daemon's
/// [`tokio::sync::watch::Sender`]. (The supervisor's per-user servers and
/// the recorder's compiled agent profiles are built from a config; the
/// daemon's reload rebuilds them.)
#[derive(Clone, Debug)]
pub struct Live(tokio::sync::watch::Receiver<std::sync::Arc<Config>>);

impl Live {
    /// A live config, and the sender that replaces it.
    pub fn new(
        config: std::sync::Arc<Config>,
    ) -> (tokio::sync::watch::Sender<std::sync::Arc<Config>>, Live) {
        let (tx, rx) = tokio::sync::watch::channel(config);
        (tx, Live(rx))
    }

    /// The config as it is now.
    pub fn get(&self) -> std::sync::Arc<Config> {
        self.0.borrow().clone()
    }
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
    /// The tmux host that starts users' tmux servers (`tmuxd tmux-host`,
    /// in a container of its own); `None`: tmuxd starts them.
    pub tmux_host: Option<PathBuf>,
    /// The users are the embedded default's one (no `[[users]]`): it runs
    /// as the daemon's own account.
    pub default_user: bool,
    /// `[agent] command`, which users without their own run.
    pub agent_command: Vec<String>,
    /// The file is still the printed example (its users are examples).
    pub example: bool,
    /// Sessions one user may have at once (`main` included).
    pub max_sessions_per_user: usize,
    pub restart: RestartPolicy,
    pub web: WebConfig,
    pub transcript: TranscriptConfig,
    pub workspace: WorkspaceConfig,
    /// Quiet time after which a running agent counts as idle.
    pub idle_after: Duration,
    /// The email bridge; `None` when `[mail]` is absent or disabled.
    pub mail: Option<MailConfig>,
    /// Where notifications are POSTed (`[[webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// The Matrix bot, if configured.
    pub matrix: Option<MatrixConfig>,
    /// This node's place in a cluster (`[cluster]`): its users are the
    /// ones the cluster file gives it.
    pub cluster: Option<ClusterConfig>,
    /// bubblewrap, found on PATH when some agent is sandboxed.
    pub sandbox_tool: Option<PathBuf>,
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
    /// MIME types of attachments a mailed prompt may carry (`image/*`
    /// matches any image); they are saved in the session's uploads
    /// directory before the prompt is typed. Empty: none.
    pub attachment_types: Vec<String>,
    /// Authenticated messages accepted per hour, per sender and per user.
    pub sender_per_hour: u32,
    pub user_per_hour: u32,
    /// The page's public URL, for links in mail (confirm, transcript).
    pub web_url: Option<String>,
    /// Inbound by IMAP IDLE; without it only `tmuxd mail-ingest` delivers.
    pub imap: Option<ImapConfig>,
    /// The group whose members may hand mail to `RUNTIME_DIR/mail.sock`
    /// (an MTA's unprivileged pipe account); `None`: no mail socket.
    pub ingest_group: Option<String>,
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
    /// The identity an authenticating reverse proxy sets, if one does.
    pub proxy_auth: Option<ProxyAuthConfig>,
    /// Sign-in with an OpenID Connect provider, if configured.
    pub oidc: Option<OidcConfig>,
    /// Sign-in with passkeys, if configured.
    pub passkeys: Option<PasskeyConfig>,
    pub bounds: WebBounds,
}

/// `[web.proxy_auth]`: a reverse proxy that authenticates people (nginx
/// basic auth, oauth2-proxy, Authelia, Tailscale) names them in `header`,
/// honoured only from `from` and only with the shared secret (read from
/// `secret_file`) in `secret_header`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyAuthConfig {
    pub header: String,
    pub secret_header: String,
    pub secret_file: PathBuf,
    pub from: Vec<std::net::IpAddr>,
}

/// `[web.oidc]`: the page signs people in at an OpenID Connect provider
/// (authorization code with PKCE) and maps `claim` of the ID token to a
/// tmuxd user (by name; `email` by a user's `emails`).
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// The provider's issuer URL (discovery at
    /// `ISSUER/.well-known/openid-configuration`).
    pub issuer: String,
    pub issuer_url: HttpUrl,
    pub client_id: String,
    /// A confidential client's secret, read when a code is exchanged.
    pub client_secret_file: Option<PathBuf>,
    /// Where the provider sends the browser back:
    /// `https://tmuxd.example.com/auth/oidc/callback`.
    pub redirect_url: String,
    pub claim: String,
    pub scopes: Vec<String>,
}

/// `[web.passkeys]`: passkeys for the page, for the relying party `rp_id`
/// (the page's host name, or a parent domain of it) at `origin`.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeyConfig {
    pub rp_id: String,
    pub origin: String,
    /// On the page, answering a risky question or confirming a risky
    /// mailed command needs the user's passkey again (within 5 minutes).
    pub reauth_risky: bool,
}

/// `[matrix]`: the daemon as a bot account on a homeserver; each user
/// with `matrix_ids` gets a room where agents' questions are posted and
/// answered, and commands are confirmed before they are typed.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    pub homeserver: HttpUrl,
    /// `@tmuxd:example.org`.
    pub user_id: String,
    /// The bot's access token, read when the daemon starts.
    pub access_token_file: PathBuf,
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
    /// Its place in the file's `[[users]]`, for keys in messages
    /// (`users[2].workdir`).
    pub index: usize,
    /// The agent's argv (the user's own, else `[agent] command`).
    pub command: Vec<String>,
    /// Variables and secrets for the agent (`[agent]`, then the user's).
    pub env: AgentEnv,
    /// A session's own, where `[users.sessions.NAME]` gives them (laid
    /// over `env`).
    pub session_env: std::collections::BTreeMap<Name, AgentEnv>,
    /// The agent's sandbox (`[sandbox]`, then the user's).
    pub sandbox: crate::sandbox::Policy,
    /// A session's own, where `[users.sessions.NAME.sandbox]` gives one.
    pub session_sandbox: std::collections::BTreeMap<Name, crate::sandbox::Policy>,
    pub workdir: PathBuf,
    pub unix_user: Option<String>,
    pub emails: Vec<String>,
    /// Matrix accounts that speak for this user in their room.
    pub matrix_ids: Vec<String>,
    /// Resource limits for the user's tmux server and agents.
    pub limits: Limits,
    /// The agent profile its screen is read with (a built-in name: given,
    /// else chosen by the agent's program name).
    pub profile: String,
    /// Set up the agent's own hooks (Claude Code) to report its state.
    pub hooks: bool,
    /// The user's own question pattern instead of the profile's (matched
    /// against each line of the agent's screen); empty: never waiting.
    pub waiting_pattern: Option<String>,
    /// Mailed commands: when to ask for confirmation.
    pub confirm: ConfirmPolicy,
    /// Risk flags that refuse a mailed command outright.
    pub block: Vec<String>,
    /// Mail the user when one of their sessions starts waiting for input.
    pub notify_waiting: bool,
    /// Where this user's agents' questions may be answered from (page,
    /// api, cli, mail).
    pub answer_from: Vec<String>,
    /// A question whose command carries risk flags is answered on the page
    /// only.
    pub risky_answers_need_page: bool,
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

/// Claude Code's permission questions.
/// Where an agent's questions can be answered from (`answer_from`).
pub const ANSWER_CHANNELS: [&str; 5] = ["page", "api", "cli", "mail", "matrix"];

impl UserConfig {
    /// What session `name`'s agent gets: its own settings, else the user's.
    pub fn env_of(&self, session: &Name) -> &AgentEnv {
        self.session_env.get(session).unwrap_or(&self.env)
    }

    /// Whether this user's agents' questions may be answered from
    /// `channel` (one of [`ANSWER_CHANNELS`]).
    pub fn answers_from(&self, channel: &str) -> bool {
        self.answer_from.iter().any(|c| c == channel)
    }

    /// The profile this user's agent is read with.
    pub fn agent_profile(&self) -> crate::agent::Profile {
        let base = crate::agent::Profile::builtin(&self.profile)
            .or_else(|| crate::agent::Profile::builtin("generic"))
            .expect("built-in profile");
        match &self.waiting_pattern {
            // Validated by the config.
            Some(p) => base.clone().with_question(p).unwrap_or(base),
            None => base,
        }
    }
}

impl Config {
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

    /// Users' copies of the systemd credentials their agents name (see
    /// `credentials`).
    pub fn credentials_dir(&self) -> PathBuf {
        self.runtime_dir.join("credentials")
    }

    /// The mail socket, for `tmuxd mail-ingest` run by an MTA (with
    /// `[mail] ingest_group`).
    pub fn mail_socket(&self) -> PathBuf {
        self.runtime_dir.join("mail.sock")
    }

    /// The daemon's control socket, used by the CLI.
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir.join("tmuxd.sock")
    }
}
