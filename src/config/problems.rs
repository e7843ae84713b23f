//! What is wrong with a config: every problem found, each with its key,
//! and the fix that applies to the file in use.
//!
//! Parsing and the host checks go on past a bad key (using the default in
//! its place) so one run names every problem; syntax and type errors stop
//! the parse, since nothing after them can be trusted.

/// What `origin` says when no config file was found.
pub const EMBEDDED: &str = "embedded default config";

/// One problem: which key (`users[1].command`, or `(file)`, `(syntax)`
/// for the whole file), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

/// Every problem found in one config (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, or [`EMBEDDED`].
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// A config with one problem.
    pub fn one(origin: &str, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            problems: vec![Problem {
                key: key.to_owned(),
                reason: reason.into(),
            }],
        }
    }

    /// The first problem's key (tests, and callers that name one).
    pub fn key(&self) -> &str {
        &self.problems[0].key
    }

    /// What to do about `p`, for the file actually in use.
    pub fn fix(&self, p: &Problem) -> String {
        fix(&self.origin, &p.key)
    }
}

/// What to do about a problem at `key` of the config from `origin`.
pub fn fix(origin: &str, key: &str) -> String {
    match key {
        _ if origin == EMBEDDED => format!(
            "no config file is in use: `tmuxd init` writes one for this machine ({}), where {key} can be set",
            init_target().display()
        ),
        "(file)" => format!(
            "create {origin} (`tmuxd init --config {origin}` writes one for this machine), or pass --config with another file"
        ),
        "(syntax)" => format!("correct the TOML at the line named, in {origin}"),
        "(example)" => format!("edit the users in {origin}, or `tmuxd init --config {origin} --force`"),
        key => format!("edit {key} in {origin}"),
    }
}

/// Where `tmuxd init` writes when not told: the file the CLI reads first
/// (`/etc/tmuxd/config.toml` as root, else the user's own).
pub fn init_target() -> std::path::PathBuf {
    if nix::unistd::geteuid().is_root() {
        return "/etc/tmuxd/config.toml".into();
    }
    user_config_file()
}

/// `$XDG_CONFIG_HOME/tmuxd/config.toml`, else `~/.config/tmuxd/config.toml`.
pub fn user_config_file() -> std::path::PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| super::host::home_dir().join(".config"))
        .join("tmuxd/config.toml")
}

impl std::fmt::Display for ConfigError {
    /// One problem: one line, `ORIGIN: KEY: REASON`. More: a head line and
    /// one indented line per problem.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.problems.as_slice() {
            [p] => write!(f, "{}: {}: {}", self.origin, p.key, p.reason),
            ps => {
                write!(f, "{}: {} problems", self.origin, ps.len())?;
                for p in ps {
                    write!(f, "\n  {}: {}", p.key, p.reason)?;
                }
                Ok(())
            }
        }
    }
}

/// A config read as far as it goes: defaults in place of bad values, and
/// every problem found in its text and on this machine.
pub struct Inspected {
    pub config: super::Config,
    pub problems: Vec<Problem>,
}

impl Inspected {
    /// The config, if nothing is wrong with it.
    pub fn checked(self) -> Result<super::Config, ConfigError> {
        if self.problems.is_empty() {
            return Ok(self.config);
        }
        Err(ConfigError {
            origin: self.config.origin,
            problems: self.problems,
        })
    }
}

/// The problems found so far while reading one config.
#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            reason: reason.into(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `r`'s value, or `None` with its error recorded at `key`.
    pub(super) fn check<T>(&mut self, key: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|reason| self.add(key, reason)).ok()
    }

    pub(super) fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    /// `value` when nothing was found wrong.
    pub(super) fn finish<T>(self, origin: &str, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                origin: origin.to_owned(),
                problems: self.0,
            })
        }
    }
}
