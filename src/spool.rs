//! Spool files, the one place that knows them: where each session's is
//! (`SPOOL_ROOT/USER/SESSION.out`), the `pipe-pane` command that appends to
//! it, and the file operations on it (positioned reads, skipping holes,
//! punching out what is stored). Opening a spool safely is
//! [`crate::userfs`]'s job.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::names::SessionId;

/// Deallocates `[0, upto)` of the spool file, keeping its size and offsets.
pub fn punch(file: &std::fs::File, upto: u64) -> std::io::Result<()> {
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

pub fn spool_name(id: &SessionId) -> String {
    format!("{}.out", id.session)
}

/// The file beside the spool that tmux touches when the session's window
/// is resized (by any client: a browser's or a plain `tmux attach`).
pub fn resized_name(id: &SessionId) -> String {
    format!("{}.resized", id.session)
}

/// The tmux command for the `window-resized` hook: touch the session's
/// [`resized_name`] file (the recorder, watching the directory, then takes
/// the screen from tmux at its new size). `None` when the path holds
/// characters tmux's parser or formats would read specially.
pub fn resized_hook(root: &Path, id: &SessionId) -> Option<String> {
    let path = root.join(id.user.as_str()).join(resized_name(id));
    let text = path.to_str()?;
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
        .then(|| format!("run-shell -b \": >> '{text}'\""))
}

/// The first offset at or after `from` that holds data (`size` if none).
pub fn next_data(file: &std::fs::File, from: u64, size: u64) -> u64 {
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

pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
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

pub fn read_full_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_hook_only_for_plain_paths() {
        let id: SessionId = "alice/main".parse().unwrap();
        assert_eq!(
            resized_hook(Path::new("/var/lib/tmuxd/spool"), &id).as_deref(),
            Some("run-shell -b \": >> '/var/lib/tmuxd/spool/alice/main.resized'\"")
        );
        for odd in ["/a b", "/a'b", "/a\"b", "/a#{b}", "/a$b", "/a;b"] {
            assert_eq!(resized_hook(Path::new(odd), &id), None, "{odd}");
        }
    }

    #[test]
    fn pipe_command_quotes_the_path() {
        assert_eq!(
            pipe_command(Path::new("/var/x/a.out")),
            "exec cat >> '/var/x/a.out'"
        );
        assert_eq!(
            pipe_command(Path::new("/it's/a.out")),
            r"exec cat >> '/it'\''s/a.out'"
        );
    }
}
