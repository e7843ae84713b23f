//! Names of users and sessions, and session ids (`USER/SESSION`).
//!
//! tmux expands `#{...}` and `#(...)` in names and matches targets by prefix,
//! so every user or session name that reaches tmux passes through [`Name`]
//! first: `^[a-z0-9][a-z0-9_-]{0,31}$`, nothing else. This module is the only
//! place that decides what a valid name is.

use std::fmt;
use std::str::FromStr;

/// Longest accepted name, in bytes (all accepted characters are ASCII).
pub const MAX_NAME_LEN: usize = 32;

/// The session every user has, running their agent.
pub const MAIN_SESSION: &str = "main";

/// A validated user or session name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

/// Why a name or session id was refused. The message quotes the value with
/// control characters escaped, so it is safe to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid name {0:?}: names must match ^[a-z0-9][a-z0-9_-]{{0,31}}$")]
    Invalid(String),
    #[error("invalid session id {0:?}: expected USER or USER/SESSION")]
    InvalidId(String),
}

impl Name {
    /// Validates `s` against the allow-list.
    pub fn new(s: &str) -> Result<Name, NameError> {
        let bytes = s.as_bytes();
        let first_ok = matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'));
        let rest_ok = bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if first_ok && rest_ok && bytes.len() <= MAX_NAME_LEN {
            Ok(Name(s.to_owned()))
        } else {
            Err(NameError::Invalid(s.to_owned()))
        }
    }

    pub fn main() -> Name {
        Name(MAIN_SESSION.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Makes a valid name out of arbitrary text (a login name such as
    /// `John.Doe`): lowercase, other characters become `-`, cut to length.
    pub fn sanitize(s: &str) -> Name {
        let mut out: String = s
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .skip_while(|c| *c == '-' || *c == '_')
            .take(MAX_NAME_LEN)
            .collect();
        if out.is_empty() {
            out.push_str("user");
        }
        Name(out)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A session id, `USER/SESSION`; `USER` alone means `USER/main`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId {
    pub user: Name,
    pub session: Name,
}

impl SessionId {
    pub fn new(user: Name, session: Name) -> SessionId {
        SessionId { user, session }
    }

    pub fn is_main(&self) -> bool {
        self.session.as_str() == MAIN_SESSION
    }
}

impl FromStr for SessionId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (user, session) = match s.split_once('/') {
            Some((u, s)) => (u, s),
            None => (s, MAIN_SESSION),
        };
        // Report the part that is wrong, so `alice/Docs` names `Docs`.
        let user = Name::new(user).map_err(|e| {
            if s.contains('/') {
                NameError::InvalidId(s.to_owned())
            } else {
                e
            }
        })?;
        let session = Name::new(session)?;
        Ok(SessionId { user, session })
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.session)
    }
}

/// In JSON, `"USER/SESSION"`.
impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_allowed_names() {
        for ok in ["a", "alice", "0", "a-b", "a_b", "main", &"a".repeat(32)] {
            assert_eq!(Name::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_every_dangerous_name() {
        let long = "a".repeat(33);
        for bad in [
            "a:b", "a.b", "#(id)", "#{pid}", "../x", "-x", "=x", "", &long, "Alice", "a\0b", "_x",
            "a b", "a/b", "é", "a\n",
        ] {
            let err = Name::new(bad).unwrap_err();
            // The message names the value, escaped.
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn session_ids() {
        let id: SessionId = "alice".parse().unwrap();
        assert_eq!(id.to_string(), "alice/main");
        assert!(id.is_main());
        let id: SessionId = "alice/docs".parse().unwrap();
        assert_eq!((id.user.as_str(), id.session.as_str()), ("alice", "docs"));
        for bad in [
            "alice/",
            "/main",
            "alice/do.cs",
            "alice/docs/x",
            "a:b/main",
            "",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad}");
        }
        let err = "alice/#{pid}".parse::<SessionId>().unwrap_err();
        assert!(err.to_string().contains("#{pid}"));
    }

    #[test]
    fn sanitize_makes_valid_names() {
        assert_eq!(Name::sanitize("John.Doe").as_str(), "john-doe");
        assert_eq!(Name::sanitize("..").as_str(), "user");
        assert_eq!(Name::sanitize(&"X".repeat(40)).as_str(), "x".repeat(32));
        for s in ["_root", "-x", "Ünïcode", ""] {
            let n = Name::sanitize(s);
            assert!(Name::new(n.as_str()).is_ok(), "{s} -> {n}");
        }
    }
}
