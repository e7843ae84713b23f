//! `tmuxd init`: a starting config for this machine, for people who
//! outgrow the embedded default. It names the users (each Unix account's
//! agent runs as that account under a root daemon), the state directory,
//! a spool on this machine's tmpfs and the agent found on PATH; checks the
//! file as `check-config` would; issues one login token per user; and
//! prints the next command.

use std::path::{Path, PathBuf};

use super::CliError;
use crate::auth::{token_path, Role, TokenStore};
use crate::config::{find_in_path, tmpfs_spool, Config, HostDefaults};
use crate::names::Name;

/// One user of the new config.
struct Account {
    name: Name,
    account: String,
    home: PathBuf,
    shell: PathBuf,
}

/// Writes the config to `path` (or where the CLI looks first), refusing
/// to replace a file unless `force`.
pub(super) fn init(
    path: Option<&PathBuf>,
    accounts: &[String],
    force: bool,
) -> Result<(), CliError> {
    let root = nix::unistd::geteuid().is_root();
    let path = path.cloned().unwrap_or_else(crate::config::init_target);
    if !path.is_absolute() {
        return Err(CliError::BadInput(format!(
            "--config {}: give an absolute path",
            path.display()
        )));
    }
    if path.exists() && !force {
        return Err(CliError::BadInput(format!(
            "{} exists: check it with `tmuxd check-config --config {0}`, or replace it with `tmuxd init --force`",
            path.display()
        )));
    }
    let users = accounts_for(accounts, root)?;
    let text = render(&users, root);
    write_config(&path, &text, root)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
    println!(
        "wrote {} ({} user{})",
        path.display(),
        users.len(),
        plural(users.len())
    );
    let config = Config::load(&path, &HostDefaults::detect())?;
    if let Err(e) = config.check_host() {
        return Err(CliError::BadInput(format!(
            "{e}\n(the file is written; fix the above in it, then `tmuxd check-config --config {}`)",
            path.display()
        )));
    }
    crate::roots::ensure(&config.state_dir, 0o700)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("state directory: {e}")))?;
    let store = TokenStore::new(token_path(&config.state_dir));
    for user in &config.users {
        let issued = store
            .issue(&user.name, Role::User)
            .map_err(|e| CliError::Failed(e.into()))?;
        println!(
            "login token for {} (shown only now): {}",
            user.name, issued.token
        );
    }
    let read_by_default = path == crate::config::init_target()
        || path == Path::new("/etc/tmuxd/config.toml")
        || path == crate::config::user_config_file();
    let serve = if read_by_default {
        "tmuxd serve".to_owned()
    } else {
        format!("tmuxd serve --config {}", path.display())
    };
    println!(
        "next: `{serve}`{}, then open http://{}/ and log in with a token above",
        if root {
            " (or, with the unit installed, `systemctl enable --now tmuxd`)"
        } else {
            ""
        },
        config.web.listen
    );
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The accounts named, or the caller's own; only root may name others.
fn accounts_for(names: &[String], root: bool) -> Result<Vec<Account>, CliError> {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name);
    let names: Vec<String> = match (names, root) {
        ([], false) => me.clone().into_iter().collect(),
        ([], true) => match std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty() && u != "root") {
            Some(sudo_user) => vec![sudo_user],
            None => {
                return Err(CliError::BadInput(
                    "name the Unix accounts whose agents this daemon runs: `tmuxd init --user ACCOUNT` (repeat for more); each agent runs as its account. Root's own agent needs no config: the embedded default runs it".into(),
                ))
            }
        },
        (names, _) => names.to_vec(),
    };
    let mut users: Vec<Account> = Vec::new();
    for account in names {
        let entry = match nix::unistd::User::from_name(&account) {
            Ok(Some(entry)) => entry,
            _ => {
                return Err(CliError::BadInput(format!(
                    "--user {account}: no such Unix account (create it with `useradd -m {account}`, or name an existing one)"
                )))
            }
        };
        if !root && Some(&account) != me.as_ref() {
            return Err(CliError::BadInput(format!(
                "--user {account}: only a daemon running as root can run agents as other accounts; run `sudo tmuxd init --user {account}`"
            )));
        }
        let name = Name::sanitize(&account);
        if users.iter().any(|u| u.name == name) {
            return Err(CliError::BadInput(format!(
                "--user {account}: named twice (as tmuxd user {name})"
            )));
        }
        users.push(Account {
            name,
            account,
            home: entry.dir,
            shell: entry.shell,
        });
    }
    Ok(users)
}

/// The config text: the directories, the agent, one `[[users]]` each.
fn render(users: &[Account], root: bool) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let path = |p: &Path| q(&p.to_string_lossy());
    let mut t = String::from(
        "# Written by `tmuxd init` for this machine; every key is explained in\n\
         # `tmuxd default-config`. Check it with `tmuxd check-config`.\n\n[daemon]\n",
    );
    if root {
        t.push_str("state_dir = \"/var/lib/tmuxd\"\nruntime_dir = \"/run/tmuxd\"\n");
    } else {
        t.push_str("# state_dir: $XDG_STATE_HOME/tmuxd, else ~/.local/state/tmuxd\n");
    }
    let claude = find_in_path("claude").is_some();
    t.push_str("\n[agent]\n");
    if claude {
        t.push_str("command = [\"claude\"]\n");
    } else {
        t.push_str("# claude is not on PATH: each user runs their login shell.\n");
    }
    t.push_str("\n[transcript]\n");
    match tmpfs_spool() {
        Some(dir) => t.push_str(&format!("spool_dir = {}   # on a tmpfs\n", path(&dir))),
        None => t.push_str("# no tmpfs found: spools go under the runtime directory\n"),
    }
    for u in users {
        t.push_str(&format!(
            "\n[[users]]\nname = {}\nworkdir = {}\n",
            q(u.name.as_str()),
            path(&u.home)
        ));
        if root {
            t.push_str(&format!("unix_user = {}\n", q(&u.account)));
        }
        if !claude {
            t.push_str(&format!("command = [{}]\n", path(&u.shell)));
        }
    }
    t
}

/// Creates `path` (and its directory) with the config: written beside,
/// then renamed.
fn write_config(path: &Path, text: &str, root: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))?;
    let mode = if root { 0o644 } else { 0o600 };
    crate::roots::write_whole(path, text.as_bytes(), mode, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_config_names_each_account_and_directories_users_reach() {
        let users = [Account {
            name: Name::new("alice").unwrap(),
            account: "alice".into(),
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
        }];
        let host = HostDefaults {
            state_dir: "/home/me/.local/state/tmuxd".into(),
            agent: vec!["/bin/sh".into()],
            home: "/home/me".into(),
            login: "me".into(),
            spool_dir: None,
        };
        let root = Config::parse(&render(&users, true), "t", &host).unwrap();
        assert_eq!(root.state_dir, Path::new("/var/lib/tmuxd"));
        assert_eq!(root.runtime_dir, Path::new("/run/tmuxd"));
        assert_eq!(root.users[0].unix_user.as_deref(), Some("alice"));
        assert_eq!(root.users[0].workdir, Path::new("/home/alice"));
        assert!(!root.allow_root_agents && !root.default_user);
        // Not root: the caller's own agent, in the default directories.
        let own = Config::parse(&render(&users, false), "t", &host).unwrap();
        assert_eq!(own.users[0].unix_user, None);
        assert_eq!(own.state_dir, host.state_dir);
    }
}
