//! `tmuxd doctor`: checks what tmuxd depends on (tmux, the config, its
//! directories and their owners and modes, the transcript database, the
//! daemon) and prints each problem with the command or edit that fixes it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::{Config, ConfigError, Inspected};

/// One check's outcome.
pub struct Finding {
    pub ok: bool,
    pub what: String,
    pub fix: Option<String>,
    /// Fine, but worth saying (printed as `note`).
    pub note: bool,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        what: what.into(),
        fix: None,
        note: false,
    }
}

/// Fine, with something the operator should know.
fn note_finding(what: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        what: what.into(),
        fix: None,
        note: true,
    }
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        ok: false,
        what: what.into(),
        fix: Some(fix.into()),
        note: false,
    }
}

/// Runs every check.
pub async fn check(config: Result<Inspected, ConfigError>) -> Vec<Finding> {
    let mut out = Vec::new();
    match crate::tmux::check_version() {
        Ok((a, b)) => out.push(ok(format!("tmux {a}.{b} is installed"))),
        Err(e) => out.push(problem(
            e,
            "install tmux 3.2 or newer (Debian/Ubuntu: apt install tmux)",
        )),
    }
    let inspected = match config {
        Ok(i) => i,
        Err(e) => {
            config_problems(&mut out, &e);
            return out;
        }
    };
    let config = inspected.config.clone();
    match inspected.checked() {
        Ok(_) => {
            out.push(ok(format!(
                "config {}: every key, workdir, agent program, Unix account and shared directory checks out",
                config.origin
            )));
            let sandboxed = config.users.iter().filter(|u| u.any_sandbox()).count();
            if let (Some(bwrap), 1..) = (&config.sandbox_tool, sandboxed) {
                out.push(ok(format!(
                    "{} makes sandboxes as the account of each of the {sandboxed} sandboxed user(s)",
                    bwrap.display()
                )));
            }
        }
        Err(e) => config_problems(&mut out, &e),
    }
    if let Some(note) = config.root_agents_note() {
        out.push(note_finding(note));
    }
    private_dir(&mut out, &config.state_dir, None, "state directory");
    for user in &config.users {
        let account = user
            .unix_user
            .as_deref()
            .filter(|_| nix::unistd::geteuid().is_root());
        private_dir(
            &mut out,
            &config.user_socket_dir(&user.name),
            account,
            "socket directory",
        );
        secret_files(&mut out, user, account);
    }
    let daemon = crate::control::request(&config.control_socket(), &crate::control::Request::Ping)
        .await
        .ok()
        .flatten()
        .is_some();
    out.push(ok(if daemon {
        format!(
            "the daemon answers on {}",
            config.control_socket().display()
        )
    } else {
        "the daemon is not running (sessions keep running without it)".to_owned()
    }));
    if config.transcript.enabled {
        let db = config.transcript_db();
        if daemon {
            out.push(ok(format!(
                "transcript database {} is in use by the daemon",
                db.display()
            )));
        } else if db.exists() {
            match crate::transcript::Store::open(&db) {
                Ok(_) => out.push(ok(format!("transcript database {} opens", db.display()))),
                Err(e @ crate::transcript::StoreError::InUse(_)) => out.push(ok(e.to_string())),
                Err(e) => out.push(problem(
                    e.to_string(),
                    format!("stop tmuxd, then `mv {0} {0}.damaged` and start it again (see README: A damaged database)", db.display()),
                )),
            }
        }
        spool_on_tmpfs(&mut out, &config);
    }
    mail(&mut out, &config, daemon);
    shared_secrets(&mut out, &config);
    out
}

/// One finding per problem of a config, each with its fix.
fn config_problems(out: &mut Vec<Finding>, e: &ConfigError) {
    for p in &e.problems {
        out.push(problem(
            format!("{}: {}: {}", e.origin, p.key, p.reason),
            e.fix(p),
        ));
    }
}

/// The shared secrets of proxy sign-in, webhooks and the OIDC client:
/// there, not empty, and private.
fn shared_secrets(out: &mut Vec<Finding>, config: &Config) {
    let proxy = config
        .web
        .proxy_auth
        .iter()
        .map(|a| ("web.proxy_auth.secret_file".to_owned(), &a.secret_file));
    let hooks = config.webhooks.iter().enumerate().filter_map(|(i, w)| {
        let file = w.secret_file.as_ref()?;
        Some((format!("webhooks[{i}].secret_file"), file))
    });
    let oidc = config
        .web
        .oidc
        .iter()
        .filter_map(|o| o.client_secret_file.as_ref())
        .map(|f| ("web.oidc.client_secret_file".to_owned(), f));
    for (key, path) in proxy.chain(hooks).chain(oidc) {
        let file = path.display();
        match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 || !m.is_file() => out.push(problem(
                format!("{key} {file} is empty or not a file"),
                format!("put the shared secret in {file} (e.g. `head -c 32 /dev/urandom | base64 > {file}`), chmod 600"),
            )),
            Ok(m) if m.mode() & 0o077 != 0 => out.push(problem(
                format!("{key} {file} can be read by others (mode {:o})", m.mode() & 0o777),
                format!("chmod 600 {file}"),
            )),
            Ok(_) => out.push(ok(format!("{key} {file} is private"))),
            Err(e) => out.push(problem(
                format!("{key} {file}: {}", crate::config::io_reason(&e)),
                format!("write the shared secret to {file}, chmod 600"),
            )),
        }
    }
}

/// The email bridge: password files readable, the mail state directory.
fn mail(out: &mut Vec<Finding>, config: &Config, daemon: bool) {
    let Some(mail) = &config.mail else {
        out.push(ok("email bridge: off (no [mail] section)"));
        return;
    };
    let servers = [
        ("mail.smtp", Some(&mail.smtp)),
        ("mail.imap", mail.imap.as_ref().map(|i| &i.server)),
    ];
    for (key, server) in servers {
        let Some(server) = server else { continue };
        match crate::mail::outbox::read_password(server) {
            Ok(_) => out.push(ok(format!("{key}: {}:{} ({:?})", server.host, server.port, server.security))),
            Err(e) => out.push(problem(
                format!("{key}.password_file: {e}"),
                format!("put the password alone in that file, readable by the daemon (chmod 600), or fix {key}.password_file"),
            )),
        }
    }
    private_dir(
        out,
        &crate::mail::state::mail_dir(&config.state_dir),
        None,
        "mail state directory",
    );
    mta_path(out, config, daemon);
}

/// How the MTA hands mail over: the mail socket and its group, or (a root
/// daemon without IMAP) a note that an MTA's pipe cannot reach the daemon.
fn mta_path(out: &mut Vec<Finding>, config: &Config, daemon: bool) {
    use std::os::unix::fs::FileTypeExt;
    let Some(mail) = &config.mail else { return };
    let socket = config.mail_socket();
    let Some(group) = &mail.ingest_group else {
        if mail.imap.is_none() && nix::unistd::geteuid().is_root() {
            out.push(note_finding(format!(
                "mail arrives only by `tmuxd mail-ingest` as root or the daemon's account, and an MTA's pipe runs unprivileged: set [mail] ingest_group in {} (README: Email, delivery from the MTA)",
                config.origin
            )));
        }
        return;
    };
    // A missing group is a config problem, reported above.
    let Ok(Some(g)) = nix::unistd::Group::from_name(group) else {
        return;
    };
    if !daemon {
        return out.push(ok(format!(
            "group {group} (gid {}) may deliver mail to {} once the daemon runs",
            g.gid,
            socket.display()
        )));
    }
    match std::fs::symlink_metadata(&socket) {
        Ok(m)
            if m.file_type().is_socket()
                && m.gid() == g.gid.as_raw()
                && m.mode() & 0o777 == 0o660 =>
        {
            out.push(ok(format!(
                "mail socket {} is the daemon's, for group {group}",
                socket.display()
            )))
        }
        _ => out.push(problem(
            format!(
                "the daemon serves no mail socket at {} for group {group}",
                socket.display()
            ),
            "restart the daemon (`systemctl restart tmuxd`): it binds the socket on start",
        )),
    }
}

/// A directory that must be 0700 and owned by `account` (or us).
fn private_dir(out: &mut Vec<Finding>, dir: &Path, account: Option<&str>, what: &str) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        out.push(ok(format!(
            "{what} {} does not exist yet (created on start)",
            dir.display()
        )));
        return;
    };
    let want_uid = account
        .and_then(|a| nix::unistd::User::from_name(a).ok().flatten())
        .map(|u| u.uid.as_raw())
        .unwrap_or_else(|| nix::unistd::geteuid().as_raw());
    let owner_name = account
        .map(str::to_owned)
        .unwrap_or_else(|| want_uid.to_string());
    if !meta.is_dir() {
        out.push(problem(
            format!("{what} {} is not a directory", dir.display()),
            format!("remove {} and let tmuxd create it", dir.display()),
        ));
    } else if meta.uid() != want_uid {
        out.push(problem(
            format!(
                "{what} {} is owned by uid {}, not {owner_name}",
                dir.display(),
                meta.uid()
            ),
            format!("chown {owner_name} {}", dir.display()),
        ));
    } else if meta.permissions().mode() & 0o077 != 0 {
        out.push(problem(
            format!(
                "{what} {} is mode {:o}: others can reach it",
                dir.display(),
                meta.permissions().mode() & 0o777
            ),
            format!("chmod 700 {}", dir.display()),
        ));
    } else {
        out.push(ok(format!("{what} {} is private", dir.display())));
    }
}

/// Spools on a disk cost tmux extra writes (see README: Transcripts): the
/// fix names a tmpfs of this machine, in the file in use; without one,
/// a note.
fn spool_on_tmpfs(out: &mut Vec<Finding>, config: &Config) {
    let dir = &config.transcript.spool_dir;
    let probe = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if crate::config::on_tmpfs(probe) {
        return out.push(ok(format!(
            "spool directory {} is on a tmpfs",
            dir.display()
        )));
    }
    let what = format!(
        "spool directory {} is not on a tmpfs: recording makes tmux write every byte to disk",
        dir.display()
    );
    match crate::config::tmpfs_spool() {
        Some(tmpfs) => out.push(problem(
            what,
            format!(
                "{}: spool_dir = \"{}\" under [transcript] (a tmpfs on this machine)",
                crate::config::problems_fix(&config.origin, "transcript.spool_dir"),
                tmpfs.display()
            ),
        )),
        None => out.push(note_finding(format!(
            "{what}; this machine has no tmpfs to use (as root, `mount -t tmpfs -o mode=755 tmpfs DIR` and a line in /etc/fstab make one)"
        ))),
    }
}

/// Prints findings; returns whether all were fine.
pub fn print(findings: &[Finding]) -> bool {
    for f in findings {
        if f.note {
            println!("note     {}", f.what);
        } else if f.ok {
            println!("ok       {}", f.what);
        } else {
            println!("PROBLEM  {}", f.what);
            if let Some(fix) = &f.fix {
                println!("         fix: {fix}");
            }
        }
    }
    findings.iter().all(|f| f.ok)
}

/// Each of `user`'s secret files: a regular file, readable by the account
/// the agent runs as (owned by it when the daemon switches accounts), and
/// private (no group or other access).
fn secret_files(out: &mut Vec<Finding>, user: &crate::config::UserConfig, account: Option<&str>) {
    use std::os::unix::fs::MetadataExt;
    let owner = account
        .and_then(|a| nix::unistd::User::from_name(a).ok().flatten())
        .map(|u| u.uid.as_raw());
    // The user's, and each session's own (a file named twice is checked once).
    let mut files: Vec<(&String, &std::path::PathBuf)> = std::iter::once(&user.env)
        .chain(user.session_env.values())
        .flat_map(|env| env.secrets.iter())
        .collect();
    files.sort_by(|a, b| a.1.cmp(b.1));
    files.dedup_by(|a, b| a.1 == b.1);
    for (name, path) in files {
        if let Some(credential) = crate::credentials::name_of(path) {
            out.push(ok(format!(
                "{}'s secret {name} is the systemd credential {credential} (LoadCredential={credential}:PATH in tmuxd.service), copied for the agent when its sessions are set up",
                user.name
            )));
            continue;
        }
        let what = format!("{}'s secret {name} ({})", user.name, path.display());
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() => m,
            Ok(_) => {
                out.push(problem(
                    format!("{what} is not a regular file"),
                    "point the secret at a plain file that holds the value",
                ));
                continue;
            }
            Err(e) => {
                out.push(problem(
                    format!("{what}: {}", crate::config::io_reason(&e)),
                    format!(
                        "write the value to {} (one line), mode 0600",
                        path.display()
                    ),
                ));
                continue;
            }
        };
        if meta.mode() & 0o077 != 0 {
            out.push(problem(
                format!(
                    "{what} can be read by others (mode {:o})",
                    meta.mode() & 0o777
                ),
                format!("chmod 600 {}", path.display()),
            ));
        } else if owner.is_some_and(|u| u != meta.uid()) {
            let account = account.unwrap_or("");
            out.push(problem(
                format!("{what} belongs to uid {}, not to {account}", meta.uid()),
                format!("chown {account} {}", path.display()),
            ));
        } else {
            out.push(ok(format!("{what} is private")));
        }
    }
}
