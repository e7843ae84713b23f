//! `[cluster]`: this node's name and the cluster file every node reads
//! (see [`crate::cluster`]). A node keeps the `[[users]]` the file gives
//! it and ignores the others; a user the file gives no node, or this
//! node's user missing from `[[users]]`, is a problem.

use std::path::PathBuf;

use serde::Deserialize;

use super::problems::Problems;
use super::UserConfig;
use crate::cluster::Cluster;
use crate::names::Name;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClusterSection {
    file: PathBuf,
    /// Default: this machine's host name (a StatefulSet pod's is its
    /// name, `tmuxd-0`).
    node: Option<String>,
    /// The node credential (the same file on every node): admins' lists
    /// take every node's sessions with it.
    secret_file: Option<PathBuf>,
}

/// This node's place in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub file: PathBuf,
    pub node: Name,
    pub cluster: Cluster,
    pub secret_file: Option<PathBuf>,
}

/// Reads the cluster file and keeps this node's users of `users`; `mail`
/// is this node's `[mail] address`, which the file must give it when it
/// routes mail to it.
pub(super) fn parse_cluster(
    p: &mut Problems,
    raw: RawClusterSection,
    users: &mut Vec<UserConfig>,
    mail: Option<&str>,
) -> Option<ClusterConfig> {
    super::parse::absolute(p, "cluster.file", &raw.file);
    let node = raw.node.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let node = p.check(
        "cluster.node",
        Name::new(&node).map_err(|e| format!("{e} (this node's name in the cluster file)")),
    )?;
    let cluster = match Cluster::load(&raw.file) {
        Ok(c) => c,
        Err(problems) => {
            for problem in problems {
                p.add("cluster.file", format!("{}: {problem}", raw.file.display()));
            }
            return None;
        }
    };
    let Some(mine) = cluster.node(&node) else {
        p.add(
            "cluster.node",
            format!("{node} is not a node in {}", raw.file.display()),
        );
        return None;
    };
    for u in users.iter() {
        if cluster.node_of(&u.name).is_none() {
            p.add(
                format!("users[{}]", u.index),
                format!(
                    "{} is on no node in {}; add it to a node's users",
                    u.name,
                    raw.file.display()
                ),
            );
        }
    }
    for user in &mine.users {
        if !users.iter().any(|u| &u.name == user) {
            p.add(
                "cluster.file",
                format!(
                    "{} gives {user} to this node ({node}), but [[users]] has no {user}",
                    raw.file.display()
                ),
            );
        }
    }
    if let (Some((routed, _)), Some(ours)) = (&mine.mail, mail) {
        if !routed.eq_ignore_ascii_case(ours) {
            p.add(
                "mail.address",
                format!("{} routes {routed} to this node ({node}), but [mail] address is {ours}; make them the same", raw.file.display()),
            );
        }
    }
    users.retain(|u| mine.users.contains(&u.name));
    if let Some(f) = &raw.secret_file {
        super::parse::absolute(p, "cluster.secret_file", f);
    }
    Some(ClusterConfig {
        file: raw.file,
        node,
        cluster,
        secret_file: raw.secret_file,
    })
}
