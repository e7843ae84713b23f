//! `[workspace]`: where uploads land in a session's workdir and the caps
//! on what one upload or download may move.

use super::*;

/// File work in session workdirs (uploads, downloads).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceConfig {
    /// Where uploads land, relative to the workdir (empty: the workdir).
    pub uploads: String,
    /// Largest single upload.
    pub max_upload_bytes: u64,
    /// Most entries the uploads directory may hold before an upload.
    pub max_upload_files: u64,
    /// Largest download (a file, or an archive's files before compression).
    pub max_download_bytes: u64,
    /// Most entries one archive may hold.
    pub max_download_files: u64,
    /// When a snapshot is taken before typed input (a confirmed mailed
    /// command, an answered question, API and CLI input).
    pub snapshot_before_input: SnapshotPolicy,
    /// Snapshots kept per session (the oldest go first).
    pub max_snapshots: usize,
}

/// `[workspace] snapshot_before_input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotPolicy {
    /// When the workdir is in a git work tree (cheap: git knows it).
    Git,
    /// Always (a workdir outside git gets a private repository).
    Always,
    Never,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig {
            uploads: "uploads".into(),
            max_upload_bytes: 100 << 20,
            max_upload_files: 1000,
            max_download_bytes: 20 << 30,
            max_download_files: 200_000,
            snapshot_before_input: SnapshotPolicy::Git,
            max_snapshots: 100,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkspace {
    uploads: Option<String>,
    max_upload_bytes: Option<u64>,
    max_upload_files: Option<u64>,
    max_download_bytes: Option<u64>,
    max_download_files: Option<u64>,
    snapshot_before_input: Option<SnapshotPolicy>,
    max_snapshots: Option<usize>,
}

/// Checks `[workspace]`, recording each problem at its key.
pub(super) fn parse_workspace(p: &mut Problems, raw: RawWorkspace) -> WorkspaceConfig {
    let mut w = WorkspaceConfig::default();
    if let Some(u) = raw.uploads {
        let checked = check_path(&u).map_err(|why| {
            format!("{why}; write a directory inside the workdir such as \"uploads\", or \"\" for the workdir itself")
        });
        if let Some(u) = p.check("workspace.uploads", checked) {
            w.uploads = u;
        }
    }
    let caps = [
        (
            raw.max_upload_bytes,
            &mut w.max_upload_bytes,
            "max_upload_bytes",
        ),
        (
            raw.max_upload_files,
            &mut w.max_upload_files,
            "max_upload_files",
        ),
        (
            raw.max_download_bytes,
            &mut w.max_download_bytes,
            "max_download_bytes",
        ),
        (
            raw.max_download_files,
            &mut w.max_download_files,
            "max_download_files",
        ),
    ];
    for (value, field, key) in caps {
        *field = parse::at_least_one(p, &format!("workspace.{key}"), value, *field);
    }
    if let Some(policy) = raw.snapshot_before_input {
        w.snapshot_before_input = policy;
    }
    w.max_snapshots = parse::at_least_one(
        p,
        "workspace.max_snapshots",
        raw.max_snapshots,
        w.max_snapshots,
    );
    w
}

/// Checks a relative path in a workspace and returns it normalized
/// (`a/b`, empty for the workdir itself): no absolute paths, no `..`, no
/// NUL, at most 4096 bytes.
pub fn check_path(path: &str) -> Result<String, String> {
    if path.len() > 4096 {
        return Err("the path is longer than 4096 bytes".into());
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    if path.starts_with('/') {
        return Err(format!(
            "{path:?} is absolute; paths are relative to the session's workdir"
        ));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!(
            "{path:?} contains \"..\"; paths stay inside the session's workdir"
        ));
    }
    Ok(parts.join("/"))
}
