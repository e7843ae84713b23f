//! Verbs that run without reading the config: the helpers tmuxd's own
//! processes run as other accounts (the agent's hook, the workspace
//! helper, the sandbox's two steps, an MTA's `mail-ingest --socket`), the
//! tmux host, and
//! `router-config --cluster FILE`, which any machine can run.

use super::verbs::{router_config, Router};
use super::{mail, runtime, Cli, CliError, Verb};

/// Runs `cli` if it is one of these verbs (its outcome); else `None`.
pub(super) fn without_config(cli: &Cli) -> Option<Result<(), CliError>> {
    if let Verb::Hook = cli.verb {
        // Runs as the agent's user, who may not read the config.
        crate::hooks::run_hook_command();
        return Some(Ok(()));
    }
    if let Verb::WorkspaceHelper { request } = &cli.verb {
        // Runs as the session's user, who may not read the config.
        std::process::exit(crate::workspace::helper::main(request));
    }
    if let Verb::SandboxRun { plan, argv } = &cli.verb {
        // As the agent's user, who may not read the config.
        std::process::exit(crate::sandbox::run::main(plan, argv));
    }
    if let Verb::SandboxExec {
        net_socket,
        session,
        forward,
        argv,
    } = &cli.verb
    {
        std::process::exit(crate::sandbox::bridge::main(crate::sandbox::bridge::Exec {
            net_socket: net_socket.clone(),
            session: session.clone(),
            forward: forward.clone(),
            argv: argv.clone(),
        }));
    }
    if let Verb::TmuxHost { socket } = &cli.verb {
        // Reads no config: a daemon elsewhere names its socket.
        return Some(
            crate::tmux::host::serve(socket)
                .map_err(|e| CliError::Failed(anyhow::anyhow!("{}: {e}", socket.display()))),
        );
    }
    if let Verb::RouterConfig {
        cluster: Some(file),
        nginx,
        haproxy,
        listen,
        ..
    } = &cli.verb
    {
        // The cluster file alone: any machine can make a router's config.
        return Some(router_config(
            None,
            Some(file),
            Router::of(*nginx, *haproxy),
            listen,
        ));
    }
    if let Verb::MailIngest {
        socket: Some(socket),
    } = &cli.verb
    {
        // An MTA's pipe account, which need not read the config.
        return Some(
            runtime(false)
                .and_then(|rt| rt.block_on(mail::ingest_to(socket, mail::MAX_MESSAGE, false))),
        );
    }
    None
}
