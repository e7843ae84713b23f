//! The daemon's own directories: `state_dir`, `runtime_dir` and the spool
//! root. They hold the transcript database, the control socket and every
//! user's socket and spool directories, so no other user may be able to
//! swap or pre-create them.
//!
//! [`check_parents`] refuses a root whose parent chain another user could
//! change: every existing ancestor must belong to root or to the daemon's
//! account, and one that others can write must be sticky and root-owned
//! (like `/tmp` or `/dev/shm`: others can add entries there, but not rename
//! or remove ours). [`ensure`] creates a root, or checks an existing one
//! through a descriptor opened without following links: owned by the
//! daemon's account (a directory another user made first is refused), its
//! mode narrowed to what it should be (logged). [`write_whole`] replaces a
//! file in such a directory so readers see the old or the new one.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::userfs::{DirError, UserDir};

const STICKY: u32 = 0o1000;

/// Why `root` (for config key `key`) cannot be used under its parents.
pub fn check_parents(root: &Path) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    for dir in root.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            // Not there yet: created by the daemon, under a checked parent.
            continue;
        };
        let (uid, mode) = (meta.uid(), meta.mode());
        if uid != 0 && uid != me {
            return Err(format!(
                "{} is inside {}, which belongs to uid {uid}: that user could replace it; choose a path under directories owned by root (or the daemon's account)",
                root.display(),
                dir.display()
            ));
        }
        if mode & 0o022 != 0 && !(mode & STICKY != 0 && uid == 0) {
            return Err(format!(
                "{} is inside {}, which other users can write (mode {:o}) and is not a root-owned sticky directory: they could replace it; choose another path, or `chmod go-w {}`",
                root.display(),
                dir.display(),
                mode & 0o7777,
                dir.display()
            ));
        }
    }
    Ok(())
}

/// An existing `root` must be a directory of the daemon's account.
pub fn check_existing(root: &Path) -> Result<(), String> {
    match UserDir::open(root) {
        Ok(d) if d.owner() != nix::unistd::geteuid().as_raw() => Err(format!(
            "{} belongs to uid {}, not to the daemon's account: someone else made it; remove it or choose another path",
            root.display(),
            d.owner()
        )),
        Ok(_) | Err(crate::userfs::Refused::NotFound) => Ok(()),
        Err(e) => Err(format!("{} {e}", root.display())),
    }
}

/// Creates `root` with `mode` (and missing parents, 0755), or checks the
/// existing one; a mode more open than `mode` is narrowed.
pub fn ensure(root: &Path, mode: u32) -> Result<(), String> {
    check_parents(root)?;
    check_existing(root)?;
    let me = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    crate::userfs::ensure_dir(root, "daemon directory", mode, me).map_err(|e| match e {
        DirError::Io(m) => m,
        DirError::Refused(r) => format!("{} {r}", root.display()),
        DirError::Owner(uid) => format!(
            "{} belongs to uid {uid}, not to the daemon's account: someone else made it; remove it or choose another path",
            root.display()
        ),
    })
}

/// Writes `bytes` to `path` whole: to `PATH.tmp` (created anew, never
/// through a link, with `mode` and, if given, `owner`), synced, then
/// renamed over `path`. Readers see the old file or the new one, never
/// part. `path`'s directory must be one no one else can write.
pub fn write_whole(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| match owner {
            Some((uid, gid)) => std::os::unix::fs::fchown(&f, Some(uid), Some(gid)),
            None => Ok(()),
        })
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn shared_parents_are_refused_and_loose_modes_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, PermissionsExt::from_mode(0o777)).unwrap();
        let e = ensure(&open.join("run"), 0o755).unwrap_err();
        assert!(
            e.contains("other users can write") && e.contains("chmod go-w"),
            "{e}"
        );
        assert!(!open.join("run").exists());
        // A sticky directory is only safe when root owns it.
        std::fs::set_permissions(&open, PermissionsExt::from_mode(0o1777)).unwrap();
        let sticky_ok = nix::unistd::geteuid().is_root();
        assert_eq!(check_parents(&open.join("run")).is_ok(), sticky_ok);
        // A loose existing state directory is narrowed.
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, PermissionsExt::from_mode(0o755)).unwrap();
        ensure(&state, 0o700).unwrap();
        let mode = std::fs::metadata(&state).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        // A link in place of the root is refused.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        assert!(ensure(&link, 0o700).is_err());
    }
}
