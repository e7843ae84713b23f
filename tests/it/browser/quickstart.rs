//! The README's quick start, followed literally on this machine (issue
//! 16): `tmuxd serve` on the embedded default (no config file, `$USER`
//! unset), `tmuxd token` with no user, and a real browser logging in and
//! typing; `tmuxd doctor` green before and while it runs (or each fix it
//! prints, run as printed, makes it green). As root, and as a new account.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{Driver, ENTER};
use crate::common::accounts::UnixUsers;
use crate::common::{marker, wait_for};

/// The embedded default's address.
const BASE: &str = "http://127.0.0.1:7681";

/// Who runs the quick start: root, or an account (uid, gid).
struct Who<'a> {
    home: &'a Path,
    ids: Option<(u32, u32)>,
}

impl Who<'_> {
    /// `tmuxd ARGS` as this person, in a login-less environment: HOME
    /// only, no USER/LOGNAME, no XDG directories, no TMUXD_CONFIG.
    fn tmuxd(&self, args: &[&str]) -> Command {
        self.command(crate::common::BIN, args)
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env_clear()
            .env("HOME", self.home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SHELL", "/bin/sh")
            .current_dir(self.home)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.ids {
            c.uid(uid).gid(gid);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.tmuxd(args).output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `doctor` exits 0, or every fix it prints is a command (in backticks)
/// that, run as printed, makes it exit 0.
fn doctor_is_green_or_fixable(who: &Who) {
    let out = who.run(&["doctor"]);
    let report = text(&out);
    if out.status.success() {
        assert!(!report.contains("PROBLEM"), "{report}");
        return;
    }
    for fix in report
        .lines()
        .filter_map(|l| l.trim().strip_prefix("fix: "))
    {
        let command = fix.split('`').nth(1);
        let command = command.unwrap_or_else(|| panic!("a fix that is not a command: {fix}"));
        let st = who.command("/bin/sh", &["-c", command]).status().unwrap();
        assert!(st.success(), "the fix `{command}` failed");
    }
    let out = who.run(&["doctor"]);
    assert!(out.status.success(), "after the fixes: {}", text(&out));
}

fn quick_start(driver: &Driver, who: &Who, expect_user: &str) {
    doctor_is_green_or_fixable(who);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut daemon = Running(
        who.tmuxd(&["serve"])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(30, "the page answers on the default address", || {
        let r = super::http().get(&format!("{BASE}/healthz")).call().ok()?;
        (r.status() == 200).then_some(())
    });
    // `tmuxd token`: no user to name with one user.
    let out = who.run(&["token"]);
    assert!(out.status.success(), "token: {}", text(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').next(), Some(expect_user), "{token}");

    // The page: log in with it, open the session, type, see the answer.
    let b = driver.browser();
    b.login_and_open(BASE, &token, &format!("{expect_user}/main"));
    let m = marker();
    b.type_into(
        ".xterm-helper-textarea",
        &format!("echo quick-$((6*7))-{m}{ENTER}"),
    );
    b.wait_screen(&format!("quick-42-{m}"));
    drop(b);
    doctor_is_green_or_fixable(who);

    // As root, the embedded default's agent runs as root: said, not silent.
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    let said = stderr.contains(&format!("the agent of {expect_user} runs as root"));
    assert_eq!(said, who.ids.is_none(), "{stderr}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(daemon.0.wait().unwrap().success());
    // End the session this run made: its tmux server, on its socket.
    let socket = who
        .home
        .join(format!(".local/state/tmuxd/run/{expect_user}/tmux"));
    let socket = socket.display().to_string();
    let _ = who
        .command("tmux", &["-S", &socket, "kill-server"])
        .status();
}

#[test]
fn the_quick_start_ends_at_a_page_you_can_log_into_as_root_and_as_a_new_account() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs the quick start as root and as a new account: run it as root (CI does)"
    );
    let driver = Driver::start();
    // The spools go to this machine's tmpfs; remove what these runs made.
    let mut made = Spools(Vec::new());

    let home = tempfile::Builder::new()
        .prefix("tmuxd-t")
        .tempdir_in("/tmp")
        .unwrap();
    made.note(0);
    quick_start(
        &driver,
        &Who {
            home: home.path(),
            ids: None,
        },
        "root",
    );

    let users = UnixUsers::create(1);
    let account = nix::unistd::User::from_name(&users.0[0]).unwrap().unwrap();
    made.note(account.uid.as_raw());
    quick_start(
        &driver,
        &Who {
            home: &account.dir,
            ids: Some((account.uid.as_raw(), account.gid.as_raw())),
        },
        &users.0[0],
    );
}

/// `/dev/shm/tmuxd-UID` directories these runs created, removed on drop.
struct Spools(Vec<PathBuf>);

impl Spools {
    fn note(&mut self, uid: u32) {
        let dir = PathBuf::from(format!("/dev/shm/tmuxd-{uid}"));
        if !dir.exists() {
            self.0.push(dir);
        }
    }
}

impl Drop for Spools {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The daemon this run started, killed if the test ends early.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
