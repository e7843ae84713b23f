//! Running git as a session's Unix user: every git command of snapshots,
//! rollback, diffs and worktrees goes through here, with a deadline, a
//! fixed locale, tmuxd as author, and never a prompt.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::{Place, WorkspaceError};

/// How long one git command may take (a large first snapshot hashes every
/// file).
pub(super) const GIT_DEADLINE: Duration = Duration::from_secs(300);

/// Where the snapshots of a workspace live.
pub(super) struct Repo {
    pub(super) git_dir: PathBuf,
    pub(super) work_tree: PathBuf,
}

/// git as the session's user with `args`, in `repo` (or, without one, in
/// `cwd`), with `index` as its index; output piped.
fn command(
    place: &Place<'_>,
    cwd: &Path,
    repo: Option<&Repo>,
    index: Option<&Path>,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = place.tmux.account_command(Path::new("git"));
    cmd.args(["-c", "core.quotePath=off"])
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "tmuxd")
        .env("GIT_AUTHOR_EMAIL", "tmuxd@localhost")
        .env("GIT_COMMITTER_NAME", "tmuxd")
        .env("GIT_COMMITTER_EMAIL", "tmuxd@localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(r) = repo {
        cmd.env("GIT_DIR", &r.git_dir)
            .env("GIT_WORK_TREE", &r.work_tree);
    }
    if let Some(i) = index {
        cmd.env("GIT_INDEX_FILE", i);
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd
}

/// Runs git as the session's user in `repo` (or, without one, in `cwd`),
/// with `index` as its index; stdout on success.
pub(super) async fn git(
    place: &Place<'_>,
    cwd: &Path,
    repo: Option<&Repo>,
    index: Option<&Path>,
    args: &[&str],
) -> Result<String, GitFailed> {
    let mut cmd = command(place, cwd, repo, index, args);
    let out = match tokio::time::timeout(GIT_DEADLINE, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(GitFailed(format!("cannot run git: {e}"))),
        Err(_) => return Err(GitFailed(format!("{args:?} took over {GIT_DEADLINE:?}"))),
    };
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(GitFailed(format!("{args:?}: {why}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`git`] in `repo`'s work tree, with the repository's own index.
pub(super) async fn in_repo(
    place: &Place<'_>,
    repo: &Repo,
    args: &[&str],
) -> Result<String, GitFailed> {
    git(place, &repo.work_tree, Some(repo), None, args).await
}

/// The commit the workdir's repository has checked out, if any (none in
/// a private repository, or before the first commit).
pub(super) async fn head(place: &Place<'_>, repo: &Repo) -> Option<String> {
    let out = in_repo(
        place,
        repo,
        &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
    )
    .await;
    out.ok()
        .map(|o| o.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Runs git like [`git`], keeping at most `max` bytes of its output (then
/// it is stopped); whether it was cut.
pub(super) async fn git_capped(
    place: &Place<'_>,
    repo: &Repo,
    args: &[&str],
    max: usize,
) -> Result<(String, bool), WorkspaceError> {
    use tokio::io::AsyncReadExt;
    let mut cmd = command(place, &repo.work_tree, Some(repo), None, args);
    cmd.stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| WorkspaceError::failed("git", e))?;
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().expect("piped");
    let read = tokio::time::timeout(
        GIT_DEADLINE,
        (&mut stdout).take(max as u64 + 1).read_to_end(&mut out),
    )
    .await;
    if !matches!(read, Ok(Ok(_))) {
        return Err(WorkspaceError::failed(
            "git",
            format!("{args:?} did not finish"),
        ));
    }
    let cut = out.len() > max;
    out.truncate(max);
    if !cut {
        match tokio::time::timeout(GIT_DEADLINE, child.wait()).await {
            Ok(Ok(s)) if s.success() => {}
            _ => return Err(WorkspaceError::failed("git", format!("{args:?} failed"))),
        }
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), cut))
}

/// A git command that failed: logged (as a [`WorkspaceError`]), never
/// shown; expected failures (is this a repository?) are not logged.
pub(super) struct GitFailed(pub(super) String);

impl From<GitFailed> for WorkspaceError {
    fn from(e: GitFailed) -> Self {
        WorkspaceError::failed("git", e.0)
    }
}

/// Whether the workdir is in a git work tree.
pub async fn in_git(place: &Place<'_>) -> bool {
    git(
        place,
        place.workdir,
        None,
        None,
        &["rev-parse", "--is-inside-work-tree"],
    )
    .await
    .is_ok_and(|out| out.trim() == "true")
}
