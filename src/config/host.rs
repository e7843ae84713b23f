//! What needs the machine: the defaults it gives (login, home, state
//! dir, agent) and the checks against it (workdirs, accounts, the
//! daemon's directories, directories users must reach).

use super::*;

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
    /// A tmpfs directory for spools when the config leaves the
    /// directories to their defaults (see [`tmpfs_spool`]).
    pub spool_dir: Option<PathBuf>,
}

impl HostDefaults {
    pub fn detect() -> HostDefaults {
        let home = home_dir();
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
            spool_dir: tmpfs_spool(),
        }
    }
}

/// This account's home: `$HOME`, else its passwd entry's, else `/`.
pub(super) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| passwd_home(nix::unistd::getuid()))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Whether `dir` is on a tmpfs.
pub fn on_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// Where spools go on this machine's tmpfs, first that applies: as root,
/// `/run/tmuxd/spool` when /run is a tmpfs (reachable by the users' tmux
/// servers); else the login session's `$XDG_RUNTIME_DIR/tmuxd/spool`
/// (ours, a tmpfs); then `/dev/shm/tmuxd-UID/spool` (a root-owned sticky
/// tmpfs, as in containers). `None`: no tmpfs.
pub fn tmpfs_spool() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid();
    if me.is_root() {
        if on_tmpfs(Path::new("/run")) {
            return Some("/run/tmuxd/spool".into());
        }
    } else if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && on_tmpfs(d))
        .filter(|d| {
            d.metadata()
                .is_ok_and(|m| m.is_dir() && m.uid() == me.as_raw())
        })
    {
        return Some(dir.join("tmuxd/spool"));
    }
    let shm = Path::new("/dev/shm");
    let sticky = shm
        .metadata()
        .is_ok_and(|m| m.is_dir() && m.uid() == 0 && m.mode() & 0o1000 != 0);
    (sticky && on_tmpfs(shm)).then(|| shm.join(format!("tmuxd-{me}/spool")))
}

pub(super) fn passwd_home(uid: nix::unistd::Uid) -> Option<PathBuf> {
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
    /// Checks what needs the machine: each workdir is a directory, each
    /// agent program exists, each `unix_user` exists and can be switched
    /// to, and the daemon's directories are safe and reachable.
    pub fn check_host(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        self.host_problems(&mut p);
        p.finish(&self.origin, ())
    }

    /// Records what [`Config::check_host`] finds (and, when the file is
    /// still the printed example, says so once there is any problem).
    pub(super) fn host_problems(&self, p: &mut Problems) {
        let me = nix::unistd::geteuid();
        self.sandbox_problems(p);
        let mut agent_checked = false;
        for u in &self.users {
            let key = |k: &str| format!("users[{}].{k}", u.index);
            match std::fs::metadata(&u.workdir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => p.add(
                    key("workdir"),
                    format!("{} is not a directory", u.workdir.display()),
                ),
                Err(e) => p.add(
                    key("workdir"),
                    format!("{}: {}", u.workdir.display(), io_reason(&e)),
                ),
            }
            // A user's command is [agent]'s unless they give their own:
            // a missing [agent] program is named once, at its key.
            let inherited = u.command == self.agent_command;
            if !(inherited && agent_checked) {
                let at = if inherited {
                    "agent.command".to_owned()
                } else {
                    key("command")
                };
                p.check(&at, check_program(&u.command[0]));
                agent_checked |= inherited;
            }
            match &u.unix_user {
                None if me.is_root() && !self.allow_root_agents => p.add(
                    key("unix_user"),
                    "the daemon runs as root: name the Unix account this user's agent runs as (unix_user = \"root\", or [daemon] allow_root_agents = true, only on purpose)",
                ),
                None => {}
                Some(unix_user) => match nix::unistd::User::from_name(unix_user) {
                    Ok(Some(target)) if !me.is_root() && target.uid != me => p.add(
                        key("unix_user"),
                        format!("{unix_user:?} is not the user running tmuxd (uid {me}); only a daemon running as root can run agents as other users"),
                    ),
                    Ok(Some(_)) => {}
                    _ => p.add(key("unix_user"), format!("no such Unix user {unix_user:?}")),
                },
            }
        }
        for (key, dir, _) in self.roots() {
            let checked =
                crate::roots::check_parents(dir).and_then(|()| crate::roots::check_existing(dir));
            p.check(key, checked);
        }
        self.check_shared_dirs(p);
        if let Some(group) = self.mail.as_ref().and_then(|m| m.ingest_group.as_deref()) {
            check_ingest_group(p, group);
        }
        if self.example && !p.is_empty() {
            p.add("(example)", "this file is still the example from `tmuxd default-config`: its users (alice, bob), accounts and directories are examples; replace them with this machine's, or write a config for it with `tmuxd init`");
        }
    }

    /// The users whose agents a root daemon runs as root without naming
    /// an account (`allow_root_agents`, or the embedded default's user):
    /// the documented exception, said by `serve`, `check-config` and
    /// `doctor`.
    pub fn root_agents(&self) -> Vec<&Name> {
        if !nix::unistd::geteuid().is_root() || !self.allow_root_agents {
            return Vec::new();
        }
        self.users
            .iter()
            .filter(|u| u.unix_user.is_none())
            .map(|u| &u.name)
            .collect()
    }

    /// What `serve`, `check-config` and `doctor` say about
    /// [`Config::root_agents`], if anything.
    pub fn root_agents_note(&self) -> Option<String> {
        let names: Vec<&str> = self.root_agents().iter().map(|n| n.as_str()).collect();
        if names.is_empty() {
            return None;
        }
        let why = if self.default_user {
            "the default config's user runs as the account that started tmuxd"
        } else {
            "[daemon] allow_root_agents = true"
        };
        Some(format!(
            "the agent of {} runs as root ({why}): a login token for it is a root shell; to run agents as accounts of their own, `tmuxd init --user ACCOUNT` writes a config that names each unix_user",
            names.join(", ")
        ))
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

    /// When agents run as other accounts, their tmux servers must reach
    /// their socket and spool directories, while STATE_DIR stays private.
    fn check_shared_dirs(&self, p: &mut Problems) {
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
            return;
        }
        let mut dirs = vec![("daemon.runtime_dir", &self.runtime_dir)];
        if self.transcript.enabled {
            dirs.push(("transcript.spool_dir", &self.transcript.spool_dir));
        }
        for (key, dir) in dirs {
            if dir.starts_with(&self.state_dir) {
                p.add(key, format!(
                    "{} is inside state_dir ({}), which is private to the daemon; agents running as their own users need it elsewhere, e.g. /run/tmuxd",
                    dir.display(),
                    self.state_dir.display()
                ));
                continue;
            }
            let closed = dir.ancestors().skip(1).find_map(|a| {
                let mode = std::fs::metadata(a).ok()?.permissions().mode();
                (mode & 0o001 == 0).then_some((a, mode))
            });
            if let Some((ancestor, mode)) = closed {
                p.add(key, format!(
                    "{} is not searchable by other users (mode {:o}), so agents running as their own users cannot reach {}",
                    ancestor.display(),
                    mode & 0o777,
                    dir.display()
                ));
            }
        }
    }
}

/// `[mail] ingest_group` exists, and the daemon can give the mail socket
/// to it (root can; another account only to a group of its own).
fn check_ingest_group(p: &mut Problems, group: &str) {
    let key = "mail.ingest_group";
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => {
            let mine = nix::unistd::getgroups().is_ok_and(|gs| gs.contains(&g.gid))
                || nix::unistd::getegid() == g.gid;
            if !nix::unistd::geteuid().is_root() && !mine {
                p.add(key, format!("the daemon's account is not in group {group}, so it cannot give the mail socket to it: run the daemon as root, or as a member"));
            }
        }
        _ => p.add(key, format!(
            "no such group {group:?}: create it (`groupadd --system {group}`) and add the MTA's pipe account to it (`usermod -aG {group} ACCOUNT`)"
        )),
    }
}

/// Why the agent program `program` cannot be started, if it cannot: a
/// path must be an executable file; a bare name must be on PATH (the
/// daemon's, which its agents inherit).
pub fn check_program(program: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if !program.contains('/') {
        return match find_in_path(program) {
            Some(_) => Ok(()),
            None => Err(format!(
                "the agent program {program:?} is not on PATH ({}): install it, or give its absolute path",
                std::env::var("PATH").unwrap_or_default()
            )),
        };
    }
    match std::fs::metadata(program) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!(
            "the agent program {program} is not an executable file"
        )),
        Err(e) => Err(format!("the agent program {program}: {}", io_reason(&e))),
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
