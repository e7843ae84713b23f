//! Snapshots and rollback of a session's workspace (issue 15), as root
//! with a real throwaway Unix user, real git, and a mailed command.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::accounts::UnixUsers;
use crate::common::client::*;
use crate::common::{git, marker, Env};

/// What must never change: branch, HEAD, index, stash.
fn user_state(repo: &Path) -> Vec<String> {
    vec![
        git(repo, &["symbolic-ref", "HEAD"]),
        git(repo, &["rev-parse", "HEAD"]),
        git(repo, &["ls-files", "--stage"]),
        git(repo, &["diff", "--cached"]),
        git(repo, &["stash", "list"]),
        git(repo, &["rev-parse", "stash@{0}"]),
    ]
}

#[test]
fn a_confirmed_mailed_command_is_undone_by_rollback_and_the_rollback_too() {
    crate::common::require("git");
    let users = UnixUsers::create(1);
    let a = users.0[0].clone();
    let repo = Path::new(&format!("/tmp/{a}-home/repo")).to_path_buf();
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n\
         [mail]\naddress = \"agent@example.test\"\nauthserv_id = \"mx.example.test\"\n\
         [mail.smtp]\nhost = \"127.0.0.1\"\nport = 9\nsecurity = \"plain\"\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{}\"\nemails = [\"alice@example.test\"]\n",
        repo.display()
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();

    // Alice's repository: a branch, a commit, a stash, a staged change, an
    // untracked and an ignored file.
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "work"]);
    let binary: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(repo.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(repo.join("b.bin"), &binary).unwrap();
    std::fs::write(repo.join("c.txt"), "one\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "*.log\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    std::fs::write(repo.join("c.txt"), "stashed\n").unwrap();
    git(&repo, &["stash", "-q"]);
    std::fs::write(repo.join("c.txt"), "staged\n").unwrap();
    git(&repo, &["add", "c.txt"]);
    std::fs::write(repo.join("u.txt"), "untracked\n").unwrap();
    std::fs::write(repo.join("ignored.log"), "ignored\n").unwrap();
    let chown = Command::new("chown")
        .args(["-R", &a])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(chown.success());
    let before = user_state(&repo);

    let token = env.token("alice", "user");
    let to = env.ok(&["mail-address", "alice"]).trim().to_owned();
    let d = env.serve();
    let m = marker();
    // The command deletes files; it is typed only once confirmed.
    let raw = format!(
        "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\r\nFrom: alice@example.test\r\nTo: {to}\r\nSubject: main\r\nMessage-ID: <s1@example.test>\r\n\r\nrm a.txt b.bin u.txt; echo done-$((40+2))-{m}\r\n"
    );
    let out = env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("pending:"),
        "{out:?}"
    );
    confirm_pending(&d.url(), &token);
    // The command's output, not its echo: the files are gone by then.
    env.wait_pane("alice", "main", &format!("done-42-{m}"));
    assert!(!repo.join("a.txt").exists() && !repo.join("b.bin").exists());

    // The snapshot taken before the command, and what the command changed.
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["snapshots", "alice/main", "--json"])).unwrap();
    let snap = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["why"]
                .as_str()
                .unwrap()
                .contains(&format!("done-$((40+2))-{m}"))
        })
        .unwrap_or_else(|| panic!("no snapshot before the command: {list}"));
    let mut changed: Vec<&str> = snap["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    changed.sort();
    assert_eq!(changed, ["a.txt", "b.bin", "u.txt"], "{snap}");
    let id = snap["id"].as_str().unwrap().to_owned();

    // Rollback: the files back byte for byte; branch, index, stash as they were.
    let out = env.ok(&["rollback", "alice/main", &id]);
    let undo = out
        .split("snapshot ")
        .nth(2)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).unwrap(),
        "alpha\n"
    );
    assert_eq!(std::fs::read(repo.join("b.bin")).unwrap(), binary);
    assert_eq!(
        std::fs::read_to_string(repo.join("u.txt")).unwrap(),
        "untracked\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("c.txt")).unwrap(),
        "staged\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("ignored.log")).unwrap(),
        "ignored\n"
    );
    assert_eq!(
        user_state(&repo),
        before,
        "the user's branch, index or stash changed"
    );
    let meta = std::fs::metadata(repo.join("a.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        users.uid(0),
        "restored as root"
    );

    // And the rollback itself undone, by mail this time: `rollback ID` is
    // confirmed like any command.
    let raw = format!(
        "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\r\nFrom: alice@example.test\r\nTo: {to}\r\nSubject: main\r\nMessage-ID: <s2@example.test>\r\n\r\nrollback {undo}\r\n"
    );
    let out = env.run_with_stdin(&["mail-ingest"], raw.as_bytes());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("pending:"),
        "{out:?}"
    );
    assert!(
        repo.join("a.txt").exists(),
        "rolled back before the confirmation"
    );
    let pending = confirm_pending(&d.url(), &token);
    assert!(
        pending["command"]
            .as_str()
            .unwrap()
            .contains(&format!("snapshot {undo}")),
        "{pending}"
    );
    crate::common::wait_for(20, "the mailed rollback", || {
        (!repo.join("a.txt").exists()).then_some(())
    });
    assert!(!repo.join("u.txt").exists());
    assert_eq!(user_state(&repo), before);

    // Refusals say what to do.
    let out = env.run(&["rollback", "alice/main", "nothex"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tmuxd snapshots"));
    let out = env.run(&["rollback", "alice/main", "abcdef12"]);
    assert_eq!(out.status.code(), Some(2));

    let text = env.ok(&["transcript", "alice/main"]);
    // Recorded with who did it: the snapshot before the mailed input, the
    // rollbacks from the CLI.
    assert!(
        text.contains(r#"snapshot] {"by":"email:"#) && text.contains(&format!("\"to\":\"{id}\"")),
        "{text}"
    );
    assert!(
        text.contains("rollback] {\"before\":") && text.contains("\"by\":\"cli:uid=0\""),
        "{text}"
    );
}

#[test]
fn diffs_and_snapshots_over_http_in_git_and_plain_workdirs() {
    crate::common::require("git");
    let users = UnixUsers::create(2);
    let (a, b) = (users.0[0].clone(), users.0[1].clone());
    let repo = Path::new(&format!("/tmp/{a}-home/repo")).to_path_buf();
    let plain = Path::new(&format!("/tmp/{b}-home/plain")).to_path_buf();
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{}\"\n\
         [[users]]\nname = \"bob\"\nunix_user = \"{b}\"\nworkdir = \"{}\"\n",
        repo.display(),
        plain.display()
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "*.log\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("p.txt"), "plain\n").unwrap();
    for (u, dir) in [(&a, &repo), (&b, &plain)] {
        assert!(Command::new("chown")
            .args(["-R", u])
            .arg(dir)
            .status()
            .unwrap()
            .success());
    }
    let alice = env.token("alice", "user");
    let watcher = env.token("alice", "read-only");
    let bob = env.token("bob", "user");
    let d = env.serve();
    let api = |s: &str| format!("{}/api/sessions/{s}", d.url());

    // The working tree against the last commit: a change, an untracked
    // file; the ignored one is not there.
    std::fs::write(repo.join("a.txt"), "beta\n").unwrap();
    std::fs::write(repo.join("new.txt"), "new\n").unwrap();
    std::fs::write(repo.join("build.log"), "noise\n").unwrap();
    let (status, body) = call("GET", &api("alice/main/diff"), Some(&alice), None);
    assert_eq!(status, 200, "{body}");
    let diff: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        diff["base"]
            .as_str()
            .unwrap()
            .starts_with("the last commit"),
        "{diff}"
    );
    let files: Vec<(&str, &str)> = diff["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        files,
        [("a.txt", "modified"), ("new.txt", "added")],
        "{diff}"
    );
    let patch = diff["files"][0]["patch"].as_str().unwrap();
    assert!(
        patch.contains("-alpha") && patch.contains("+beta"),
        "{patch}"
    );

    // Snapshots over HTTP: a read-only token may list, not take or roll back.
    let (status, _) = call("POST", &api("alice/main/snapshots"), Some(&watcher), None);
    assert_eq!(status, 403);
    let (status, body) = call("POST", &api("alice/main/snapshots"), Some(&alice), None);
    assert_eq!(status, 201, "{body}");
    let snap: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = snap["id"].as_str().unwrap().to_owned();
    std::fs::remove_file(repo.join("new.txt")).unwrap();
    let (status, body) = call("GET", &api("alice/main/snapshots"), Some(&watcher), None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&id) && body.contains("new.txt"),
        "the listing names what changed after: {body}"
    );
    let (status, body) = call(
        "POST",
        &api(&format!("alice/main/snapshots/{id}/rollback")),
        Some(&alice),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        std::fs::read_to_string(repo.join("new.txt")).unwrap(),
        "new\n"
    );
    let (status, _) = call(
        "POST",
        &api("alice/main/snapshots/0123abcd/rollback"),
        Some(&alice),
        None,
    );
    assert_eq!(status, 404);
    // Bob's sessions do not exist for Alice.
    let (status, _) = call("GET", &api("bob/main/diff"), Some(&alice), None);
    assert_eq!(status, 404);

    // A plain directory: nothing to compare with until a snapshot, kept in
    // a private repository outside the workdir.
    let (status, body) = call("GET", &api("bob/main/diff"), Some(&bob), None);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("tmuxd snapshot"), "{body}");
    let (status, body) = call("POST", &api("bob/main/snapshots"), Some(&bob), None);
    assert_eq!(status, 201, "{body}");
    assert!(
        !plain.join(".git").exists(),
        "a repository inside the workdir"
    );
    assert!(Path::new(&format!(
        "/tmp/{b}-home/.local/state/tmuxd/snapshots/main.git"
    ))
    .is_dir());
    std::fs::write(plain.join("p.txt"), "changed\n").unwrap();
    let (status, body) = call("GET", &api("bob/main/diff"), Some(&bob), None);
    assert_eq!(status, 200, "{body}");
    let diff: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        diff["base"].as_str().unwrap().starts_with("snapshot"),
        "{diff}"
    );
    assert_eq!(diff["files"][0]["path"], "p.txt", "{diff}");
}
