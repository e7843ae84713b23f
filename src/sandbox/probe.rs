//! Whether bubblewrap works for an account: `check-config`, `serve` and
//! `doctor` run the agent's sandbox (with `true` for the agent) (new user, PID and network
//! namespaces, the system read-only) as the account the agents run as,
//! since kernels and security modules can forbid that for unprivileged
//! accounts (`kernel.unprivileged_userns_clone`, AppArmor's
//! `apparmor_restrict_unprivileged_userns`).

use std::path::Path;
use std::time::Duration;

/// How long the probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `bwrap` as `account` (uid, gid; `None`: this process's); the
/// reason it failed, with what to do.
pub fn check(bwrap: &Path, account: Option<(u32, u32)>) -> Result<(), String> {
    // The agent's own sandbox (network none, nothing of a home), running
    // `tmuxd sandbox-exec -- true`.
    let plan = super::Plan {
        bwrap: bwrap.to_owned(),
        session: String::new(),
        // Nothing to write: bound only if it exists, and it does not.
        workdir: "/nonexistent".into(),
        network: super::Network::None,
        writable: Vec::new(),
        agent_dirs: Vec::new(),
        agent_files: Vec::new(),
        hide: Vec::new(),
        expose: Vec::new(),
        net_socket: None,
    };
    let seen = super::run::Seen {
        cwd: "/".into(),
        ..Default::default()
    };
    let args = super::run::bwrap_args(&plan, &seen, &super::exe(), &["true".to_owned()]);
    let mut cmd = std::process::Command::new(bwrap);
    cmd.args(args.into_iter().filter_map(|a| match a {
        super::run::Arg::Text(t) => Some(t),
        _ => None,
    }))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .current_dir("/");
    if let Some((uid, gid)) = account {
        use std::os::unix::process::CommandExt;
        // SAFETY: async-signal-safe calls only.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| {
        format!(
            "cannot run {}: {e}; install bubblewrap (apt install bubblewrap)",
            bwrap.display()
        )
    })?;
    let out = crate::deadline::output_within(child, PROBE_TIMEOUT)
        .map_err(|e| format!("{}: {e}", bwrap.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{} cannot make a sandbox for this account ({}); allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu an AppArmor profile for bwrap)",
        bwrap.display(),
        err.trim()
    ))
}
