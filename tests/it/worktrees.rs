//! Sessions in git worktrees of their own (issue 15), as root with a real
//! throwaway Unix user and real git.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::common::accounts::UnixUsers;
use crate::common::client::*;
use crate::common::{git, Env};

#[test]
fn a_worktree_session_works_in_its_own_worktree_and_keeps_it_when_dirty() {
    crate::common::require("git");
    let users = UnixUsers::create(2);
    let (a, b) = (users.0[0].clone(), users.0[1].clone());
    let repo = Path::new(&format!("/tmp/{a}-home/repo")).to_path_buf();
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{}\"\n\
         [[users]]\nname = \"bob\"\nunix_user = \"{b}\"\nworkdir = \"/tmp/{b}-home\"\n",
        repo.display()
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    assert!(Command::new("chown")
        .args(["-R", &a])
        .arg(&repo)
        .status()
        .unwrap()
        .success());
    let alice = env.token("alice", "user");
    let d = env.serve();

    // A new session in a new worktree, on a branch of its own.
    let wt = format!("/tmp/{a}-home/.local/share/tmuxd/worktrees/feature");
    let out = env.ok(&["new", "alice/feature", "--worktree"]);
    assert_eq!(
        out.trim(),
        format!("created alice/feature in the worktree {wt}")
    );
    let cwd = env.tmux(
        "alice",
        &[
            "display-message",
            "-p",
            "-t",
            "=feature:",
            "#{pane_current_path}",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&cwd.stdout).trim(), wt);
    assert_eq!(
        std::fs::metadata(&wt).unwrap().uid(),
        users.uid(0),
        "the worktree is not the user's"
    );
    assert!(git(&repo, &["branch", "--list", "tmuxd/feature"]).contains("tmuxd/feature"));
    assert_eq!(
        git(&repo, &["symbolic-ref", "--short", "HEAD"]).trim(),
        "main",
        "the user's checkout moved"
    );
    let sessions = env.ok(&["sessions", "--json"]);
    assert!(
        sessions.contains(&format!("\"workdir\": \"{wt}\"")),
        "{sessions}"
    );
    // The session's files are the worktree's.
    std::fs::write(format!("{wt}/work.txt"), "in progress\n").unwrap();
    let (status, body) = call(
        "GET",
        &format!("{}/api/sessions/alice/feature/files?list=true", d.url()),
        Some(&alice),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("work.txt") && body.contains("README"),
        "{body}"
    );
    assert!(!repo.join("work.txt").exists());

    // Killed with uncommitted changes: the worktree stays, and it says so.
    let out = env.ok(&["kill", "alice/feature", "--remove-worktree"]);
    assert!(
        out.contains("kept the worktree") && out.contains("uncommitted changes"),
        "{out}"
    );
    assert!(Path::new(&wt).join("work.txt").exists());

    // A clean one on a named branch is removed when asked; the branch stays.
    let out = env.ok(&["new", "alice/clean", "--worktree", "--branch", "topic"]);
    assert!(out.contains("worktrees/clean"), "{out}");
    let out = env.ok(&["kill", "alice/clean", "--remove-worktree"]);
    assert!(out.contains("removed the worktree"), "{out}");
    assert!(!Path::new(&format!("/tmp/{a}-home/.local/share/tmuxd/worktrees/clean")).exists());
    assert!(git(&repo, &["branch", "--list", "topic"]).contains("topic"));

    // Without a repository, or with a bad branch: bad input, said.
    let out = env.run(&["new", "bob/x", "--worktree"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in a git repository"));
    let out = env.run(&["new", "alice/y", "--worktree", "--branch", "bad..name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid branch name"));
    let out = env.run(&["new", "alice/z", "--branch", "b"]);
    assert_eq!(out.status.code(), Some(2), "--branch without --worktree");
}
