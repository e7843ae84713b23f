//! What changed in a session's workspace, per file: the working tree
//! (untracked files included, ignored ones not) against the last commit of
//! the workdir's git repository, or against the newest snapshot where there
//! is none; git run as the session's user, its output capped.

use serde::Serialize;

use super::git::{self, git_capped};
use super::snapshot;
use super::{Exit, Place, WorkspaceError};

/// Patch bytes shown at most, in all and per file.
const MAX_TOTAL: usize = 1 << 20;
const MAX_FILE: usize = 256 << 10;

#[derive(Debug, Serialize)]
pub struct FileDiff {
    pub path: String,
    /// `added`, `modified`, `deleted` or `type-changed`.
    pub status: String,
    pub patch: String,
    /// The patch was cut at the per-file cap.
    pub truncated: bool,
}

#[derive(Debug, Serialize)]
pub struct Diff {
    /// What the working tree is compared with.
    pub base: String,
    pub files: Vec<FileDiff>,
    /// Files or patch text were left out at the total cap.
    pub truncated: bool,
}

pub async fn diff(place: &Place<'_>, session: &str) -> Result<Diff, WorkspaceError> {
    let repo = snapshot::repo(place, session).await?;
    let head = git::head(place, &repo).await;
    let (base, label) = match head {
        Some(h) => (h.clone(), format!("the last commit ({})", &h[..12.min(h.len())])),
        None => match snapshot::newest(place, &repo, session).await? {
            Some(s) => (s.clone(), format!("snapshot {}", &s[..12.min(s.len())])),
            None => {
                return Err(WorkspaceError::new(
                    Exit::NotFound,
                    "nothing to compare with: the workdir has no git commit and the session no snapshot yet (take one with `tmuxd snapshot`)",
                ))
            }
        },
    };
    let now = snapshot::tree_now(place, &repo).await?;
    let (names, _) = git_capped(
        place,
        &repo,
        &["diff", "--name-status", "--no-renames", &base, &now],
        MAX_TOTAL,
    )
    .await?;
    let (patch, cut) = git_capped(
        place,
        &repo,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            &base,
            &now,
        ],
        MAX_TOTAL,
    )
    .await?;
    let mut files: Vec<FileDiff> = names
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(s, path)| FileDiff {
            path: path.to_owned(),
            status: match s {
                "A" => "added",
                "D" => "deleted",
                "T" => "type-changed",
                _ => "modified",
            }
            .to_owned(),
            patch: String::new(),
            truncated: false,
        })
        .collect();
    for (path, text) in split_patch(&patch) {
        if let Some(f) = files.iter_mut().find(|f| f.path == path) {
            f.truncated = text.len() > MAX_FILE;
            f.patch = cut_at(text, MAX_FILE).to_owned();
        }
    }
    Ok(Diff {
        base: label,
        truncated: cut,
        files,
    })
}

/// A patch split at its `diff --git a/P b/P` headers: (P, that file's part).
fn split_patch(patch: &str) -> Vec<(String, &str)> {
    let mut starts: Vec<usize> = patch
        .match_indices("diff --git a/")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || patch.as_bytes()[i - 1] == b'\n')
        .collect();
    starts.push(patch.len());
    starts
        .windows(2)
        .map(|w| {
            let part = &patch[w[0]..w[1]];
            let header = part.lines().next().unwrap_or("");
            // "diff --git a/P b/P": P is the second half.
            let rest = &header["diff --git a/".len()..];
            let path = rest
                .get(..rest.len().saturating_sub(3) / 2)
                .unwrap_or("")
                .to_owned();
            (path, part)
        })
        .collect()
}

fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_split_per_file() {
        let p = "diff --git a/x.txt b/x.txt\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\ndiff --git a/dir/y z b/dir/y z\nnew file mode 100644\n";
        let parts = split_patch(p);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "x.txt");
        assert!(parts[0].1.ends_with("+b\n"));
        assert_eq!(parts[1].0, "dir/y z");
        assert_eq!(cut_at("héllo", 2), "h");
    }
}
