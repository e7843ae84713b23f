//! Whose a user's processes and directories are: the Unix account
//! (a root daemon switches, never to root) and the private directories
//! made for it.

use super::*;

/// The account a user's tmux server runs as: only a root daemon switches,
/// and never to root itself.
pub(super) fn account_for(user: &UserConfig) -> Option<Account> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let u = nix::unistd::User::from_name(user.unix_user.as_deref()?).ok()??;
    if u.uid.is_root() {
        return None;
    }
    let name = std::ffi::CString::new(u.name.clone()).ok()?;
    let groups = nix::unistd::getgrouplist(&name, u.gid)
        .unwrap_or_else(|_| vec![u.gid])
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    Some(Account {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups,
        home: u.dir,
        shell: u.shell,
    })
}

/// A 0700 directory owned by `owner` (uid, gid), its parent created 0755
/// so users can reach their own. A directory someone else owns is refused;
/// one that is too open is fixed and logged.
pub(super) fn ensure_private_dir(
    dir: &Path,
    owner: (u32, u32),
    what: &str,
) -> Result<(), SessionError> {
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| io_err("cannot create", parent, &e))?;
    }
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io_err("cannot create", dir, &e)),
    };
    // The user owns it: from here on only through a checked fd, never by
    // a path they could swap for a link.
    let mut d = UserDir::open(dir).map_err(|r| {
        SessionError::Io(format!("{what} {} {r}; refusing to use it", dir.display()))
    })?;
    let (uid, gid) = owner;
    if created && d.owner() != uid {
        d.set_owner(uid, gid)
            .map_err(|e| SessionError::Io(format!("cannot chown {}: {e}", dir.display())))?;
    }
    if d.owner() != uid {
        return Err(SessionError::Io(format!(
            "{what} {} is not a directory owned by uid {uid}; refusing to use it",
            dir.display(),
        )));
    }
    if d.mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", d.mode()), "{what} was not private; setting 0700");
        d.set_mode(0o700)
            .map_err(|e| SessionError::Io(format!("cannot chmod {}: {e}", dir.display())))?;
    }
    Ok(())
}
