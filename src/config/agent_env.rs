//! `env` and `secrets` for agents, in `[agent]` (everyone) and per user
//! (overriding by name): plain variables, and variables each read from a
//! file when the agent starts. A secret's value is never in the config,
//! an argv, a log or an API answer: the launcher reads the file (as the
//! user) and exports it just before the agent runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::problems::Problems;

/// An agent's environment beyond its account's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentEnv {
    /// Plain variables.
    pub vars: BTreeMap<String, String>,
    /// Variable name -> the file its value is read from.
    pub secrets: BTreeMap<String, PathBuf>,
}

/// How a secret names a systemd credential instead of a file.
const CREDENTIAL: &str = "credential:";

/// The systemd credential `path` names (`credential:NAME`), if it names one.
pub fn credential_name(path: &std::path::Path) -> Option<&str> {
    path.to_str()?.strip_prefix(CREDENTIAL)
}

/// A name systemd accepts for a credential (and a safe file name).
pub fn valid_credential_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Names tmuxd sets itself, or tmux does: never from the config.
fn reserved(name: &str) -> bool {
    name.starts_with("TMUXD_")
        || matches!(
            name,
            "TMUX" | "TMUX_PANE" | "HOME" | "USER" | "LOGNAME" | "SHELL"
        )
}

/// Why `name` (at `key`) cannot be set from the config, if it cannot.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits, _)"
        ));
    }
    if reserved(name) {
        return Err(format!("{name} is set by tmuxd or tmux itself"));
    }
    Ok(())
}

/// `base` with `vars` and `secrets` (of the section `at`, e.g.
/// `users[1]`) laid over it; each bad entry is recorded and left out.
pub(super) fn layer(
    p: &mut Problems,
    base: &AgentEnv,
    at: &str,
    vars: Option<BTreeMap<String, String>>,
    secrets: Option<BTreeMap<String, PathBuf>>,
) -> AgentEnv {
    let mut env = base.clone();
    for (name, value) in vars.unwrap_or_default() {
        let key = format!("{at}.env.{name}");
        let checked = check_name(&name).and_then(|()| match value.contains('\0') {
            true => Err("contains a NUL byte".to_owned()),
            false => Ok(()),
        });
        if p.check(&key, checked).is_some() {
            env.secrets.remove(&name);
            env.vars.insert(name, value);
        }
    }
    for (name, path) in secrets.unwrap_or_default() {
        let key = format!("{at}.secrets.{name}");
        let text = path.to_string_lossy();
        let checked = check_name(&name).and_then(|()| match credential_name(&path) {
            Some(c) if valid_credential_name(c) => Ok(()),
            Some(c) => Err(format!("{c:?} is not a systemd credential name (letters, digits, _ . -)")),
            None if !path.is_absolute() || text.contains('\n') => Err(format!("{text:?} must be an absolute path to the file that holds the value (one line, no newline in the path), or credential:NAME for a systemd credential")),
            None => Ok(()),
        });
        if p.check(&key, checked).is_some() {
            env.vars.remove(&name);
            env.secrets.insert(name, path);
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `layer` over `base`, and the problems it found.
    fn layered(
        base: &AgentEnv,
        at: &str,
        vars: Option<BTreeMap<String, String>>,
        secrets: Option<BTreeMap<String, PathBuf>>,
    ) -> (AgentEnv, Vec<super::super::Problem>) {
        let mut p = Problems::default();
        let env = layer(&mut p, base, at, vars, secrets);
        let problems = p.finish("t", ()).err().map(|e| e.problems);
        (env, problems.unwrap_or_default())
    }

    #[test]
    fn layers_override_by_name_and_names_are_checked() {
        let (base, none) = layered(
            &AgentEnv::default(),
            "agent",
            Some([("MODEL".into(), "a".into())].into()),
            Some([("API_KEY".into(), PathBuf::from("/etc/k"))].into()),
        );
        assert!(none.is_empty(), "{none:?}");
        let (user, none) = layered(
            &base,
            "users[0]",
            Some([("API_KEY".into(), "plain".into())].into()),
            None,
        );
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(user.vars.get("API_KEY").map(String::as_str), Some("plain"));
        assert!(user.secrets.is_empty());
        assert_eq!(user.vars.get("MODEL").map(String::as_str), Some("a"));
        // Every bad name is named at once, and left out.
        let bad = [
            ("1X", "not a variable name"),
            ("A-B", "not a variable name"),
            ("HOME", "set by tmuxd"),
            ("TMUXD_X", "set by tmuxd"),
        ];
        let vars = bad.iter().map(|(n, _)| (n.to_string(), "v".into()));
        let (env, problems) = layered(&base, "agent", Some(vars.collect()), None);
        assert_eq!(env, base);
        assert_eq!(problems.len(), bad.len(), "{problems:?}");
        for (name, why) in bad {
            let p = problems
                .iter()
                .find(|p| p.key == format!("agent.env.{name}"));
            assert!(
                p.is_some_and(|p| p.reason.contains(why)),
                "{name}: {problems:?}"
            );
        }
        let (_, problems) = layered(
            &base,
            "agent",
            None,
            Some([("K".into(), PathBuf::from("rel"))].into()),
        );
        assert_eq!(problems[0].key, "agent.secrets.K");
    }
}
