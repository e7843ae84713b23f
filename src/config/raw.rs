//! The config file as serde reads it: every section and key, unknown
//! keys refused.

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) daemon: RawDaemon,
    #[serde(default)]
    pub(super) agent: RawAgent,
    #[serde(default)]
    pub(super) web: RawWeb,
    #[serde(default)]
    pub(super) transcript: RawTranscript,
    #[serde(default)]
    pub(super) workspace: RawWorkspace,
    pub(super) mail: Option<RawMail>,
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    #[serde(default)]
    pub(super) webhooks: Vec<super::webhooks::RawWebhook>,
    pub(super) matrix: Option<RawMatrix>,
    pub(super) sandbox: Option<super::sandbox::RawSandbox>,
    pub(super) cluster: Option<super::cluster::RawClusterSection>,
}

/// `[matrix]`: the daemon as a bot on a Matrix homeserver.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatrix {
    pub(super) homeserver: String,
    pub(super) user_id: String,
    pub(super) access_token_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    pub(super) enabled: Option<bool>,
    pub(super) address: String,
    pub(super) authserv_id: String,
    pub(super) confirm_ttl_s: Option<u64>,
    pub(super) result_timeout_s: Option<u64>,
    pub(super) max_message_bytes: Option<usize>,
    pub(super) max_mime_depth: Option<usize>,
    pub(super) attachment_types: Option<Vec<String>>,
    pub(super) sender_per_hour: Option<u32>,
    pub(super) user_per_hour: Option<u32>,
    pub(super) web_url: Option<String>,
    pub(super) ingest_group: Option<String>,
    pub(super) imap: Option<RawImap>,
    pub(super) smtp: RawServer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) security: MailSecurity,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImap {
    #[serde(flatten)]
    pub(super) server: RawServer,
    pub(super) mailbox: Option<String>,
    pub(super) quarantine_mailbox: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTranscript {
    pub(super) enabled: Option<bool>,
    pub(super) spool_dir: Option<PathBuf>,
    pub(super) max_bytes: Option<u64>,
    pub(super) max_age_days: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) state_dir: Option<PathBuf>,
    pub(super) runtime_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) allow_root_agents: bool,
    pub(super) max_sessions_per_user: Option<usize>,
    pub(super) tmux_host: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) command: Option<Vec<String>>,
    pub(super) restart: Option<RestartMode>,
    pub(super) restart_delay_ms: Option<u64>,
    pub(super) restart_max_delay_ms: Option<u64>,
    pub(super) restart_reset_after_s: Option<u64>,
    pub(super) idle_after_s: Option<u64>,
    pub(super) waiting_pattern: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) hooks: Option<bool>,
    pub(super) env: Option<std::collections::BTreeMap<String, String>>,
    pub(super) secrets: Option<std::collections::BTreeMap<String, PathBuf>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) listen: Option<String>,
    #[serde(default)]
    pub(super) tls_proxy: bool,
    #[serde(default)]
    pub(super) origins: Vec<String>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
    pub(super) header_timeout_s: Option<u64>,
    pub(super) request_timeout_s: Option<u64>,
    pub(super) max_connections_per_address: Option<usize>,
    pub(super) max_viewers_per_session: Option<usize>,
    pub(super) max_viewers_per_user: Option<usize>,
    pub(super) proxy_auth: Option<RawProxyAuth>,
    pub(super) oidc: Option<RawOidc>,
    pub(super) passkeys: Option<RawPasskeys>,
}

/// `[web.passkeys]`: sign-in with passkeys (WebAuthn).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPasskeys {
    pub(super) rp_id: String,
    pub(super) origin: String,
    #[serde(default)]
    pub(super) reauth_risky: bool,
}

/// `[web.oidc]`: sign-in with an OpenID Connect provider.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOidc {
    pub(super) issuer: String,
    pub(super) client_id: String,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) redirect_url: String,
    pub(super) claim: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
}

/// `[web.proxy_auth]`: the identity an authenticating reverse proxy sets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyAuth {
    pub(super) header: String,
    pub(super) secret_header: Option<String>,
    pub(super) secret_file: PathBuf,
    pub(super) from: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) name: String,
    pub(super) command: Option<Vec<String>>,
    pub(super) workdir: Option<PathBuf>,
    pub(super) unix_user: Option<String>,
    #[serde(default)]
    pub(super) emails: Vec<String>,
    pub(super) waiting_pattern: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) max_processes: Option<u64>,
    pub(super) max_open_files: Option<u64>,
    pub(super) memory_max_mb: Option<u64>,
    pub(super) cpu_quota_percent: Option<u64>,
    #[serde(default)]
    pub(super) confirm: ConfirmPolicy,
    #[serde(default)]
    pub(super) block: Vec<String>,
    #[serde(default)]
    pub(super) notify_waiting: bool,
    pub(super) answer_from: Option<Vec<String>>,
    pub(super) hooks: Option<bool>,
    pub(super) risky_answers_need_page: Option<bool>,
    pub(super) env: Option<std::collections::BTreeMap<String, String>>,
    pub(super) secrets: Option<std::collections::BTreeMap<String, PathBuf>>,
    #[serde(default)]
    pub(super) matrix_ids: Vec<String>,
    pub(super) sandbox: Option<super::sandbox::RawSandbox>,
    /// Per-session settings, by session name.
    pub(super) sessions: Option<std::collections::BTreeMap<String, RawSessionSettings>>,
}

/// `[users.sessions.NAME]`: what one session's agent gets besides the
/// user's settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessionSettings {
    pub(super) env: Option<std::collections::BTreeMap<String, String>>,
    pub(super) secrets: Option<std::collections::BTreeMap<String, PathBuf>>,
    pub(super) sandbox: Option<super::sandbox::RawSandbox>,
}
