//! Who a user's tmux commands run as: their account (uid, gid, groups,
//! environment) and resource limits, applied in the forked child; and the
//! systemd scope their tmux server is started in.

use std::path::PathBuf;

/// The Unix account a user's tmux server (and so their agents) runs as,
/// when the daemon is root; and their resource limits.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// `None`: the daemon's own account.
    pub account: Option<Account>,
    pub limits: crate::config::Limits,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub home: PathBuf,
    pub shell: PathBuf,
}

impl Identity {
    /// Runs the command as the user's account, with their environment and
    /// limits. Everything happens in `pre_exec` with async-signal-safe
    /// calls: std's own uid/gid switch would come first and leave us unable
    /// to set groups and limits.
    pub(super) fn apply(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let limits = self.limits;
        let account = self.account.clone();
        self.apply_env(cmd);
        if account.is_none() && limits.max_processes.is_none() && limits.max_open_files.is_none() {
            return;
        }
        let ids = account.map(|a| (a.uid, a.gid, a.groups));
        // SAFETY: only async-signal-safe libc calls on data prepared before
        // the fork; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                set_limits(limits)?;
                if let Some((uid, gid, groups)) = &ids {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(*gid) != 0
                        || libc::setuid(*uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// The account's environment (HOME, USER, ...), for a command that runs
    /// as them.
    pub(super) fn apply_env(&self, cmd: &mut std::process::Command) {
        let account = &self.account;
        if let Some(a) = account {
            cmd.current_dir("/")
                .env("HOME", &a.home)
                .env("USER", &a.name)
                .env("LOGNAME", &a.name)
                .env("SHELL", &a.shell)
                .env_remove("XDG_RUNTIME_DIR")
                .env_remove("XDG_CONFIG_HOME")
                .env_remove("XDG_STATE_HOME")
                .env_remove("XDG_DATA_HOME")
                .env_remove("MAIL");
        }
    }
}

/// rlimits for a user's processes (in a forked child, before exec).
fn set_limits(limits: crate::config::Limits) -> std::io::Result<()> {
    for (resource, value) in [
        (libc::RLIMIT_NPROC, limits.max_processes),
        (libc::RLIMIT_NOFILE, limits.max_open_files),
    ] {
        if let Some(v) = value {
            let lim = libc::rlimit {
                rlim_cur: v,
                rlim_max: v,
            };
            // SAFETY: setrlimit with a valid pointer to a local struct.
            if unsafe { libc::setrlimit(resource, &lim) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// `systemd-run --scope ...` arguments for a user's tmux server.
pub fn scope_args(unit: &str, identity: &Identity) -> Vec<String> {
    let mut args = vec![
        "systemd-run".to_owned(),
        "--scope".to_owned(),
        "--quiet".to_owned(),
        "--collect".to_owned(),
        format!("--unit={unit}"),
        "--slice=tmuxd.slice".to_owned(),
    ];
    let l = identity.limits;
    if let Some(mb) = l.memory_max_mb {
        args.push(format!("--property=MemoryMax={mb}M"));
    }
    if let Some(pct) = l.cpu_quota_percent {
        args.push(format!("--property=CPUQuota={pct}%"));
    }
    if let Some(n) = l.max_processes {
        args.push(format!("--property=TasksMax={n}"));
    }
    if let Some(a) = &identity.account {
        args.push(format!("--uid={}", a.uid));
        args.push(format!("--gid={}", a.gid));
    }
    args.push("--".to_owned());
    args
}

/// Whether to start tmux servers in systemd scopes: the daemon runs as a
/// systemd service on a systemd machine and can call systemd-run.
pub fn systemd_scopes_available() -> bool {
    std::path::Path::new("/run/systemd/system").exists()
        && std::env::var_os("INVOCATION_ID").is_some()
        && crate::config::find_in_path("systemd-run").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_arguments() {
        let identity = Identity {
            account: Some(Account {
                name: "alice".into(),
                uid: 1001,
                gid: 1002,
                groups: vec![1002],
                home: "/home/alice".into(),
                shell: "/bin/sh".into(),
            }),
            limits: crate::config::Limits {
                max_processes: Some(64),
                max_open_files: None,
                memory_max_mb: Some(2048),
                cpu_quota_percent: Some(150),
            },
        };
        assert_eq!(
            scope_args("tmuxd-alice-1", &identity),
            [
                "systemd-run",
                "--scope",
                "--quiet",
                "--collect",
                "--unit=tmuxd-alice-1",
                "--slice=tmuxd.slice",
                "--property=MemoryMax=2048M",
                "--property=CPUQuota=150%",
                "--property=TasksMax=64",
                "--uid=1001",
                "--gid=1002",
                "--"
            ]
        );
        assert_eq!(scope_args("u", &Identity::default()).len(), 7);
    }
}
