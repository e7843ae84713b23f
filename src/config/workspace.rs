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
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig {
            uploads: "uploads".into(),
            max_upload_bytes: 100 << 20,
            max_upload_files: 1000,
            max_download_bytes: 20 << 30,
            max_download_files: 200_000,
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
}

/// Checks `[workspace]`; an error is the key and the reason.
pub(super) fn parse_workspace(raw: RawWorkspace) -> Result<WorkspaceConfig, (String, String)> {
    let mut w = WorkspaceConfig::default();
    if let Some(u) = raw.uploads {
        w.uploads = crate::workspace::check_path(&u).map_err(|why| {
            (
                "workspace.uploads".to_owned(),
                format!("{why}; write a directory inside the workdir such as \"uploads\", or \"\" for the workdir itself"),
            )
        })?;
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
        match value {
            Some(0) => return Err((format!("workspace.{key}"), "must be at least 1".into())),
            Some(n) => *field = n,
            None => {}
        }
    }
    Ok(w)
}
