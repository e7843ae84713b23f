//! Operations: per-user Unix isolation (as root, with real Unix users),
//! signals, restarts, health and metrics, and the systemd unit.

mod container;
mod first_run;
mod kubernetes;
mod messages;
mod secrets;
mod service;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::common::accounts::UnixUsers;
use crate::common::{alive, marker, wait_for, Env};
use nix::sys::signal::Signal;

fn proc_field(pid: u64, file: &str, key: &str) -> String {
    let text = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
    let text = String::from_utf8_lossy(&text).replace('\0', "\n");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn each_user_agent_runs_as_its_own_uid_and_others_cannot_connect() {
    crate::common::require("runuser");
    crate::common::require("script");
    let users = UnixUsers::create(2);
    let (a, b) = (users.0[0].clone(), users.0[1].clone());
    let mut env = Env::new(&format!(
        "[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\nunix_user = \"{a}\"\nworkdir = \"/tmp/{a}-home\"\nmax_open_files = 512\n[[users]]\nname = \"bob\"\nunix_user = \"{b}\"\nworkdir = \"/tmp/{b}-home\"\n"
    ));
    // The users must reach their directories inside the test's.
    std::fs::set_permissions(
        env.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let d = env.serve();
    for (i, user) in ["alice", "bob"].into_iter().enumerate() {
        let s = wait_for(10, "agent running", || {
            let s = env.session(&format!("{user}/main"))?;
            s["agent_pid"].as_u64().map(|_| s)
        });
        let pid = s["agent_pid"].as_u64().unwrap();
        let uid_line = proc_field(pid, "status", "Uid:");
        let uids: Vec<u32> = uid_line
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            uids.iter().all(|u| *u == users.uid(i)),
            "{user}'s agent uids {uids:?}"
        );
        let name = &users.0[i];
        assert_eq!(proc_field(pid, "environ", "USER="), *name);
        assert_eq!(
            proc_field(pid, "environ", "HOME="),
            format!("/tmp/{name}-home")
        );
        // Only alice has a limit configured.
        let limit = proc_field(pid, "limits", "Max open files");
        assert_eq!(
            limit.starts_with("512 "),
            user == "alice",
            "{user}: {limit}"
        );
        // The socket directory is theirs, and private.
        let dir = env.socket(user).parent().unwrap().to_owned();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (users.uid(i), 0o700),
            "{}",
            dir.display()
        );
    }
    // Bob's account cannot reach Alice's server.
    let sock = env.socket("alice").display().to_string();
    let out = Command::new("runuser")
        .args(["-u", &b, "--", "tmux", "-S", &sock, "list-sessions"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "bob reached alice's tmux: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Recording works with the spool written by the user's tmux.
    let m = marker();
    env.ok(&["send", "alice", &format!("echo iso-$((3+4))-{m}")]);
    wait_for(10, "recorded", || {
        env.ok(&["transcript", "alice"])
            .contains(&format!("iso-7-{m}"))
            .then_some(())
    });
    let spool_dir = env.path().join("run/spool/alice");
    assert_eq!(std::fs::metadata(&spool_dir).unwrap().uid(), users.uid(0));

    // With the daemon down, Alice's account attaches to its own socket.
    d.signal(Signal::SIGTERM);
    assert!(env.reap(d.pid).success());
    let mut attach = crate::common::in_terminal(
        &["runuser", "-u", &a, "--"],
        &format!("tmux -S {sock} attach -t =main"),
    );
    let clients = wait_for(10, "alice's own client attached", || {
        let out = env.tmux("alice", &["list-clients", "-F", "#{client_uid}"]);
        let s = String::from_utf8(out.stdout).unwrap();
        (!s.trim().is_empty()).then_some(s)
    });
    assert_eq!(clients.trim(), users.uid(0).to_string());
    env.tmux("alice", &["detach-client", "-s", "=main"]);
    assert!(attach.wait().unwrap().success());
}

#[test]
fn isolated_users_need_reachable_runtime_dirs() {
    let users = UnixUsers::create(1);
    let dir = tempfile::Builder::new()
        .prefix("tmuxd-r")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path().display();
    let a = &users.0[0];
    let write = |name: &str, daemon: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("[daemon]\n{daemon}\n[[users]]\nname = \"a\"\nunix_user = \"{a}\"\nworkdir = \"/tmp\"\n")).unwrap();
        p
    };
    let check = |p: &std::path::Path| {
        Command::new(crate::common::BIN)
            .arg("--config")
            .arg(p)
            .arg("check-config")
            .output()
            .unwrap()
    };
    // The default runtime dir is inside the private state dir.
    let inside = write("inside.toml", &format!("state_dir = \"{d}/state\""));
    let out = check(&inside);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("daemon.runtime_dir") && err.contains("private to the daemon"),
        "{err}"
    );
    // A runtime dir under a directory others cannot search.
    let closed = write(
        "closed.toml",
        &format!("state_dir = \"{d}/state\"\nruntime_dir = \"{d}/run\""),
    );
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let out = check(&closed);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not searchable by other users"), "{err}");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert!(check(&closed).status.success());
}

#[test]
fn twenty_restarts_alternating_sigterm_and_sigkill_lose_no_session() {
    let mut body = String::from("[agent]\ncommand = [\"sh\", \"-c\", \"exec cat\"]\n");
    for i in 0..50 {
        body.push_str(&format!("[[users]]\nname = \"u{i:02}\"\n"));
    }
    let mut env = Env::new(&body);
    let mut d = env.serve();
    let pids = |env: &Env| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = env
            .sessions()
            .iter()
            .filter_map(|s| Some((s["id"].as_str()?.to_owned(), s["agent_pid"].as_u64()?)))
            .collect();
        v.sort();
        v
    };
    let before = pids(&env);
    assert_eq!(before.len(), 50);
    for round in 0..20 {
        let sig = if round % 2 == 0 {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        d.signal(sig);
        let status = env.reap(d.pid);
        if sig == Signal::SIGTERM {
            assert!(status.success(), "round {round}: SIGTERM exit {status:?}");
        }
        d = env.serve();
        let ready = &d.notifications()[0];
        assert!(
            ready.contains("50 sessions adopted, 0 created"),
            "round {round}: {ready}"
        );
    }
    assert_eq!(pids(&env), before, "sessions lost or agents restarted");
    for (id, pid) in &before {
        assert!(alive(*pid), "{id}");
    }
}

#[test]
fn tells_systemd_it_is_ready_pings_the_watchdog_and_says_goodbye() {
    let mut env = Env::new("[agent]\ncommand = [\"sh\"]\n[[users]]\nname = \"alice\"\n");
    // The harness is the daemon's NOTIFY_SOCKET.
    let d = env.serve_with(&[("WATCHDOG_USEC", "200000")]);
    let first = &d.notifications()[0];
    assert!(
        first.starts_with(
            "READY=1\nSTATUS=1 users; 0 sessions adopted, 1 created; web on http://127.0.0.1:"
        ),
        "{first}"
    );
    // Pings every WATCHDOG_USEC / 2.
    wait_for(2, "two watchdog pings", || {
        let n = d.notifications();
        (n.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2).then_some(())
    });
    d.signal(Signal::SIGTERM);
    assert!(env.reap(d.pid).success());
    wait_for(5, "STOPPING=1, last", || {
        let n = d.notifications();
        let last = n.iter().rfind(|m| *m != "WATCHDOG=1")?;
        (last == "STOPPING=1").then_some(())
    });
    // The agent never sees systemd's variables.
    let pid = env.session("alice/main").unwrap()["agent_pid"]
        .as_u64()
        .unwrap();
    assert!(proc_field(pid, "environ", "NOTIFY_SOCKET=").is_empty());
}
