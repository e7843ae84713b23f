//! The command-line verbs of the DESIGN.md contract.
//!
//! Which config is used: `--config PATH` (or `$TMUXD_CONFIG`), else
//! `~/.config/tmuxd/config.toml`, else `/etc/tmuxd/config.toml`, else the
//! embedded default. Verbs that change sessions (`new`, `kill`, `send`) go
//! through the running daemon's control socket, so it supervises what they
//! create; with no daemon running they act on tmux directly and the next
//! `serve` adopts the result. `sessions` and `attach` always read tmux
//! directly, so they work with the daemon down.

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::{token_path, Role, TokenStore};
use crate::clock::iso8601;
use crate::config::{Config, ConfigError, HostDefaults};
use crate::control::{self, Request};
use crate::names::{Name, SessionId};
use crate::session::{SessionError, SessionInfo, UserServer};
use crate::tmux::Command as TmuxCommand;
use crate::transcript::{ExportOptions, Format, Store};

#[derive(Parser, Debug)]
#[command(
    name = "tmuxd",
    version,
    about = "Persistent per-user tmux sessions for AI agent CLIs"
)]
pub struct Cli {
    /// Config file (default: ~/.config/tmuxd/config.toml, then
    /// /etc/tmuxd/config.toml, then the embedded default).
    #[arg(long, global = true, env = "TMUXD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Run the daemon: adopt or create every user's sessions and keep
    /// their agents running.
    Serve,
    /// Check the config; print every problem with its key.
    CheckConfig,
    /// Check tmux, the config, directories, the database and the daemon;
    /// print each problem with its fix (exit 1 if there is any).
    Doctor,
    /// Print the documented example config.
    DefaultConfig,
    /// List sessions (works with the daemon down).
    Sessions {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a session USER/SESSION running the user's agent.
    New { id: SessionId },
    /// Kill a session (not USER/main).
    Kill { id: SessionId },
    /// Type TEXT into a session's agent, then press Enter.
    Send {
        id: SessionId,
        text: String,
        /// Type the text without pressing Enter.
        #[arg(long)]
        no_enter: bool,
    },
    /// Issue a login token for USER (printed once; only its hash is kept),
    /// or list or revoke tokens.
    Token {
        /// The user the token logs in as.
        #[arg(required_unless_present_any = ["list", "revoke"])]
        user: Option<Name>,
        /// What the token allows.
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
        /// List tokens (id, user, role, created); never the secrets.
        #[arg(long, conflicts_with_all = ["user", "revoke"])]
        list: bool,
        /// Revoke the token with this id.
        #[arg(long, value_name = "ID", conflicts_with = "user")]
        revoke: Option<String>,
    },
    /// Print a session's transcript (works with the daemon down).
    Transcript {
        id: SessionId,
        /// raw: the bytes as printed; text: escape sequences removed, inputs
        /// and events as marked lines; asciicast: v2, for asciinema.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// From this time on: 30s, 10m, 2h, 7d ago; Unix seconds; or
        /// 2026-11-21T06:00:00Z.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only text lines matching this regular expression.
        #[arg(long, value_name = "PATTERN")]
        grep: Option<String>,
    },
    /// Hand one RFC 5322 message on stdin to the email bridge (for MTA
    /// pipe delivery). Exits 75 (try again later) when the daemon is not
    /// running, so the MTA keeps the message queued.
    MailIngest,
    /// Show the email bridge's audit log: every inbound message and its
    /// decision.
    MailLog {
        /// Only this user's entries.
        user: Option<Name>,
        /// How many of the newest entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print USER's secret address for mailing commands.
    MailAddress { user: Name },
    /// Attach this terminal to a session with tmux.
    Attach {
        id: SessionId,
        /// Attach read-only (keystrokes are ignored).
        #[arg(long)]
        read_only: bool,
    },
}

/// A CLI failure: bad input (exit 2) or something failing (exit 1).
#[derive(Debug)]
pub enum CliError {
    BadInput(String),
    Failed(anyhow::Error),
    /// Try again later (EX_TEMPFAIL, 75): an MTA keeps the message queued.
    TempFail(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Failed(_) => 1,
            CliError::TempFail(_) => 75,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::BadInput(m) | CliError::TempFail(m) => f.write_str(m),
            CliError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::BadInput(e.to_string())
    }
}

impl From<SessionError> for CliError {
    fn from(e: SessionError) -> Self {
        if e.is_bad_input() {
            CliError::BadInput(e.to_string())
        } else {
            CliError::Failed(e.into())
        }
    }
}

/// Finds and loads the config (see the module docs for the order).
pub fn load_config(explicit: Option<&PathBuf>) -> Result<Config, ConfigError> {
    let host = HostDefaults::detect();
    if let Some(path) = explicit {
        return Config::load(path, &host);
    }
    let user_file = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| host.home.join(".config"))
        .join("tmuxd/config.toml");
    for path in [user_file, PathBuf::from("/etc/tmuxd/config.toml")] {
        if path.exists() {
            return Config::load(&path, &host);
        }
    }
    Ok(Config::embedded(&host))
}

/// Runs one verb.
pub fn run(cli: Cli) -> Result<(), CliError> {
    if let Verb::DefaultConfig = cli.verb {
        print!("{}", crate::config::EXAMPLE);
        return Ok(());
    }
    if let Verb::Doctor = cli.verb {
        let findings =
            runtime(false)?.block_on(crate::doctor::check(load_config(cli.config.as_ref())));
        return if crate::doctor::print(&findings) {
            Ok(())
        } else {
            Err(CliError::Failed(anyhow::anyhow!(
                "doctor found problems (above)"
            )))
        };
    }
    let config = load_config(cli.config.as_ref())?;
    match cli.verb {
        Verb::Doctor => unreachable!("handled above"),
        Verb::DefaultConfig => unreachable!("handled above"),
        Verb::CheckConfig => {
            config.check_host()?;
            println!(
                "{}: OK ({} user{})",
                config.origin,
                config.users.len(),
                if config.users.len() == 1 { "" } else { "s" }
            );
            Ok(())
        }
        Verb::Serve => {
            config.check_host()?;
            crate::tmux::check_version().map_err(|e| CliError::Failed(anyhow::anyhow!(e)))?;
            runtime(true)?
                .block_on(crate::daemon::serve(config))
                .map_err(CliError::Failed)
        }
        Verb::Attach { id, read_only } => attach(&config, &id, read_only),
        Verb::Token {
            user,
            role,
            list,
            revoke,
        } => token(&config, user, role, list, revoke),
        Verb::MailLog { user, limit, json } => mail_log(&config, user, limit, json),
        Verb::MailAddress { user } => mail_address(&config, &user),
        verb => runtime(false)?.block_on(client_verb(&config, verb)),
    }
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, CliError> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all()
        .build()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot start the async runtime: {e}")))
}

fn server_for(config: &Config, id: &SessionId) -> Result<UserServer, CliError> {
    let user = config
        .user(&id.user)
        .ok_or_else(|| CliError::BadInput(format!("no such user {}", id.user)))?;
    Ok(UserServer::new(config, user))
}

async fn client_verb(config: &Config, verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::Sessions { json } => {
            let mut all = Vec::new();
            for user in &config.users {
                all.extend(UserServer::new(config, user).list().await?);
            }
            if json {
                let text =
                    serde_json::to_string_pretty(&all).map_err(|e| CliError::Failed(e.into()))?;
                println!("{text}");
            } else {
                print!("{}", sessions_table(&all));
            }
            Ok(())
        }
        Verb::New { id } => {
            let server = server_for(config, &id)?;
            let request = Request::New { id: id.to_string() };
            if !via_daemon(config, &request).await? {
                server.create(&id.session).await?;
                eprintln!("tmuxd: the daemon is not running; created {id} directly (the next `tmuxd serve` adopts it)");
            }
            println!("created {id}");
            Ok(())
        }
        Verb::Kill { id } => {
            let server = server_for(config, &id)?;
            let request = Request::Kill { id: id.to_string() };
            if !via_daemon(config, &request).await? {
                server.kill(&id.session).await?;
            }
            println!("killed {id}");
            Ok(())
        }
        Verb::Send { id, text, no_enter } => {
            let server = server_for(config, &id)?;
            crate::session::check_typed_text(&text)?;
            let request = Request::Send {
                id: id.to_string(),
                text: text.clone(),
                enter: !no_enter,
            };
            if !via_daemon(config, &request).await? {
                server.send(&id.session, &text, !no_enter).await?;
                record_input_directly(config, &id, &text, !no_enter);
            }
            Ok(())
        }
        Verb::Transcript {
            id,
            format,
            since,
            grep,
        } => transcript(config, &id, format, since, grep).await,
        Verb::MailIngest => mail_ingest(config).await,
        Verb::Serve
        | Verb::Doctor
        | Verb::CheckConfig
        | Verb::DefaultConfig
        | Verb::Attach { .. }
        | Verb::MailLog { .. }
        | Verb::MailAddress { .. }
        | Verb::Token { .. } => {
            unreachable!("handled in run")
        }
    }
}

fn mail_config(config: &Config) -> Result<&crate::config::MailConfig, CliError> {
    config.mail.as_ref().ok_or_else(|| {
        CliError::BadInput(format!(
            "{}: mail: the email bridge is not configured (add a [mail] section)",
            config.origin
        ))
    })
}

async fn mail_ingest(config: &Config) -> Result<(), CliError> {
    use base64::Engine;
    use std::io::Read;
    let mail = mail_config(config)?;
    // One byte over the cap is enough for the bridge to refuse it by size.
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .take(mail.max_message_bytes as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| CliError::TempFail(format!("reading the message from stdin: {e}")))?;
    // Drain the rest so the MTA's pipe does not fail.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if raw.is_empty() {
        return Err(CliError::BadInput("no message on stdin".into()));
    }
    let request = Request::MailIngest {
        message: base64::engine::general_purpose::STANDARD.encode(&raw),
    };
    match control::request(&config.control_socket(), &request).await {
        Ok(Some(r)) if r.ok => {
            println!("{}", r.message);
            Ok(())
        }
        Ok(Some(r)) if r.bad_input => Err(CliError::BadInput(r.message)),
        Ok(Some(r)) => Err(CliError::TempFail(r.message)),
        Ok(None) => Err(CliError::TempFail(
            "the tmuxd daemon is not running; try again later (the message stays with the MTA)"
                .into(),
        )),
        Err(e) => Err(CliError::TempFail(format!("talking to the daemon: {e}"))),
    }
}

fn mail_log(config: &Config, user: Option<Name>, limit: usize, json: bool) -> Result<(), CliError> {
    mail_config(config)?;
    let dir = crate::mail::state::mail_dir(&config.state_dir);
    let entries = crate::mail::state::read_audit(&dir, limit.max(1), |e| {
        user.as_ref()
            .is_none_or(|u| e.user.as_deref() == Some(u.as_str()))
    })
    .map_err(|e| CliError::Failed(e.into()))?;
    for e in entries {
        if json {
            println!(
                "{}",
                serde_json::to_string(&e).map_err(|e| CliError::Failed(e.into()))?
            );
            continue;
        }
        let target = match (&e.user, &e.session) {
            (Some(u), Some(s)) => format!("{u}/{s}"),
            (Some(u), None) => u.clone(),
            _ => "-".into(),
        };
        let mut line = format!(
            "{}  {:<10} {:<14} {:<28} {}",
            iso8601(e.ts_ms / 1000),
            e.decision,
            target,
            e.from.as_deref().unwrap_or("-"),
            e.reason
        );
        if let Some(c) = &e.command {
            line.push_str(&format!("  [{}]", c.chars().take(60).collect::<String>()));
        }
        if !e.flags.is_empty() {
            line.push_str(&format!("  flags: {}", e.flags.join(",")));
        }
        println!("{line}");
    }
    Ok(())
}

fn mail_address(config: &Config, user: &Name) -> Result<(), CliError> {
    let mail = mail_config(config)?;
    if config.user(user).is_none() {
        return Err(CliError::BadInput(format!("no such user {user}")));
    }
    let dir = crate::mail::state::mail_dir(&config.state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("{}: {e}", dir.display())))?;
    let key = crate::mail::sender::AddressKey::load_or_create(&dir)
        .map_err(|e| CliError::Failed(e.into()))?;
    println!(
        "{}",
        crate::mail::bridge::address_with_tag(&mail.address, &key.user_tag(user.as_str()))
    );
    Ok(())
}

async fn transcript(
    config: &Config,
    id: &SessionId,
    format: Format,
    since: Option<String>,
    grep: Option<String>,
) -> Result<(), CliError> {
    let server = server_for(config, id)?;
    let since_ms = since
        .as_deref()
        .map(|s| crate::transcript::parse_since(s, crate::transcript::now().0))
        .transpose()
        .map_err(CliError::BadInput)?;
    let pattern = grep
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| {
            CliError::BadInput(format!(
                "invalid --grep pattern {:?}: {e}",
                grep.as_deref().unwrap_or("")
            ))
        })?;
    if pattern.is_some() && format != Format::Text {
        return Err(CliError::BadInput(
            "--grep works with --format text only".into(),
        ));
    }
    if !config.transcript.enabled {
        return Err(CliError::BadInput(
            "transcripts are turned off in the config ([transcript] enabled = false)".into(),
        ));
    }
    let request = Request::Transcript {
        id: id.to_string(),
        format,
        since_ms,
        grep: grep.clone(),
    };
    let path = config.control_socket();
    let failed = |e: std::io::Error| {
        CliError::Failed(anyhow::anyhow!(
            "cannot talk to the daemon at {}: {e}",
            path.display()
        ))
    };
    let mut stdout = tokio::io::stdout();
    match control::request_stream(&path, &request)
        .await
        .map_err(failed)?
    {
        Some((r, _)) if r.bad_input => Err(CliError::BadInput(r.message)),
        Some((r, _)) if !r.ok => Err(CliError::Failed(anyhow::anyhow!("daemon: {}", r.message))),
        Some((_, mut rest)) => match tokio::io::copy(&mut rest, &mut stdout).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(CliError::Failed(e.into())),
        },
        None => {
            // No daemon: read the database ourselves (sled allows one
            // process at a time, and the daemon is not it now).
            let db = config.transcript_db();
            let store = if db.exists() {
                Some(Store::open(&db).map_err(|e| CliError::Failed(e.into()))?)
            } else {
                None
            };
            let recorded = match &store {
                Some(s) => s.has_session(id).map_err(|e| CliError::Failed(e.into()))?,
                None => false,
            };
            let live = server
                .tmux
                .has_session(&id.session)
                .await
                .map_err(SessionError::from)?;
            let (Some(store), true) = (store, recorded || live) else {
                return Err(SessionError::NoSuchSession(id.clone()).into());
            };
            let log = store.session(id).map_err(|e| CliError::Failed(e.into()))?;
            let options = ExportOptions {
                since_ms,
                grep: pattern,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match crate::transcript::export(&log, format, &options, &mut out)
                .and_then(|_| Ok(std::io::Write::flush(&mut out)?))
            {
                Ok(()) => Ok(()),
                Err(crate::transcript::ExportError::Io(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    Ok(())
                }
                Err(e) => Err(CliError::Failed(e.into())),
            }
        }
    }
}

/// With no daemon running, records CLI input in the transcript ourselves.
fn record_input_directly(config: &Config, id: &SessionId, text: &str, enter: bool) {
    if !config.transcript.enabled {
        return;
    }
    let source = format!("cli:uid={}", nix::unistd::getuid());
    let typed = if enter {
        format!("{text}\n")
    } else {
        text.to_owned()
    };
    let result = Store::open(&config.transcript_db()).and_then(|store| {
        store.session(id)?.input(&source, &typed)?;
        store.flush_blocking()
    });
    if let Err(e) = result {
        eprintln!("tmuxd: the input was typed but not recorded: {e}");
    }
}

/// Sends `request` to the daemon. False when no daemon is running.
async fn via_daemon(config: &Config, request: &Request) -> Result<bool, CliError> {
    let path = config.control_socket();
    match control::request(&path, request).await {
        Ok(None) => Ok(false),
        Ok(Some(r)) if r.ok => Ok(true),
        Ok(Some(r)) if r.bad_input => Err(CliError::BadInput(r.message)),
        Ok(Some(r)) => Err(CliError::Failed(anyhow::anyhow!("daemon: {}", r.message))),
        Err(e) => Err(CliError::Failed(anyhow::anyhow!(
            "cannot talk to the daemon at {}: {e}",
            path.display()
        ))),
    }
}

fn attach(config: &Config, id: &SessionId, read_only: bool) -> Result<(), CliError> {
    let server = server_for(config, id)?;
    let exists = runtime(false)?
        .block_on(server.tmux.has_session(&id.session))
        .map_err(SessionError::from)?;
    if !exists {
        return Err(SessionError::NoSuchSession(id.clone()).into());
    }
    if server.tmux.switches_account() {
        // Never the caller's terminal in another account's hands.
        return runtime(false)?
            .block_on(crate::attach::relay(&server.tmux, &id.session, read_only))
            .map_err(|e| CliError::Failed(anyhow::anyhow!("attach: {e}")));
    }
    let err = server
        .tmux
        .std_command(&[TmuxCommand::attach(&id.session, read_only)])
        .exec();
    Err(CliError::Failed(anyhow::anyhow!("cannot run tmux: {err}")))
}

fn token(
    config: &Config,
    user: Option<Name>,
    role: Role,
    list: bool,
    revoke: Option<String>,
) -> Result<(), CliError> {
    let store = TokenStore::new(token_path(&config.state_dir));
    let failed = |e: crate::auth::TokenError| CliError::Failed(e.into());
    if list {
        for (id, user, role, created) in store.list().map_err(failed)? {
            println!(
                "{id}  {user:<16} {:<10} {}",
                role.as_str(),
                iso8601(created)
            );
        }
        return Ok(());
    }
    if let Some(id) = revoke {
        return match store.revoke(&id) {
            Ok(()) => {
                println!("revoked {id}");
                Ok(())
            }
            Err(e @ crate::auth::TokenError::NoSuchToken(_)) => {
                Err(CliError::BadInput(e.to_string()))
            }
            Err(e) => Err(failed(e)),
        };
    }
    let user = user.expect("clap requires USER here");
    if config.user(&user).is_none() {
        return Err(CliError::BadInput(format!("no such user {user}")));
    }
    let issued = store.issue(&user, role).map_err(failed)?;
    eprintln!(
        "tmuxd: token {} for {user} ({}); it is shown only now, store it safely",
        issued.id,
        role.as_str()
    );
    println!("{}", issued.token);
    Ok(())
}

fn sessions_table(list: &[SessionInfo]) -> String {
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                format!("{:?}", s.state).to_lowercase(),
                s.agent_pid.map_or("-".into(), |p| p.to_string()),
                s.created.map_or("-".into(), iso8601),
                s.last_exit.map_or("-".into(), |e| e.describe()),
                s.attached_clients.to_string(),
                s.socket.display().to_string(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "STATE",
        "PID",
        "CREATED",
        "LAST EXIT",
        "CLIENTS",
        "SOCKET",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
