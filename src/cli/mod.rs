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

mod error;
mod files;
mod helpers;
mod init;
mod mail;
mod transcript;
mod verbs;

pub use error::CliError;
use error::{daemon_answer, unreachable};
use mail::{mail_address, mail_ingest, mail_log};
use transcript::{record_input_directly, transcript};
use verbs::{attach, client_verb, logins, router_config, server_for, token, Router};

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
    /// Write a starting config for this machine (users, state directory,
    /// spool on a tmpfs, the agent on PATH) to --config or where tmuxd
    /// looks first; issue a login token per user; print the next command.
    Init {
        /// A Unix account whose agent the daemon runs, as that account
        /// (others than you need a root daemon). Repeat for more. Default:
        /// you (as root: $SUDO_USER).
        #[arg(long = "user", value_name = "ACCOUNT")]
        users: Vec<String>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// List sessions (works with the daemon down).
    Sessions {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a session USER/SESSION running the user's agent.
    New {
        id: SessionId,
        /// Start it in a new git worktree of the user's repository (under
        /// ~/.local/share/tmuxd/worktrees/SESSION). Needs the daemon.
        #[arg(long)]
        worktree: bool,
        /// The worktree's branch (made from HEAD if missing; default
        /// tmuxd/SESSION).
        #[arg(long, requires = "worktree", value_name = "BRANCH")]
        branch: Option<String>,
    },
    /// Kill a session (not USER/main).
    Kill {
        id: SessionId,
        /// Also remove the session's worktree, if it has no uncommitted
        /// changes (a worktree with changes is always kept).
        #[arg(long)]
        remove_worktree: bool,
    },
    /// Type TEXT into a session's agent, then press Enter.
    Send {
        id: SessionId,
        text: String,
        /// Type the text without pressing Enter.
        #[arg(long)]
        no_enter: bool,
    },
    /// Report an agent hook event (JSON on stdin) to the daemon; run by the
    /// agent itself (Claude Code's hooks that tmuxd sets up). Always exits
    /// 0 with no output, so it never changes what the agent does.
    #[command(hide = true)]
    Hook,
    /// One file operation in a session's workdir, run by the daemon as the
    /// session's Unix user (see `workspace::helper`); not for people.
    #[command(hide = true)]
    WorkspaceHelper { request: String },
    /// Runs an agent in its sandbox (see `sandbox::run`): run by the
    /// pane's launcher, as the user; not for people.
    #[command(hide = true)]
    SandboxRun {
        plan: String,
        #[arg(last = true)]
        argv: Vec<String>,
    },
    /// The agent's first process inside its sandbox (see
    /// `sandbox::bridge`); not for people.
    #[command(hide = true)]
    SandboxExec {
        #[arg(long)]
        net_socket: Option<PathBuf>,
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        forward: Vec<String>,
        #[arg(last = true)]
        argv: Vec<String>,
    },
    /// Answer the question an agent shows (`tmuxd sessions` lists them):
    /// types OPTION only while that question is still on its screen.
    /// Needs the daemon.
    Answer {
        /// The question's id.
        question: String,
        /// The option's key, e.g. 1.
        option: String,
    },
    /// Issue a login token for USER (printed once; only its hash is kept),
    /// or list or revoke tokens.
    Token {
        /// The user the token logs in as (with one user, it by default).
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
    /// Start users' tmux servers for a daemon in another container (its
    /// `[daemon] tmux_host`), so they outlive that container's restarts.
    TmuxHost {
        /// The socket to serve (the daemon's tmux_host).
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
    },
    /// Print a front router's config for a cluster (see README, Scaling
    /// out): each request reaches its user's node.
    #[command(group(clap::ArgGroup::new("router").required(true).multiple(false)))]
    RouterConfig {
        /// nginx's http {} part: requests to their user's node.
        #[arg(long, group = "router")]
        nginx: bool,
        /// HAProxy's frontend and backends, likewise.
        #[arg(long, group = "router")]
        haproxy: bool,
        /// A Postfix transport table: mail to each node's mail-ingest.
        #[arg(long, group = "router")]
        postfix: bool,
        /// The cluster file (default: the config's [cluster] file).
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
        /// Where the router listens.
        #[arg(long, value_name = "ADDR", default_value = "80")]
        listen: String,
    },
    /// List the page's logins (who, how: token, OIDC or passkey; when
    /// they expire), or end one: the running daemon refuses it at once.
    Logins {
        /// End the login with this id (as listed).
        #[arg(long, value_name = "ID")]
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
    /// running, so the MTA keeps the message queued; 77 when this account
    /// may not deliver (a permanent error: the MTA bounces).
    MailIngest {
        /// The daemon's mail socket (RUNTIME_DIR/mail.sock, with [mail]
        /// ingest_group), read without the config: for an MTA's pipe
        /// account, which need not read the config.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
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
    /// Store FILE (- for stdin, with --name) in a session's workspace, in
    /// its uploads directory, as the session's user. Needs the daemon.
    Put {
        id: SessionId,
        file: PathBuf,
        /// The name to store it under (default: FILE's name), made safe.
        #[arg(long)]
        name: Option<String>,
    },
    /// Download PATH from a session's workspace: a file, or a directory
    /// as tar.gz (the whole workdir without PATH). Needs the daemon.
    Get {
        id: SessionId,
        path: Option<String>,
        /// Where to write it (default: its own name here, never over a
        /// file; - for stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Archive format for a directory: tar.gz (default) or zip.
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
        /// Add the session's transcript (text and asciicast) to the
        /// archive, under .tmuxd/.
        #[arg(long)]
        transcript: bool,
    },
    /// Take a snapshot of a session's workspace now (git, on a private
    /// ref; the user's branch, index and stash untouched); print its id.
    Snapshot { id: SessionId },
    /// List a session's snapshots, oldest first: why each was taken (the
    /// input that followed) and the files changed after it.
    Snapshots {
        id: SessionId,
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Restore a session's workspace to SNAPSHOT (its files only; a
    /// snapshot of the present is taken first, so this can be undone).
    Rollback { id: SessionId, snapshot: String },
    /// Attach this terminal to a session with tmux (with one user, its
    /// main session when ID is left out).
    Attach {
        id: Option<SessionId>,
        /// Attach read-only (keystrokes are ignored).
        #[arg(long)]
        read_only: bool,
    },
}

/// The config file the CLI reads: `--config`, else the user's, else
/// `/etc/tmuxd/config.toml`; `None`: the embedded default.
fn config_path(explicit: Option<&PathBuf>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.clone());
    }
    [
        crate::config::user_config_file(),
        PathBuf::from("/etc/tmuxd/config.toml"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// Finds and loads the config, checking its text (not the machine).
pub fn load_config(explicit: Option<&PathBuf>) -> Result<Config, ConfigError> {
    let host = HostDefaults::detect();
    match config_path(explicit) {
        Some(path) => Config::load(&path, &host),
        None => Ok(Config::embedded(&host)),
    }
}

/// Finds the config and checks its text and the machine: every problem.
fn inspect_config(explicit: Option<&PathBuf>) -> Result<crate::config::Inspected, ConfigError> {
    let host = HostDefaults::detect();
    match config_path(explicit) {
        Some(path) => Config::inspect(&path, &host),
        None => Ok(Config::embedded(&host).inspected()),
    }
}

/// Runs one verb.
pub fn run(cli: Cli) -> Result<(), CliError> {
    if let Some(result) = helpers::without_config(&cli) {
        return result;
    }
    if let Verb::DefaultConfig = cli.verb {
        print!("{}", crate::config::EXAMPLE);
        return Ok(());
    }
    if let Verb::Init { users, force } = &cli.verb {
        return init::init(cli.config.as_ref(), users, *force);
    }
    if let Verb::Doctor = cli.verb {
        let findings =
            runtime(false)?.block_on(crate::doctor::check(inspect_config(cli.config.as_ref())));
        return if crate::doctor::print(&findings) {
            Ok(())
        } else {
            Err(CliError::Failed(anyhow::anyhow!(
                "doctor found problems (above)"
            )))
        };
    }
    let config = match cli.verb {
        Verb::CheckConfig | Verb::Serve => inspect_config(cli.config.as_ref())?.checked()?,
        _ => load_config(cli.config.as_ref())?,
    };
    match cli.verb {
        Verb::Doctor => unreachable!("handled above"),
        Verb::DefaultConfig
        | Verb::Hook
        | Verb::WorkspaceHelper { .. }
        | Verb::SandboxRun { .. }
        | Verb::SandboxExec { .. }
        | Verb::Init { .. } => {
            unreachable!("handled above")
        }
        Verb::CheckConfig => {
            println!(
                "{}: OK ({} user{})",
                config.origin,
                config.users.len(),
                if config.users.len() == 1 { "" } else { "s" }
            );
            if let Some(note) = config.root_agents_note() {
                println!("note: {note}");
            }
            Ok(())
        }
        Verb::Serve => {
            crate::tmux::check_version().map_err(|e| CliError::Failed(anyhow::anyhow!(e)))?;
            runtime(true)?
                .block_on(crate::daemon::serve(config))
                .map_err(CliError::Failed)
        }
        Verb::Attach { id, read_only } => attach(&config, id, read_only),
        Verb::Token {
            user,
            role,
            list,
            revoke,
        } => token(&config, user, role, list, revoke),
        Verb::MailLog { user, limit, json } => mail_log(&config, user, limit, json),
        Verb::Logins { revoke } => logins(&config, revoke),
        Verb::RouterConfig {
            nginx,
            haproxy,
            postfix: _,
            cluster,
            listen,
        } => router_config(
            Some(&config),
            cluster.as_deref(),
            Router::of(nginx, haproxy),
            &listen,
        ),
        Verb::MailAddress { user } => mail_address(&config, &user),
        Verb::Put { id, file, name } => {
            runtime(false)?.block_on(files::put(&config, &id, &file, name))
        }
        Verb::Get {
            id,
            path,
            output,
            format,
            transcript,
        } => runtime(false)?.block_on(files::get(&config, &id, (path, format, transcript), output)),
        Verb::Snapshot { id } => {
            let request = Request::Snapshot { id: id.to_string() };
            runtime(false)?.block_on(files::snapshots(&config, request, false))
        }
        Verb::Snapshots { id, json } => {
            let request = Request::Snapshots { id: id.to_string() };
            runtime(false)?.block_on(files::snapshots(&config, request, json))
        }
        Verb::Rollback { id, snapshot } => {
            let request = Request::Rollback {
                id: id.to_string(),
                snapshot,
            };
            runtime(false)?.block_on(files::snapshots(&config, request, false))
        }
        verb => runtime(false)?.block_on(client_verb(&config, verb)),
    }
}

/// The daemon's runtime (`multi_thread`) or a client's.
///
/// The daemon's async work runs on one worker thread unless
/// `TOKIO_WORKER_THREADS` asks for more: it is all I/O (viewer relays,
/// HTTP, tmux calls), and blocking work goes to the blocking pool. A second
/// worker cost a third more CPU per viewer in floods (its wakeups to steal
/// work; `scripts/bench.sh fanout`) and bought no echo latency. The
/// multi-thread flavour stays for `block_in_place`.
fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, CliError> {
    let mut b = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
            b.worker_threads(1);
        }
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all()
        .build()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot start the async runtime: {e}")))
}
