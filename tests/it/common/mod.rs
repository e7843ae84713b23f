//! Test helpers: a private directory, config and tmux sockets per test, the
//! real `tmuxd` binary, and cleanup of everything a test started.

#![allow(dead_code)]

pub mod accounts;
pub mod anthropic;
pub mod client;
pub mod nginx;
pub mod openai;
pub mod standin;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tmuxd");

/// Fails (never skips) when a tool the tests need is missing.
pub fn require(tool: &str) {
    which(tool);
}

/// Where `tool` is on PATH; fails (never skips) when it is missing.
pub fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{tool} is required for this test but is not on PATH (.ci/run installs it)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Waits until `f` returns Some, checking every 20 ms, at most `secs`.
pub fn wait_for<T>(secs: u64, what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_or(secs, what, f, String::new)
}

/// [`wait_for`], saying what `context` shows when it times out.
pub fn wait_for_or<T>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {secs}s waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private test environment: a short directory under /tmp (socket paths
/// are limited to 107 bytes), a config, and the daemons it started.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    daemons: Vec<Child>,
    /// Extra directories prepended to PATH for the binary.
    pub path_prefix: Option<PathBuf>,
    /// A cgroup's `cgroup.procs` that daemons start in (a container of
    /// their own, for tests that restart it).
    pub cgroup_procs: Option<std::ffi::CString>,
}

impl Env {
    /// An environment whose config is `body` with `{dir}` replaced by the
    /// test directory; a `[daemon]` section pointing into it is prepended.
    pub fn new(body: &str) -> Env {
        require("tmux");
        let dir = tempfile::Builder::new()
            .prefix("tmuxd-t")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path().display().to_string();
        let config = dir.path().join("tmuxd.toml");
        let body = body.replace("{dir}", &d);
        // A free port per test unless the test configures [web] itself.
        let web = if body.contains("[web]") {
            ""
        } else {
            "[web]\nlisten = \"127.0.0.1:0\"\n\n"
        };
        // As root, agents of users without unix_user run as root only when
        // the config says so; tests that want isolation set unix_user.
        let root = if nix::unistd::geteuid().is_root() {
            "allow_root_agents = true\n"
        } else {
            ""
        };
        let daemon =
            format!("[daemon]\nstate_dir = \"{d}/state\"\nruntime_dir = \"{d}/run\"\n{root}");
        // A body with a [daemon] section of its own gets these keys in it.
        let text = if body.contains("[daemon]\n") {
            format!("{web}{}", body.replacen("[daemon]\n", &daemon, 1))
        } else {
            format!("{daemon}\n{web}{body}")
        };
        std::fs::write(&config, text).unwrap();
        Env {
            dir,
            config,
            daemons: Vec::new(),
            path_prefix: None,
            cgroup_procs: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self, user: &str) -> PathBuf {
        self.path().join("run").join(user).join("tmux")
    }

    /// A `tmuxd --config CONFIG ARGS` command with a private HOME.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&self.config).args(args);
        c.env("HOME", self.path())
            .env_remove("TMUX")
            .env_remove("TMUXD_CONFIG");
        if let Some(prefix) = &self.path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", prefix.display()));
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run tmuxd")
    }

    /// Runs with `input` on stdin; returns the output.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_fed(self.cmd(args), input)
    }

    /// Issues a login token for `user` with `role` (user, admin, read-only).
    pub fn token(&self, user: &str, role: &str) -> String {
        self.ok(&["token", user, "--role", role]).trim().to_owned()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmuxd {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts `tmuxd serve` and waits for its "ready" log line.
    pub fn serve(&mut self) -> Daemon {
        self.serve_with(&[])
    }

    /// Like [`Env::serve`], with extra environment variables. Ready is
    /// what the daemon tells systemd: the harness is its `NOTIFY_SOCKET`.
    pub fn serve_with(&mut self, vars: &[(&str, &str)]) -> Daemon {
        let notify = self
            .path()
            .join(format!("notify-{}.sock", self.daemons.len()));
        let notes = notifications(&notify);
        let mut cmd = self.cmd(&["serve"]);
        cmd.env("NOTIFY_SOCKET", &notify);
        cmd.envs(vars.iter().copied());
        if let Some(procs) = self.cgroup_procs.clone() {
            use std::os::unix::process::CommandExt;
            // SAFETY: open, write and close only, on data made before the
            // fork: the daemon moves itself into the cgroup ("0").
            unsafe {
                cmd.pre_exec(move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let pid = child.id();
        self.daemons.push(child);
        let d = Daemon { pid, log, notes };
        // Ready, or dead: then say why at once.
        wait_for(30, "the daemon's READY=1", || {
            if d.notifications().iter().any(|n| n.starts_with("READY=1")) {
                return Some(());
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            assert!(
                !matches!(state, None | Some("Z") | Some("X")),
                "the daemon exited before it was ready:\n{}",
                d.log()
            );
            None
        });
        d
    }

    /// Session JSON for `id`, as `tmuxd sessions --json` prints it.
    pub fn session(&self, id: &str) -> Option<serde_json::Value> {
        let out = self.ok(&["sessions", "--json"]);
        let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        all.into_iter().find(|s| s["id"] == id)
    }

    pub fn sessions(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["sessions", "--json"])).unwrap()
    }

    /// The visible text of the user's pane `target` (e.g. `=main:`).
    pub fn pane_text(&self, user: &str, session: &str) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(self.socket(user))
            .args([
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-",
                "-t",
                &format!("={session}:"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Raw tmux on a user's socket.
    pub fn tmux(&self, user: &str, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(self.socket(user))
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap()
    }

    /// A tmux format expanded for `user`'s session `main` (e.g.
    /// `#{pane_width}`), trimmed.
    pub fn display(&self, user: &str, format: &str) -> String {
        let out = self.tmux(user, &["display-message", "-p", "-t", "=main:", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn wait_pane(&self, user: &str, session: &str, needle: &str) {
        wait_for(15, &format!("{needle:?} in {user}/{session}"), || {
            self.pane_text(user, session).contains(needle).then_some(())
        });
    }

    /// SIGKILLs every daemon this environment started.
    pub fn kill_daemons(&mut self) {
        for mut c in self.daemons.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reaps a daemon that was stopped by a signal; returns its status.
    pub fn reap(&mut self, pid: u32) -> std::process::ExitStatus {
        let i = self
            .daemons
            .iter()
            .position(|c| c.id() == pid)
            .expect("our daemon");
        let mut c = self.daemons.remove(i);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "daemon {pid} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill_daemons();
        // Only the tmux servers on sockets this test created.
        if let Ok(users) = std::fs::read_dir(self.path().join("run")) {
            for u in users.flatten() {
                let sock = u.path().join("tmux");
                if sock.exists() {
                    let _ = Command::new("tmux")
                        .arg("-S")
                        .arg(&sock)
                        .arg("kill-server")
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        kill_programs_under(self.path());
    }
}

/// SIGKILLs every process running a program installed under `dir` (an
/// agent's own helpers that outlive its tmux server: Codex starts an
/// `app-server` daemon from `$HOME/.codex/packages`).
fn kill_programs_under(dir: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(p.path().join("exe")).is_ok_and(|exe| exe.starts_with(dir)) {
            // SAFETY: kill(2) with a pid read from /proc and a valid signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Receives what a daemon tells systemd at `path`, until the receiver is
/// the only holder left (the [`Daemon`] is dropped).
fn notifications(path: &Path) -> Arc<Mutex<Vec<String>>> {
    let _ = std::fs::remove_file(path);
    let sock = std::os::unix::net::UnixDatagram::bind(path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notes = Arc::new(Mutex::new(Vec::new()));
    let sink = notes.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while Arc::strong_count(&sink) > 1 {
            if let Ok(n) = sock.recv(&mut buf) {
                let note = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push(note);
            }
        }
    });
    notes
}

/// A running `tmuxd serve`.
pub struct Daemon {
    pub pid: u32,
    log: Arc<Mutex<String>>,
    /// Its sd_notify messages, in order.
    notes: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// What the daemon told systemd so far (`READY=1\nSTATUS=…`,
    /// `WATCHDOG=1`, `STOPPING=1`, …).
    pub fn notifications(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn wait_log(&self, secs: u64, needle: &str) {
        wait_for(secs, &format!("{needle:?} in the daemon log"), || {
            self.log().contains(needle).then_some(())
        });
    }

    /// The web server's base URL, `http://127.0.0.1:PORT`, from the
    /// daemon's READY status.
    pub fn url(&self) -> String {
        let notes = self.notifications();
        let ready = notes
            .iter()
            .find(|n| n.starts_with("READY=1"))
            .expect("serve waits for READY=1");
        let start = ready.find("web on ").expect("the web address in STATUS") + 7;
        ready[start..].trim_end().trim_end_matches('/').to_owned()
    }

    /// Daemon RSS in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), sig).unwrap();
    }
}

/// Runs `cmd` with `input` on its stdin; its output.
pub fn run_fed(mut cmd: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tmuxd");
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

/// Runs `cmdline` in a terminal of its own (`script`), as `prefix` (e.g.
/// `runuser -u NAME --`) when given: what `tmux attach` needs.
pub fn in_terminal(prefix: &[&str], cmdline: &str) -> Child {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend(["script", "-q", "-e", "-c", cmdline, "/dev/null"]);
    Command::new(argv[0])
        .args(&argv[1..])
        .env("TERM", "xterm")
        .env_remove("TMUX")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start script")
}

/// Whether process `pid` exists.
pub fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A short random token for unique markers.
pub fn marker() -> String {
    use std::time::SystemTime;
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}", n ^ (std::process::id() as u128) << 64)
}

/// Real Postfix and Dovecot on loopback (scripts/mail-testbed.sh), stopped
/// on drop. Any `NAME@example.test` is a mailbox.
pub struct Testbed {
    pub dir: tempfile::TempDir,
    pub smtp: u16,
    pub imap: u16,
    pub password: String,
}

const TESTBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mail-testbed.sh");
const MAILCLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/mailclient.py");

/// One message as the test's IMAP client read it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    pub uid: u32,
    pub flags: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    /// The first value of header `name` (case-insensitive), or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

impl Testbed {
    pub fn start() -> Testbed {
        Testbed::start_with(&[])
    }

    /// Like [`Testbed::start`], with `MAIL_TESTBED_*` settings (see
    /// scripts/mail-testbed.sh).
    pub fn start_with(vars: &[(&str, &str)]) -> Testbed {
        for tool in ["dovecot", "postfix", "python3", "script"] {
            require(tool);
        }
        let dir = tempfile::Builder::new()
            .prefix("tmuxd-mail")
            .tempdir_in("/tmp")
            .unwrap();
        let out = Command::new(TESTBED)
            .arg("start")
            .arg(dir.path())
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        let bed = |vars: &std::collections::HashMap<String, String>, k: &str| -> String {
            vars.get(k).cloned().unwrap_or_default()
        };
        let vars: std::collections::HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let t = Testbed {
            smtp: bed(&vars, "SMTP_PORT").parse().unwrap_or(0),
            imap: bed(&vars, "IMAP_PORT").parse().unwrap_or(0),
            password: bed(&vars, "MAIL_PASSWORD"),
            dir,
        };
        assert!(
            out.status.success() && t.smtp != 0,
            "mail testbed did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    /// Submits `raw` over SMTP from `envelope_from` to `rcpt`.
    pub fn send(&self, envelope_from: &str, rcpt: &str, raw: &str) {
        let mut child = Command::new("python3")
            .args([
                MAILCLIENT,
                "send",
                &self.smtp.to_string(),
                envelope_from,
                rcpt,
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(raw.replace("\r\n", "\n").replace('\n', "\r\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "SMTP send failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every message in `user@example.test`'s `mailbox`.
    pub fn list_in(&self, user: &str, mailbox: &str) -> Vec<Mail> {
        let out = Command::new("python3")
            .args([
                MAILCLIENT,
                "list",
                &self.imap.to_string(),
                user,
                &self.password,
                mailbox,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "IMAP list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `postqueue ARGS` on this Postfix; stdout.
    pub fn postqueue(&self, args: &[&str]) -> String {
        let out = Command::new("postqueue")
            .arg("-c")
            .arg(self.dir.path().join("postfix/etc"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Postfix's log so far.
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix/maillog")).unwrap_or_default()
    }

    pub fn list(&self, user: &str) -> Vec<Mail> {
        self.list_in(user, "INBOX")
    }

    /// Waits until `user`'s INBOX holds at least `n` messages.
    pub fn wait_mail(&self, user: &str, n: usize) -> Vec<Mail> {
        wait_for(30, &format!("{n} messages for {user}"), || {
            let all = self.list(user);
            (all.len() >= n).then_some(all)
        })
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(TESTBED)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// `cmd`'s stdout; fails the test, naming the command and its stderr,
/// when it fails.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// git in `repo` as root (`safe.directory`: the repository may be a
/// test user's), with an author; stdout, asserting success.
pub fn git(repo: &Path, args: &[&str]) -> String {
    stdout_of(
        Command::new("git")
            .args([
                "-c",
                "safe.directory=*",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.test",
                "-C",
            ])
            .arg(repo)
            .args(args),
    )
}
