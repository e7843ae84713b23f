//! tmuxd in a container of its own (issue 18): a container restart kills
//! every process in its cgroup, which takes the tmux servers tmuxd
//! started with it. With `[daemon] tmux_host` the servers start in the
//! tmux host's container instead (`tmuxd tmux-host`, beside it), survive
//! the restart, and the next daemon adopts them. Containers here are
//! cgroup v2 groups, restarted with `cgroup.kill`, as a container runtime
//! does.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::common::{alive, wait_for, Env, BIN};

/// A cgroup v2 group of its own ("a container"), removed on drop.
struct Container(PathBuf);

impl Container {
    fn new() -> Container {
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(PathBuf::from)
            .find(|r| r.join("cgroup.procs").exists() && r.join("cgroup.subtree_control").exists())
            .expect("a cgroup v2 hierarchy (the tests restart a container by cgroup.kill)");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root.join(format!("tmuxdt-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        assert!(
            dir.join("cgroup.kill").exists(),
            "cgroup.kill (Linux 5.14) is needed"
        );
        Container(dir)
    }

    fn procs(&self) -> std::ffi::CString {
        std::ffi::CString::new(self.0.join("cgroup.procs").to_str().unwrap()).unwrap()
    }

    /// Kills everything in it, as a container runtime restarting it.
    fn restart(&self) {
        std::fs::write(self.0.join("cgroup.kill"), "1").unwrap();
        wait_for(10, "the container emptied", || {
            std::fs::read_to_string(self.0.join("cgroup.procs"))
                .unwrap()
                .trim()
                .is_empty()
                .then_some(())
        });
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// `tmuxd tmux-host` on `socket`, killed on drop (with the servers it
/// started: the test's own).
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn zombie(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

fn agent_pid(env: &Env) -> u64 {
    env.session("alice/main").unwrap()["agent_pid"]
        .as_u64()
        .expect("an agent")
}

#[test]
fn with_a_tmux_host_agents_outlive_a_restart_of_tmuxds_container() {
    let body =
        "[agent]\ncommand = [\"bash\", \"--norc\", \"--noprofile\"]\n[[users]]\nname = \"alice\"\n";

    // Without a host: the restart takes the tmux server and the agent.
    let mut plain = Env::new(body);
    let container = Container::new();
    plain.cgroup_procs = Some(container.procs());
    let _d = plain.serve();
    let before = agent_pid(&plain);
    container.restart();
    // (Killed, it may stay a zombie a moment, until init reaps it.)
    wait_for(10, "the agent gone with its container", || {
        (!alive(before) || zombie(before)).then_some(())
    });
    assert!(!plain
        .tmux("alice", &["has-session", "-t", "=main"])
        .status
        .success());

    // With one: the server starts in the host's container and lives on.
    let socket = plain.path().join("tmux-host.sock");
    let mut env = Env::new(&body.replace(
        "[[users]]",
        &format!("[daemon]\ntmux_host = \"{}\"\n[[users]]", socket.display()),
    ));
    let _host = Host(
        Command::new(BIN)
            .args(["tmux-host", "--socket"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(10, "the tmux host's socket", || {
        socket.exists().then_some(())
    });
    let container = Container::new();
    env.cgroup_procs = Some(container.procs());
    let _d = env.serve();
    env.wait_pane("alice", "main", "bash-");
    env.ok(&["send", "alice/main", "echo before-$((6*7))"]);
    env.wait_pane("alice", "main", "before-42");
    let before = agent_pid(&env);
    container.restart();
    assert!(
        alive(before) && !zombie(before),
        "the agent died with tmuxd's container"
    );
    // The next daemon (in the restarted container) adopts it as it is.
    let d = env.serve();
    assert!(d.log().contains("adopted=1"), "{}", d.log());
    assert_eq!(agent_pid(&env), before);
    env.ok(&["send", "alice/main", "echo after-$((6*7))"]);
    env.wait_pane("alice", "main", "after-42");
    // Recorded throughout: the output before and after the restart.
    wait_for(10, "both outputs in the transcript", || {
        let text = env.ok(&["transcript", "alice", "--format", "text"]);
        (text.contains("\nbefore-42") && text.contains("\nafter-42")).then_some(())
    });

    // The host is its own account's only (0600), and runs tmux only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let marker = plain.path().join("not-tmux");
    let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    use std::io::{Read, Write};
    let request = serde_json::json!({"argv": ["sh", "-c", format!("touch {}", marker.display())]});
    conn.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("runs tmux only"), "{answer}");
    assert!(!marker.exists());

    // Agents switched to accounts of their own cannot start through it.
    let switching = Env::new(&format!(
        "[daemon]\ntmux_host = \"{}\"\n[agent]\ncommand = [\"bash\"]\n[[users]]\nname = \"alice\"\nunix_user = \"nobody\"\nworkdir = \"/tmp\"\n",
        socket.display()
    ));
    let out = switching.run(&["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("daemon.tmux_host: the tmux host starts servers as its own account, but users[0] runs as nobody"),
        "{err}"
    );
}
