//! Walking a workspace directory by descriptor, in the helper: each entry
//! is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)` relative to its
//! directory's descriptor and opened with `O_NOFOLLOW` relative to it, so a
//! symbolic link is only ever recorded as a link, never followed, even if
//! it is swapped in during the walk. Entries the user may not read are left
//! out. Used for listings, the caps' measure and the streamed archives.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

use super::helper::{Entry, Fail};
use super::{Archive, Exit};

/// One thing found in a walk.
enum Item<'a> {
    Dir(&'a FileStat),
    /// Opened when the walk opens files.
    File(&'a FileStat, Option<std::fs::File>),
    Link(&'a FileStat, std::path::PathBuf),
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// The names in directory `dir`, sorted ("." and ".." left out).
fn names(dir: BorrowedFd<'_>) -> Result<Vec<String>, Fail> {
    let fd = nix::unistd::dup(dir)?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// How the helper opens anything in a workspace: to read, never through
/// a link, never blocking (a FIFO), never as a controlling terminal.
pub(super) const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY);

fn open_at(dir: BorrowedFd<'_>, name: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(dir, name, flags | READ_FLAGS, Mode::empty())
}

/// How many entries `dir` holds.
pub fn count_entries(dir: &OwnedFd) -> Result<u64, Fail> {
    Ok(names(dir.as_fd())?.len() as u64)
}

/// `dir`'s entries, at most `max`; whether some were left out.
pub fn list(dir: &OwnedFd, max: usize) -> Result<(Vec<Entry>, bool), Fail> {
    let names = names(dir.as_fd())?;
    let truncated = names.len() > max;
    let mut out = Vec::new();
    for name in names.into_iter().take(max) {
        let Ok(st) = fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = match kind(&st) {
            SFlag::S_IFREG => "file",
            SFlag::S_IFDIR => "dir",
            SFlag::S_IFLNK => "link",
            _ => "other",
        };
        out.push(Entry {
            name,
            kind: kind.into(),
            bytes: st.st_size as u64,
            mtime: st.st_mtime,
        });
    }
    // Directories first, then by name.
    out.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
    Ok((out, truncated))
}

/// Walks `dir` depth first, calling `f` with each entry's path (relative,
/// `/`-separated) before descending into it. `open_files`: whether files
/// are opened (an archive reads them; a measure needs only their size).
fn walk(
    dir: BorrowedFd<'_>,
    prefix: &str,
    open_files: bool,
    f: &mut dyn FnMut(&str, Item<'_>) -> Result<(), Fail>,
) -> Result<(), Fail> {
    for name in names(dir)? {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(st) = fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        match kind(&st) {
            SFlag::S_IFDIR => {
                let Ok(sub) = open_at(dir, &name, OFlag::O_DIRECTORY) else {
                    continue;
                };
                f(&path, Item::Dir(&st))?;
                walk(sub.as_fd(), &path, open_files, f)?;
            }
            SFlag::S_IFREG if !open_files => {
                f(&path, Item::File(&st, None))?;
            }
            SFlag::S_IFREG => {
                let Ok(fd) = open_at(dir, &name, OFlag::empty()) else {
                    continue;
                };
                // What was opened is what was looked at, still a file.
                let now = fstat(&fd)?;
                if kind(&now) != SFlag::S_IFREG || now.st_ino != st.st_ino {
                    continue;
                }
                f(&path, Item::File(&now, Some(std::fs::File::from(fd))))?;
            }
            SFlag::S_IFLNK => {
                let Ok(target) = nix::fcntl::readlinkat(dir, name.as_str()) else {
                    continue;
                };
                f(&path, Item::Link(&st, target.into()))?;
            }
            // FIFOs, sockets, devices: never opened, never archived.
            _ => {}
        }
    }
    Ok(())
}

/// Files (links and directories count too) and bytes under `dir`; more
/// than `max_files` is a [`Exit::TooLarge`] naming `shown`.
pub fn measure(dir: &OwnedFd, max_files: u64, shown: &str) -> Result<(u64, u64), Fail> {
    let (mut files, mut bytes) = (0u64, 0u64);
    walk(dir.as_fd(), "", false, &mut |_, item| {
        files += 1;
        if let Item::File(st, _) = item {
            bytes += st.st_size as u64;
        }
        if files > max_files {
            return Err(Fail(
                Exit::TooLarge,
                format!("{shown} holds more than {max_files} files, the download cap ([workspace] max_download_files): download a directory inside it"),
            ));
        }
        Ok(())
    })?;
    Ok((files, bytes))
}

/// Files to add after the walk, their bytes read in turn from `input`.
pub struct Extras<'a> {
    pub files: &'a [super::helper::Extra],
    pub input: &'a mut dyn Read,
}

impl Extras<'_> {
    /// Each file's archive path (under `TOP/.tmuxd/`), size and exact bytes
    /// (short input is padded with zeros).
    fn each(
        &mut self,
        top: &str,
        mut f: impl FnMut(&str, u64, &mut dyn Read) -> io::Result<()>,
    ) -> io::Result<()> {
        for e in self.files {
            let path = format!("{top}/.tmuxd/{}", e.name);
            let mut body = (&mut self.input)
                .take(e.bytes)
                .chain(io::repeat(0))
                .take(e.bytes);
            f(&path, e.bytes, &mut body)?;
        }
        Ok(())
    }
}

/// Streams `dir` as an archive to `out`, its entries under `top/`, then
/// `extras`.
pub fn archive(
    dir: BorrowedFd<'_>,
    top: &str,
    format: Archive,
    mut extras: Extras<'_>,
    out: &mut impl Write,
) -> Result<(), Fail> {
    let now = crate::clock::unix_now_ms() as i64 / 1000;
    match format {
        Archive::TarGz => {
            let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            tar.mode(tar::HeaderMode::Complete);
            let mut add = |path: &str, item: Item<'_>| -> Result<(), Fail> {
                let path = format!("{top}/{path}");
                let mut h = tar::Header::new_gnu();
                let st = match &item {
                    Item::Dir(st) | Item::File(st, _) | Item::Link(st, _) => *st,
                };
                h.set_mode(st.st_mode & 0o7777);
                h.set_mtime(st.st_mtime.max(0) as u64);
                h.set_uid(st.st_uid.into());
                h.set_gid(st.st_gid.into());
                match item {
                    Item::Dir(_) => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_size(0);
                        tar.append_data(&mut h, &path, io::empty())?;
                    }
                    Item::File(st, Some(file)) => {
                        // Exactly the size in the header, even if the file
                        // changes while it is read.
                        let size = st.st_size as u64;
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(size);
                        let body = file.take(size).chain(io::repeat(0)).take(size);
                        tar.append_data(&mut h, &path, body)?;
                    }
                    Item::File(_, None) => {}
                    Item::Link(_, target) => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        tar.append_link(&mut h, &path, &target)?;
                    }
                }
                Ok(())
            };
            walk(dir, "", true, &mut add)?;
            extras.each(top, |path, size, body| {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                h.set_mtime(now as u64);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                tar.append_data(&mut h, path, body)
            })?;
            let gz = tar.into_inner()?;
            gz.finish()?.flush()?;
            Ok(())
        }
        Archive::Zip => {
            let mut zip = super::zip::ZipWriter::new(out);
            let mut add = |path: &str, item: Item<'_>| -> Result<(), Fail> {
                let path = format!("{top}/{path}");
                match item {
                    Item::Dir(st) => zip.directory(&path, st.st_mode, st.st_mtime)?,
                    Item::File(st, Some(file)) => {
                        let size = st.st_size as u64;
                        let mut body = file.take(size).chain(io::repeat(0)).take(size);
                        zip.file(&path, st.st_mode, st.st_mtime, &mut body)?
                    }
                    Item::File(_, None) => {}
                    Item::Link(st, target) => {
                        use std::os::unix::ffi::OsStrExt;
                        zip.symlink(&path, target.as_os_str().as_bytes(), st.st_mtime)?
                    }
                }
                Ok(())
            };
            walk(dir, "", true, &mut add)?;
            extras.each(top, |path, _, body| zip.file(path, 0o644, now, body))?;
            zip.finish()?.flush()?;
            Ok(())
        }
    }
}
