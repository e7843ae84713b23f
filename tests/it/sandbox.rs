//! Sandboxed agents (issue 20), as root with real throwaway Unix users and
//! real bubblewrap: what a sandboxed agent can see, write and reach; an
//! unsandboxed user next to it unaffected; the real Claude Code CLI in a
//! sandbox whose allow-list lets it reach the Messages API stand-in, its
//! permission prompt answered as without a sandbox.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::common::accounts::UnixUsers;
use crate::common::anthropic::{messages_api, CLAUDE};
use crate::common::client::call;
use crate::common::standin::RunLog;
use crate::common::{marker, wait_for, Env};

/// A listener on 127.0.0.1 that greets each connection; its port, below
/// 1024 if `privileged` (like HTTPS's 443: inside a sandbox, only root in
/// its own namespaces may listen there).
fn greeter(greeting: &'static str, privileged: bool) -> u16 {
    let l = if privileged {
        (600..1000)
            .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .expect("a free port below 1024")
    } else {
        TcpListener::bind("127.0.0.1:0").unwrap()
    };
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Ends with the test process; each connection is answered once.
        for mut c in l.incoming().flatten().take(100) {
            let _ = c.write_all(greeting.as_bytes());
        }
    });
    port
}

/// The name of a listed session's agent process (the launcher's child).
fn process_name(session: &serde_json::Value) -> String {
    let pid = session["agent_pid"].as_u64().expect("an agent pid");
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Types `command` into `id`'s shell and waits for the line `tag` prints
/// (`tag` is made of `$((…))` so the echo of the command never matches).
fn run(env: &Env, id: &str, command: &str, tag: &str) -> String {
    env.ok(&["send", id, command]);
    let (user, session) = id.split_once('/').unwrap();
    wait_for(20, &format!("{tag} in {id}"), || {
        let text = env.pane_text(user, session);
        text.lines()
            .rev()
            .find(|l| l.starts_with(tag))
            .map(|l| l.to_owned())
    })
}

/// `command` then a line `TAG ok` or `TAG no` by its status.
fn check(env: &Env, id: &str, command: &str, n: u32) -> bool {
    let line = run(
        env,
        id,
        &format!("{command} && echo R$(({n}+0)) ok || echo R$(({n}+0)) no"),
        &format!("R{n} "),
    );
    line.ends_with(" ok")
}

#[test]
fn a_sandboxed_agent_sees_its_workspace_and_what_is_allowed_and_no_more() {
    crate::common::require("bwrap");
    let users = UnixUsers::create_in(3, "/home");
    let (a, b, c) = (&users.0[0], &users.0[1], &users.0[2]);
    let (home_a, home_c) = (users.home(0), users.home(2));
    // Another user's world-readable file, in a home anyone may enter.
    std::fs::set_permissions(&home_c, PermissionsExt::from_mode(0o755)).unwrap();
    let secret = home_c.join("notes.txt");
    std::fs::write(&secret, "C-PRIVATE-NOTES\n").unwrap();
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o644)).unwrap();
    let work = home_a.join("work");
    std::fs::create_dir(&work).unwrap();
    let chown = std::process::Command::new("chown")
        .args([&format!("{a}:{a}"), &work.display().to_string()])
        .status()
        .unwrap();
    assert!(chown.success());
    let (open, other) = (
        greeter("HELLO-ALLOWED\n", true),
        greeter("HELLO-OTHER\n", false),
    );

    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"bash\", \"--noprofile\", \"--norc\"]\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{}\"\n\
         [users.sandbox]\nnetwork = \"none\"\n\
         [users.sessions.net.sandbox]\nnetwork = [\"127.0.0.1:{open}\"]\n\
         [[users]]\nname = \"bob\"\nunix_user = \"{b}\"\nworkdir = \"/home/{b}\"\n",
        work.display()
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let checked = env.ok(&["check-config"]);
    assert!(checked.contains("OK (2 users)"), "{checked}");
    let _d = env.serve();
    env.wait_pane("alice", "main", "$");
    env.wait_pane("bob", "main", "$");

    // The listing says who is sandboxed, and how.
    let alice = env.session("alice/main").unwrap();
    assert_eq!(alice["sandbox"]["network"], "none", "{alice}");
    assert_eq!(alice["sandbox"]["writable"][0], work.display().to_string());
    assert!(env.session("bob/main").unwrap()["sandbox"].is_null());
    assert_eq!(
        process_name(&alice),
        "bwrap",
        "alice's agent is in bubblewrap"
    );
    assert_eq!(process_name(&env.session("bob/main").unwrap()), "bash");

    // The workdir is writable, and what is written there is the user's.
    let m = marker();
    assert!(check(
        &env,
        "alice/main",
        &format!("echo {m} > made.txt"),
        1
    ));
    let made = work.join("made.txt");
    assert_eq!(std::fs::read_to_string(&made).unwrap().trim(), m);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), users.uid(0));

    // Another user's world-readable file: bob (no sandbox) reads it,
    // alice's agent does not even see the home it is in.
    let read = format!("grep -q C-PRIVATE-NOTES {}", secret.display());
    assert!(check(&env, "bob/main", &read, 2), "bob reads it");
    assert!(
        !check(&env, "alice/main", &read, 3),
        "alice's agent must not"
    );
    assert!(!check(&env, "alice/main", &format!("ls /home/{c}"), 4));

    // Its own home is read-only outside the workdir; the system too. A
    // new file directly in the home lands in the sandbox's in-memory
    // home, never in the real one.
    let rc = std::fs::read(home_a.join(".bashrc")).unwrap();
    assert!(!check(&env, "alice/main", "echo evil >> ~/.bashrc", 5));
    assert_eq!(std::fs::read(home_a.join(".bashrc")).unwrap(), rc);
    check(&env, "alice/main", "touch ~/outside.txt", 21);
    assert!(!home_a.join("outside.txt").exists());
    assert!(
        check(&env, "bob/main", "touch ~/outside.txt", 6),
        "bob's is not"
    );
    assert!(!check(
        &env,
        "alice/main",
        "touch /var/lib/tmuxdt-escape",
        7
    ));

    // A private /tmp: the host's files are not there, its own stay in it.
    let host_tmp = format!("/tmp/tmuxdt-host-{m}");
    std::fs::write(&host_tmp, "x").unwrap();
    std::fs::set_permissions(&host_tmp, PermissionsExt::from_mode(0o644)).unwrap();
    assert!(!check(
        &env,
        "alice/main",
        &format!("test -e {host_tmp}"),
        8
    ));
    assert!(check(&env, "bob/main", &format!("test -e {host_tmp}"), 9));
    assert!(check(
        &env,
        "alice/main",
        &format!("echo x > /tmp/alice-{m}"),
        10
    ));
    assert!(!Path::new(&format!("/tmp/alice-{m}")).exists());
    std::fs::remove_file(&host_tmp).unwrap();

    // Network none: a listener on 127.0.0.1 that bob reaches is not there.
    let connect = |port: u16, expect: &str| {
        format!("timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; head -1 <&3' | grep -q {expect}")
    };
    assert!(check(&env, "bob/main", &connect(open, "HELLO-ALLOWED"), 11));
    assert!(!check(
        &env,
        "alice/main",
        &connect(open, "HELLO-ALLOWED"),
        12
    ));
    // tmux's own sockets stay out of reach: no way out of the sandbox.
    assert!(!check(
        &env,
        "alice/main",
        "tmux -S \"${TMUX%%,*}\" list-sessions",
        13
    ));

    // A session with an allow-list reaches what it lists, nothing else.
    env.ok(&["new", "alice/net"]);
    env.wait_pane("alice", "net", "$");
    let net = env.session("alice/net").unwrap();
    assert_eq!(net["sandbox"]["network"], format!("127.0.0.1:{open}"));
    for n in 14..19 {
        // Every time: the target's first bytes come right behind the
        // relay's own answer.
        assert!(check(&env, "alice/net", &connect(open, "HELLO-ALLOWED"), n));
    }
    assert!(!check(
        &env,
        "alice/net",
        &connect(other, "HELLO-OTHER"),
        19
    ));
    // The capabilities that made its network are gone before it starts.
    assert!(check(
        &env,
        "alice/net",
        "awk '/^Cap(Eff|Prm|Inh|Bnd|Amb)/ && $2 != \"0000000000000000\" {bad=1} END {exit bad}' /proc/self/status",
        26
    ));
    // An agent that talks to the relay itself gets only what its policy
    // lists, for its own user.
    let relay = env.path().join("run/sandbox/alice.sock");
    let ask = |header: String, n: u32| {
        let py = format!(
            "import socket; s=socket.socket(socket.AF_UNIX); s.connect('{}'); s.sendall(b'{header}\\n'); print('A{n}', s.recv(64))",
            relay.display()
        );
        run(
            &env,
            "alice/net",
            &format!("python3 -c \"{py}\""),
            &format!("A{n} "),
        )
    };
    assert!(ask(format!("alice/net 127.0.0.1:{open}"), 22).contains("ok"));
    assert!(ask(format!("alice/net 127.0.0.1:{other}"), 23).contains("refused"));
    assert!(ask(format!("bob/main 127.0.0.1:{open}"), 24).contains("refused"));
    assert!(ask(format!("alice/main 127.0.0.1:{open}"), 25).contains("refused"));
    _d.wait_log(5, "does not list refused");

    // Ctrl-C reaches the agent's program, not the sandbox around it.
    env.ok(&["send", "alice/main", "sleep 600"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = env.tmux("alice", &["send-keys", "-t", "=main:", "C-c"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        check(&env, "alice/main", "true", 20),
        "the shell is still there after Ctrl-C"
    );
}

#[test]
fn claude_code_runs_sandboxed_and_its_permission_prompt_is_answered() {
    crate::common::require("bwrap");
    let users = UnixUsers::create_in(1, "/home");
    let a = &users.0[0];
    let home = users.home(0);
    let work = home.join("work");
    std::fs::create_dir(&work).unwrap();
    // Tool calls append here: the workdir is what the sandbox may write.
    let ran = RunLog::in_dir(&work);
    let api = messages_api(&ran);
    let state = serde_json::json!({
        "hasCompletedOnboarding": true, "theme": "dark", "numStartups": 5,
        "projects": {work.display().to_string(): {"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true}}
    });
    std::fs::write(home.join(".claude.json"), state.to_string()).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{a}:{a}"), &home.display().to_string()])
        .status()
        .unwrap();
    assert!(chown.success());
    let port = api.url.rsplit(':').next().unwrap().to_owned();
    let mut env = Env::new(&format!(
        "[[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{}\"\nprofile = \"claude\"\n\
         command = [\"env\", \"ANTHROPIC_BASE_URL={}\", \"ANTHROPIC_AUTH_TOKEN=stand-in\", \"DISABLE_AUTOUPDATER=1\", \"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\", \"{CLAUDE}\", \"--permission-mode\", \"default\"]\n\
         [users.sandbox]\nnetwork = [\"127.0.0.1:{port}\"]\n",
        work.display(),
        api.url
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let d = env.serve();
    let url = d.url();
    let token = env.token("alice", "user");
    env.wait_pane("alice", "main", "shortcuts");
    let s = env.session("alice/main").unwrap();
    assert_eq!(s["sandbox"]["network"], format!("127.0.0.1:{port}"), "{s}");
    assert_eq!(process_name(&s), "bwrap", "Claude runs in bubblewrap");

    let (status, body) = call(
        "POST",
        &format!("{url}/api/sessions/alice/main/input"),
        Some(&token),
        Some(serde_json::json!({"text": "make a marker file"})),
    );
    assert_eq!(status, 204, "{body}");
    let q = wait_for(60, "the session waiting with Claude's question", || {
        let s = crate::agent::main_session(&url, &token);
        (s["agent_state"] == "waiting" && s["question"]["tool"].is_object())
            .then(|| s["question"].clone())
    });
    // The hook inside the sandbox reported the tool exactly.
    assert_eq!(q["tool"]["name"], "Bash", "{q}");
    assert_eq!(q["tool"]["input"]["command"], ran.command().as_str());
    assert_eq!(ran.count(), 0);
    let (status, body) = crate::agent::answer(&url, &token, q["id"].as_str().unwrap(), "1");
    assert_eq!(status, 204, "{body}");
    wait_for(30, "the command to run in the sandbox", || {
        (ran.count() == 1).then_some(())
    });
    assert_eq!(api.tool_calls(), 1);
    // Claude's own files stayed the user's; its config directory was
    // writable, its home was not.
    assert!(home.join(".claude").is_dir());
    let text = env.ok(&["transcript", "alice", "--format", "text"]);
    assert!(text.contains("Do you want to proceed?"), "{text}");
}

#[test]
fn check_config_and_doctor_check_the_sandbox_tool() {
    crate::common::require("bwrap");
    let users = UnixUsers::create(1);
    let a = &users.0[0];
    let env = Env::new(&format!(
        "[agent]\ncommand = [\"bash\"]\n[sandbox]\nnetwork = [\"api.example.com:443\", \"nohost\"]\nwritable = [\"relative/dir\", \"/nonexistent-tmuxdt\"]\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"/tmp\"\n"
    ));
    // Every mistake is named at its key.
    let out = env.run(&["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sandbox.network[1]: \"nohost\" is not host:port"),
        "{err}"
    );
    assert!(
        err.contains(
            "sandbox.writable[0]: relative/dir is neither an absolute path nor in the home"
        ),
        "{err}"
    );
    let fixed = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(", \"nohost\"", "")
        .replace("\"relative/dir\", ", "");
    std::fs::write(&env.config, fixed).unwrap();
    let err = String::from_utf8_lossy(&env.run(&["check-config"]).stderr).into_owned();
    assert!(
        err.contains("users[0].sandbox.writable: /nonexistent-tmuxdt is not a directory"),
        "{err}"
    );
    let fixed = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("\"/nonexistent-tmuxdt\"", "\"/var/tmp\"");
    std::fs::write(&env.config, fixed).unwrap();
    assert!(env.ok(&["check-config"]).contains("OK (1 user)"));
    // (The test's spool is not on a tmpfs, which doctor also says.)
    let doctor = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(
        doctor.contains("bwrap makes sandboxes as the account of each of the 1 sandboxed user(s)"),
        "{doctor}"
    );

    // Without bubblewrap on PATH: said, with the fix, by both.
    let bin = env.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["tmux", "bash"] {
        let real = crate::common::which(tool);
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    for verb in ["check-config", "doctor"] {
        let out = env.cmd(&[verb]).env("PATH", &bin).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{verb}: {text}");
        assert!(
            text.contains("sandboxed agents need bubblewrap (bwrap), which is not on PATH: install it (apt install bubblewrap)"),
            "{verb}: {text}"
        );
    }

    // A bubblewrap that cannot make a sandbox for the account: the reason
    // and the fix.
    let fake = bin.join("bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, PermissionsExt::from_mode(0o755)).unwrap();
    let out = env
        .cmd(&["check-config"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("users[0].sandbox: ") && err.contains("cannot make a sandbox for this account (bwrap: No permissions to create new namespace); allow unprivileged user namespaces"),
        "{err}"
    );
}

#[test]
fn a_sandboxed_agent_works_with_snapshots_rollback_and_worktrees() {
    crate::common::require("bwrap");
    crate::common::require("git");
    let users = UnixUsers::create_in(1, "/home");
    let a = &users.0[0];
    let repo = users.home(0).join("repo");
    std::fs::create_dir(&repo).unwrap();
    crate::common::git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    crate::common::git(&repo, &["add", "-A"]);
    crate::common::git(&repo, &["commit", "-q", "-m", "first"]);
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{a}:{a}"), &repo.display().to_string()])
        .status()
        .unwrap();
    assert!(chown.success());
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"bash\", \"--noprofile\", \"--norc\"]\n\
         [[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"{}\"\n[users.sandbox]\n",
        repo.display()
    ));
    std::fs::set_permissions(env.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let _d = env.serve();
    env.wait_pane("alice", "main", "$");
    assert_eq!(
        env.session("alice/main").unwrap()["sandbox"]["network"],
        "none"
    );

    // What the sandboxed agent writes is what a snapshot and a rollback see.
    let out = env.ok(&["snapshot", "alice/main"]);
    let id = out
        .split_whitespace()
        .find(|w| w.len() >= 8 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert!(check(&env, "alice/main", "echo changed > README", 1));
    assert_eq!(
        std::fs::read_to_string(repo.join("README")).unwrap(),
        "changed\n"
    );
    env.ok(&["rollback", "alice/main", &id]);
    assert_eq!(
        std::fs::read_to_string(repo.join("README")).unwrap(),
        "hello\n"
    );
    assert!(check(&env, "alice/main", "grep -q hello README", 2));

    // A session in a worktree commits there: git's objects and refs live in
    // the repository's .git, writable for it too.
    env.ok(&["new", "alice/wt", "--worktree"]);
    env.wait_pane("alice", "wt", "$");
    assert!(check(
        &env,
        "alice/wt",
        "echo x > w.txt && git add w.txt && git -c user.email=a@example.test -c user.name=a commit -qm sandboxed",
        3
    ));
    let log = crate::common::git(&repo, &["log", "-1", "--format=%s", "tmuxd/wt"]);
    assert_eq!(log.trim(), "sandboxed");
    // The main repository's files are still out of its reach.
    assert!(!check(
        &env,
        "alice/wt",
        &format!("touch {}/escaped", repo.display()),
        4
    ));
}
