//! A session in a git worktree of its own: made from the user's workdir's
//! repository (`git worktree add`, as the user) under
//! `~/.local/share/tmuxd/worktrees/SESSION`, on a branch of its own
//! (`tmuxd/SESSION` unless one is named). Killing the session never
//! deletes a worktree with uncommitted changes; a clean one is removed
//! when asked.

use std::path::{Path, PathBuf};

use super::git::git;
use super::{Exit, Place, WorkspaceError};

/// Makes a worktree for `session` from the repository `place.workdir` is
/// in; returns its path.
pub async fn add(
    place: &Place<'_>,
    session: &str,
    branch: Option<&str>,
) -> Result<PathBuf, WorkspaceError> {
    let top = git(place, place.workdir, None, None, &["rev-parse", "--show-toplevel"])
        .await
        .map_err(|_| {
            WorkspaceError::new(
                Exit::Refused,
                format!(
                    "the workdir {} is not in a git repository: --worktree needs one (git init there, or set the user's workdir to a repository)",
                    place.workdir.display()
                ),
            )
        })?;
    let top = PathBuf::from(top.trim());
    let branch = branch
        .map(str::to_owned)
        .unwrap_or_else(|| format!("tmuxd/{session}"));
    if branch.starts_with('-')
        || git(
            place,
            &top,
            None,
            None,
            &["check-ref-format", "--branch", &branch],
        )
        .await
        .is_err()
    {
        return Err(WorkspaceError::new(
            Exit::Refused,
            format!("{branch:?} is not a valid branch name"),
        ));
    }
    let home = place
        .tmux
        .account_home()
        .ok_or_else(|| WorkspaceError::failed("worktree", "the account has no home"))?;
    let path = home.join(".local/share/tmuxd/worktrees").join(session);
    if path.exists() {
        return Err(WorkspaceError::new(
            Exit::Refused,
            format!("{} already exists (a worktree of an earlier session?): remove it with `git worktree remove` first", path.display()),
        ));
    }
    let dir = path.to_string_lossy().into_owned();
    let exists = git(
        place,
        &top,
        None,
        None,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .await
    .is_ok();
    let added = if exists {
        git(
            place,
            &top,
            None,
            None,
            &["worktree", "add", "--quiet", &dir, &branch],
        )
        .await
    } else {
        git(
            place,
            &top,
            None,
            None,
            &["worktree", "add", "--quiet", "-b", &branch, &dir, "HEAD"],
        )
        .await
    };
    // git's own words are about the user's repository: they say what to fix.
    added.map_err(|e| {
        WorkspaceError::new(Exit::Refused, format!("git worktree add failed: {}", e.0))
    })?;
    Ok(path)
}

/// What became of a killed session's worktree, said for the user.
pub async fn after_kill(place: &Place<'_>, remove: bool) -> String {
    let dir = place.workdir.display();
    let status = git(place, place.workdir, None, None, &["status", "--porcelain"]).await;
    match status {
        Ok(s) if !s.trim().is_empty() => format!(
            "kept the worktree {dir}: it has uncommitted changes (commit or discard them, then `git worktree remove {dir}`)"
        ),
        Ok(_) if remove => {
            let removed = git(place, Path::new("/"), None, None, &["-C", &place.workdir.to_string_lossy(), "worktree", "remove", &dir.to_string()]).await;
            match removed {
                Ok(_) => format!("removed the worktree {dir}"),
                Err(e) => format!("kept the worktree {dir}: git worktree remove failed: {}", e.0),
            }
        }
        Ok(_) => format!("kept the worktree {dir} (clean; --remove-worktree removes it)"),
        Err(_) => format!("kept the worktree {dir} (git could not say whether it is clean)"),
    }
}
