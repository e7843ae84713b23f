//! The supervisor's side of workspaces: a session's files are reached only
//! while the session exists, file events go to its transcript, and a
//! snapshot is taken before typed input when `[workspace]
//! snapshot_before_input` says so.

use super::Supervisor;
use crate::config::SnapshotPolicy;
use crate::names::SessionId;
use crate::session::{SessionError, State, UserServer};
use crate::workspace::{self, snapshot, WorkspaceError};

impl Supervisor {
    /// The session's server, if the session exists (another user's
    /// session is refused by the caller before this).
    pub async fn session_server(&self, id: &SessionId) -> Result<UserServer, SessionError> {
        let server = self.server(&id.user)?;
        match server.info(&id.session).await {
            Ok(info) if info.state != State::Stopped => Ok(server),
            Ok(_) => Err(SessionError::NoSuchSession(id.clone())),
            Err(e) => Err(e),
        }
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
        let server = self
            .session_server(id)
            .await
            .map_err(WorkspaceError::session)?;
        let keep = self.workspace_config().max_snapshots;
        let snap =
            snapshot::take(&workspace::place(&server), id.session.as_str(), why, keep).await?;
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
            .session_server(id)
            .await
            .map_err(WorkspaceError::session)?;
        let keep = self.workspace_config().max_snapshots;
        let before = snapshot::rollback(
            &workspace::place(&server),
            id.session.as_str(),
            to,
            by,
            keep,
        )
        .await?;
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
            .session_server(id)
            .await
            .map_err(WorkspaceError::session)?;
        snapshot::list(&workspace::place(&server), id.session.as_str()).await
    }

    /// Before typed input: a snapshot when the policy says so. A failure is
    /// logged and recorded; the input still goes in.
    pub(super) async fn snapshot_before_input(&self, id: &SessionId, text: &str, source: &str) {
        let policy = self.workspace_config().snapshot_before_input;
        if policy == SnapshotPolicy::Never {
            return;
        }
        let Ok(server) = self.server(&id.user) else {
            return;
        };
        if policy == SnapshotPolicy::Git && !snapshot::in_git(&workspace::place(&server)).await {
            return;
        }
        let why = format!(
            "before input from {source}: {}",
            text.lines().next().unwrap_or("")
        );
        if let Err(e) = self.snapshot(id, &why, source).await {
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
