//! `env` and `secrets` for agents, in `[agent]` (everyone) and per user
//! (overriding by name): plain variables, and variables each read from a
//! file when the agent starts. A secret's value is never in the config,
//! an argv, a log or an API answer: the launcher reads the file (as the
//! user) and exports it just before the agent runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// An agent's environment beyond its account's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentEnv {
    /// Plain variables.
    pub vars: BTreeMap<String, String>,
    /// Variable name -> the file its value is read from.
    pub secrets: BTreeMap<String, PathBuf>,
}

/// Names tmuxd sets itself, or tmux does: never from the config.
fn reserved(name: &str) -> bool {
    name.starts_with("TMUXD_")
        || matches!(
            name,
            "TMUX" | "TMUX_PANE" | "HOME" | "USER" | "LOGNAME" | "SHELL"
        )
}

fn check_name(key: &str, name: &str) -> Result<(), (String, String)> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err((
            key.to_owned(),
            format!("{name:?} is not a variable name (letters, digits, _)"),
        ));
    }
    if reserved(name) {
        return Err((
            key.to_owned(),
            format!("{name} is set by tmuxd or tmux itself"),
        ));
    }
    Ok(())
}

/// `base` with `vars` and `secrets` (of the section `at`, e.g.
/// `users[1]`) laid over it.
pub(super) fn layer(
    base: &AgentEnv,
    at: &str,
    vars: Option<BTreeMap<String, String>>,
    secrets: Option<BTreeMap<String, PathBuf>>,
) -> Result<AgentEnv, (String, String)> {
    let mut env = base.clone();
    for (name, value) in vars.unwrap_or_default() {
        let key = format!("{at}.env.{name}");
        check_name(&key, &name)?;
        if value.contains('\0') {
            return Err((key, "contains a NUL byte".into()));
        }
        env.secrets.remove(&name);
        env.vars.insert(name, value);
    }
    for (name, path) in secrets.unwrap_or_default() {
        let key = format!("{at}.secrets.{name}");
        check_name(&key, &name)?;
        let text = path.to_string_lossy();
        if !path.is_absolute() || text.contains('\n') {
            return Err((key, format!("{text:?} must be an absolute path to the file that holds the value (one line, no newline in the path)")));
        }
        env.vars.remove(&name);
        env.secrets.insert(name, path);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_by_name_and_names_are_checked() {
        let base = layer(
            &AgentEnv::default(),
            "agent",
            Some([("MODEL".into(), "a".into())].into()),
            Some([("API_KEY".into(), PathBuf::from("/etc/k"))].into()),
        )
        .unwrap();
        let user = layer(
            &base,
            "users[0]",
            Some([("API_KEY".into(), "plain".into())].into()),
            None,
        )
        .unwrap();
        assert_eq!(user.vars.get("API_KEY").map(String::as_str), Some("plain"));
        assert!(user.secrets.is_empty());
        assert_eq!(user.vars.get("MODEL").map(String::as_str), Some("a"));
        for (name, why) in [
            ("1X", "not a variable name"),
            ("A-B", "not a variable name"),
            ("TMUXD_X", "set by tmuxd"),
            ("HOME", "set by tmuxd"),
        ] {
            let e = layer(
                &base,
                "agent",
                Some([(name.into(), "v".into())].into()),
                None,
            )
            .unwrap_err();
            assert_eq!(e.0, format!("agent.env.{name}"));
            assert!(e.1.contains(why), "{e:?}");
        }
        let e = layer(
            &base,
            "agent",
            None,
            Some([("K".into(), PathBuf::from("rel"))].into()),
        )
        .unwrap_err();
        assert_eq!(e.0, "agent.secrets.K");
    }
}
