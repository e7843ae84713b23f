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
                env: AgentEnv::default(),
                workdir: host.home.clone(),
                unix_user: None,
                emails: Vec::new(),
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
            transcript: default_transcript(&host.state_dir.join("run")),
            workspace: WorkspaceConfig::default(),
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
                Some(p)
            }
            None => None,
        };
        let agent_hooks = raw.agent.hooks;
        let agent_env = agent_env::layer(
            &AgentEnv::default(),
            "agent",
            raw.agent.env,
            raw.agent.secrets,
        )
        .map_err(|(k, r)| err(&k, r))?;
        let agent_profile =
            check_profile(raw.agent.profile).map_err(|r| err("agent.profile", r))?;
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
                    Some(p)
                }
                None => agent_waiting.clone(),
            };
            let profile = check_profile(u.profile)
                .map_err(|r| err(&key("profile"), r))?
                .or_else(|| agent_profile.clone())
                .unwrap_or_else(|| crate::agent::Profile::for_command(&command).to_owned());
            for (k, v) in [
                ("max_processes", u.max_processes),
                ("max_open_files", u.max_open_files),
            ] {
                if v == Some(0) {
                    return Err(err(&key(k), "must be at least 1".into()));
                }
            }
            for (j, flag) in u.block.iter().enumerate() {
                if !crate::risk::is_flag(flag) {
                    let known: Vec<&str> = crate::risk::FLAGS.iter().map(|f| f.0).collect();
                    return Err(err(
                        &format!("users[{i}].block[{j}]"),
                        format!(
                            "unknown risk flag {flag:?}; the flags are {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
            let answer_from = match u.answer_from {
                Some(list) => {
                    if let Some(bad) = list
                        .iter()
                        .find(|c| !super::ANSWER_CHANNELS.contains(&c.as_str()))
                    {
                        return Err(err(
                            &key("answer_from"),
                            format!(
                                "unknown channel {bad:?}; the channels are {}",
                                super::ANSWER_CHANNELS.join(", ")
                            ),
                        ));
                    }
                    list
                }
                None => super::ANSWER_CHANNELS.map(String::from).to_vec(),
            };
            let env = agent_env::layer(&agent_env, &format!("users[{i}]"), u.env, u.secrets)
                .map_err(|(k, r)| err(&k, r))?;
            users.push(UserConfig {
                name,
                command,
                env,
                workdir,
                unix_user: u.unix_user,
                emails,
                limits: Limits {
                    max_processes: u.max_processes,
                    max_open_files: u.max_open_files,
                    memory_max_mb: u.memory_max_mb,
                    cpu_quota_percent: u.cpu_quota_percent,
                },
                profile,
                hooks: u.hooks.or(agent_hooks).unwrap_or(true),
                waiting_pattern,
                confirm: u.confirm,
                block: u.block,
                notify_waiting: u.notify_waiting,
                answer_from,
                risky_answers_need_page: u.risky_answers_need_page.unwrap_or(true),
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

        let workspace = parse_workspace(raw.workspace).map_err(|(k, r)| err(&k, r))?;
        let config = Config {
            origin: origin.to_owned(),
            state_dir,
            runtime_dir,
            allow_root_agents: raw.daemon.allow_root_agents,
            max_sessions_per_user,
            restart,
            web,
            transcript,
            workspace,
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
}

pub(super) const DEFAULT_IDLE_AFTER_S: u64 = 10;

pub(super) fn default_transcript(runtime_dir: &Path) -> TranscriptConfig {
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
fn check_profile(name: Option<String>) -> Result<Option<String>, String> {
    match name {
        Some(n) if !crate::agent::PROFILES.contains(&n.as_str()) => Err(format!(
            "unknown agent profile {n:?}; the profiles are {}",
            crate::agent::PROFILES.join(", ")
        )),
        n => Ok(n),
    }
}
