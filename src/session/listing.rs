//! What is on a user's tmux server: the sessions tmuxd manages, their
//! agent's state and last exit, parsed from one `list-sessions` plus
//! `list-panes` call.

use super::*;

impl UserServer {
    /// Every managed session on the user's server. `main` is always listed,
    /// as `stopped` when it does not exist.
    pub async fn list(&self) -> Result<Vec<SessionInfo>, SessionError> {
        const SESSION_FMT: &str = "S\t#{session_name}\t#{session_created}\t#{session_attached}\t#{@tmuxd_pane}\t#{@tmuxd_gate}\t#{@tmuxd_started}\t#{@tmuxd_last_exit}\t#{@tmuxd_restarts}\t#{session_activity}\t#{@tmuxd_workdir}\t#{@tmuxd_sandbox}";
        const PANE_FMT: &str =
            "P\t#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{pane_dead_time}\t#{pane_pipe}";
        let out = match self
            .tmux
            .run(&[
                Command::list_sessions(SESSION_FMT),
                Command::list_all_panes(PANE_FMT),
            ])
            .await
        {
            Ok(out) => out,
            Err(TmuxError::NoServer(_)) => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut list = parse_listing(&out, &self.user.name, self.tmux.socket());
        if !list.iter().any(|s| s.id.is_main()) {
            list.insert(0, self.stopped(&Name::main()));
        }
        Ok(list)
    }

    pub(super) fn stopped(&self, name: &Name) -> SessionInfo {
        SessionInfo {
            id: self.id(name),
            state: State::Stopped,
            agent_pid: None,
            launcher_pid: None,
            created: None,
            agent_started: None,
            last_activity: None,
            last_exit: None,
            restarts: 0,
            attached_clients: 0,
            socket: self.tmux.socket().to_owned(),
            pane: None,
            gate: None,
            piped: false,
            workdir: None,
            sandbox: None,
        }
    }

    /// One managed session; `NoSuchSession` if it does not exist.
    pub async fn info(&self, name: &Name) -> Result<SessionInfo, SessionError> {
        let id = self.id(name);
        self.list()
            .await?
            .into_iter()
            .find(|s| s.id == id && s.state != State::Stopped)
            .ok_or_else(|| SessionError::NoSuchSession(self.id(name)))
    }

    /// The agent pane of session `name`, if its agent runs.
    pub(super) async fn agent_pane(&self, name: &Name) -> Result<PaneId, SessionError> {
        let info = self.info(name).await?;
        match (info.pane, info.state) {
            (Some(p), State::Running | State::Starting) => Ok(p),
            _ => Err(SessionError::AgentNotRunning(self.id(name))),
        }
    }

    /// Types `text` into the agent pane, then Enter if `enter`, in one tmux
    /// invocation. A line to submit (`enter`), and any long text, goes in
    /// as one paste (bracketed when the program asked for it), so agents
    /// that take fast typing for a paste (Codex CLI does: its Enter then
    /// becomes a newline) see a paste and then Enter; short text without
    /// Enter (an answer's key) is typed as keys.
    pub async fn send(&self, name: &Name, text: &str, enter: bool) -> Result<(), SessionError> {
        check_typed_text(text)?;
        let pane = self.agent_pane(name).await?;
        let mut commands = Vec::new();
        let mut input = None;
        if text.len() > SEND_KEYS_MAX || (enter && !text.is_empty()) {
            let buffer = format!("tmuxd-send-{}", new_gate());
            commands.push(Command::load_buffer_stdin(&buffer));
            commands.push(Command::paste_buffer(&buffer, &pane));
            input = Some(text.as_bytes());
        } else if !text.is_empty() {
            commands.push(Command::send_text(&pane, text));
        }
        if enter {
            commands.push(Command::send_key(&pane, SpecialKey::Enter));
        }
        if commands.is_empty() {
            return Err(SessionError::BadInput(
                "nothing to send: the text is empty".into(),
            ));
        }
        self.tmux.run_with_input(&commands, input).await?;
        Ok(())
    }

    /// The last `lines` lines of the agent pane's history and its screen,
    /// with their colours (escape sequences) and wrapped lines joined, as
    /// tmux keeps them: what a viewer scrolls back through.
    pub async fn history(&self, name: &Name, lines: u32) -> Result<String, SessionError> {
        let pane = self.agent_pane(name).await?;
        Ok(self
            .tmux
            .run(&[Command::capture_history(&pane, lines)])
            .await?)
    }

    /// Sends Ctrl-C to the agent pane.
    pub async fn interrupt(&self, name: &Name) -> Result<(), SessionError> {
        let pane = self.agent_pane(name).await?;
        self.tmux
            .run_with_input(&[Command::send_key(&pane, SpecialKey::Interrupt)], None)
            .await?;
        Ok(())
    }

    /// Kills session `name` (its agent gets SIGHUP). `main` is refused:
    /// the daemon would only create it again.
    pub async fn kill(&self, name: &Name) -> Result<(), SessionError> {
        let id = self.id(name);
        if id.is_main() {
            return Err(SessionError::BadInput(format!(
                "{id} is the user's main session and is always kept running; remove the user from the config to end it"
            )));
        }
        match self.tmux.run(&[Command::kill_session(name)]).await {
            Ok(_) => Ok(()),
            Err(TmuxError::NoServer(_) | TmuxError::NotFound(_)) => {
                Err(SessionError::NoSuchSession(self.id(name)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

pub(super) fn parse_listing(out: &str, user: &Name, socket: &Path) -> Vec<SessionInfo> {
    struct Pane {
        pid: Option<u32>,
        dead: bool,
        status: Option<i32>,
        signal: Option<i32>,
        time: Option<u64>,
        piped: bool,
    }
    let mut panes = std::collections::HashMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() == 8 && f[0] == "P" {
            panes.insert(
                f[1].to_owned(),
                Pane {
                    pid: f[2].parse().ok(),
                    dead: f[3] == "1",
                    status: f[4].parse().ok(),
                    signal: f[5].parse().ok(),
                    time: f[6].parse().ok(),
                    piped: f[7] == "1",
                },
            );
        }
    }
    let mut list = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 12 || f[0] != "S" {
            continue;
        }
        // Only sessions tmuxd made (they carry the pane option) with valid
        // names; others on the socket are the user's own business.
        let (Ok(session), Some(pane_id)) = (Name::new(f[1]), PaneId::parse(f[4])) else {
            continue;
        };
        let pane = panes.get(pane_id.as_str());
        let gate = Some(f[5].to_owned()).filter(|g| !g.is_empty());
        let agent_started: Option<u64> = f[6].parse().ok();
        // The launcher's record, if it is about the current agent.
        let recorded = ExitInfo::decode(f[7]);
        let current = recorded.filter(|e| e.at >= agent_started);
        let (state, last_exit) = match pane {
            None => (State::Exited, recorded),
            Some(p) if p.dead => {
                let from_pane = ExitInfo {
                    status: p.status,
                    signal: p.signal,
                    at: p.time,
                };
                let known = from_pane.status.is_some() || from_pane.signal.is_some();
                (
                    State::Exited,
                    current.or(known.then_some(from_pane)).or(recorded),
                )
            }
            Some(_) if gate.is_some() => (State::Starting, recorded),
            Some(_) => (State::Running, recorded),
        };
        let launcher_pid = pane.filter(|p| !p.dead).and_then(|p| p.pid);
        list.push(SessionInfo {
            id: SessionId::new(user.clone(), session),
            state,
            agent_pid: launcher_pid.and_then(first_child),
            launcher_pid,
            created: f[2].parse().ok(),
            agent_started,
            last_activity: f[9].parse().ok(),
            last_exit,
            restarts: f[8].parse().unwrap_or(0),
            attached_clients: f[3].parse().unwrap_or(0),
            socket: socket.to_owned(),
            piped: pane.is_some_and(|p| p.piped),
            pane: Some(pane_id),
            gate,
            workdir: Some(PathBuf::from(f[10])).filter(|w| !w.as_os_str().is_empty()),
            sandbox: serde_json::from_str(f[11]).ok(),
        });
    }
    list.sort_by(|a, b| (!a.id.is_main(), &a.id).cmp(&(!b.id.is_main(), &b.id)));
    list
}

/// The first child of `pid` (the agent, for a launcher), from /proc.
pub(super) fn first_child(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}
