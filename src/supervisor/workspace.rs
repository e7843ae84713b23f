//! The supervisor's side of workspaces: a session's files are reached only
//! while the session exists, file events go to its transcript, and a
//! snapshot is taken before typed input when `[workspace]
//! snapshot_before_input` says so.

use super::Supervisor;
use crate::config::SnapshotPolicy;
use crate::names::SessionId;
use crate::session::{SessionError, State, UserServer};
use crate::workspace::{self, snapshot, WorkspaceError};

/// Where a session's files are: its server's account and its workdir.
pub struct SessionFiles {
    pub server: UserServer,
    pub workdir: std::path::PathBuf,
    /// The workdir is a worktree made for the session.
    pub worktree: bool,
}

impl SessionFiles {
    pub fn place(&self) -> workspace::Place<'_> {
        workspace::Place {
            tmux: &self.server.tmux,
            workdir: &self.workdir,
        }
    }
}

impl Supervisor {
    /// The session's files: its server and workdir, if the session exists
    /// (another user's session is refused by the caller before this).
    pub async fn session_files(&self, id: &SessionId) -> Result<SessionFiles, SessionError> {
        let server = self.server(&id.user)?;
        match server.info(&id.session).await {
            Ok(info) if info.state != State::Stopped => {
                let workdir = server.workdir_of(&info).to_owned();
                let worktree = info.workdir.is_some();
                Ok(SessionFiles {
                    server,
                    workdir,
                    worktree,
                })
            }
            Ok(_) => Err(SessionError::NoSuchSession(id.clone())),
            Err(e) => Err(e),
        }
    }

    /// Creates `id` in a new git worktree of its user's repository (on
    /// `branch`, made if missing); the worktree is removed again if the
    /// session cannot start.
    pub async fn create_worktree(
        &self,
        id: &SessionId,
        branch: Option<&str>,
    ) -> Result<crate::session::SessionInfo, SessionError> {
        let server = self.server(&id.user)?;
        if server.tmux.has_session(&id.session).await? {
            return Err(SessionError::AlreadyExists(id.clone()));
        }
        let place = workspace::Place {
            tmux: &server.tmux,
            workdir: &server.user.workdir,
        };
        let path = workspace::worktree::add(&place, id.session.as_str(), branch)
            .await
            .map_err(|e| match e.kind {
                workspace::Exit::Failed => SessionError::Io(e.message),
                _ => SessionError::BadInput(e.message),
            })?;
        match self.create_in(id, Some(&path)).await {
            Ok(info) => Ok(info),
            Err(e) => {
                let made = workspace::Place {
                    tmux: &server.tmux,
                    workdir: &path,
                };
                let said = workspace::worktree::after_kill(&made, true).await;
                tracing::warn!(session = %id, "{said}");
                Err(e)
            }
        }
    }

    /// The transcript of `id`: it must be recorded, or at least exist.
    pub async fn transcript_log(
        &self,
        id: &SessionId,
    ) -> Result<crate::transcript::SessionLog, SessionError> {
        let server = self.server(&id.user)?;
        let Some(rec) = self.recorder() else {
            return Err(SessionError::BadInput(
                "transcripts are turned off in the config".into(),
            ));
        };
        let recorded = rec
            .store()
            .has_session(id)
            .map_err(|e| SessionError::Io(e.to_string()))?;
        if !recorded && !server.tmux.has_session(&id.session).await? {
            return Err(SessionError::NoSuchSession(id.clone()));
        }
        rec.log(id).map_err(|e| SessionError::Io(e.to_string()))
    }

    /// The session's transcript as text and asciicast, for an archive:
    /// each exported once to learn its size and again as it is sent, both
    /// up to the newest record now (so both passes are the same bytes).
    pub async fn transcript_extras(
        &self,
        id: &SessionId,
    ) -> Result<Vec<workspace::ExtraStream>, SessionError> {
        use crate::transcript::{export_stream, ExportOptions, Format};
        let log = self.transcript_log(id).await?;
        let options = ExportOptions {
            until_id: Some(log.last_id()),
            ..ExportOptions::default()
        };
        let mut out = Vec::new();
        for (format, name) in [
            (Format::Text, "transcript.txt"),
            (Format::Asciicast, "transcript.cast"),
        ] {
            let mut bytes = 0u64;
            let mut sizing = export_stream(log.clone(), format, options.clone());
            while let Some(chunk) = sizing.recv().await {
                bytes += chunk.map_err(SessionError::Io)?.len() as u64;
            }
            out.push(workspace::ExtraStream {
                name: name.to_owned(),
                bytes,
                chunks: export_stream(log.clone(), format, options.clone()),
            });
        }
        Ok(out)
    }

    /// Stores `body` as a new file named after `name` in the uploads
    /// directory of `files` (session `id`), recorded as `by`'s upload.
    pub async fn upload(
        &self,
        files: &SessionFiles,
        id: &SessionId,
        name: &str,
        body: &mut (impl tokio::io::AsyncRead + Unpin),
        by: &str,
    ) -> Result<workspace::Stored, WorkspaceError> {
        let caps = self.workspace_config();
        let stored = workspace::put(&files.place(), &caps, name, body).await?;
        let detail = serde_json::json!({"path": stored.path, "bytes": stored.bytes});
        self.record_file_event(id, "upload", by, detail);
        Ok(stored)
    }

    /// A download of `path` (checked) from `files` (session `id`): a file,
    /// or a directory as an `archive` with the session's transcript in it
    /// when asked; recorded as `by`'s. With the name it is saved under.
    pub async fn download(
        &self,
        files: &SessionFiles,
        id: &SessionId,
        (path, archive, transcript): (&str, workspace::Archive, bool),
        by: &str,
    ) -> Result<(workspace::Download, String), WorkspaceError> {
        let extras = if transcript {
            self.transcript_extras(id)
                .await
                .map_err(WorkspaceError::session)?
        } else {
            Vec::new()
        };
        let caps = self.workspace_config();
        let session = id.session.as_str();
        let top = workspace::archive_top(session, path);
        let download = workspace::get(&files.place(), &caps, (path, &top), archive, extras).await?;
        let detail = workspace::download_detail(path, &download.sending, archive);
        self.record_file_event(id, "download", by, detail);
        let name = workspace::download_name(session, path, &download.sending, archive);
        Ok((download, name))
    }

    /// Records a file event (upload, download, snapshot, rollback) with who
    /// did it in the session's transcript.
    pub fn record_file_event(
        &self,
        id: &SessionId,
        kind: &str,
        by: &str,
        mut detail: serde_json::Value,
    ) {
        tracing::info!(session = %id, by, "{kind}");
        if let Some(rec) = self.recorder() {
            detail["by"] = by.into();
            rec.event(id, kind, detail);
        }
    }

    /// Takes a snapshot of `id`'s workspace, recorded.
    pub async fn snapshot(
        &self,
        id: &SessionId,
        why: &str,
        by: &str,
    ) -> Result<snapshot::Snapshot, WorkspaceError> {
        let files = self
            .session_files(id)
            .await
            .map_err(WorkspaceError::session)?;
        self.snapshot_in(&files, id, why, by).await
    }

    /// [`Supervisor::snapshot`] of the session's `files`, already looked up.
    async fn snapshot_in(
        &self,
        files: &SessionFiles,
        id: &SessionId,
        why: &str,
        by: &str,
    ) -> Result<snapshot::Snapshot, WorkspaceError> {
        let keep = self.workspace_config().max_snapshots;
        let snap = snapshot::take(&files.place(), id.session.as_str(), why, keep).await?;
        self.record_file_event(
            id,
            "snapshot",
            by,
            serde_json::json!({"id": snap.id, "why": why}),
        );
        Ok(snap)
    }

    /// Restores `id`'s workspace to snapshot `to`, recorded; returns the
    /// snapshot of the present taken first.
    pub async fn rollback(
        &self,
        id: &SessionId,
        to: &str,
        by: &str,
    ) -> Result<snapshot::Snapshot, WorkspaceError> {
        snapshot::check_id(to).map_err(WorkspaceError::refused)?;
        let server = self
            .session_files(id)
            .await
            .map_err(WorkspaceError::session)?;
        let keep = self.workspace_config().max_snapshots;
        let before = snapshot::rollback(&server.place(), id.session.as_str(), to, by, keep).await?;
        self.record_file_event(
            id,
            "rollback",
            by,
            serde_json::json!({"to": to, "before": before.id}),
        );
        Ok(before)
    }

    /// The snapshots of `id`'s workspace, oldest first.
    pub async fn snapshots(
        &self,
        id: &SessionId,
    ) -> Result<Vec<snapshot::Snapshot>, WorkspaceError> {
        let server = self
            .session_files(id)
            .await
            .map_err(WorkspaceError::session)?;
        snapshot::list(&server.place(), id.session.as_str()).await
    }

    /// Before typed input: a snapshot when the policy says so. A failure is
    /// logged and recorded; the input still goes in.
    pub(super) async fn snapshot_before_input(&self, id: &SessionId, text: &str, source: &str) {
        let policy = self.workspace_config().snapshot_before_input;
        if policy == SnapshotPolicy::Never {
            return;
        }
        let Ok(server) = self.session_files(id).await else {
            return;
        };
        if policy == SnapshotPolicy::Git && !workspace::git::in_git(&server.place()).await {
            return;
        }
        let why = format!(
            "before input from {source}: {}",
            text.lines().next().unwrap_or("")
        );
        if let Err(e) = self.snapshot_in(&server, id, &why, source).await {
            tracing::warn!(session = %id, error = %e, "snapshot before input failed");
            self.record_file_event(
                id,
                "snapshot-failed",
                source,
                serde_json::json!({"why": e.message}),
            );
        }
    }
}
