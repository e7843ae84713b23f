//! `[sandbox]` (everyone), `[users.sandbox]` and
//! `[users.sessions.NAME.sandbox]`: whether agents run sandboxed and with
//! what. A table turns the sandbox on at its level (`enabled = false`
//! turns it off); keys it leaves out come from the level above. The host
//! check finds bubblewrap and runs it as each sandboxed user's account.

use std::path::PathBuf;

use serde::Deserialize;

use super::problems::Problems;
use super::{Config, UserConfig};
use crate::sandbox::{Network, Policy, Target};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSandbox {
    enabled: Option<bool>,
    network: Option<RawNetwork>,
    writable: Option<Vec<PathBuf>>,
}

/// `"all"`, `"none"`, or a list of `host:port`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawNetwork {
    Word(String),
    List(Vec<String>),
}

/// `raw` (at `key`) laid over `parent`.
pub(super) fn layer(
    p: &mut Problems,
    parent: &Policy,
    key: &str,
    raw: Option<RawSandbox>,
) -> Policy {
    let Some(raw) = raw else {
        return parent.clone();
    };
    let network = match raw.network {
        None => parent.network.clone(),
        Some(RawNetwork::Word(w)) => match w.as_str() {
            "all" => Network::All,
            "none" => Network::None,
            _ => {
                p.add(
                    format!("{key}.network"),
                    format!("{w:?} is not a network policy: \"all\", \"none\", or a list of \"host:port\""),
                );
                parent.network.clone()
            }
        },
        Some(RawNetwork::List(list)) => {
            let mut targets = Vec::new();
            for (j, t) in list.iter().enumerate() {
                if let Some(t) = p.check(&format!("{key}.network[{j}]"), Target::parse(t)) {
                    targets.push(t);
                }
            }
            Network::Allow(targets)
        }
    };
    let writable = raw.writable.unwrap_or_else(|| parent.writable.clone());
    for (j, w) in writable.iter().enumerate() {
        if !(w.is_absolute() || w.to_string_lossy().starts_with("~/")) {
            p.add(
                format!("{key}.writable[{j}]"),
                format!(
                    "{} is neither an absolute path nor in the home (~/...)",
                    w.display()
                ),
            );
        }
    }
    Policy {
        enabled: raw.enabled.unwrap_or(true),
        network,
        writable,
    }
}

impl UserConfig {
    /// The sandbox of session `name`'s agent.
    pub fn sandbox_of(&self, session: &crate::names::Name) -> &Policy {
        self.session_sandbox.get(session).unwrap_or(&self.sandbox)
    }

    /// Whether any of this user's agents run sandboxed.
    pub fn any_sandbox(&self) -> bool {
        self.sandbox.enabled || self.session_sandbox.values().any(|s| s.enabled)
    }
}

impl Config {
    /// bubblewrap is on PATH and makes a sandbox as each sandboxed
    /// user's account; the writable paths exist.
    pub(super) fn sandbox_problems(&self, p: &mut Problems) {
        let users: Vec<&UserConfig> = self.users.iter().filter(|u| u.any_sandbox()).collect();
        if users.is_empty() {
            return;
        }
        let Some(bwrap) = &self.sandbox_tool else {
            p.add(
                "sandbox",
                "sandboxed agents need bubblewrap (bwrap), which is not on PATH: install it (apt install bubblewrap) or turn the sandbox off",
            );
            return;
        };
        for u in users {
            let account = u
                .unix_user
                .as_deref()
                .filter(|_| nix::unistd::geteuid().is_root())
                .and_then(|n| nix::unistd::User::from_name(n).ok().flatten())
                .filter(|a| !a.uid.is_root())
                .map(|a| (a.uid.as_raw(), a.gid.as_raw()));
            if let Err(e) = crate::sandbox::probe::check(bwrap, account) {
                p.add(format!("users[{}].sandbox", u.index), e);
            }
            let policies = std::iter::once(&u.sandbox).chain(u.session_sandbox.values());
            for w in policies.filter(|s| s.enabled).flat_map(|s| &s.writable) {
                if w.is_absolute() && !w.is_dir() {
                    p.add(
                        format!("users[{}].sandbox.writable", u.index),
                        format!(
                            "{} is not a directory; make it, or take it off the list",
                            w.display()
                        ),
                    );
                }
            }
        }
    }
}
