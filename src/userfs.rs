//! Files in directories a user controls, opened the way a root daemon must.
//!
//! A user can put anything in a directory they own: a symlink to a root-only
//! file, a FIFO that blocks whoever opens it, a hard link to someone else's
//! file. So every file there is reached relative to a directory fd that was
//! opened without following links and checked, looked at with `fstatat(...,
//! AT_SYMLINK_NOFOLLOW)` before it is opened (only regular files are), opened
//! with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, and checked again after opening:
//! the same inode, a regular file, owned by the directory's owner. Anything
//! else is a [`Refused`], never followed, never read, never written.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

/// Why a path in a user's directory was not used.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("does not exist")]
    NotFound,
    #[error("is a symbolic link")]
    Symlink,
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is not a directory")]
    NotDirectory,
    #[error("is owned by uid {owner}, not by the directory's owner {expected}")]
    ForeignOwner { owner: u32, expected: u32 },
    #[error("was replaced while being opened")]
    Replaced,
    #[error("{0}")]
    Io(#[from] nix::Error),
}

/// A directory opened without following links; files are reached through it.
pub struct UserDir {
    fd: OwnedFd,
    owner: u32,
    mode: u32,
}

impl UserDir {
    /// Opens `path` (whose last component must not be a symlink) as a
    /// directory. Its parent must be one the user cannot replace entries of.
    pub fn open(path: &Path) -> Result<UserDir, Refused> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::Error::ENOENT => Refused::NotFound,
            nix::Error::ELOOP => Refused::Symlink,
            // With O_DIRECTORY, Linux reports a symlink as ENOTDIR.
            nix::Error::ENOTDIR if path.is_symlink() => Refused::Symlink,
            nix::Error::ENOTDIR => Refused::NotDirectory,
            e => Refused::Io(e),
        })?;
        let st = fstat(&fd)?;
        Ok(UserDir {
            fd,
            owner: st.st_uid,
            mode: st.st_mode & 0o7777,
        })
    }

    /// The directory's owner: the only owner its files may have.
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// Permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Gives the directory (this one, not whatever its path names later)
    /// to `uid`:`gid`.
    pub fn set_owner(&mut self, uid: u32, gid: u32) -> nix::Result<()> {
        nix::unistd::fchown(&self.fd, Some(uid.into()), Some(gid.into()))?;
        self.owner = uid;
        Ok(())
    }

    /// Sets the permission bits of this directory.
    pub fn set_mode(&mut self, mode: u32) -> nix::Result<()> {
        nix::sys::stat::fchmod(&self.fd, Mode::from_bits_truncate(mode))?;
        self.mode = mode;
        Ok(())
    }

    /// `name`'s metadata, without following a link and without opening it.
    pub fn stat(&self, name: &str) -> Result<FileStat, Refused> {
        let st =
            fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| match e {
                nix::Error::ENOENT => Refused::NotFound,
                e => Refused::Io(e),
            })?;
        self.check(&st)?;
        Ok(st)
    }

    /// Opens regular file `name` for reading (and writing with `write`),
    /// checked before and after opening.
    pub fn open_file(&self, name: &str, write: bool) -> Result<File, Refused> {
        let before = self.stat(name)?;
        let access = if write {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        let fd = nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::Error::ENOENT => Refused::NotFound,
            nix::Error::ELOOP => Refused::Symlink,
            e => Refused::Io(e),
        })?;
        let after = fstat(&fd)?;
        self.check(&after)?;
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
            return Err(Refused::Replaced);
        }
        Ok(File::from(fd))
    }

    fn check(&self, st: &FileStat) -> Result<(), Refused> {
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        match kind {
            SFlag::S_IFREG => {}
            SFlag::S_IFLNK => return Err(Refused::Symlink),
            SFlag::S_IFIFO => return Err(Refused::NotRegular("FIFO")),
            SFlag::S_IFCHR => return Err(Refused::NotRegular("character device")),
            SFlag::S_IFBLK => return Err(Refused::NotRegular("block device")),
            SFlag::S_IFSOCK => return Err(Refused::NotRegular("socket")),
            SFlag::S_IFDIR => return Err(Refused::NotRegular("directory")),
            _ => return Err(Refused::NotRegular("special file")),
        }
        if st.st_uid != self.owner {
            return Err(Refused::ForeignOwner {
                owner: st.st_uid,
                expected: self.owner,
            });
        }
        Ok(())
    }
}

/// Why [`ensure_dir`] could not provide a directory.
#[derive(Debug)]
pub enum DirError {
    /// Creating, chowning or chmodding failed (the message names the path).
    Io(String),
    /// What is there is not a directory to use.
    Refused(Refused),
    /// It exists and belongs to this uid, not to the wanted owner.
    Owner(u32),
}

/// Creates `dir` (a `what`, for the log) with `mode` (missing parents 0755) and gives a new one to
/// `owner` (uid, gid), or takes the existing one, which must already be
/// `owner`'s; a mode more open than `mode` is narrowed and logged. After
/// creation everything goes through a descriptor opened without following
/// links, never by a path someone could swap.
pub fn ensure_dir(dir: &Path, what: &str, mode: u32, owner: (u32, u32)) -> Result<(), DirError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        DirError::Io(format!("cannot {what} {}: {e}", p.display()))
    };
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| io("create", parent, &e))?;
    }
    let created = match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io("create", dir, &e)),
    };
    let mut d = UserDir::open(dir).map_err(DirError::Refused)?;
    let (uid, gid) = owner;
    if created && d.owner() != uid {
        d.set_owner(uid, gid).map_err(|e| io("chown", dir, &e))?;
    }
    if d.owner() != uid {
        return Err(DirError::Owner(d.owner()));
    }
    if d.mode() & !mode & 0o7777 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", d.mode()), want = format!("{mode:o}"), "{what} was not private; narrowing it");
        d.set_mode(d.mode() & mode)
            .map_err(|e| io("chmod", dir, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn only_regular_files_of_the_owner_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.out"), b"hello").unwrap();
        std::fs::write(dir.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("link.out")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo.out"), Mode::S_IRWXU).unwrap();
        std::fs::create_dir(dir.path().join("dir.out")).unwrap();
        let d = UserDir::open(dir.path()).unwrap();
        let mut s = String::new();
        d.open_file("ok.out", false)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        assert!(matches!(
            d.open_file("link.out", false),
            Err(Refused::Symlink)
        ));
        // Opening the FIFO would block: it is never opened.
        assert!(matches!(
            d.open_file("fifo.out", false),
            Err(Refused::NotRegular("FIFO"))
        ));
        assert!(matches!(
            d.open_file("dir.out", true),
            Err(Refused::NotRegular("directory"))
        ));
        assert!(matches!(
            d.open_file("none.out", false),
            Err(Refused::NotFound)
        ));
        // A directory that is itself a link is refused.
        let link = dir.path().join("dirlink");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(matches!(UserDir::open(&link), Err(Refused::Symlink)));
    }
}
