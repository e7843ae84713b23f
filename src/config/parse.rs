//! From text to a validated [`Config`]: defaults, then every key
//! checked, each error naming its key.

use super::*;

pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:7681";

pub(super) const DEFAULT_MAX_SESSIONS: usize = 16;

impl Config {
    /// The embedded default: one user named after the login user, running
    /// `claude` if it is on PATH, else the login shell.
    pub fn embedded(host: &HostDefaults) -> Config {
        let state_dir = host.state_dir.clone();
        Config {
            origin: EMBEDDED.to_owned(),
            runtime_dir: state_dir.join("run"),
            state_dir,
            // Whoever runs the embedded default runs their own agent.
            allow_root_agents: true,
            tmux_host: None,
            default_user: true,
            agent_command: host.agent.clone(),
            example: false,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS,
            restart: default_restart(),
            web: WebConfig {
                listen: DEFAULT_LISTEN.parse().expect("valid default address"),
                tls_proxy: false,
                origins: Vec::new(),
                trusted_proxies: Vec::new(),
                proxy_auth: None,
                oidc: None,
                passkeys: None,
                bounds: WebBounds::default(),
            },
            users: vec![UserConfig {
                name: Name::sanitize(&host.login),
                index: 0,
                command: host.agent.clone(),
                env: AgentEnv::default(),
                session_env: Default::default(),
                sandbox: Default::default(),
                session_sandbox: Default::default(),
                workdir: host.home.clone(),
                unix_user: None,
                emails: Vec::new(),
                matrix_ids: Vec::new(),
                limits: Limits::default(),
                profile: crate::agent::Profile::for_command(&host.agent).to_owned(),
                hooks: true,
                waiting_pattern: None,
                confirm: ConfirmPolicy::Always,
                block: Vec::new(),
                notify_waiting: false,
                answer_from: super::ANSWER_CHANNELS.map(String::from).to_vec(),
                risky_answers_need_page: true,
            }],
            transcript: default_transcript(
                host.spool_dir
                    .clone()
                    .unwrap_or_else(|| host.state_dir.join("run/spool")),
            ),
            workspace: WorkspaceConfig::default(),
            idle_after: Duration::from_secs(DEFAULT_IDLE_AFTER_S),
            mail: None,
            webhooks: Vec::new(),
            matrix: None,
            cluster: None,
            sandbox_tool: None,
        }
    }

    /// Loads `path`: read, parse, validate (no host checks). An empty file
    /// (only comments, or only sections without users) gets the embedded
    /// default's user.
    pub fn load(path: &Path, host: &HostDefaults) -> Result<Config, ConfigError> {
        let (config, p) = Config::load_partial(path, host)?;
        p.finish(&config.origin.clone(), config)
    }

    /// Reads `path` and checks its text and this machine: the config (with
    /// defaults in place of bad values) and every problem found, none when
    /// it is good. An error: the file cannot be read or parsed at all.
    pub fn inspect(path: &Path, host: &HostDefaults) -> Result<Inspected, ConfigError> {
        let (config, mut p) = Config::load_partial(path, host)?;
        config.host_problems(&mut p);
        Ok(Inspected {
            problems: p.into_vec(),
            config,
        })
    }

    /// This config and what the machine checks find wrong with it.
    pub fn inspected(self) -> Inspected {
        let mut p = Problems::default();
        self.host_problems(&mut p);
        Inspected {
            problems: p.into_vec(),
            config: self,
        }
    }

    fn load_partial(path: &Path, host: &HostDefaults) -> Result<(Config, Problems), ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::one(&origin, "(file)", format!("cannot read: {}", io_reason(&e)))
        })?;
        Config::parse_partial(&text, &origin, host)
    }

    /// Parses and validates config text, naming every problem found.
    pub fn parse(text: &str, origin: &str, host: &HostDefaults) -> Result<Config, ConfigError> {
        let (config, p) = Config::parse_partial(text, origin, host)?;
        p.finish(origin, config)
    }

    /// The config from `text`, with defaults in place of bad values, and
    /// the problems found; an error only when the text is not TOML of the
    /// right shape.
    fn parse_partial(
        text: &str,
        origin: &str,
        host: &HostDefaults,
    ) -> Result<(Config, Problems), ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let line = line_of(text, e.span());
            ConfigError::one(origin, "(syntax)", format!("{} {line}", e.message()))
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let reason = format!("{} {}", inner.message(), line_of(text, inner.span()));
            ConfigError::one(origin, &key, reason.trim_end())
        })?;
        let mut p = Problems::default();
        let dirs_default = raw.daemon.state_dir.is_none() && raw.daemon.runtime_dir.is_none();
        let state_dir = raw.daemon.state_dir.unwrap_or(host.state_dir.clone());
        absolute(&mut p, "daemon.state_dir", &state_dir);
        let runtime_dir = match raw.daemon.runtime_dir {
            Some(dir) => {
                absolute(&mut p, "daemon.runtime_dir", &dir);
                dir
            }
            None => state_dir.join("run"),
        };
        let agent = parse_agent(&mut p, raw.agent, host);
        let default_spool = match &host.spool_dir {
            Some(tmpfs) if dirs_default => tmpfs.clone(),
            _ => runtime_dir.join("spool"),
        };
        let transcript = parse_transcript(&mut p, raw.transcript, default_spool);
        let web = super::web::parse_web(&mut p, raw.web);
        let max_sessions_per_user = at_least_one(
            &mut p,
            "daemon.max_sessions_per_user",
            raw.daemon.max_sessions_per_user,
            DEFAULT_MAX_SESSIONS,
        );
        // No users: the embedded default's one, who runs as the daemon's
        // own account (as root too: see README, Security model).
        if let Some(h) = &raw.daemon.tmux_host {
            absolute(&mut p, "daemon.tmux_host", h);
        }
        let sandbox = super::sandbox::layer(&mut p, &Default::default(), "sandbox", raw.sandbox);
        let default_user = raw.users.is_empty();
        let (users, allow_root_agents) = if default_user {
            let mut user = Config::embedded(host).users.remove(0);
            user.profile = agent
                .profile
                .clone()
                .unwrap_or_else(|| crate::agent::Profile::for_command(&agent.command).to_owned());
            user.command = agent.command.clone();
            user.env = agent.env.clone();
            user.hooks = agent.hooks.unwrap_or(true);
            user.waiting_pattern = agent.waiting_pattern.clone();
            user.sandbox = sandbox;
            (vec![user], true)
        } else {
            let users = users::parse_users(&mut p, raw.users, &agent, &sandbox, host);
            (users, raw.daemon.allow_root_agents)
        };
        let mail = match raw.mail {
            Some(m) if m.enabled.unwrap_or(true) => {
                if !transcript.enabled {
                    p.add(
                        "mail.enabled",
                        "the email bridge reports what the agent printed, so it needs transcript.enabled = true",
                    );
                }
                Some(parse_mail(&mut p, m))
            }
            _ => None,
        };
        let mut users = users;
        let cluster = raw.cluster.and_then(|c| {
            let address = mail.as_ref().map(|m| m.address.as_str());
            super::cluster::parse_cluster(&mut p, c, &mut users, address)
        });
        let workspace = parse_workspace(&mut p, raw.workspace);
        let webhooks = webhooks::parse_webhooks(&mut p, raw.webhooks);
        let matrix = raw.matrix.map(|m| webhooks::parse_matrix(&mut p, m));
        let config = Config {
            origin: origin.to_owned(),
            state_dir,
            runtime_dir,
            allow_root_agents,
            tmux_host: raw.daemon.tmux_host.clone(),
            default_user,
            agent_command: agent.command.clone(),
            example: text.contains(EXAMPLE_MARK),
            max_sessions_per_user,
            restart: agent.restart,
            web,
            transcript,
            workspace,
            idle_after: agent.idle_after,
            mail,
            webhooks,
            matrix,
            cluster,
            sandbox_tool: users
                .iter()
                .any(|u| u.any_sandbox())
                .then(|| find_in_path("bwrap"))
                .flatten(),
            users,
        };
        if config.tmux_host.is_some() && nix::unistd::geteuid().is_root() {
            let switching = config
                .users
                .iter()
                .find(|u| u.unix_user.as_deref().is_some_and(|n| n != "root"));
            if let Some(u) = switching {
                p.add(
                    "daemon.tmux_host",
                    format!(
                        "the tmux host starts servers as its own account, but users[{}] runs as {}: leave tmux_host out, or run every agent as the daemon's account",
                        u.index,
                        u.unix_user.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
        if let Some(sock) = config
            .users
            .iter()
            .map(|u| config.tmux_socket(&u.name))
            .find(|s| s.as_os_str().len() > MAX_SOCKET_PATH)
        {
            p.add(
                "daemon.runtime_dir",
                format!(
                    "socket path {} is longer than {MAX_SOCKET_PATH} bytes; choose a shorter directory",
                    sock.display()
                ),
            );
        }
        Ok((config, p))
    }
}

/// `[agent]`: what every user's agent inherits.
pub(super) struct AgentDefaults {
    pub(super) command: Vec<String>,
    pub(super) restart: RestartPolicy,
    pub(super) idle_after: Duration,
    pub(super) waiting_pattern: Option<String>,
    pub(super) hooks: Option<bool>,
    pub(super) env: AgentEnv,
    pub(super) profile: Option<String>,
}

fn parse_agent(p: &mut Problems, raw: RawAgent, host: &HostDefaults) -> AgentDefaults {
    let command = raw.command.unwrap_or(host.agent.clone());
    p.check("agent.command", check_argv(&command));
    let mut restart = default_restart();
    if let Some(mode) = raw.restart {
        restart.mode = mode;
    }
    if let Some(ms) = raw.restart_delay_ms {
        match ms {
            0 => p.add("agent.restart_delay_ms", "must be at least 1"),
            ms => restart.initial_delay = Duration::from_millis(ms),
        }
    }
    if let Some(ms) = raw.restart_max_delay_ms {
        restart.max_delay = Duration::from_millis(ms);
    }
    if restart.max_delay < restart.initial_delay {
        p.add(
            "agent.restart_max_delay_ms",
            "must not be less than agent.restart_delay_ms",
        );
    }
    if let Some(s) = raw.restart_reset_after_s {
        restart.reset_after = Duration::from_secs(s);
    }
    let idle_after = Duration::from_secs(at_least_one(
        p,
        "agent.idle_after_s",
        raw.idle_after_s,
        DEFAULT_IDLE_AFTER_S,
    ));
    let waiting_pattern = raw
        .waiting_pattern
        .filter(|w| p.check("agent.waiting_pattern", check_pattern(w)).is_some());
    let env = agent_env::layer(p, &AgentEnv::default(), "agent", raw.env, raw.secrets);
    let profile = p
        .check("agent.profile", check_profile(raw.profile))
        .flatten();
    AgentDefaults {
        command,
        restart,
        idle_after,
        waiting_pattern,
        hooks: raw.hooks,
        env,
        profile,
    }
}

fn parse_transcript(
    p: &mut Problems,
    raw: RawTranscript,
    default_spool: PathBuf,
) -> TranscriptConfig {
    let mut transcript = default_transcript(default_spool);
    if let Some(dir) = raw.spool_dir {
        absolute(p, "transcript.spool_dir", &dir);
        transcript.spool_dir = dir;
    }
    if let Some(enabled) = raw.enabled {
        transcript.enabled = enabled;
    }
    match raw.max_bytes {
        Some(b) if b < 1024 * 1024 => {
            p.add("transcript.max_bytes", "must be at least 1048576 (1 MiB)")
        }
        Some(b) => transcript.max_bytes = b,
        None => {}
    }
    if let Some(d) = raw.max_age_days {
        let d = at_least_one(p, "transcript.max_age_days", Some(d), 1);
        transcript.max_age = Duration::from_secs(d.saturating_mul(86_400));
    }
    transcript
}

/// `v`, or `default` when absent; 0 is a problem at `key`.
pub(super) fn at_least_one<T: Copy + PartialEq + Default>(
    p: &mut Problems,
    key: &str,
    v: Option<T>,
    default: T,
) -> T {
    match v {
        Some(n) if n == T::default() => {
            p.add(key, "must be at least 1");
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// A path that must be absolute.
pub(super) fn absolute(p: &mut Problems, key: &str, path: &Path) {
    if !path.is_absolute() {
        p.add(key, "must be an absolute path");
    }
}

pub(super) const DEFAULT_IDLE_AFTER_S: u64 = 10;

/// Spools need to outlive the daemon, not a reboot (tmux sessions do not
/// survive one either), so a tmpfs is best: it keeps tmux's writes off the
/// disk. With the directories left to their defaults, the host's tmpfs
/// ([`HostDefaults::spool_dir`]); else RUNTIME_DIR/spool (a tmpfs under
/// systemd).
pub(super) fn default_transcript(spool_dir: PathBuf) -> TranscriptConfig {
    TranscriptConfig {
        enabled: true,
        spool_dir,
        max_bytes: 1024 * 1024 * 1024,
        max_age: Duration::from_secs(30 * 86_400),
    }
}

pub(super) fn check_pattern(p: &str) -> Result<(), String> {
    regex::Regex::new(p).map(|_| ()).map_err(|e| {
        format!(
            "{p:?} is not a valid regular expression: {}",
            e.to_string().lines().last().unwrap_or("")
        )
    })
}

pub(super) fn default_restart() -> RestartPolicy {
    RestartPolicy {
        mode: RestartMode::Always,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        reset_after: Duration::from_secs(60),
    }
}

pub(super) fn check_argv(argv: &[String]) -> Result<(), String> {
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
pub(super) fn is_origin(s: &str) -> bool {
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

pub(super) fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("(line {line})")
        }
        None => String::new(),
    }
}

/// A profile name must be a built-in one.
pub(super) fn check_profile(name: Option<String>) -> Result<Option<String>, String> {
    match name {
        Some(n) if !crate::agent::PROFILES.contains(&n.as_str()) => Err(format!(
            "unknown agent profile {n:?}; the profiles are {}",
            crate::agent::PROFILES.join(", ")
        )),
        n => Ok(n),
    }
}
