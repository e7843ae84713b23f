//! `tmuxd sandbox-run PLAN -- ARGV`: run by the pane's launcher, as the
//! user, outside the sandbox. Looks at what the user can see (their home's
//! entries, the other accounts' homes), builds bubblewrap's arguments from
//! the [`Plan`] and execs it, with `tmuxd sandbox-exec` inside.
//!
//! The mounts, in order (later ones cover earlier ones): the whole system
//! read-only; new /dev and /proc; a private /tmp and /var/tmp; empty
//! tmpfs over /home, /root, /run/user, every other account's home and
//! tmuxd's directories; the user's home as a tmpfs holding its entries
//! read-only (symlinks kept as symlinks), the agent's config directories
//! writable and its config files as copies; the workdir and the
//! configured paths writable; the tmuxd binary and the hook socket shown
//! again; for an allow-list, an /etc/hosts naming each allowed host.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{Network, Plan, Target};

/// One argument of bubblewrap: text, or a file descriptor made at exec
/// (a copy of a file, or data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    /// The fd of this file, opened read-only.
    FileFd(PathBuf),
    /// The fd of a pipe holding this text.
    DataFd(String),
}

/// What the user's account sees, gathered before the arguments are built.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub home: Option<PathBuf>,
    /// The home's entries: name and, for a symlink, its target.
    pub entries: Vec<(String, Option<PathBuf>)>,
    /// Directories that exist, among those to hide.
    pub hide: Vec<PathBuf>,
    /// The agent's config files that exist in the home.
    pub files: Vec<String>,
    /// The working directory the agent starts in.
    pub cwd: PathBuf,
    /// When the workdir is a git worktree: its repository's `.git`, where
    /// git keeps the worktree's objects, refs and index.
    pub git_common: Option<PathBuf>,
}

/// At most this many entries of a home are shown (one mount each).
const MAX_ENTRIES: usize = 4096;

/// The address inside the sandbox each allowed target is reached at, and
/// the /etc/hosts that names them: an address as itself, `localhost` as
/// 127.0.0.1, each other name as 127.0.0.N.
pub fn listen_addresses(targets: &[Target]) -> (Vec<(String, Target)>, String) {
    let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
    let mut names: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for t in targets {
        let ip = if t.host.parse::<std::net::IpAddr>().is_ok() {
            t.host.clone()
        } else if t.host == "localhost" {
            "127.0.0.1".to_owned()
        } else {
            let n = match names.iter().position(|n| *n == t.host) {
                Some(i) => i,
                None => {
                    names.push(&t.host);
                    hosts.push_str(&format!("127.0.0.{}\t{}\n", names.len() + 1, t.host));
                    names.len() - 1
                }
            };
            format!("127.0.0.{}", n + 2)
        };
        let listen = if ip.contains(':') {
            format!("[{ip}]:{}", t.port)
        } else {
            format!("{ip}:{}", t.port)
        };
        out.push((listen, t.clone()));
    }
    (out, hosts)
}

/// bubblewrap's arguments for `plan`, given what the user sees; `exe` is
/// tmuxd, run inside as `sandbox-exec` with `agent`.
pub fn bwrap_args(plan: &Plan, seen: &Seen, exe: &Path, agent: &[String]) -> Vec<Arg> {
    let mut a: Vec<Arg> = Vec::new();
    let text = |a: &mut Vec<Arg>, parts: &[&str]| {
        a.extend(parts.iter().map(|p| Arg::Text((*p).to_owned())));
    };
    let s = |p: &Path| p.to_string_lossy().into_owned();
    text(
        &mut a,
        &[
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-cgroup-try",
        ],
    );
    match (&plan.network, &plan.net_socket) {
        (Network::All, _) => {}
        // `sandbox-exec` makes its own (see `netns`).
        (Network::Allow(_), Some(_)) => {
            for cap in super::netns::CAPS {
                text(&mut a, &["--cap-add", cap]);
            }
        }
        _ => text(&mut a, &["--unshare-net"]),
    }
    text(
        &mut a,
        &[
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/var/tmp",
        ],
    );
    for dir in &seen.hide {
        text(&mut a, &["--tmpfs", &s(dir)]);
    }
    if let Some(home) = &seen.home {
        let h = s(home);
        text(&mut a, &["--tmpfs", &h]);
        for (name, link) in seen.entries.iter().take(MAX_ENTRIES) {
            let path = s(&home.join(name));
            if plan.agent_dirs.contains(name) || plan.agent_files.contains(name) {
                continue;
            }
            match link {
                Some(target) => text(&mut a, &["--symlink", &s(target), &path]),
                // -try: an entry removed since it was listed is no error.
                None => text(&mut a, &["--ro-bind-try", &path, &path]),
            }
        }
        for dir in &plan.agent_dirs {
            let path = s(&home.join(dir));
            text(&mut a, &["--bind-try", &path, &path]);
        }
        for file in &seen.files {
            a.push(Arg::Text("--file".into()));
            a.push(Arg::FileFd(home.join(file)));
            a.push(Arg::Text(s(&home.join(file))));
        }
    }
    let writable = std::iter::once(&plan.workdir)
        .chain(&plan.writable)
        .chain(&seen.git_common);
    for dir in writable {
        let dir = expand(dir, seen.home.as_deref());
        text(&mut a, &["--bind-try", &s(&dir), &s(&dir)]);
    }
    text(&mut a, &["--ro-bind", &s(exe), &s(exe)]);
    for p in plan.expose.iter().chain(&plan.net_socket) {
        text(&mut a, &["--bind-try", &s(p), &s(p)]);
    }
    let mut inner = vec![s(exe), "sandbox-exec".to_owned()];
    if let (Network::Allow(targets), Some(socket)) = (&plan.network, &plan.net_socket) {
        let (listen, hosts) = listen_addresses(targets);
        a.push(Arg::Text("--ro-bind-data".into()));
        a.push(Arg::DataFd(hosts));
        a.push(Arg::Text("/etc/hosts".into()));
        inner.extend(["--net-socket".to_owned(), s(socket)]);
        inner.extend(["--session".to_owned(), plan.session.clone()]);
        for (addr, target) in listen {
            inner.extend(["--forward".to_owned(), format!("{addr}={target}")]);
        }
    }
    text(&mut a, &["--chdir", &s(&seen.cwd), "--"]);
    inner.push("--".to_owned());
    inner.extend(agent.iter().cloned());
    a.extend(inner.into_iter().map(Arg::Text));
    a
}

/// `~/x` is `x` in the home.
pub fn expand(path: &Path, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_owned(),
    }
}

/// Looks, as the user, at what the plan needs: the home's entries, the
/// hidden directories that exist, the agent's files; makes the agent's
/// missing config directories (0700).
pub fn look(plan: &Plan) -> Seen {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h != Path::new("/") && h.is_dir());
    let mut seen = Seen {
        cwd: std::env::current_dir().unwrap_or_else(|_| plan.workdir.clone()),
        ..Seen::default()
    };
    let mut hide: Vec<PathBuf> = ["/home", "/root", "/run/user"]
        .iter()
        .map(PathBuf::from)
        .chain(plan.hide.iter().cloned())
        .chain(other_homes(home.as_deref()))
        .filter(|d| d.is_dir())
        .collect();
    hide.sort();
    hide.dedup();
    // A directory inside one already hidden, or in the private /tmp,
    // needs no mount of its own.
    let mut kept: Vec<PathBuf> = vec!["/tmp".into(), "/var/tmp".into()];
    for d in hide {
        if !kept.iter().any(|k| d.starts_with(k)) {
            kept.push(d);
        }
    }
    seen.hide = kept.split_off(2);
    if let Some(home) = &home {
        for dir in &plan.agent_dirs {
            let _ = std::fs::DirBuilder::new()
                .mode(0o700)
                .create(home.join(dir));
        }
        if let Ok(rd) = std::fs::read_dir(home) {
            for e in rd.flatten().take(MAX_ENTRIES) {
                // A name that is not UTF-8 is left out (not shown).
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                let link = e
                    .file_type()
                    .is_ok_and(|t| t.is_symlink())
                    .then(|| std::fs::read_link(e.path()).ok())
                    .flatten();
                seen.entries.push((name, link));
            }
        }
        seen.entries.sort();
        seen.files = plan
            .agent_files
            .iter()
            .filter(|f| home.join(f).symlink_metadata().is_ok_and(|m| m.is_file()))
            .cloned()
            .collect();
    }
    seen.home = home;
    seen.git_common = worktree_common_dir(&plan.workdir);
    seen
}

/// The repository's `.git` of a worktree at `workdir` (whose `.git` is a
/// file `gitdir: REPO/.git/worktrees/NAME`).
fn worktree_common_dir(workdir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(workdir.join(".git")).ok()?;
    let gitdir = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    let worktrees = gitdir.parent()?;
    (gitdir.is_absolute() && worktrees.file_name()? == "worktrees")
        .then(|| worktrees.parent().map(Path::to_owned))
        .flatten()
}

/// The homes of the other accounts in /etc/passwd (uid 1000 and up).
fn other_homes(mine: Option<&Path>) -> Vec<PathBuf> {
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return Vec::new();
    };
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid: u32 = f.get(2)?.parse().ok()?;
            let home = PathBuf::from(f.get(5)?);
            (uid >= 1000 && uid != 65534 && home.is_absolute() && home != Path::new("/"))
                .then_some(home)
        })
        .filter(|h| Some(h.as_path()) != mine)
        .collect()
}

/// `tmuxd sandbox-run`: builds the sandbox and execs bubblewrap; returns
/// (with the exit status to use) only if it cannot.
pub fn main(plan: &str, agent: &[String]) -> i32 {
    let plan: Plan = match serde_json::from_str(plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tmuxd: the sandbox plan is not valid ({e}); this is a bug in tmuxd");
            return 70;
        }
    };
    let seen = look(&plan);
    let args = bwrap_args(&plan, &seen, &super::exe(), agent);
    let mut keep: Vec<OwnedFd> = Vec::new();
    let mut argv: Vec<String> = Vec::new();
    for arg in args {
        match arg {
            Arg::Text(t) => argv.push(t),
            Arg::FileFd(path) => match std::fs::File::open(&path) {
                Ok(f) => {
                    let fd: OwnedFd = f.into();
                    argv.push(inheritable(&fd).to_string());
                    keep.push(fd);
                }
                Err(e) => {
                    eprintln!("tmuxd: cannot read {}: {e}", path.display());
                    return 1;
                }
            },
            Arg::DataFd(data) => match data_fd(&data) {
                Ok(fd) => {
                    argv.push(inheritable(&fd).to_string());
                    keep.push(fd);
                }
                Err(e) => {
                    eprintln!("tmuxd: cannot start the sandbox: {e}");
                    return 1;
                }
            },
        }
    }
    // bubblewrap must outlive a Ctrl-C (the agent's own business):
    // ignored here, set back to the default by `sandbox-exec` for the agent.
    super::bridge::set_terminal_signals(nix::sys::signal::SigHandler::SigIgn);
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(&plan.bwrap).args(&argv).exec();
    eprintln!(
        "tmuxd: cannot start the sandbox: {}: {e} (is bubblewrap installed? `tmuxd doctor` checks)",
        plan.bwrap.display()
    );
    126
}

/// `fd`'s number, left open across exec.
fn inheritable(fd: &OwnedFd) -> i32 {
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    );
    fd.as_raw_fd()
}

/// A pipe's read end holding `data` (small: it fits the pipe's buffer).
fn data_fd(data: &str) -> std::io::Result<OwnedFd> {
    let (read, write) = nix::unistd::pipe()?;
    let mut w = std::fs::File::from(write);
    std::io::Write::write_all(&mut w, data.as_bytes())?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(args: &[Arg]) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Text(t) => t.clone(),
                Arg::FileFd(p) => format!("<file {}>", p.display()),
                Arg::DataFd(d) => format!("<data {}>", d.lines().count()),
            })
            .collect()
    }

    fn plan(network: Network) -> Plan {
        Plan {
            bwrap: "/usr/bin/bwrap".into(),
            session: "alice/main".into(),
            workdir: "/home/alice/w".into(),
            network,
            writable: vec!["~/data".into()],
            agent_dirs: vec![".claude".into()],
            agent_files: vec![".claude.json".into()],
            hide: vec!["/run/tmuxd".into()],
            expose: vec!["/run/tmuxd/hooks/alice.sock".into()],
            net_socket: Some("/run/tmuxd/sandbox/alice.sock".into()),
        }
    }

    fn seen() -> Seen {
        Seen {
            home: Some("/home/alice".into()),
            entries: vec![
                (".bashrc".into(), None),
                (".claude".into(), None),
                (".claude.json".into(), None),
                ("dots".into(), Some("/etc/skel".into())),
                ("w".into(), None),
            ],
            hide: vec!["/home".into(), "/run/tmuxd".into()],
            files: vec![".claude.json".into()],
            cwd: "/home/alice/w".into(),
            git_common: Some("/home/alice/repo/.git".into()),
        }
    }

    /// Where `flag a b` is in `args`.
    fn at(args: &[String], flag: &str, a: &str) -> usize {
        args.windows(2)
            .position(|w| w[0] == flag && w[1] == a)
            .unwrap_or_else(|| panic!("{flag} {a} in {args:?}"))
    }

    #[test]
    fn mounts_come_in_the_order_that_hides_then_shows() {
        let args = texts(&bwrap_args(
            &plan(Network::None),
            &seen(),
            Path::new("/usr/bin/tmuxd"),
            &["claude".into()],
        ));
        assert!(args.contains(&"--unshare-net".to_owned()));
        let root = at(&args, "--ro-bind", "/");
        let home_hidden = at(&args, "--tmpfs", "/home");
        let home = at(&args, "--tmpfs", "/home/alice");
        let rc = at(&args, "--ro-bind-try", "/home/alice/.bashrc");
        let work_ro = at(&args, "--ro-bind-try", "/home/alice/w");
        let work = at(&args, "--bind-try", "/home/alice/w");
        assert!(
            root < home_hidden && home_hidden < home && home < rc && rc < work_ro && work_ro < work
        );
        at(&args, "--symlink", "/etc/skel");
        at(&args, "--bind-try", "/home/alice/.claude");
        at(&args, "--bind-try", "/home/alice/data");
        at(&args, "--bind-try", "/home/alice/repo/.git");
        at(&args, "--file", "<file /home/alice/.claude.json>");
        at(&args, "--bind-try", "/run/tmuxd/hooks/alice.sock");
        // The config paths are not also bound read-only.
        assert!(!args
            .windows(2)
            .any(|w| w[0] == "--ro-bind-try" && w[1] == "/home/alice/.claude"));
        let sep = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(&args[sep + 1..sep + 3], ["/usr/bin/tmuxd", "sandbox-exec"]);
        assert_eq!(args.last().unwrap(), "claude");
        assert!(!args.contains(&"--forward".to_owned()));
    }

    #[test]
    fn an_allow_list_gets_hosts_and_forwards() {
        let targets = vec![
            Target::parse("api.example.com:443").unwrap(),
            Target::parse("127.0.0.1:8080").unwrap(),
            Target::parse("api.example.com:80").unwrap(),
            Target::parse("[::1]:9").unwrap(),
            Target::parse("other.example:22").unwrap(),
        ];
        let (listen, hosts) = listen_addresses(&targets);
        let l: Vec<&str> = listen.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            l,
            [
                "127.0.0.2:443",
                "127.0.0.1:8080",
                "127.0.0.2:80",
                "[::1]:9",
                "127.0.0.3:22"
            ]
        );
        assert!(hosts.contains("127.0.0.2\tapi.example.com\n"), "{hosts}");
        assert!(hosts.contains("127.0.0.3\tother.example\n"), "{hosts}");
        let args = texts(&bwrap_args(
            &plan(Network::Allow(targets)),
            &seen(),
            Path::new("/usr/bin/tmuxd"),
            &["claude".into()],
        ));
        at(&args, "--ro-bind-data", "<data 4>");
        at(&args, "--forward", "127.0.0.2:443=api.example.com:443");
        // Its own network namespace, made inside, not bubblewrap's.
        assert!(!args.contains(&"--unshare-net".to_owned()));
        at(&args, "--cap-add", "CAP_NET_BIND_SERVICE");
        at(&args, "--net-socket", "/run/tmuxd/sandbox/alice.sock");
        let all = texts(&bwrap_args(
            &plan(Network::All),
            &seen(),
            Path::new("/t"),
            &[],
        ));
        assert!(!all.contains(&"--unshare-net".to_owned()));
    }
}
