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
    use crate::userfs::DirError;
    crate::userfs::ensure_dir(dir, what, 0o700, owner).map_err(|e| match e {
        DirError::Io(m) => SessionError::Io(m),
        DirError::Refused(r) => {
            SessionError::Io(format!("{what} {} {r}; refusing to use it", dir.display()))
        }
        DirError::Owner(_) => SessionError::Io(format!(
            "{what} {} is not a directory owned by uid {}; refusing to use it",
            dir.display(),
            owner.0
        )),
    })
}
