//! What a session's agent pane runs: the launcher (see [`super`]),
//! the agent's argv and environment (hooks, variables, secret files), and
//! its sandbox when it has one.

use super::*;

/// The pane's launcher. `$0` is the gate channel, `$1` the tmux binary,
/// the rest the agent argv. Secrets (`TMUXD_SECRET_FILES`: lines of NAME
/// FILE) are read here, as the user, and exported to the agent alone: their
/// values are in no argv and no tmux environment. A status above 128 is
/// how sh reports a signal.
const LAUNCHER: &str = r#"gate=$0; tmux=$1; shift
"$tmux" wait-for "$gate" 2>/dev/null
if [ -n "${TMUXD_SECRET_FILES:-}" ]; then
  while read -r name file; do
    [ -n "$name" ] || continue
    if value=$(cat -- "$file" 2>/dev/null); then export "$name=$value"
    else printf '\ntmuxd: cannot read the secret %s from %s (it must be readable by this account)\n' "$name" "$file"; fi
  done <<TMUXD_END
$TMUXD_SECRET_FILES
TMUXD_END
  unset TMUXD_SECRET_FILES value
fi
if command -v "$1" >/dev/null 2>&1; then
  trap : INT QUIT TSTP
  "$@"
  st=$?
  trap - INT QUIT TSTP
else
  printf '\ntmuxd: cannot start the agent: %s: command not found\n' "$1"
  st=127
fi
if [ "$st" -gt 128 ] && [ "$st" -le 192 ]; then what="signal $((st - 128))"; else what="status $st"; fi
"$tmux" set-option -t "$TMUX_PANE" @tmuxd_last_exit "$what at $(date +%s)" 2>/dev/null
printf '\n[tmuxd] the agent exited (%s)\n' "$what"
exit "$st""#;

impl UserServer {
    /// The agent's argv and environment for session `name` working in
    /// `workdir`, and its sandbox: with hooks, the agent is told where to
    /// report (on its command line, its own settings files untouched);
    /// sandboxed, the argv runs in `tmuxd sandbox-run`.
    pub(super) fn agent(
        &self,
        name: &Name,
        workdir: &Path,
    ) -> (Vec<String>, Vec<String>, Option<crate::sandbox::Summary>) {
        let (argv, env) = self.agent_unsandboxed(name);
        let policy = self.user.sandbox_of(name);
        if !policy.enabled {
            return (argv, env, None);
        }
        let plan = crate::sandbox::Plan {
            bwrap: self.sandbox_tool.clone().unwrap_or_else(|| "bwrap".into()),
            session: self.id(name).to_string(),
            workdir: workdir.to_owned(),
            network: policy.network.clone(),
            writable: policy.writable.clone(),
            agent_dirs: crate::sandbox::agent_dirs(&self.user.profile)
                .iter()
                .map(|d| d.to_string())
                .collect(),
            agent_files: crate::sandbox::agent_files(&self.user.profile)
                .iter()
                .map(|d| d.to_string())
                .collect(),
            hide: self.sandbox_hide.clone(),
            expose: self.hook_socket.iter().cloned().collect(),
            net_socket: matches!(policy.network, crate::sandbox::Network::Allow(_))
                .then(|| self.net_socket.clone()),
        };
        let summary = plan.summary();
        (plan.wrap(&crate::sandbox::exe(), argv), env, Some(summary))
    }

    fn agent_unsandboxed(&self, name: &Name) -> (Vec<String>, Vec<String>) {
        let mut argv = self.user.command.clone();
        // Every viewer's terminal (xterm.js) shows 24-bit colour, and tmux
        // passes it on (terminal-features RGB, set on the server).
        let mut env = vec!["COLORTERM=truecolor".to_owned()];
        let user_env = self.user.env_of(name);
        env.extend(user_env.vars.iter().map(|(k, v)| format!("{k}={v}")));
        if !user_env.secrets.is_empty() {
            let files: Vec<String> = user_env
                .secrets
                .iter()
                .map(|(k, f)| match crate::credentials::name_of(f) {
                    Some(c) => {
                        let copy = crate::credentials::copy_path(
                            &self.credentials_dir,
                            &self.user.name,
                            c,
                        );
                        format!("{k} {}", copy.display())
                    }
                    None => format!("{k} {}", f.display()),
                })
                .collect();
            env.push(format!("TMUXD_SECRET_FILES={}", files.join("\n")));
        }
        let Some(socket) = &self.hook_socket else {
            return (argv, env);
        };
        argv.extend(crate::hooks::agent_args(&self.user.profile));
        env.push(format!("{}={}", crate::hooks::ENV_SOCKET, socket.display()));
        env.push(format!("{}={}", crate::hooks::ENV_SESSION, self.id(name)));
        (argv, env)
    }

    pub(super) fn launcher_argv(&self, gate: &str, agent: &[String]) -> Vec<String> {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            LAUNCHER.to_owned(),
            gate.to_owned(),
            self.tmux_bin.to_string_lossy().into_owned(),
        ];
        argv.extend(agent.iter().cloned());
        argv
    }
}

/// Records how session `name`'s agent is sandboxed (for listings), or
/// that it is not.
pub(super) fn sandbox_option(name: &Name, sandbox: Option<&crate::sandbox::Summary>) -> Command {
    match sandbox {
        Some(s) => Command::set_session_option(
            name,
            OPT_SANDBOX,
            &serde_json::to_string(s).expect("a summary is JSON"),
        ),
        None => Command::unset_session_option(name, OPT_SANDBOX),
    }
}
