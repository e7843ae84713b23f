//! Sessions, supervision, adoption and the CLI, against real tmux on a
//! private socket per test and the real `tmuxd` binary.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::common::{alive, marker, wait_for, Env};
use nix::sys::signal::Signal;

const ECHO_AGENT: &str = r#"[agent]
command = ["sh", "-c", "echo cwd=$(pwd); exec cat"]
"#;

fn two_users() -> Env {
    std::fs::create_dir_all("/tmp").unwrap();
    let env = Env::new(&format!(
        "{ECHO_AGENT}\n[[users]]\nname = \"alice\"\nworkdir = \"{{dir}}/alice-work\"\n\n[[users]]\nname = \"bob\"\nworkdir = \"{{dir}}\"\n"
    ));
    std::fs::create_dir(env.path().join("alice-work")).unwrap();
    env
}

fn pid_of(env: &Env, id: &str) -> u64 {
    env.session(id).unwrap()["agent_pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("{id} has no agent pid"))
}

#[test]
fn serve_creates_sessions_in_workdir_and_send_types() {
    let mut env = two_users();
    let _d = env.serve();
    let work = env.path().join("alice-work");
    env.wait_pane("alice", "main", &format!("cwd={}", work.display()));
    env.wait_pane("bob", "main", &format!("cwd={}", env.path().display()));

    let hello = format!("echo hello-{}", marker());
    env.ok(&["send", "alice/main", &hello]);
    env.wait_pane("alice", "main", &hello);
    // `alice` alone means alice/main; tmux's argv parser must not eat a
    // trailing `;`, and text that looks like a flag is text.
    env.ok(&["send", "alice", "ls;"]);
    env.ok(&["send", "alice", "--", "-t =bob"]);
    env.wait_pane("alice", "main", "ls;");
    env.wait_pane("alice", "main", "-t =bob");

    let s = env.session("alice/main").unwrap();
    assert_eq!(s["state"], "running");
    assert_eq!(s["restarts"], 0);
    assert_eq!(s["socket"], env.socket("alice").display().to_string());
    assert!(s["created"].as_u64().unwrap() > 1_700_000_000);
}

#[test]
fn long_text_goes_through_a_paste_buffer_intact() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\", \"-c\", \"stty raw -echo; exec cat > {dir}/typed\"]\n[[users]]\nname = \"alice\"\n",
    );
    let _d = env.serve();
    wait_for(10, "agent running", || {
        (env.session("alice/main")?["state"] == "running").then_some(())
    });
    // Well past send-keys' ~16 KiB limit, with shell metacharacters.
    let text: String = (0..3000).map(|i| format!("{i:05};$(x)")).collect();
    env.ok(&["send", "alice", &text]);
    let typed = env.path().join("typed");
    let got = wait_for(15, "all text typed", || {
        let got = std::fs::read_to_string(&typed).ok()?;
        got.ends_with('\r').then_some(got)
    });
    assert_eq!(got, format!("{text}\r"));
}

#[test]
fn sigkill_then_serve_adopts_without_duplicates_or_restarts() {
    let mut env = two_users();
    let d = env.serve();
    env.ok(&["new", "alice/docs"]);
    let before: Vec<(String, u64)> = ["alice/main", "alice/docs", "bob/main"]
        .iter()
        .map(|id| (id.to_string(), pid_of(&env, id)))
        .collect();

    d.signal(Signal::SIGKILL);
    env.reap(d.pid);
    for (id, pid) in &before {
        assert!(alive(*pid), "{id}'s agent died with the daemon");
    }
    // Sessions work with the daemon down, and show the same agents.
    for (id, pid) in &before {
        assert_eq!(pid_of(&env, id), *pid, "{id}");
    }

    // tmuxd's hooks on a session made by an older daemon: none.
    let hook = |env: &Env, name: &str| {
        let out = env.tmux("alice", &["show-options", "-w", "-t", "=main:", name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(hook(&env, "pane-died").contains("wait-for -S tmuxd-died-main"));
    assert!(hook(&env, "window-resized").contains("alice/main.resized"));
    for name in ["pane-died", "window-resized"] {
        let out = env.tmux("alice", &["set-option", "-w", "-u", "-t", "=main:", name]);
        assert!(
            out.status.success() && hook(&env, name).is_empty(),
            "{out:?}"
        );
    }

    let d2 = env.serve();
    let ready = &d2.notifications()[0];
    assert!(ready.contains("3 sessions adopted, 0 created"), "{ready}");
    // Adopted sessions get them.
    assert!(hook(&env, "pane-died").contains("wait-for -S tmuxd-died-main"));
    assert!(hook(&env, "window-resized").contains("alice/main.resized"));
    for (id, pid) in &before {
        let s = env.session(id).unwrap();
        assert_eq!(s["agent_pid"].as_u64(), Some(*pid), "{id} was restarted");
        assert_eq!(s["restarts"], 0, "{id}");
    }
    // Exactly the sessions we had: no duplicate `main`.
    let names = env.tmux("alice", &["list-sessions", "-F", "#{session_name}"]);
    let mut names: Vec<String> = String::from_utf8(names.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    assert_eq!(names, ["docs", "main"]);
    assert_eq!(env.sessions().len(), 3);

    // SIGTERM: clean exit, sessions keep running.
    d2.signal(Signal::SIGTERM);
    let status = env.reap(d2.pid);
    assert!(status.success(), "SIGTERM exit: {status:?}");
    for (id, pid) in &before {
        assert!(alive(*pid), "{id}'s agent died on SIGTERM");
    }
}

#[test]
fn exited_agent_is_restarted_with_backoff_and_the_reason_is_kept() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\", \"-c\", \"echo run; sleep 0.2; exit 3\"]\nrestart_delay_ms = 100\nrestart_max_delay_ms = 400\n[[users]]\nname = \"alice\"\n",
    );
    let d = env.serve();
    let first = env.session("alice/main").unwrap();
    let s = wait_for(20, "four restarts", || {
        let s = env.session("alice/main")?;
        (s["restarts"].as_u64()? >= 4).then_some(s)
    });
    assert_eq!(s["last_exit"]["status"], 3, "{s}");
    assert!(s["last_exit"]["at"].as_u64().is_some(), "{s}");
    assert_eq!(
        s["created"], first["created"],
        "the session itself was kept"
    );
    // Backoff doubles from 100 ms and stops at the 400 ms cap.
    let log = d.log();
    for delay in ["delay_ms=100", "delay_ms=200", "delay_ms=400"] {
        assert!(log.contains(delay), "{delay} missing from:\n{log}");
    }
    assert!(!log.contains("delay_ms=800"), "{log}");
    assert!(log.contains("status 3"), "{log}");
    // The table shows the reason too.
    let table = env.ok(&["sessions"]);
    assert!(table.contains("status 3 at "), "{table}");
}

#[test]
fn restart_never_leaves_the_pane_dead_with_its_status() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\", \"-c\", \"echo bye-now; exit 5\"]\nrestart = \"never\"\n[[users]]\nname = \"alice\"\n",
    );
    let d = env.serve();
    d.wait_log(10, "restart policy says no restart");
    let s = env.session("alice/main").unwrap();
    assert_eq!(
        (s["state"].as_str(), s["last_exit"]["status"].as_i64()),
        (Some("exited"), Some(5))
    );
    env.wait_pane("alice", "main", "bye-now");
    env.wait_pane("alice", "main", "[tmuxd] the agent exited (status 5)");
}

#[test]
fn missing_agent_binary_shows_in_pane_and_sessions_and_others_keep_working() {
    // check-config refuses a missing program; this one goes away once it
    // ran (uninstalled under a running daemon).
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\", \"-c\", \"exec cat\"]\n[[users]]\nname = \"alice\"\n[[users]]\nname = \"bob\"\ncommand = [\"{dir}/vanishing-agent\"]\n",
    );
    let agent = env.path().join("vanishing-agent");
    std::fs::write(&agent, "#!/bin/sh\nrm -f \"$0\"\nexit 3\n").unwrap();
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let _d = env.serve();
    env.wait_pane(
        "bob",
        "main",
        &format!(
            "tmuxd: cannot start the agent: {}: command not found",
            agent.display()
        ),
    );
    let bob = wait_for(10, "bob's exit recorded", || {
        let s = env.session("bob/main")?;
        (s["last_exit"]["status"] == 127).then_some(s)
    });
    assert_eq!(bob["last_exit"]["status"], 127);
    let table = env.ok(&["sessions"]);
    assert!(table.contains("status 127 (command not found)"), "{table}");
    // Alice is unaffected.
    let m = format!("still-here-{}", marker());
    env.ok(&["send", "alice", &m]);
    env.wait_pane("alice", "main", &m);
}

#[test]
fn new_and_kill_named_sessions() {
    let mut env = two_users();
    let d = env.serve();
    assert_eq!(env.ok(&["new", "alice/docs"]).trim(), "created alice/docs");
    env.wait_pane("alice", "docs", "cwd=");
    let out = env.run(&["new", "alice/docs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("alice/docs already exists"));

    let pid = pid_of(&env, "alice/docs");
    assert_eq!(env.ok(&["kill", "alice/docs"]).trim(), "killed alice/docs");
    assert!(env.session("alice/docs").is_none());
    wait_for(10, "docs agent gone", || (!alive(pid)).then_some(()));
    d.wait_log(10, "session ended session=alice/docs");

    let out = env.run(&["kill", "alice/main"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("alice/main is the user's main session"));
}

#[test]
fn unknown_sessions_and_users_exit_2_with_daemon_up_and_down() {
    let mut env = two_users();
    let check = |env: &Env, daemon: bool| {
        for args in [
            &["send", "alice/foo", "x"][..],
            &["kill", "alice/foo"],
            &["attach", "alice/foo"],
        ] {
            let out = env.run(args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            // With the daemon down, typing and attaching also say how to
            // start it (the session may only not be created yet).
            if daemon || args[0] == "kill" {
                assert_eq!(err.trim(), "tmuxd: no such session alice/foo", "{args:?}");
            } else {
                assert!(
                    err.starts_with("tmuxd: no such session alice/foo, and the daemon is not running: start it with `tmuxd serve`"),
                    "{args:?}: {err}"
                );
            }
        }
        let out = env.run(&["new", "carol/main"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no such user carol"));
    };
    check(&env, false);
    let _d = env.serve();
    check(&env, true);
}

#[test]
fn bad_names_are_refused_and_tmux_is_never_called() {
    let mut env = two_users();
    // A tmux shim that records every call, in front of the real one.
    let shim_dir = env.path().join("shim");
    std::fs::create_dir(&shim_dir).unwrap();
    let calls = env.path().join("tmux-calls");
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let shim = shim_dir.join("tmux");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
            calls.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.path_prefix = Some(shim_dir);

    let long = "a".repeat(33);
    let bad = [
        "a:b", "a.b", "#(id)", "#{pid}", "../x", "=x", "", &long, "Alice", "a b",
    ];
    for name in bad {
        for id in [name.to_string(), format!("alice/{name}")] {
            for verb in [
                &["new"][..],
                &["kill"],
                &["attach"],
                &["attach", "--read-only"],
                &["send"],
            ] {
                let mut args: Vec<&str> = verb.to_vec();
                args.push(&id);
                if verb == ["send"] {
                    args.push("text");
                }
                let out = env.run(&args);
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
                assert!(
                    err.contains(&format!("{name:?}")),
                    "{args:?} must name the value: {err}"
                );
            }
        }
    }
    // `-x` is taken for an option; it is refused all the same.
    for args in [&["new", "-x"][..], &["new", "alice/-x"]] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("-x"),
            "{args:?}"
        );
    }
    assert!(
        !calls.exists(),
        "tmux was called: {}",
        std::fs::read_to_string(&calls).unwrap_or_default()
    );
    // The shim works: a valid call goes through it.
    env.ok(&["sessions"]);
    assert!(calls.exists());
}

#[test]
fn bad_configs_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"\n",
            "users[1].name: duplicate user \"a\"",
        ),
        (
            "[[users]]\nname = \"a\"\nshell = \"x\"\n",
            "users[0].shell: unknown field",
        ),
        (
            "[agent]\ncommand = \"claude\"\n[[users]]\nname = \"a\"\n",
            "agent.command: invalid type",
        ),
        (
            "[[users]]\nname = \"a\\u0000b\"\n",
            "users[0].name: invalid name \"a\\0b\"",
        ),
        (
            "[[users]]\nname = \"#{pid}\"\n",
            "users[0].name: invalid name \"#{pid}\"",
        ),
        (
            "[daemon]\nallow_root_agents = true\n[[users]]\nname = \"a\"\nworkdir = \"/nonexistent/dir\"\n",
            "users[0].workdir: /nonexistent/dir: No such file or directory",
        ),
        (
            "[daemon]\nallow_root_agents = true\n[agent]\ncommand = [\"tmuxd-no-such-agent\"]\n[[users]]\nname = \"a\"\n",
            "agent.command: the agent program \"tmuxd-no-such-agent\" is not on PATH",
        ),
        (
            "[daemon]\nallow_root_agents = true\n[[users]]\nname = \"a\"\ncommand = [\"/nonexistent/agent\"]\n",
            "users[0].command: the agent program /nonexistent/agent: No such file or directory",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        // As root, agents without an account are a problem of their own.
        let text = match text.contains("[daemon]") {
            true => text.to_string(),
            false => format!("[daemon]\nallow_root_agents = true\n{text}"),
        };
        std::fs::write(&path, &text).unwrap();
        for verb in ["check-config", "serve"] {
            let out = Command::new(crate::common::BIN)
                .arg("--config")
                .arg(&path)
                .arg(verb)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{verb} {text:?}: {err}");
            assert!(
                err.contains(expected),
                "{verb} {text:?}: expected {expected:?} in {err}"
            );
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }
    // Unreadable: missing file, and a directory.
    for path in [dir.path().join("missing.toml"), dir.path().to_owned()] {
        let out = Command::new(crate::common::BIN)
            .arg("--config")
            .arg(&path)
            .arg("check-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("{}: (file): cannot read", path.display())),
            "{err}"
        );
    }
}

#[test]
fn default_config_prints_a_valid_example() {
    let out = Command::new(crate::common::BIN)
        .arg("default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[[users]]") && text.contains("restart"));
    // Point the example's workdirs and Unix user at this machine.
    let dir = tempfile::tempdir().unwrap();
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let d = dir.path().display().to_string();
    let text = text
        .replace("/home/bob/project", &d)
        .replace("/home/alice", &d)
        .replace("unix_user = \"alice\"", &format!("unix_user = \"{me}\""))
        .replace("unix_user = \"bob\"", &format!("unix_user = \"{me}\""));
    let path = dir.path().join("example.toml");
    std::fs::write(&path, &text).unwrap();
    // The example's agents, claude and aider, on PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for agent in ["claude", "aider"] {
        let file = bin.join(agent);
        std::fs::write(&file, "#!/bin/sh\nexec cat\n").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path_var = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(crate::common::BIN)
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .env("PATH", &path_var)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK (2 users)"), "{stdout}");
}

#[test]
fn socket_directories_are_private_and_distinct() {
    let mut env = two_users();
    let _d = env.serve();
    let a = env.socket("alice");
    let b = env.socket("bob");
    assert_ne!(a.parent(), b.parent());
    for sock in [&a, &b] {
        let dir = sock.parent().unwrap();
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        assert!(sock.exists());
    }
    // A socket directory made too open is fixed on the next start.
    std::fs::set_permissions(a.parent().unwrap(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.kill_daemons();
    let d = env.serve();
    let mode = std::fs::metadata(a.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    d.wait_log(10, "socket directory was not private");
}

#[test]
fn attach_works_with_the_daemon_down_and_read_only_is_read_only() {
    crate::common::require("script");
    let mut env = two_users();
    env.serve();
    env.wait_pane("alice", "main", "cwd=");
    env.kill_daemons();
    for (flags, read_only) in [(&[][..], false), (&["--read-only"][..], true)] {
        let mut args = vec!["attach", "alice"];
        args.extend_from_slice(flags);
        let cmdline = std::iter::once(crate::common::BIN.to_string())
            .chain(["--config".into(), env.config.display().to_string()])
            .chain(args.iter().map(|s| s.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        // The CLI's own HOME; `script` gives tmux the terminal it needs.
        let mut child = crate::common::in_terminal(
            &[],
            &format!("env HOME={} {cmdline}", env.path().display()),
        );
        let flags = wait_for(10, "an attached client", || {
            let out = env.tmux(
                "alice",
                &["list-clients", "-t", "=main", "-F", "#{client_flags}"],
            );
            let s = String::from_utf8(out.stdout).unwrap();
            (!s.trim().is_empty()).then_some(s)
        });
        assert_eq!(
            flags.contains("readonly") || flags.contains("read-only"),
            read_only,
            "{flags}"
        );
        env.tmux("alice", &["detach-client", "-s", "=main"]);
        let st = child.wait().unwrap();
        assert!(st.success(), "attach exited {st:?}");
    }
}

#[test]
fn ctrl_c_reaches_the_agent_and_the_launcher_survives() {
    let mut env = Env::new(
        "[agent]\ncommand = [\"sh\", \"-c\", \"trap 'echo got-int' INT; echo armed; while :; do sleep 0.05; done\"]\n[[users]]\nname = \"alice\"\n",
    );
    let _d = env.serve();
    env.wait_pane("alice", "main", "armed");
    let before = env.session("alice/main").unwrap();
    env.tmux("alice", &["send-keys", "-t", "=main:", "C-c"]);
    env.wait_pane("alice", "main", "got-int");
    let after = env.session("alice/main").unwrap();
    assert_eq!(after["state"], "running");
    assert_eq!(after["agent_pid"], before["agent_pid"]);
    assert_eq!(after["restarts"], 0);
}

#[test]
fn agents_never_run_as_root_or_as_others_without_permission() {
    // A world-readable place: the check also runs as `nobody`.
    let dir = tempfile::Builder::new()
        .prefix("tmuxd-u")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    };
    let d = dir.path().display();
    let check = |path: &std::path::Path, as_nobody: bool| {
        let mut cmd = if as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--", crate::common::BIN]);
            c
        } else {
            Command::new(crate::common::BIN)
        };
        cmd.arg("--config").arg(path).arg("check-config");
        cmd.output().unwrap()
    };
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs as root (as CI does)"
    );
    // As root: a user with no unix_user would run as root: refused...
    let implicit = write(
        "implicit.toml",
        format!("[[users]]\nname = \"a\"\nworkdir = \"{d}\"\n"),
    );
    let out = check(&implicit, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("users[0].unix_user: the daemon runs as root"),
        "{err}"
    );
    // ...unless the config says so.
    let explicit = write(
        "explicit.toml",
        format!("[[users]]\nname = \"a\"\nworkdir = \"{d}\"\nunix_user = \"root\"\n"),
    );
    assert!(check(&explicit, false).status.success());
    let allowed = write(
        "allowed.toml",
        format!("[daemon]\nallow_root_agents = true\n[[users]]\nname = \"a\"\nworkdir = \"{d}\"\n"),
    );
    assert!(check(&allowed, false).status.success());
    // Not root: only its own account.
    let other = write(
        "other.toml",
        format!("[daemon]\nstate_dir = \"{d}/s\"\n[[users]]\nname = \"a\"\nworkdir = \"{d}\"\nunix_user = \"root\"\n"),
    );
    let out = check(&other, true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("users[0].unix_user: \"root\" is not the user running tmuxd"),
        "{err}"
    );
}

#[test]
fn a_second_daemon_on_the_same_config_is_refused() {
    let mut env = two_users();
    let _d = env.serve();
    let out = env.cmd(&["serve"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another tmuxd is already running"), "{err}");
    // The first one is unharmed.
    assert_eq!(env.session("alice/main").unwrap()["state"], "running");
}
