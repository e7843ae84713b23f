//! Users spread over nodes: the cluster file every node reads (which
//! node serves which users, and where each node's web listener is), and
//! the routers' configs made from it (`tmuxd router-config`: [`nginx`],
//! [`haproxy`], [`postfix`]).
//!
//! Each node is an ordinary tmuxd that serves only the users the file
//! gives it; users are independent (own tmux server, socket, transcript
//! tree), so nothing else is shared. A front router the operator already
//! runs sends each request to the user's node: by the user in the path
//! (`/api/sessions/USER/…`, `/ws/sessions/USER/…`), else by the user part
//! of a bearer token (`USER.SECRET`), else by the `tmuxd_user` cookie a
//! node sets at login. A request routed wrong reaches a node that does
//! not know its token or login: it is refused there, never served as
//! someone else.

pub mod haproxy;
pub mod nginx;
pub mod postfix;

use std::path::Path;

use serde::Deserialize;

use crate::names::Name;

/// The routing cookie a node sets at login: the user's name, not a
/// secret (a forged one only routes to a node that refuses the login).
pub const USER_COOKIE: &str = "tmuxd_user";

/// The cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub nodes: Vec<Node>,
}

/// One node: its name, its web listener's URL, its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: Name,
    /// `http://HOST:PORT` (or https) where the front and other nodes
    /// reach it.
    pub url: String,
    /// `HOST:PORT` of `url`.
    pub address: String,
    pub users: Vec<Name>,
    /// The node's `[mail] address` and the Postfix transport that reaches
    /// its `mail-ingest` (`tmuxd-a:`, `smtp:[10.0.0.11]:25`), if it
    /// takes mail.
    pub mail: Option<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    url: String,
    users: Vec<String>,
    mail: Option<String>,
    mail_transport: Option<String>,
}

impl Cluster {
    /// Reads and checks `path`: every problem as `KEY: REASON`.
    pub fn load(path: &Path) -> Result<Cluster, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
        Cluster::parse(&text)
    }

    /// Parses and checks a cluster file's text.
    pub fn parse(text: &str) -> Result<Cluster, Vec<String>> {
        let raw: RawCluster = toml::from_str(text).map_err(|e| vec![e.message().to_owned()])?;
        let mut problems = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut owner: std::collections::HashMap<String, String> = Default::default();
        if raw.nodes.is_empty() {
            problems.push("nodes: no [[nodes]]; list each node with its url and users".to_owned());
        }
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let name = match Name::new(&n.name) {
                Ok(name) => name,
                Err(e) => {
                    problems.push(format!("nodes[{i}].name: {e}"));
                    continue;
                }
            };
            if nodes.iter().any(|m| m.name == name) {
                problems.push(format!("nodes[{i}].name: node {name} is listed twice"));
            }
            let address = match address_of(&n.url) {
                Some(a) => a,
                None => {
                    problems.push(format!(
                        "nodes[{i}].url: {:?} is not http://HOST:PORT or https://HOST:PORT",
                        n.url
                    ));
                    String::new()
                }
            };
            let mut users = Vec::new();
            for (j, u) in n.users.iter().enumerate() {
                match Name::new(u) {
                    Ok(user) => {
                        if let Some(other) = owner.insert(u.clone(), n.name.clone()) {
                            problems.push(format!(
                                "nodes[{i}].users[{j}]: {u} is also on node {other}; a user lives on one node"
                            ));
                        }
                        users.push(user);
                    }
                    Err(e) => problems.push(format!("nodes[{i}].users[{j}]: {e}")),
                }
            }
            let mail = match (n.mail, n.mail_transport) {
                (None, None) => None,
                (Some(m), Some(t)) => {
                    let plausible = |s: &str| {
                        !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                    };
                    if !(plausible(&m) && m.contains('@')) {
                        problems.push(format!("nodes[{i}].mail: {m:?} is not an email address"));
                    }
                    if !(plausible(&t) && t.contains(':')) {
                        problems.push(format!(
                            "nodes[{i}].mail_transport: {t:?} is not a Postfix transport (e.g. \"tmuxd-a:\" or \"smtp:[10.0.0.11]:25\")"
                        ));
                    }
                    Some((m.to_ascii_lowercase(), t))
                }
                _ => {
                    problems.push(format!(
                        "nodes[{i}]: mail and mail_transport go together (the node's [mail] address, and how the MTA reaches its mail-ingest)"
                    ));
                    None
                }
            };
            nodes.push(Node {
                name,
                url: n.url.trim_end_matches('/').to_owned(),
                address,
                users,
                mail,
            });
        }
        if problems.is_empty() {
            Ok(Cluster { nodes })
        } else {
            Err(problems)
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.iter().find(|n| &n.name == name)
    }

    /// The node serving `user`.
    pub fn node_of(&self, user: &Name) -> Option<&Node> {
        self.nodes.iter().find(|n| n.users.contains(user))
    }
}

/// `HOST:PORT` of an `http(s)://HOST:PORT[/]` URL.
fn address_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':')?;
    let ok = !host.is_empty()
        && port.parse::<u16>().is_ok_and(|p| p != 0)
        && hostport
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    ok.then(|| hostport.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_file_is_checked_whole() {
        let c = Cluster::parse(
            "[[nodes]]\nname = \"a\"\nurl = \"http://10.0.0.1:7681/\"\nusers = [\"alice\", \"carol\"]\n\
             [[nodes]]\nname = \"b\"\nurl = \"https://b.example:443\"\nusers = [\"bob\"]\n",
        )
        .unwrap();
        assert_eq!(c.nodes[0].url, "http://10.0.0.1:7681");
        assert_eq!(c.nodes[0].address, "10.0.0.1:7681");
        let bob = Name::new("bob").unwrap();
        assert_eq!(c.node_of(&bob).unwrap().name.as_str(), "b");
        let e = Cluster::parse(
            "[[nodes]]\nname = \"a\"\nurl = \"ftp://x\"\nusers = [\"alice\", \"Bad\"]\n\
             [[nodes]]\nname = \"a\"\nurl = \"http://h:1\"\nusers = [\"alice\"]\n",
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(all.contains("nodes[0].url: \"ftp://x\" is not"), "{all}");
        assert!(all.contains("nodes[0].users[1]: "), "{all}");
        assert!(
            all.contains("nodes[1].name: node a is listed twice"),
            "{all}"
        );
        assert!(
            all.contains("nodes[1].users[0]: alice is also on node a"),
            "{all}"
        );
        assert!(Cluster::parse("").unwrap_err()[0].contains("nodes"));
        assert!(Cluster::parse("nodes = []").unwrap_err()[0].contains("no [[nodes]]"));
    }
}
