//! The verbs that act on sessions and tokens: through the daemon's
//! control socket when it runs, on tmux directly when it does not; and the
//! sessions table.

use super::*;

pub(super) fn server_for(config: &Config, id: &SessionId) -> Result<UserServer, CliError> {
    let user = config
        .user(&id.user)
        .ok_or_else(|| no_such_user(config, &id.user))?;
    Ok(UserServer::new(config, user))
}

/// `user` is not in the config: which users are, and which config that is.
pub(super) fn no_such_user(config: &Config, user: &Name) -> CliError {
    CliError::BadInput(format!(
        "no such user {user} (the users in {} are: {})",
        config.origin,
        user_names(config)
    ))
}

/// The config's user names, for messages.
fn user_names(config: &Config) -> String {
    let names: Vec<&str> = config.users.iter().map(|u| u.name.as_str()).collect();
    names.join(", ")
}

/// A session that is missing while the daemon is down: maybe it is only
/// not created yet.
pub(super) fn missing_without_daemon(e: SessionError) -> CliError {
    match e {
        SessionError::NoSuchSession(id) => CliError::BadInput(format!(
            "no such session {id}, and the daemon is not running: start it with `tmuxd serve` (it creates each user's main session), or `tmuxd new {id}`"
        )),
        e => e.into(),
    }
}

pub(super) async fn client_verb(config: &Config, verb: Verb) -> Result<(), CliError> {
    match verb {
        Verb::Sessions { json } => {
            let mut all = Vec::new();
            for user in &config.users {
                all.extend(UserServer::new(config, user).list().await?);
            }
            // What the agents show is known to the daemon only.
            let agents = match daemon_message(config, &Request::Agents).await? {
                Some(m) => serde_json::from_str(&m).unwrap_or_default(),
                None => serde_json::Value::Null,
            };
            if json {
                let mut list =
                    serde_json::to_value(&all).map_err(|e| CliError::Failed(e.into()))?;
                for s in list.as_array_mut().into_iter().flatten() {
                    let agent = s["id"].as_str().map(|id| agents[id].clone());
                    if let (Some(s), Some(serde_json::Value::Object(agent))) =
                        (s.as_object_mut(), agent)
                    {
                        s.extend(agent);
                    }
                }
                let text =
                    serde_json::to_string_pretty(&list).map_err(|e| CliError::Failed(e.into()))?;
                println!("{text}");
            } else {
                print!("{}", sessions_table(&all));
                print!("{}", questions_text(&agents));
            }
            Ok(())
        }
        Verb::Answer { question, option } => {
            let request = Request::Answer { question, option };
            match daemon_message(config, &request).await? {
                Some(m) => println!("{m}"),
                None => {
                    return Err(CliError::Failed(anyhow::anyhow!(
                        "the daemon is not running: questions are read off the agents' screens by `tmuxd serve`"
                    )))
                }
            }
            Ok(())
        }
        Verb::New {
            id,
            worktree,
            branch,
        } => {
            let server = server_for(config, &id)?;
            let request = Request::New {
                id: id.to_string(),
                worktree,
                branch,
            };
            match daemon_message(config, &request).await? {
                Some(said) => println!("{said}"),
                None if worktree => {
                    return Err(CliError::Failed(anyhow::anyhow!(
                    "the daemon is not running: --worktree needs it (start it with `tmuxd serve`)"
                )))
                }
                None => {
                    server.create(&id.session).await?;
                    eprintln!("tmuxd: the daemon is not running; created {id} directly (the next `tmuxd serve` adopts it)");
                    println!("created {id}");
                }
            }
            Ok(())
        }
        Verb::Kill {
            id,
            remove_worktree,
        } => {
            let server = server_for(config, &id)?;
            let request = Request::Kill {
                id: id.to_string(),
                remove_worktree,
            };
            match daemon_message(config, &request).await? {
                Some(said) => println!("{said}"),
                None => {
                    server.kill(&id.session).await?;
                    println!("killed {id} (the daemon is not running: a worktree of the session is kept)");
                }
            }
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
                server
                    .send(&id.session, &text, !no_enter)
                    .await
                    .map_err(missing_without_daemon)?;
                eprintln!("tmuxd: the daemon is not running; typed into {id} directly");
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
        Verb::MailIngest { .. } => mail_ingest(config).await,
        Verb::Serve
        | Verb::Doctor
        | Verb::CheckConfig
        | Verb::DefaultConfig
        | Verb::Init { .. }
        | Verb::Logins { .. }
        | Verb::RouterConfig { .. }
        | Verb::TmuxHost { .. }
        | Verb::Attach { .. }
        | Verb::MailLog { .. }
        | Verb::MailAddress { .. }
        | Verb::Token { .. }
        | Verb::Hook
        | Verb::WorkspaceHelper { .. }
        | Verb::SandboxRun { .. }
        | Verb::SandboxExec { .. }
        | Verb::Put { .. }
        | Verb::Get { .. }
        | Verb::Snapshot { .. }
        | Verb::Snapshots { .. }
        | Verb::Rollback { .. } => {
            unreachable!("handled in run")
        }
    }
}

/// Sends `request` to the daemon. False when no daemon is running.
pub(super) async fn via_daemon(config: &Config, request: &Request) -> Result<bool, CliError> {
    Ok(daemon_message(config, request).await?.is_some())
}

/// The daemon's answer to `request`; `None` when no daemon runs.
pub(super) async fn daemon_message(
    config: &Config,
    request: &Request,
) -> Result<Option<String>, CliError> {
    let r = control::request(&config.control_socket(), request)
        .await
        .map_err(unreachable(config))?;
    r.map(daemon_answer).transpose()
}

pub(super) fn attach(
    config: &Config,
    id: Option<SessionId>,
    read_only: bool,
) -> Result<(), CliError> {
    let id = &match (id, config.users.as_slice()) {
        (Some(id), _) => id,
        (None, [only]) => SessionId::new(only.name.clone(), Name::main()),
        (None, _) => {
            return Err(CliError::BadInput(format!(
                "say which session: `tmuxd attach USER[/SESSION]` (users: {})",
                user_names(config)
            )))
        }
    };
    let server = server_for(config, id)?;
    let exists = runtime(false)?
        .block_on(server.tmux.has_session(&id.session))
        .map_err(SessionError::from)?;
    if !exists {
        let request = Request::Ping;
        let daemon = runtime(false)?.block_on(via_daemon(config, &request))?;
        let missing = SessionError::NoSuchSession(id.clone());
        return Err(if daemon {
            missing.into()
        } else {
            missing_without_daemon(missing)
        });
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(CliError::BadInput(format!(
            "attach needs a terminal: run it from one (or open {id} on the web page)"
        )));
    }
    if server.tmux.account_ids().is_some() {
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

pub(super) fn token(
    config: &Config,
    user: Option<Name>,
    role: Role,
    list: bool,
    revoke: Option<String>,
) -> Result<(), CliError> {
    let store = TokenStore::new(token_path(&config.state_dir));
    let failed = |e: crate::auth::TokenError| CliError::Failed(e.into());
    if list {
        let tokens = store.list().map_err(failed)?;
        if tokens.is_empty() {
            eprintln!("tmuxd: no tokens yet; `tmuxd token USER` issues one");
            return Ok(());
        }
        println!("{:<16}  {:<16} {:<10} CREATED", "ID", "USER", "ROLE");
        for (id, user, role, created) in tokens {
            println!(
                "{id:<16}  {user:<16} {:<10} {}",
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
    let user = match (user, config.users.as_slice()) {
        (Some(user), _) => user,
        (None, [only]) => only.name.clone(),
        (None, _) => {
            return Err(CliError::BadInput(format!(
                "say whose token: `tmuxd token USER` (users: {}), or `tmuxd token --list`, or `tmuxd token --revoke ID`",
                user_names(config)
            )))
        }
    };
    if config.user(&user).is_none() {
        return Err(no_such_user(config, &user));
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

/// The questions agents wait on, with how to answer them.
fn questions_text(agents: &serde_json::Value) -> String {
    let mut out = String::new();
    for (id, agent) in agents.as_object().into_iter().flatten() {
        let q = &agent["question"];
        let Some(text) = q["text"].as_str() else {
            continue;
        };
        out.push_str(&format!("\n{id} asks: {text}\n"));
        for line in q["detail"].as_array().into_iter().flatten() {
            out.push_str(&format!("    {}\n", line.as_str().unwrap_or("")));
        }
        for o in q["options"].as_array().into_iter().flatten() {
            let (key, label) = (
                o["key"].as_str().unwrap_or(""),
                o["label"].as_str().unwrap_or(""),
            );
            out.push_str(&format!("  {key}. {label}\n"));
        }
        out.push_str(&format!(
            "  answer: tmuxd answer {} OPTION\n",
            q["id"].as_str().unwrap_or("")
        ));
    }
    out
}

pub(super) fn sessions_table(list: &[SessionInfo]) -> String {
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|s| {
            [
                s.id.to_string(),
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

/// `tmuxd logins [--revoke ID]`.
pub(super) fn logins(config: &Config, revoke: Option<String>) -> Result<(), CliError> {
    let path = config.state_dir.join("logins.json");
    let failed = |e: std::io::Error| CliError::Failed(anyhow::anyhow!("{}: {e}", path.display()));
    if let Some(id) = revoke {
        return match crate::logins::revoke(&path, &id).map_err(failed)? {
            true => {
                println!("revoked login {id}");
                Ok(())
            }
            false => Err(CliError::BadInput(format!(
                "no login {id:?}: `tmuxd logins` lists them (give the whole 12-character id)"
            ))),
        };
    }
    let listed = crate::logins::list(&path).map_err(failed)?;
    if listed.is_empty() {
        eprintln!("tmuxd: no logins; the page makes one when someone signs in");
        return Ok(());
    }
    println!("{:<12}  {:<24} {:<8} EXPIRES", "ID", "WHO", "VIA");
    for l in listed {
        println!(
            "{:<12}  {:<24} {:<8} {}",
            l.id,
            l.who,
            l.via,
            iso8601(l.expires)
        );
    }
    Ok(())
}

/// Which router `router-config` writes for.
pub(super) enum Router {
    Nginx,
    Haproxy,
    Postfix,
}

impl Router {
    /// From the flags (exactly one is set: clap's group).
    pub(super) fn of(nginx: bool, haproxy: bool) -> Router {
        match (nginx, haproxy) {
            (true, _) => Router::Nginx,
            (_, true) => Router::Haproxy,
            _ => Router::Postfix,
        }
    }
}

/// `tmuxd router-config --nginx|--haproxy|--postfix`: from `--cluster
/// FILE`, else the config's `[cluster] file`.
pub(super) fn router_config(
    config: Option<&Config>,
    file: Option<&std::path::Path>,
    router: Router,
    listen: &str,
) -> Result<(), CliError> {
    let (cluster, source) = match (file, config.and_then(|c| c.cluster.as_ref())) {
        (Some(f), _) => (
            crate::cluster::Cluster::load(f)
                .map_err(|p| CliError::BadInput(format!("{}: {}", f.display(), p.join("; "))))?,
            f.to_owned(),
        ),
        (None, Some(c)) => (c.cluster.clone(), c.file.clone()),
        (None, None) => {
            return Err(CliError::BadInput(format!(
                "no cluster: give --cluster FILE, or set [cluster] file and node in {}",
                config.map(|c| c.origin.as_str()).unwrap_or("the config")
            )))
        }
    };
    let source = source.display().to_string();
    let text = match router {
        Router::Postfix => {
            crate::cluster::postfix::transport(&cluster, &source).map_err(CliError::BadInput)?
        }
        Router::Nginx => crate::cluster::nginx::config(&cluster, listen, &source),
        Router::Haproxy => crate::cluster::haproxy::config(&cluster, listen, &source),
    };
    print!("{text}");
    Ok(())
}
