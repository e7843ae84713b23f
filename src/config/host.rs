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
}

impl HostDefaults {
    pub fn detect() -> HostDefaults {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| passwd_home(nix::unistd::getuid()))
            .unwrap_or_else(|| PathBuf::from("/"));
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
        }
    }
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
    /// Checks what needs the machine: each workdir is a directory and each
    /// `unix_user` exists.
    pub fn check_host(&self) -> Result<(), ConfigError> {
        for (i, u) in self.users.iter().enumerate() {
            let err = |k: &str, reason: String| ConfigError {
                origin: self.origin.clone(),
                key: format!("users[{i}].{k}"),
                reason,
            };
            match std::fs::metadata(&u.workdir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(err(
                        "workdir",
                        format!("{} is not a directory", u.workdir.display()),
                    ))
                }
                Err(e) => {
                    return Err(err(
                        "workdir",
                        format!("{}: {}", u.workdir.display(), io_reason(&e)),
                    ))
                }
            }
            let me = nix::unistd::geteuid();
            match &u.unix_user {
                None if me.is_root() && !self.allow_root_agents => {
                    return Err(err(
                        "unix_user",
                        "the daemon runs as root: name the Unix account this user's agent runs as (unix_user = \"root\", or [daemon] allow_root_agents = true, only on purpose)".into(),
                    ))
                }
                None => {}
                Some(unix_user) => {
                    let target = match nix::unistd::User::from_name(unix_user) {
                        Ok(Some(target)) => target,
                        _ => return Err(err("unix_user", format!("no such Unix user {unix_user:?}"))),
                    };
                    // Only root can start processes as someone else.
                    if !me.is_root() && target.uid != me {
                        return Err(err(
                            "unix_user",
                            format!("{unix_user:?} is not the user running tmuxd (uid {me}); only a daemon running as root can run agents as other users"),
                        ));
                    }
                }
            }
        }
        self.check_roots()?;
        self.check_shared_dirs()
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

    /// No other user can swap or pre-create the daemon's directories.
    fn check_roots(&self) -> Result<(), ConfigError> {
        for (key, dir, _) in self.roots() {
            crate::roots::check_parents(dir)
                .and_then(|()| crate::roots::check_existing(dir))
                .map_err(|reason| ConfigError {
                    origin: self.origin.clone(),
                    key: key.to_owned(),
                    reason,
                })?;
        }
        Ok(())
    }

    /// When agents run as other accounts, their tmux servers must reach
    /// their socket and spool directories, while STATE_DIR stays private.
    fn check_shared_dirs(&self) -> Result<(), ConfigError> {
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
            return Ok(());
        }
        let err = |key: &str, reason: String| ConfigError {
            origin: self.origin.clone(),
            key: key.to_owned(),
            reason,
        };
        let dirs = [
            ("daemon.runtime_dir", &self.runtime_dir),
            ("transcript.spool_dir", &self.transcript.spool_dir),
        ];
        for (key, dir) in dirs {
            if key == "transcript.spool_dir" && !self.transcript.enabled {
                continue;
            }
            if dir.starts_with(&self.state_dir) {
                return Err(err(
                    key,
                    format!(
                        "{} is inside state_dir ({}), which is private to the daemon; agents running as their own users need it elsewhere, e.g. /run/tmuxd",
                        dir.display(),
                        self.state_dir.display()
                    ),
                ));
            }
            for ancestor in dir.ancestors().skip(1) {
                if let Ok(m) = std::fs::metadata(ancestor) {
                    if m.permissions().mode() & 0o001 == 0 {
                        return Err(err(
                            key,
                            format!(
                                "{} is not searchable by other users (mode {:o}), so agents running as their own users cannot reach {}",
                                ancestor.display(),
                                m.permissions().mode() & 0o777,
                                dir.display()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
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
