//! A session's watcher: sleeps on the agent's pidfd until it exits,
//! records the exit, waits out the restart policy's backoff (cut short by
//! `restart_now`) and respawns the pane; recreates a vanished `main`.

use super::*;

impl Supervisor {
    pub(super) async fn watch_session(&self, id: &SessionId) {
        // Ends on shutdown, or when the user is removed from the config.
        let Some(token) = self.user_cancel(&id.user) else {
            return;
        };
        let cancel = &token;
        // Restarts in a row without a run of `reset_after`.
        let mut failures: u32 = 0;
        while !cancel.is_cancelled() {
            // Each turn follows an event (start, exit, restart).
            self.changed();
            // Read each time: a reload may change the user's settings.
            let Ok(server) = self.server(&id.user) else {
                return;
            };
            let server = &server;
            let policy = *self.0.restart.read().expect("restart lock");
            let info = match server.info(&id.session).await {
                Ok(info) => info,
                Err(SessionError::NoSuchSession(_)) if id.is_main() => {
                    if failures > 0 {
                        let delay = policy.delay(failures);
                        tracing::warn!(session = %id, delay_ms = delay.as_millis() as u64, "main session is gone; recreating");
                        if !self.pause(cancel, delay).await {
                            return;
                        }
                    }
                    failures += 1;
                    match server.create(&id.session).await {
                        Ok(info) => {
                            tracing::info!(session = %id, pid = ?info.agent_pid, "created session");
                            self.record_start(id, "created", &info);
                        }
                        Err(SessionError::AlreadyExists(_)) => {}
                        Err(e) => {
                            tracing::error!(session = %id, error = %e, "cannot create session")
                        }
                    }
                    continue;
                }
                Err(SessionError::NoSuchSession(_)) => {
                    tracing::info!(session = %id, "session ended");
                    return;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(session = %id, error = %e, "cannot inspect session");
                    if !self.pause(cancel, policy.delay(failures)).await {
                        return;
                    }
                    continue;
                }
            };
            match info.state {
                State::Starting | State::Running => {
                    if let Some(gate) = &info.gate {
                        // A daemon died between creating the pane and
                        // opening its gate: open it now.
                        if let Err(e) = server.open_gate(&id.session, gate).await {
                            tracing::error!(session = %id, error = %e, "cannot open gate");
                        }
                    }
                    if let Some(pid) = info.launcher_pid {
                        if !self.until_exit(cancel, server, id, pid).await {
                            return;
                        }
                    }
                }
                State::Exited => {
                    let exit = info.last_exit.unwrap_or(crate::exit::ExitInfo {
                        status: None,
                        signal: None,
                        at: Some(crate::clock::unix_now()),
                    });
                    if let Err(e) = server.record_exit(&id.session, &exit).await {
                        tracing::error!(session = %id, error = %e, "cannot record agent exit");
                    }
                    if let Some(rec) = &self.0.recorder {
                        rec.agent_exited(id, &exit);
                    }
                    let ran_for = exit
                        .at
                        .zip(info.agent_started)
                        .map(|(end, start)| end.saturating_sub(start))
                        .unwrap_or(0);
                    if ran_for >= policy.reset_after.as_secs() {
                        failures = 0;
                    }
                    if !policy.wants_restart(exit.status) {
                        tracing::warn!(session = %id, exit = %exit.describe(), "agent exited; restart policy says no restart");
                        return;
                    }
                    failures += 1;
                    let delay = policy.delay(failures);
                    tracing::warn!(session = %id, exit = %exit.describe(), ran_for_s = ran_for, delay_ms = delay.as_millis() as u64, "agent exited; restarting");
                    if !self.backoff(cancel, id, delay).await {
                        return;
                    }
                    match server.respawn(&info).await {
                        Ok(()) => {
                            crate::metrics::add(&crate::metrics::COUNTERS.agent_restarts, 1);
                            if let Some(rec) = &self.0.recorder {
                                rec.agent_started(id, "agent-restart", None);
                            }
                            self.changed();
                        }
                        Err(e) => {
                            tracing::error!(session = %id, error = %e, "cannot restart agent")
                        }
                    }
                }
                State::Stopped => return,
            }
        }
    }

    /// Sleeps on the agent's pidfd until it exits. False on shutdown.
    async fn until_exit(
        &self,
        cancel: &CancellationToken,
        server: &UserServer,
        id: &SessionId,
        pid: u32,
    ) -> bool {
        let fd = match PidFd::open(pid) {
            Ok(fd) => fd,
            // Already gone: the caller looks again.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                return self.settle(cancel, server, id).await
            }
            Err(e) => {
                // No pidfds (an old kernel, a seccomp filter): look again
                // every few seconds rather than spin.
                tracing::warn!(session = %id, error = %e, "cannot wait on the agent with a pidfd; checking every 2 s");
                return self.pause(cancel, Duration::from_secs(2)).await;
            }
        };
        // The pid might have been reused before we opened it; if the pane
        // still shows it alive now, the pidfd is the agent's.
        match server.info(&id.session).await {
            Ok(again) if again.launcher_pid == Some(pid) => {}
            _ => return true,
        }
        tokio::select! {
            r = fd.exited() => {
                if let Err(e) = r {
                    tracing::error!(session = %id, error = %e, "pidfd wait failed");
                }
            }
            _ = cancel.cancelled() => return false,
        }
        self.settle(cancel, server, id).await
    }

    /// After the launcher's exit, waits (at most a second) until tmux has
    /// noticed and marked the pane dead, so the next look sees the exit:
    /// woken by the session's `pane-died` hook. (A signal left from an exit
    /// no one waited for only makes the caller look once more.)
    async fn settle(
        &self,
        cancel: &CancellationToken,
        server: &UserServer,
        id: &SessionId,
    ) -> bool {
        tokio::select! {
            _ = server.pane_died(&id.session, Duration::from_secs(1)) => true,
            _ = cancel.cancelled() => false,
        }
    }

    /// Waits out a restart's backoff `d`, or less if `restart_now` asks.
    /// False on shutdown.
    async fn backoff(&self, cancel: &CancellationToken, id: &SessionId, d: Duration) -> bool {
        let notify = Arc::new(tokio::sync::Notify::new());
        self.0.backoffs.lock().expect("backoffs lock").insert(
            id.clone(),
            (
                notify.clone(),
                crate::clock::unix_now_ms() + d.as_millis() as u64,
            ),
        );
        self.changed();
        let waited = tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = notify.notified() => {
                tracing::info!(session = %id, "restarting the agent now, as asked");
                true
            }
            _ = cancel.cancelled() => false,
        };
        self.0.backoffs.lock().expect("backoffs lock").remove(id);
        waited
    }

    /// Sleeps `d` unless shut down first. False on shutdown.
    async fn pause(&self, cancel: &CancellationToken, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = cancel.cancelled() => false,
        }
    }
}
