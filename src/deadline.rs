//! A child process's output within a deadline, for synchronous code (the
//! CLI's checks, the tmux host): past it the child is killed.

use std::process::{Child, Output};
use std::time::Duration;

/// Why a child gave no output.
#[derive(Debug)]
pub enum Late {
    /// Waiting for it failed.
    Io(std::io::Error),
    /// It ran past the deadline and was killed.
    Timeout(Duration),
}

impl std::fmt::Display for Late {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Late::Io(e) => write!(f, "{e}"),
            Late::Timeout(d) => write!(f, "did not finish within {d:?}"),
        }
    }
}

/// `child`'s output (its stdout and stderr piped), or `Late` after
/// `limit`, the child killed.
pub fn output_within(child: Child, limit: Duration) -> Result<Output, Late> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(Late::Io),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            Err(Late::Timeout(limit))
        }
    }
}
