//! Sandboxed agents: the agent process (never tmux) runs under bubblewrap
//! with the system read-only, other users' homes and tmuxd's own
//! directories hidden, a private /tmp, its own home read-only except the
//! agent's config paths, the workdir and the configured paths writable,
//! and a network policy: `all`, `none`, or an allow-list of `host:port`.
//!
//! The daemon only decides the policy ([`Plan`], passed as JSON on the
//! pane's command line). The rest happens as the user: `tmuxd
//! sandbox-run` ([`run`]) reads the user's home and builds bubblewrap's
//! arguments, and inside the sandbox `tmuxd sandbox-exec` ([`bridge`])
//! starts the agent, with, for an allow-list, a listener per allowed
//! address that relays each connection over a Unix socket to the daemon
//! ([`net`]), which connects to the target only if the session's policy
//! lists it. [`probe`] is the check `check-config` and `doctor` run.

pub mod bridge;
pub mod net;
pub mod netns;
pub mod probe;
pub mod run;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where an agent may connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network, as without a sandbox.
    All,
    /// None: a network namespace of its own with only loopback.
    None,
    /// Only these `host:port`s, relayed by the daemon.
    Allow(Vec<Target>),
}

impl Network {
    /// How the policy reads in listings: `all`, `none`, or the list.
    pub fn describe(&self) -> String {
        match self {
            Network::All => "all".into(),
            Network::None => "none".into(),
            Network::Allow(list) => list
                .iter()
                .map(Target::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// One allowed destination: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    /// `host:port`, `1.2.3.4:port` or `[::1]:port`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let bad = || {
            format!(
                "{s:?} is not host:port (e.g. api.anthropic.com:443, 127.0.0.1:8080, [::1]:8080)"
            )
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => {
                v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
                v6.to_owned()
            }
            None if host.contains(':') => return Err(bad()),
            None => host.to_ascii_lowercase(),
        };
        let name_ok = host.parse::<std::net::IpAddr>().is_ok()
            || (!host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }));
        if !name_ok {
            return Err(bad());
        }
        Ok(Target { host, port })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A user's or session's sandbox, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enabled: bool,
    pub network: Network,
    /// Writable beyond the workdir and the agent's config paths; `~/`
    /// is the user's home.
    pub writable: Vec<PathBuf>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            enabled: false,
            network: Network::None,
            writable: Vec::new(),
        }
    }
}

/// What a session's listing says about its sandbox (`sessions --json`,
/// the page): as the agent was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub network: String,
    pub writable: Vec<PathBuf>,
}

/// The agent's own config directories in its home, by profile: writable
/// in the sandbox (made first when missing).
pub fn agent_dirs(profile: &str) -> &'static [&'static str] {
    match profile {
        "claude" => &[".claude"],
        "codex" => &[".codex"],
        "gemini" => &[".gemini"],
        _ => &[],
    }
}

/// The agent's own config files directly in its home: each is the
/// agent's own writable copy for its run (Claude Code replaces
/// `~/.claude.json` by renaming a new file over it, which needs the home
/// itself writable); changes are not kept.
pub fn agent_files(profile: &str) -> &'static [&'static str] {
    match profile {
        "claude" => &[".claude.json"],
        "aider" => &[".aider.chat.history.md", ".aider.input.history"],
        _ => &[],
    }
}

/// Everything `tmuxd sandbox-run` needs to build one agent's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// bubblewrap.
    pub bwrap: PathBuf,
    /// `USER/SESSION`: named on each relayed connection.
    pub session: String,
    pub workdir: PathBuf,
    pub network: Network,
    pub writable: Vec<PathBuf>,
    /// Relative to the home: the agent's config directories and files.
    pub agent_dirs: Vec<String>,
    pub agent_files: Vec<String>,
    /// Hidden beyond other homes: tmuxd's directories (sockets, state,
    /// spools).
    pub hide: Vec<PathBuf>,
    /// Shown again inside hidden ones: the hook socket.
    pub expose: Vec<PathBuf>,
    /// The daemon's relay socket (with an allow-list).
    pub net_socket: Option<PathBuf>,
}

impl Plan {
    /// The summary listings show.
    pub fn summary(&self) -> Summary {
        Summary {
            network: self.network.describe(),
            writable: std::iter::once(self.workdir.clone())
                .chain(self.writable.iter().cloned())
                .collect(),
        }
    }

    /// The agent's argv wrapped: `tmuxd sandbox-run PLAN -- ARGV...`.
    pub fn wrap(&self, exe: &Path, agent: Vec<String>) -> Vec<String> {
        let mut argv = vec![
            exe.to_string_lossy().into_owned(),
            "sandbox-run".to_owned(),
            serde_json::to_string(self).expect("a plan is JSON"),
            "--".to_owned(),
        ];
        argv.extend(agent);
        argv
    }
}

/// The running tmuxd binary (the hook command and the sandbox helpers).
pub fn exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tmuxd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        for (text, host, port) in [
            ("api.anthropic.com:443", "api.anthropic.com", 443),
            ("127.0.0.1:8080", "127.0.0.1", 8080),
            ("[::1]:80", "::1", 80),
            ("Example.ORG:25", "example.org", 25),
        ] {
            let t = Target::parse(text).unwrap();
            assert_eq!((t.host.as_str(), t.port), (host, port), "{text}");
        }
        assert_eq!(Target::parse("[::1]:80").unwrap().to_string(), "[::1]:80");
        for bad in [
            "example.org",
            "example.org:0",
            ":80",
            "a b:80",
            "::1:80",
            "x:99999",
            "a..b:1",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.contains("is not host:port"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_plan_wraps_the_agent_and_round_trips() {
        let plan = Plan {
            bwrap: "/usr/bin/bwrap".into(),
            session: "alice/main".into(),
            workdir: "/w".into(),
            network: Network::Allow(vec![Target::parse("a.example:443").unwrap()]),
            writable: vec!["/srv".into()],
            agent_dirs: vec![".claude".into()],
            agent_files: vec![],
            hide: vec![],
            expose: vec![],
            net_socket: Some("/run/tmuxd/sandbox/alice.sock".into()),
        };
        let argv = plan.wrap(Path::new("/bin/tmuxd"), vec!["claude".into(), "--x".into()]);
        assert_eq!(argv[1], "sandbox-run");
        assert_eq!(&argv[3..], ["--", "claude", "--x"]);
        assert_eq!(serde_json::from_str::<Plan>(&argv[2]).unwrap(), plan);
        assert_eq!(plan.summary().network, "a.example:443");
        assert_eq!(
            plan.summary().writable,
            [PathBuf::from("/w"), "/srv".into()]
        );
    }
}
