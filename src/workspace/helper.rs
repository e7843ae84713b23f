//! The workspace helper: one file operation in a session's workdir, in a
//! process of its own (`tmuxd workspace-helper REQUEST`) that the daemon
//! starts as the session's Unix user. The kernel's permission checks are
//! the user's, so nothing here can reach what the user could not; on top
//! of that every path is resolved beneath the workdir without following
//! any symbolic link (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`), and directories are walked by descriptor, never
//! by path, so a link planted or swapped in during the walk is never
//! followed.
//!
//! Protocol: the request is one JSON argument; a put reads the file on
//! stdin; stdout carries one JSON line, then (for a get) the bytes; on
//! failure nothing is written to stdout, stderr has one line for the user
//! and the exit status says what kind of failure it was ([`Exit`]).

use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use serde::{Deserialize, Serialize};

use super::walk;
use super::{Archive, Exit};

/// One operation, as the daemon asks for it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The session's workdir: every path is beneath it.
    pub workdir: PathBuf,
    pub op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Stores stdin as a new file named after `name` in `dir` (created if
    /// missing); never replaces a file.
    Put {
        dir: String,
        name: String,
        max_bytes: u64,
        max_files: u64,
    },
    /// A file's bytes, or a directory as an archive.
    Get {
        path: String,
        /// The archive's top directory.
        top: String,
        archive: Archive,
        max_bytes: u64,
        max_files: u64,
        /// Files the daemon sends on stdin after the request, added to a
        /// directory's archive under `TOP/.tmuxd/` (the transcript).
        #[serde(default)]
        extra: Vec<Extra>,
    },
    /// A directory's entries.
    List { path: String, max_entries: usize },
}

/// A file added to an archive from stdin: its name and exact size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extra {
    pub name: String,
    pub bytes: u64,
}

/// What a put stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    pub path: String,
    pub bytes: u64,
}

/// What a get sends after its header line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Sending {
    File { name: String, bytes: u64 },
    Archive { files: u64, bytes: u64 },
}

/// One directory entry of a listing.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    /// `file`, `dir`, `link` or `other`.
    pub kind: String,
    pub bytes: u64,
    pub mtime: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Listing {
    pub path: String,
    pub entries: Vec<Entry>,
    /// More entries than `max_entries`: the rest are left out.
    pub truncated: bool,
}

/// A failure to report: its kind and a line for the user.
pub struct Fail(pub Exit, pub String);

impl From<nix::Error> for Fail {
    fn from(e: nix::Error) -> Fail {
        Fail(Exit::Failed, e.desc().to_owned())
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail(Exit::Failed, e.to_string())
    }
}

/// Runs the helper with its one argument; returns the exit status.
pub fn main(arg: &str) -> i32 {
    let result = serde_json::from_str::<Request>(arg)
        .map_err(|e| Fail(Exit::Refused, format!("bad request: {e}")))
        .and_then(run);
    match result {
        Ok(()) => 0,
        Err(Fail(exit, message)) => {
            eprintln!("{message}");
            exit as i32
        }
    }
}

fn run(req: Request) -> Result<(), Fail> {
    let root = nix::fcntl::open(
        &req.workdir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Fail(
            Exit::Failed,
            format!("the workdir {}: {}", req.workdir.display(), e.desc()),
        )
    })?;
    let mut out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    match req.op {
        Op::Put {
            dir,
            name,
            max_bytes,
            max_files,
        } => {
            let stored = put(
                &root,
                &dir,
                &name,
                max_bytes,
                max_files,
                &mut io::stdin().lock(),
            )?;
            line(&mut out, &stored)?;
        }
        Op::Get {
            path,
            top,
            archive,
            max_bytes,
            max_files,
            extra,
        } => {
            let caps = (max_bytes, max_files);
            get(&root, (&path, &top), archive, caps, &extra, &mut out)?
        }
        Op::List { path, max_entries } => {
            let dir = beneath(&root, &path, OFlag::O_DIRECTORY)?;
            let (entries, truncated) = walk::list(&dir, max_entries)?;
            line(
                &mut out,
                &Listing {
                    path,
                    entries,
                    truncated,
                },
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn line(out: &mut impl Write, value: &impl Serialize) -> Result<(), Fail> {
    let mut text = serde_json::to_vec(value).map_err(|e| Fail(Exit::Failed, e.to_string()))?;
    text.push(b'\n');
    out.write_all(&text)?;
    Ok(())
}

/// Opens `path` (relative, checked by [`super::check_path`]) beneath
/// `root` without following any link.
fn beneath(root: &OwnedFd, path: &str, flags: OFlag) -> Result<OwnedFd, Fail> {
    let path = if path.is_empty() { "." } else { path };
    let how = OpenHow::new().flags(flags | walk::READ_FLAGS).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    nix::fcntl::openat2(root, path, how).map_err(|e| {
        // A link where a directory was asked for reads as "not a
        // directory": say what it is (the look is for the message only).
        let link = e == nix::errno::Errno::ENOTDIR
            && nix::sys::stat::fstatat(root, path, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits());
        refused(path, if link { nix::errno::Errno::ELOOP } else { e })
    })
}

/// A path that cannot be used, said for the user.
fn refused(path: &str, e: nix::Error) -> Fail {
    use nix::errno::Errno;
    match e {
        Errno::ENOENT => Fail(Exit::NotFound, format!("{path}: no such file or directory")),
        Errno::ELOOP => Fail(
            Exit::Refused,
            format!("{path}: is or passes through a symbolic link, which is never followed"),
        ),
        Errno::EXDEV => Fail(Exit::Refused, format!("{path}: leaves the workspace")),
        Errno::ENOTDIR => Fail(Exit::Refused, format!("{path}: is not a directory")),
        Errno::EACCES | Errno::EPERM => Fail(Exit::Refused, format!("{path}: permission denied")),
        e => Fail(Exit::Failed, format!("{path}: {}", e.desc())),
    }
}

/// A name that is safe to create: its last path component, without
/// control characters, leading dots or dashes, at most 120 bytes (the
/// extension kept); `upload` when nothing is left.
pub fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let clean = clean.trim().trim_start_matches(['.', '-']);
    if clean.is_empty() {
        return "upload".to_owned();
    }
    if clean.len() <= 120 {
        return clean.to_owned();
    }
    let (stem, ext) = split_ext(clean);
    let ext = if ext.len() <= 16 { ext } else { "" };
    let mut cut = 120 - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &stem[..cut])
}

/// `("report", ".tar.gz")`-style split at the first dot after the first
/// character.
fn split_ext(name: &str) -> (&str, &str) {
    let first = name.chars().next().map_or(0, char::len_utf8);
    match name[first..].find('.') {
        Some(i) => name.split_at(first + i),
        None => (name, ""),
    }
}

fn put(
    root: &OwnedFd,
    dir: &str,
    name: &str,
    max_bytes: u64,
    max_files: u64,
    input: &mut impl Read,
) -> Result<Stored, Fail> {
    let dirfd = make_dirs(root, dir)?;
    let count = walk::count_entries(&dirfd)?;
    if count >= max_files {
        return Err(Fail(
            Exit::TooLarge,
            format!(
                "{} already holds {count} files (the cap is {max_files}, [workspace] max_upload_files): remove some first",
                shown(dir)
            ),
        ));
    }
    let name = safe_name(name);
    let (stem, ext) = split_ext(&name);
    let (file, chosen) = (0..1000)
        .map(|i| {
            if i == 0 {
                name.clone()
            } else {
                format!("{stem}-{i}{ext}")
            }
        })
        .find_map(|candidate| {
            match nix::fcntl::openat(
                &dirfd,
                candidate.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            ) {
                Ok(fd) => Some(Ok((std::fs::File::from(fd), candidate))),
                Err(nix::errno::Errno::EEXIST) => None,
                Err(e) => Some(Err(refused(&candidate, e))),
            }
        })
        .unwrap_or_else(|| {
            Err(Fail(
                Exit::Refused,
                format!("{name}: too many files with this name"),
            ))
        })?;
    let mut file = io::BufWriter::with_capacity(256 * 1024, file);
    let mut framed = Framed {
        inner: input,
        left: 0,
    };
    let copied = io::copy(&mut (&mut framed).take(max_bytes + 1), &mut file);
    let remove = |why: Fail| {
        let _ = nix::unistd::unlinkat(
            &dirfd,
            chosen.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        why
    };
    let bytes = copied.map_err(|e| {
        remove(match e.kind() {
            io::ErrorKind::UnexpectedEof => Fail(
                Exit::Refused,
                "the upload was cut off before its end; nothing was kept".into(),
            ),
            _ => e.into(),
        })
    })?;
    if bytes > max_bytes {
        let over = super::over_upload_cap(max_bytes);
        return Err(remove(Fail(over.kind, over.message)));
    }
    let file = file
        .into_inner()
        .map_err(|e| remove(e.into_error().into()))?;
    file.sync_all().map_err(|e| remove(e.into()))?;
    Ok(Stored {
        path: if dir.is_empty() {
            chosen
        } else {
            format!("{dir}/{chosen}")
        },
        bytes,
    })
}

/// An upload on stdin as frames: a big-endian u32 length, then that many
/// bytes; a zero length ends it. Input that ends without the zero frame
/// was cut off (the sender went away), and the file is not kept.
pub struct Framed<'a, R: Read> {
    pub inner: &'a mut R,
    /// What is left of the current frame.
    pub left: u32,
}

impl<R: Read> Read for Framed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut len = [0u8; 4];
            self.inner.read_exact(&mut len)?;
            self.left = u32::from_be_bytes(len);
            if self.left == 0 {
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u32;
        Ok(n)
    }
}

fn shown(dir: &str) -> &str {
    if dir.is_empty() {
        "the workdir"
    } else {
        dir
    }
}

/// Opens `dir` beneath `root`, creating missing components (0755 before
/// the umask) without following links.
fn make_dirs(root: &OwnedFd, dir: &str) -> Result<OwnedFd, Fail> {
    let mut fd = beneath(root, "", OFlag::O_DIRECTORY)?;
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        match nix::sys::stat::mkdirat(&fd, part, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(refused(part, e)),
        }
        fd = beneath(&fd, part, OFlag::O_DIRECTORY)?;
    }
    Ok(fd)
}

fn get(
    root: &OwnedFd,
    (path, top): (&str, &str),
    archive: Archive,
    (max_bytes, max_files): (u64, u64),
    extra: &[Extra],
    out: &mut impl Write,
) -> Result<(), Fail> {
    if extra.iter().any(|e| safe_name(&e.name) != e.name) {
        return Err(Fail(Exit::Refused, "bad extra file name".into()));
    }
    let fd = beneath(root, path, OFlag::empty())?;
    let st = fstat(&fd)?;
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG if !extra.is_empty() => Err(Fail(
            Exit::Refused,
            format!("{path} is a file: the transcript goes into a directory's archive"),
        )),
        SFlag::S_IFREG => {
            let bytes = st.st_size as u64;
            if bytes > max_bytes {
                return Err(too_large(bytes, max_bytes));
            }
            let name = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            line(out, &Sending::File { name, bytes })?;
            let mut file = std::fs::File::from(fd);
            io::copy(&mut (&mut file).take(bytes), out)?;
            Ok(())
        }
        SFlag::S_IFDIR => {
            let (files, bytes) = walk::measure(&fd, max_files, shown(path))?;
            if bytes > max_bytes {
                return Err(too_large(bytes, max_bytes));
            }
            line(out, &Sending::Archive { files, bytes })?;
            let extras = walk::Extras {
                files: extra,
                input: &mut io::stdin().lock(),
            };
            walk::archive(fd.as_fd(), top, archive, extras, out)
        }
        _ => Err(Fail(
            Exit::Refused,
            format!("{path}: not a regular file or a directory"),
        )),
    }
}

fn too_large(bytes: u64, max: u64) -> Fail {
    Fail(
        Exit::TooLarge,
        format!("{bytes} bytes is over the download cap of {max} bytes ([workspace] max_download_bytes): download a part of it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("report.pdf"), "report.pdf");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("--help"), "help");
        assert_eq!(safe_name(".."), "upload");
        assert_eq!(safe_name(""), "upload");
        assert_eq!(safe_name("a\nb\u{7}.txt"), "a_b_.txt");
        let long = format!("{}.tar.gz", "x".repeat(300));
        let s = safe_name(&long);
        assert!(s.len() <= 120 && s.ends_with(".tar.gz"), "{s}");
        let wide = "é".repeat(100);
        assert!(safe_name(&wide).len() <= 120);
    }

    #[test]
    fn framed_uploads_end_only_at_the_zero_frame() {
        let read = |bytes: &[u8]| {
            let mut input = bytes;
            let mut out = Vec::new();
            io::copy(
                &mut Framed {
                    inner: &mut input,
                    left: 0,
                },
                &mut out,
            )
            .map(|_| out)
        };
        assert_eq!(read(b"\0\0\0\x02hi\0\0\0\x01!\0\0\0\0").unwrap(), b"hi!");
        assert_eq!(read(b"\0\0\0\0").unwrap(), b"");
        for cut in [&b"\0\0\0\x02hi"[..], b"\0\0\0\x05hi", b"", b"\0\0"] {
            assert_eq!(
                read(cut).unwrap_err().kind(),
                io::ErrorKind::UnexpectedEof,
                "{cut:?}"
            );
        }
    }

    #[test]
    fn extensions() {
        assert_eq!(split_ext("a.tar.gz"), ("a", ".tar.gz"));
        assert_eq!(split_ext("noext"), ("noext", ""));
        assert_eq!(split_ext("é.txt"), ("é", ".txt"));
        assert_eq!(split_ext(""), ("", ""));
    }
}
