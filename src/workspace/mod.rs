//! Workspaces: files into and out of a session's workdir. The daemon never
//! touches those files itself: each operation is one run of the workspace
//! helper ([`helper`], `tmuxd workspace-helper`) as the session's Unix
//! user, fed and drained here with a deadline on every wait, its output
//! streamed (a download's memory stays flat whatever its size). Paths are
//! checked twice: here, for a clear error naming what was wrong, and in the
//! helper, where the kernel resolves them beneath the workdir without
//! following links.

pub mod diff;
pub mod git;
pub mod helper;
pub mod snapshot;
mod walk;
pub mod worktree;
mod zip;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

pub use crate::config::check_path;
pub use helper::{Listing, Sending, Stored};
use helper::{Op, Request};

/// How the helper ended (its exit status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    Failed = 1,
    /// Bad input: a path that cannot be used, a link, not a file.
    Refused = 2,
    /// Over a cap.
    TooLarge = 3,
    NotFound = 4,
}

/// Archive formats for directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Archive {
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "zip")]
    Zip,
}

impl Archive {
    /// The format asked for (tar.gz when none), or why it cannot be.
    pub fn parse(format: Option<&str>) -> Result<Archive, String> {
        match format {
            None | Some("tar.gz" | "tgz") => Ok(Archive::TarGz),
            Some("zip") => Ok(Archive::Zip),
            Some(f) => Err(format!("unknown archive format {f:?}: use tar.gz or zip")),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Archive::TarGz => "tar.gz",
            Archive::Zip => "zip",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Archive::TarGz => "application/gzip",
            Archive::Zip => "application/zip",
        }
    }
}

/// A workspace operation that did not happen: its kind and a message for
/// the user (never an internal detail: those are logged).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WorkspaceError {
    pub kind: Exit,
    pub message: String,
}

impl WorkspaceError {
    pub(crate) fn new(kind: Exit, message: impl Into<String>) -> Self {
        WorkspaceError {
            kind,
            message: message.into(),
        }
    }

    pub fn refused(message: String) -> Self {
        WorkspaceError::new(Exit::Refused, message)
    }

    /// A session error as a workspace one (no such session: not found).
    pub fn session(e: crate::session::SessionError) -> Self {
        if e.is_bad_input() {
            let kind = match e {
                crate::session::SessionError::NoSuchSession(_)
                | crate::session::SessionError::NoSuchUser(_) => Exit::NotFound,
                _ => Exit::Refused,
            };
            WorkspaceError::new(kind, e.to_string())
        } else {
            WorkspaceError::failed("session", e)
        }
    }

    pub(crate) fn failed(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "workspace {what} failed");
        WorkspaceError::new(Exit::Failed, "internal error")
    }
}

/// How long the helper may take to say what it will send (a directory's
/// measure included) or to finish storing an upload.
const HELPER_DEADLINE: Duration = Duration::from_secs(120);
/// An upload whose sender sends nothing for this long is dropped.
pub const UPLOAD_IDLE: Duration = Duration::from_secs(60);

/// Where and as whom the helper runs.
pub struct Place<'a> {
    /// The session's tmux server: its account is the helper's.
    pub tmux: &'a crate::tmux::Tmux,
    pub workdir: &'a Path,
}

impl Place<'_> {
    fn spawn(&self, op: Op, stdin: bool) -> Result<tokio::process::Child, WorkspaceError> {
        let request = Request {
            workdir: self.workdir.to_owned(),
            op,
        };
        let arg =
            serde_json::to_string(&request).map_err(|e| WorkspaceError::failed("request", e))?;
        // This very binary, even if it was replaced on disk since.
        let mut cmd = self.tmux.account_command(Path::new("/proc/self/exe"));
        cmd.arg("workspace-helper")
            .arg(arg)
            .current_dir("/")
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        cmd.spawn()
            .map_err(|e| WorkspaceError::failed("helper start", e))
    }
}

/// The helper's failure, from its exit status and its one stderr line.
async fn failure(mut child: tokio::process::Child) -> WorkspaceError {
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = tokio::time::timeout(
            HELPER_DEADLINE,
            (&mut stderr).take(4096).read_to_string(&mut err),
        )
        .await;
    }
    let status = match tokio::time::timeout(HELPER_DEADLINE, child.wait()).await {
        Ok(Ok(status)) => status,
        _ => return WorkspaceError::failed("helper", "did not exit"),
    };
    let message = err.trim().to_owned();
    match status.code() {
        Some(2) => WorkspaceError::new(Exit::Refused, message),
        Some(3) => WorkspaceError::new(Exit::TooLarge, message),
        Some(4) => WorkspaceError::new(Exit::NotFound, message),
        _ => WorkspaceError::failed("helper", format!("{status}: {message}")),
    }
}

/// Stores `body` as a new file in the uploads directory, named after
/// `name` (made safe, never replacing a file); over `max_bytes` nothing is
/// kept.
pub async fn put(
    place: &Place<'_>,
    config: &crate::config::WorkspaceConfig,
    name: &str,
    body: &mut (impl AsyncRead + Unpin),
) -> Result<Stored, WorkspaceError> {
    let op = Op::Put {
        dir: config.uploads.clone(),
        name: name.to_owned(),
        max_bytes: config.max_upload_bytes,
        max_files: config.max_upload_files,
    };
    let mut child = place.spawn(op, true)?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut buf = vec![0u8; 64 * 1024];
    // Sent as frames (helper::Framed): a transfer that breaks off here
    // leaves the helper without its end frame, and it keeps nothing. The
    // helper enforces the cap: past it, it stops reading, removes the file
    // and exits, and the next write here fails.
    loop {
        let n = match tokio::time::timeout(UPLOAD_IDLE, body.read(&mut buf[4..])).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => {
                drop(stdin);
                return Err(cut_off(child, "the upload was cut off").await);
            }
            Err(_) => {
                drop(stdin);
                let why = format!("the upload sent nothing for {} s", UPLOAD_IDLE.as_secs());
                return Err(cut_off(child, &why).await);
            }
        };
        buf[..4].copy_from_slice(&(n as u32).to_be_bytes());
        if stdin.write_all(&buf[..4 + n]).await.is_err() {
            // The helper stopped reading: it says why.
            drop(stdin);
            return Err(failure(child).await);
        }
        if n == 0 {
            break;
        }
    }
    drop(stdin);
    answer(child, 64 * 1024).await
}

/// The helper's one JSON answer on stdout (at most `max` bytes), or its
/// failure.
async fn answer<T: serde::de::DeserializeOwned>(
    mut child: tokio::process::Child,
    max: u64,
) -> Result<T, WorkspaceError> {
    let mut stdout = child.stdout.take().expect("piped");
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        HELPER_DEADLINE,
        (&mut stdout).take(max).read_to_end(&mut out),
    )
    .await;
    match (read, serde_json::from_slice::<T>(&out)) {
        (Ok(Ok(_)), Ok(value)) => {
            let _ = tokio::time::timeout(HELPER_DEADLINE, child.wait()).await;
            Ok(value)
        }
        _ => Err(failure(child).await),
    }
}

/// Ends an upload whose sender went away (its input already closed): the
/// helper sees its input end without the end frame and removes what it
/// wrote; `why` is said.
async fn cut_off(mut child: tokio::process::Child, why: &str) -> WorkspaceError {
    let _ = tokio::time::timeout(HELPER_DEADLINE, child.wait()).await;
    WorkspaceError::new(Exit::Refused, why)
}

pub fn over_upload_cap(max: u64) -> WorkspaceError {
    WorkspaceError::new(
        Exit::TooLarge,
        format!(
            "the file is larger than the upload cap of {max} bytes ([workspace] max_upload_bytes)"
        ),
    )
}

/// A download under way: what it is, and its bytes.
pub struct Download {
    pub sending: Sending,
    pub body: futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>,
}

/// A file's bytes, or directory `path` as an archive whose entries sit
/// under `top/`.
pub async fn get(
    place: &Place<'_>,
    config: &crate::config::WorkspaceConfig,
    (path, top): (&str, &str),
    archive: Archive,
    extras: Vec<ExtraStream>,
) -> Result<Download, WorkspaceError> {
    let op = Op::Get {
        path: path.to_owned(),
        top: top.to_owned(),
        archive,
        max_bytes: config.max_download_bytes,
        max_files: config.max_download_files,
        extra: extras
            .iter()
            .map(|e| helper::Extra {
                name: e.name.clone(),
                bytes: e.bytes,
            })
            .collect(),
    };
    let mut child = place.spawn(op, !extras.is_empty())?;
    if let Some(stdin) = child.stdin.take() {
        tokio::spawn(feed(stdin, extras));
    }
    let mut stdout = BufReader::with_capacity(64 * 1024, child.stdout.take().expect("piped"));
    let mut first = String::new();
    let read = tokio::time::timeout(
        HELPER_DEADLINE,
        (&mut stdout).take(64 * 1024).read_line(&mut first),
    )
    .await;
    let sending = match (read, serde_json::from_str::<Sending>(&first)) {
        (Ok(Ok(n)), Ok(sending)) if n > 0 => sending,
        _ => return Err(failure(child).await),
    };
    // Streamed to the end; a helper that fails midway ends the stream with
    // an error, so the receiver sees a cut transfer, not a short file.
    let body = futures_util::stream::unfold(Some((stdout, child)), |state| async move {
        let (mut stdout, mut child) = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match stdout.read(&mut buf).await {
            Ok(0) => match child.wait().await {
                Ok(s) if s.success() => None,
                _ => {
                    let e = failure(child).await;
                    Some((Err(std::io::Error::other(e.message)), None))
                }
            },
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((stdout, child))))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(Download {
        sending,
        body: Box::pin(body),
    })
}

/// A file the daemon adds to an archive (the transcript): its name under
/// `TOP/.tmuxd/`, its exact size, and its bytes in chunks.
pub struct ExtraStream {
    pub name: String,
    pub bytes: u64,
    pub chunks: tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
}

/// Writes each extra's chunks to the helper in turn, exactly its size (the
/// helper pads a short one); stops when the helper stops reading.
async fn feed(mut stdin: tokio::process::ChildStdin, extras: Vec<ExtraStream>) {
    for mut e in extras {
        let mut left = e.bytes;
        while let Some(Ok(chunk)) = e.chunks.recv().await {
            let n = chunk.len().min(left as usize);
            if n > 0 && stdin.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n as u64;
        }
        let pad = vec![b'\n'; left.min(1 << 20) as usize];
        while left > 0 {
            let n = pad.len().min(left as usize);
            if stdin.write_all(&pad[..n]).await.is_err() {
                return;
            }
            left -= n as u64;
        }
    }
}

/// The entries of directory `path`.
pub async fn list(place: &Place<'_>, path: &str) -> Result<Listing, WorkspaceError> {
    let op = Op::List {
        path: path.to_owned(),
        max_entries: 5000,
    };
    let child = place.spawn(op, false)?;
    answer(child, 16 << 20).await
}

/// What a download's event says.
pub fn download_detail(path: &str, sending: &Sending, archive: Archive) -> serde_json::Value {
    match sending {
        Sending::File { bytes, .. } => serde_json::json!({"path": path, "bytes": bytes}),
        Sending::Archive { files, bytes } => serde_json::json!({
            "path": path, "format": archive.extension(), "files": files, "bytes": bytes
        }),
    }
}

/// The name a download is saved under: `SESSION-DIR.tar.gz`, or the file's.
pub fn download_name(session: &str, path: &str, sending: &Sending, archive: Archive) -> String {
    match sending {
        Sending::File { name, .. } => name.clone(),
        Sending::Archive { .. } => {
            let base = Path::new(path)
                .file_name()
                .map(|n| format!("{session}-{}", n.to_string_lossy()))
                .unwrap_or_else(|| session.to_owned());
            format!("{base}.{}", archive.extension())
        }
    }
}

/// The directory an archive's entries sit under.
pub fn archive_top(session: &str, path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| session.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(check_path("").unwrap(), "");
        assert_eq!(check_path(".").unwrap(), "");
        assert_eq!(check_path("a//b/./c/").unwrap(), "a/b/c");
        assert!(check_path("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(check_path("a/../../b").unwrap_err().contains(".."));
        assert!(check_path("..").is_err());
        assert!(check_path("a\0b").is_err());
        assert!(check_path(&"a/".repeat(3000)).is_err());
    }
}
