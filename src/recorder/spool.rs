//! Spool files: where they are, the `pipe-pane` command that writes them,
//! and how the daemon opens them (only as [`UserDir`] allows).

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
        let size = UserDir::open(&self.spool_dir(id))
            .and_then(|d| d.stat(&spool_name(id)))
            .map(|st| st.st_size as u64)
            .unwrap_or(0);
        let offset = self
            .log(id)
            .and_then(|l| l.spool_mark())
            .map(|m| m.offset)
            .unwrap_or(0);
        size.saturating_sub(offset)
    }

    /// Mid-burst: derive agent state from the spool's last few KiB only.
    pub(super) fn peek_tail(&self, id: &SessionId) {
        let Ok(file) = self.spool_file(id, false) else {
            return;
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = size.saturating_sub(TAIL_PEEK);
        let mut buf = vec![0u8; (size - start) as usize];
        if let Ok(n) = read_full_at(&file, &mut buf, start) {
            buf.truncate(n);
            if let Some(t) = self.0.sessions.lock().expect("sessions lock").get_mut(id) {
                // The tail is not a continuation of what was rendered.
                t.text = TextRenderer::default();
                t.recent.clear();
            }
            self.observe_output(id, &buf);
        }
    }
}

/// Deallocates `[0, upto)` of the spool file, keeping its size and offsets.
pub(super) fn punch(file: &std::fs::File, upto: u64) -> std::io::Result<()> {
    use nix::fcntl::{fallocate, FallocateFlags};
    fallocate(
        file,
        FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
        0,
        upto as i64,
    )?;
    Ok(())
}

/// `SPOOL_ROOT/USER/SESSION.out`.
pub fn spool_path(root: &Path, id: &SessionId) -> PathBuf {
    root.join(id.user.as_str()).join(spool_name(id))
}

pub(super) fn spool_name(id: &SessionId) -> String {
    format!("{}.out", id.session)
}

/// The first offset at or after `from` that holds data (`size` if none).
pub(super) fn next_data(file: &std::fs::File, from: u64, size: u64) -> u64 {
    use std::os::fd::AsRawFd;
    if from >= size {
        return from;
    }
    // SAFETY: lseek on a file we own; SEEK_DATA only reads the extent map
    // (it moves the offset, which our positioned reads do not use).
    let at = unsafe { libc::lseek(file.as_raw_fd(), from as libc::off_t, libc::SEEK_DATA) };
    match at {
        n if n >= 0 => n as u64,
        // ENXIO: nothing but a hole up to the end.
        _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) => size,
        // No SEEK_DATA here: read everything.
        _ => from,
    }
}

pub(super) fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The `pipe-pane` command for a spool file: the one shell string tmuxd
/// builds, from a path it generated, single-quoted.
pub fn pipe_command(spool: &Path) -> String {
    let quoted = spool.display().to_string().replace('\'', r"'\''");
    format!("exec cat >> '{quoted}'")
}

pub(super) fn read_full_at(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}
