//! Snapshots of a session's workspace and rollback to them, with real git
//! run as the session's Unix user. A snapshot is a commit of the working
//! tree (untracked files included, ignored files left out) built in an
//! index file of its own and kept on a private ref,
//! `refs/tmuxd/snapshots/SESSION/UNIX_MS`: the user's branch, index and
//! stash are never touched. A workdir that is not in a git work tree gets
//! a private repository outside it (`~/.local/state/tmuxd/snapshots/`).
//! Rollback first snapshots the present (so it can itself be undone), then
//! makes the working tree the snapshot's (`read-tree --reset -u` in the
//! private index: files the snapshot lacks are removed, ignored files stay).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Serialize;

use super::git::{git, in_repo, Repo, GIT_DEADLINE};
use super::{Exit, Place, WorkspaceError};

/// One snapshot, as listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// The commit, abbreviated (what `rollback` takes).
    pub id: String,
    pub time_ms: u64,
    /// Why it was taken: the input that followed, "on request", ...
    pub why: String,
    /// The files that changed from this snapshot to the next one (or to
    /// now, for the newest): what the input after it did.
    pub changed: Vec<String>,
}

/// The repository that keeps `session`'s snapshots: the workdir's own when
/// it is in a git work tree, else a private one (created).
pub(super) async fn repo(place: &Place<'_>, session: &str) -> Result<Repo, WorkspaceError> {
    let found = git(
        place,
        place.workdir,
        None,
        None,
        &["rev-parse", "--show-toplevel", "--absolute-git-dir"],
    )
    .await;
    if let Ok(out) = found {
        let mut lines = out.lines();
        if let (Some(top), Some(dir)) = (lines.next(), lines.next()) {
            return Ok(Repo {
                work_tree: PathBuf::from(top),
                git_dir: PathBuf::from(dir),
            });
        }
    }
    let home = place
        .tmux
        .account_home()
        .ok_or_else(|| WorkspaceError::failed("snapshot", "the account has no home"))?;
    let git_dir = home
        .join(".local/state/tmuxd/snapshots")
        .join(format!("{session}.git"));
    let repo = Repo {
        git_dir: git_dir.clone(),
        work_tree: place.workdir.to_owned(),
    };
    if !git_dir.join("HEAD").exists() {
        let dir = git_dir.to_string_lossy().into_owned();
        git(
            place,
            Path::new("/"),
            None,
            None,
            &["init", "--quiet", "--bare", &dir],
        )
        .await?;
    }
    // The private repository inside the work tree (a workdir that is the
    // home) must not snapshot itself.
    if let Ok(inside) = git_dir.strip_prefix(place.workdir) {
        let first = inside
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        if let Some(first) = first {
            let exclude = format!("/{first}/\n");
            let path = git_dir.join("info/exclude");
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if !current.contains(&exclude) {
                write_as_user(place, &path, &format!("{current}{exclude}")).await?;
            }
        }
    }
    Ok(repo)
}

/// Writes `text` to `path` as the session's user (through `sh -c 'cat >
/// "$1"'`: the shell string is fixed, the path an argument).
async fn write_as_user(place: &Place<'_>, path: &Path, text: &str) -> Result<(), WorkspaceError> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = place.tmux.account_command(Path::new("sh"));
    cmd.args(["-c", "cat > \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| WorkspaceError::failed("write", e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let _ = stdin.write_all(text.as_bytes()).await;
    drop(stdin);
    match tokio::time::timeout(GIT_DEADLINE, child.wait()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        _ => Err(WorkspaceError::failed("write", path.display())),
    }
}

fn refs_of(session: &str) -> String {
    format!("refs/tmuxd/snapshots/{session}/")
}

/// An index file of this call's own in the git directory.
fn private_index(repo: &Repo) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    repo.git_dir
        .join(format!("tmuxd-index-{}-{n}", std::process::id()))
}

/// The commit of the working tree as it is now, on a new private ref.
async fn commit_now(
    place: &Place<'_>,
    repo: &Repo,
    session: &str,
    why: &str,
) -> Result<(String, u64), WorkspaceError> {
    let tree = tree_now(place, repo).await?;
    let parent = newest(place, repo, session).await?;
    let first_line: String = why.lines().next().unwrap_or("").chars().take(200).collect();
    let message = format!("tmuxd snapshot: {first_line}");
    let mut args = vec!["commit-tree", tree.as_str(), "-m", &message];
    if let Some(p) = &parent {
        args.extend(["-p", p.as_str()]);
    }
    let commit = in_repo(place, repo, &args).await?;
    let commit = commit.trim().to_owned();
    let time_ms = crate::clock::unix_now_ms();
    let name = format!("{}{time_ms}", refs_of(session));
    in_repo(place, repo, &["update-ref", &name, &commit]).await?;
    Ok((commit, time_ms))
}

/// The newest snapshot's commit.
pub(super) async fn newest(
    place: &Place<'_>,
    repo: &Repo,
    session: &str,
) -> Result<Option<String>, WorkspaceError> {
    let out = in_repo(
        place,
        repo,
        &[
            "for-each-ref",
            "--sort=-refname",
            "--count=1",
            "--format=%(objectname)",
            &refs_of(session),
        ],
    )
    .await?;
    Ok(out.lines().next().map(str::to_owned))
}

/// Takes a snapshot of `session`'s workspace now; keeps the newest `keep`.
pub async fn take(
    place: &Place<'_>,
    session: &str,
    why: &str,
    keep: usize,
) -> Result<Snapshot, WorkspaceError> {
    let repo = repo(place, session).await?;
    Ok(take_in(place, &repo, session, why, keep).await?.0)
}

/// [`take`] in `repo`; also returns the full commit.
async fn take_in(
    place: &Place<'_>,
    repo: &Repo,
    session: &str,
    why: &str,
    keep: usize,
) -> Result<(Snapshot, String), WorkspaceError> {
    let (commit, time_ms) = commit_now(place, repo, session, why).await?;
    prune(place, repo, session, keep).await?;
    let snap = Snapshot {
        id: commit[..12.min(commit.len())].to_owned(),
        time_ms,
        why: why.to_owned(),
        changed: Vec::new(),
    };
    Ok((snap, commit))
}

/// Drops all but the newest `keep` snapshot refs (git collects the
/// objects later).
async fn prune(
    place: &Place<'_>,
    repo: &Repo,
    session: &str,
    keep: usize,
) -> Result<(), WorkspaceError> {
    let out = in_repo(
        place,
        repo,
        &[
            "for-each-ref",
            "--sort=-refname",
            "--format=%(refname)",
            &refs_of(session),
        ],
    )
    .await?;
    for name in out.lines().skip(keep) {
        in_repo(place, repo, &["update-ref", "-d", name]).await?;
    }
    Ok(())
}

/// The snapshots of `session`, oldest first, each with the files changed
/// after it.
pub async fn list(place: &Place<'_>, session: &str) -> Result<Vec<Snapshot>, WorkspaceError> {
    let repo = repo(place, session).await?;
    let out = in_repo(
        place,
        &repo,
        &[
            "for-each-ref",
            "--sort=refname",
            "--format=%(refname)%00%(objectname)%00%(contents:subject)",
            &refs_of(session),
        ],
    )
    .await?;
    let mut snaps: Vec<(Snapshot, String)> = Vec::new();
    for line in out.lines() {
        let mut f = line.split('\0');
        let (Some(name), Some(commit), Some(subject)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let time_ms = name
            .rsplit('/')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let snap = Snapshot {
            id: commit[..12.min(commit.len())].to_owned(),
            time_ms,
            why: subject.trim_start_matches("tmuxd snapshot: ").to_owned(),
            changed: Vec::new(),
        };
        snaps.push((snap, commit.to_owned()));
    }
    // What changed after each: to the next snapshot, the newest to now.
    let now = if snaps.is_empty() {
        None
    } else {
        Some(tree_now(place, &repo).await?)
    };
    for i in 0..snaps.len() {
        let next = match snaps.get(i + 1) {
            Some((_, c)) => c.clone(),
            None => now.clone().unwrap_or_default(),
        };
        let out = in_repo(
            place,
            &repo,
            &[
                "diff-tree",
                "-r",
                "--name-only",
                "--no-renames",
                &snaps[i].1,
                &next,
            ],
        )
        .await?;
        snaps[i].0.changed = out.lines().map(str::to_owned).collect();
    }
    Ok(snaps.into_iter().map(|(s, _)| s).collect())
}

/// The tree of the working tree now (written to the object store, no ref).
pub(super) async fn tree_now(place: &Place<'_>, repo: &Repo) -> Result<String, WorkspaceError> {
    let index = private_index(repo);
    let tree = async {
        git(
            place,
            &repo.work_tree,
            Some(repo),
            Some(&index),
            &["add", "-A", "--", "."],
        )
        .await?;
        git(
            place,
            &repo.work_tree,
            Some(repo),
            Some(&index),
            &["write-tree"],
        )
        .await
    }
    .await;
    let _ = std::fs::remove_file(&index);
    Ok(tree?.trim().to_owned())
}

/// Restores `session`'s workspace to snapshot `id` (a prefix of its
/// commit); returns the snapshot taken of the present first.
pub async fn rollback(
    place: &Place<'_>,
    session: &str,
    id: &str,
    by: &str,
    keep: usize,
) -> Result<Snapshot, WorkspaceError> {
    let repo = repo(place, session).await?;
    let out = in_repo(
        place,
        &repo,
        &["for-each-ref", "--format=%(objectname)", &refs_of(session)],
    )
    .await?;
    let matching: Vec<&str> = if id.len() >= 4 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        out.lines()
            .filter(|c| c.starts_with(&id.to_ascii_lowercase()))
            .collect()
    } else {
        Vec::new()
    };
    let [target] = matching[..] else {
        return Err(WorkspaceError::new(
            Exit::NotFound,
            format!("no snapshot {id} of this session (`tmuxd snapshots` lists them)"),
        ));
    };
    let target = target.to_owned();
    let why = format!("before rollback to {} by {by}", &target[..12]);
    let (before, before_commit) = take_in(place, &repo, session, &why, keep.max(2)).await?;
    let index = private_index(&repo);
    let done = async {
        git(
            place,
            &repo.work_tree,
            Some(&repo),
            Some(&index),
            &["read-tree", &before_commit],
        )
        .await?;
        git(
            place,
            &repo.work_tree,
            Some(&repo),
            Some(&index),
            &["read-tree", "--reset", "-u", &target],
        )
        .await
    }
    .await;
    let _ = std::fs::remove_file(&index);
    done?;
    Ok(before)
}

/// Checks a snapshot id's shape before git sees it.
pub fn check_id(id: &str) -> Result<(), String> {
    if (4..=40).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a snapshot id (4 to 40 hex digits; `tmuxd snapshots ID` lists them)"
        ))
    }
}
