//! The recorder's view of spools: opening them only as [`UserDir`]
//! allows, their backlog.

use super::*;

impl Recorder {
    /// The spool file of `id`.
    pub fn spool_path(&self, id: &SessionId) -> PathBuf {
        spool_path(&self.0.spool_root, id)
    }

    /// The spool directory of `id`'s user (theirs: tmux writes it as them).
    pub(super) fn spool_dir(&self, id: &SessionId) -> PathBuf {
        self.0.spool_root.join(id.user.as_str())
    }

    /// Opens `id`'s spool as [`UserDir`] allows: a regular file of the
    /// directory's owner, never through a link, never blocking.
    pub(super) fn spool_file(&self, id: &SessionId, write: bool) -> Result<std::fs::File, Refused> {
        UserDir::open(&self.spool_dir(id))?.open_file(&spool_name(id), write)
    }

    /// Logs and records a refused spool once per reason; `None`: usable again.
    pub(super) fn note_refused(&self, id: &SessionId, refused: Option<&Refused>) {
        let reason = refused.map(Refused::to_string);
        let log = {
            let mut sessions = self.0.sessions.lock().expect("sessions lock");
            let Some(t) = sessions.get_mut(id) else {
                return;
            };
            if t.refused == reason {
                return;
            }
            t.refused = reason;
            t.log.clone()
        };
        if let Some(r) = refused {
            tracing::warn!(session = %id, path = %self.spool_path(id).display(), reason = %r, "spool refused: not recording this session until it is a regular file of its user again");
            let _ = log.event(
                "spool-refused",
                serde_json::json!({"reason": r.to_string()}),
            );
        }
    }

    /// Spool bytes of `id` not yet in the transcript.
    pub(super) fn backlog(&self, id: &SessionId) -> u64 {
        let (size, ingested) = self.spool_extent(id);
        size.saturating_sub(ingested)
    }

    /// The size of `id`'s spool and how much of it is in the transcript.
    pub(super) fn spool_extent(&self, id: &SessionId) -> (u64, u64) {
        let size = UserDir::open(&self.spool_dir(id))
            .and_then(|d| d.stat(&spool_name(id)))
            .map(|st| st.st_size as u64)
            .unwrap_or(0);
        let ingested = self
            .log(id)
            .and_then(|l| l.spool_mark())
            .map(|m| m.offset)
            .unwrap_or(0);
        (size, ingested)
    }
}
