//! First run (issue 16): every config problem named at once with a fix for
//! the file in use, the printed example, a file without users, `tmuxd
//! init` as a new account, sessions made while the daemon was down, and
//! `--help` on every script.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::accounts::UnixUsers;
use crate::common::{Env, BIN};

fn tmuxd(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_config_problem_is_named_at_once_with_a_fix_for_the_file_in_use() {
    let dir = tempfile::Builder::new()
        .prefix("tmuxd-t")
        .tempdir_in("/tmp")
        .unwrap();
    // Two problems in the text, two on this machine; the second user's
    // keys keep their place although the first user's name is bad.
    let path = dir.path().join("problems.toml");
    std::fs::write(
        &path,
        "[daemon]\nallow_root_agents = true\n[web]\nlisten = \"nope\"\n[agent]\ncommand = [\"tmuxd-no-such-agent\"]\n\
         [[users]]\nname = \"Alice\"\n[[users]]\nname = \"bob\"\nworkdir = \"/nonexistent/bob\"\n",
    )
    .unwrap();
    let p = path.display().to_string();
    let keys = [
        "web.listen: \"nope\" is not an address",
        "users[0].name: invalid name \"Alice\"",
        "users[1].workdir: /nonexistent/bob: No such file or directory",
        "agent.command: the agent program \"tmuxd-no-such-agent\" is not on PATH",
    ];
    for verb in ["check-config", "serve"] {
        let out = tmuxd(&path, &[verb]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{verb}: {err}");
        assert_eq!(
            err.lines().next(),
            Some(&*format!("tmuxd: {p}: 4 problems")),
            "{verb}: {err}"
        );
        for (line, key) in err.lines().skip(1).zip(keys) {
            assert!(
                line.starts_with(&format!("  {key}")),
                "{verb}: {line:?} is not {key:?}"
            );
        }
        assert_eq!(err.lines().count(), 5, "{verb}: {err}");
    }
    let out = tmuxd(&path, &["doctor"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for key in [
        "web.listen",
        "users[0].name",
        "users[1].workdir",
        "agent.command",
    ] {
        assert!(
            report.contains(&format!("fix: edit {key} in {p}\n")),
            "{key}: {report}"
        );
    }

    // A file that is not there: how to make one.
    let missing = dir.path().join("missing.toml");
    let out = tmuxd(&missing, &["check-config"]);
    let err = stderr(&out);
    assert_eq!(
        (out.status.code(), err.lines().count()),
        (Some(2), 1),
        "{err}"
    );
    let m = missing.display();
    assert!(
        err.contains(&format!("{m}: (file): cannot read: No such file or directory; create {m} (`tmuxd init --config {m}`")),
        "{err}"
    );

    // The printed example, unchanged: its values are said to be examples.
    let example = dir.path().join("example.toml");
    let printed = Command::new(BIN).arg("default-config").output().unwrap();
    std::fs::write(&example, &printed.stdout).unwrap();
    let out = tmuxd(&example, &["check-config"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("users[0].unix_user: no such Unix user \"alice\""),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("  (example): this file is still the example from `tmuxd default-config`"),
        "{err}"
    );

    // A file without users: the embedded default's one user, said as root.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "# nothing yet\n[agent]\ncommand = [\"sh\"]\n").unwrap();
    let out = tmuxd(&empty, &["check-config"]);
    let said = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        said.starts_with(&format!("{}: OK (1 user)", empty.display())),
        "{said}"
    );
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    assert_eq!(
        said.contains(&format!("note: the agent of {me} runs as root")),
        nix::unistd::geteuid().is_root(),
        "{said}"
    );
}

#[test]
fn sessions_made_while_the_daemon_is_down_say_why_they_have_no_transcript() {
    let env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    let out = env.run(&["new", "alice/notes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("the daemon is not running; created alice/notes directly"));
    let out = env.run(&["transcript", "alice/notes"]);
    let err = stderr(&out);
    assert_eq!(
        (out.status.code(), err.lines().count()),
        (Some(2), 1),
        "{err}"
    );
    assert!(
        err.contains("alice/notes has no transcript yet: it was created while the daemon was down"),
        "{err}"
    );
    assert!(err.contains("`tmuxd serve` adopts it"), "{err}");
    // main, not made yet: how to make it.
    let out = env.run(&["transcript", "alice/main"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no such session alice/main, and the daemon is not running: start it with `tmuxd serve`"), "{err}");
    let _ = env.tmux("alice", &["kill-server"]);
}

#[test]
fn init_writes_a_config_for_this_machine_and_a_token_for_each_user() {
    let users = UnixUsers::create(1);
    let name = &users.0[0];
    let account = nix::unistd::User::from_name(name).unwrap().unwrap();
    // As the account, in a login-less environment: no USER, no XDG.
    let as_account = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("HOME", &account.dir)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(&account.dir)
            .uid(account.uid.as_raw())
            .gid(account.gid.as_raw())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = as_account(&["init"]);
    let said = stdout(&out);
    assert!(out.status.success(), "{said}{}", stderr(&out));
    let file = account.dir.join(".config/tmuxd/config.toml");
    let mut lines = said.lines();
    assert_eq!(
        lines.next(),
        Some(&*format!("wrote {} (1 user)", file.display()))
    );
    let token = lines
        .next()
        .and_then(|l| l.strip_prefix(&format!("login token for {name} (shown only now): ")))
        .unwrap_or_else(|| panic!("no token line: {said}"));
    assert!(token.starts_with(&format!("{name}.")), "{said}");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("next: `tmuxd serve`, then open http://127.0.0.1:7681/"),
        "{said}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!(
            "name = \"{name}\"\nworkdir = \"{}\"",
            account.dir.display()
        )),
        "{text}"
    );
    // What it wrote checks out, on this machine, read by default.
    let out = as_account(&["check-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("{}: OK (1 user)", file.display())));
    let out = as_account(&["doctor"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = as_account(&["token", "--list"]);
    assert!(
        stdout(&out)
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains(name.as_str())),
        "{}",
        stdout(&out)
    );
    // Again: the file is kept.
    let out = as_account(&["init"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("exists: check it with `tmuxd check-config") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // Others' accounts: only for root, and only accounts that exist.
    let out = as_account(&["init", "--force", "--user", "root"]);
    assert!(stderr(&out).contains("only a daemon running as root can run agents as other accounts"));
    let out = tmuxd(
        &file,
        &["init", "--force", "--user", "tmuxd-no-such-account"],
    );
    assert!(
        stderr(&out).contains("--user tmuxd-no-such-account: no such Unix account"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_script_answers_help() {
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
    let mut seen = 0;
    for entry in std::fs::read_dir(scripts).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(path.extension().and_then(|e| e.to_str()), Some("sh" | "py")) {
            continue;
        }
        let out = Command::new(&path)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let help = stdout(&out);
        assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
        assert!(help.lines().count() >= 2, "{}: {help}", path.display());
        seen += 1;
    }
    assert!(seen >= 12, "only {seen} scripts");
}
