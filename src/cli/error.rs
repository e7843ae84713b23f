//! How the CLI fails: [`CliError`] (bad input, failure, or the exit codes
//! an MTA reads), and the errors of the daemon's control socket as CLI
//! errors.

use crate::config::{Config, ConfigError};
use crate::control;
use crate::session::SessionError;

/// A CLI failure: bad input (exit 2) or something failing (exit 1).
#[derive(Debug)]
pub enum CliError {
    BadInput(String),
    Failed(anyhow::Error),
    /// Try again later (EX_TEMPFAIL, 75): an MTA keeps the message queued.
    TempFail(String),
    /// Not allowed (EX_NOPERM, 77): permanent, an MTA bounces.
    NoPermission(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Failed(_) => 1,
            CliError::TempFail(_) => 75,
            CliError::NoPermission(_) => 77,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::BadInput(m) | CliError::TempFail(m) | CliError::NoPermission(m) => {
                f.write_str(m)
            }
            CliError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<ConfigError> for CliError {
    /// Every problem; the fix too where the line alone does not say it (an
    /// unreadable file, or no file at all).
    fn from(e: ConfigError) -> Self {
        match e.problems.as_slice() {
            [p] if p.key == "(file)" || e.origin == crate::config::EMBEDDED => {
                CliError::BadInput(format!("{e}; {}", e.fix(p)))
            }
            _ => CliError::BadInput(e.to_string()),
        }
    }
}

impl From<SessionError> for CliError {
    fn from(e: SessionError) -> Self {
        if e.is_bad_input() {
            CliError::BadInput(e.to_string())
        } else {
            CliError::Failed(e.into())
        }
    }
}

/// The message of the daemon's answer, or its refusal as a CLI error.
pub(super) fn daemon_answer(r: control::Response) -> Result<String, CliError> {
    match r {
        r if r.bad_input => Err(CliError::BadInput(r.message)),
        r if !r.ok => Err(CliError::Failed(anyhow::anyhow!("daemon: {}", r.message))),
        r => Ok(r.message),
    }
}

/// The daemon's control socket could not be used.
pub(super) fn unreachable(config: &Config) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| {
        CliError::Failed(anyhow::anyhow!(
            "cannot talk to the daemon at {}: {e}",
            config.control_socket().display()
        ))
    }
}
